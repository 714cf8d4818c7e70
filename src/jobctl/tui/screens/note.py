"""A question with an optional note (pausing or resuming a schedule): Enter goes ahead,
with the note typed (or none), Esc gives up. The answer is the note ("" for none) or
None for no."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

MAX_NOTE = 500  # the server's limit


class NoteScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, question: str, placeholder: str = "why (optional)") -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            yield Input(placeholder=self.placeholder, max_length=MAX_NOTE, id="note")
            yield Static("Enter: go ahead (the note is optional) · Esc: cancel", id="note-help")

    def on_mount(self) -> None:
        self.query_one("#note", Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_close(self) -> None:
        self.dismiss(None)
