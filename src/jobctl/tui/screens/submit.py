"""The submit dialog: a file (its text becomes input.text), a type, optional input JSON.

The dialog checks what it can without the network (the file is readable
text, the JSON is an object) and answers with a Submission; the app sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Static

from jobctl.errors import UsageError
from jobctl.jobinput import job_input


@dataclass(frozen=True)
class Submission:
    type: str
    input: dict[str, Any]
    label: str  # what to call it in messages: the file name, or the type


def build_submission(path: str, type_: str, input_json: str) -> Submission:
    """Check the dialog's fields with the command line's input reader; raises UsageError
    with a message for the user."""
    type_ = type_.strip()
    if not type_:
        raise UsageError("give a job type")
    file = Path(path.strip()).expanduser() if path.strip() else None
    nothing = UsageError("nothing to submit: give a file, or input JSON")
    if file is None and not input_json.strip():
        raise nothing
    data = job_input(
        None if file is None else str(file),
        input_json if input_json.strip() else None,
        json_source="input JSON",
        file_word="the file",
    )
    if not data:  # "{}" alone
        raise nothing
    return Submission(type_, data, type_ if file is None else file.name)


class SubmitScreen(ModalScreen[Submission | None]):
    BINDINGS = [
        Binding("escape", "close", "Cancel"),
        Binding("q", "close", "Cancel", show=False),  # only reaches here outside the inputs
    ]

    def __init__(self, types: list[str], path: str = "", type_: str = "journal_extraction") -> None:
        super().__init__()
        self.types = types
        self.initial_path = path
        self.initial_type = type_

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Submit a job", id="dialog-title")
            yield Label("File (its text becomes input.text)")
            yield Input(self.initial_path, placeholder="examples/journal.txt", id="path")
            yield Label("Type")
            yield Input(
                self.initial_type,
                placeholder="journal_extraction",
                id="type",
                suggester=SuggestFromList(self.types, case_sensitive=False),
            )
            yield Label("Input JSON (optional)")
            yield Input(placeholder='{"steps": 3, "step_seconds": 0.5}', id="input")
            yield Static("", id="submit-error")
            with Horizontal(id="buttons"):
                yield Button("Submit (Enter)", id="submit", variant="primary")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def _send(self) -> None:
        try:
            submission = build_submission(
                self.query_one("#path", Input).value,
                self.query_one("#type", Input).value,
                self.query_one("#input", Input).value,
            )
        except UsageError as exc:
            self.query_one("#submit-error", Static).update(f"✖ {exc.message}")
            return
        self.dismiss(submission)

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._send()

    @on(Button.Pressed, "#submit")
    def submit_pressed(self) -> None:
        self._send()

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
