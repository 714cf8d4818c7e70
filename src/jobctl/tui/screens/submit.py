"""The submit dialog: a file (its text becomes input.text), a type, optional input JSON.

The dialog checks what it can without the network (the file is readable
text, the JSON is an object) and answers with a Submission; the app sends it.
"""

from __future__ import annotations

import json
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

MAX_FILE_BYTES = 1024 * 1024  # the server's input limit


@dataclass(frozen=True)
class Submission:
    type: str
    input: dict[str, Any]
    label: str  # what to call it in messages: the file name, or the type


def build_submission(path: str, type_: str, input_json: str) -> Submission:
    """Check the dialog's fields; raises UsageError with a message for the user."""
    type_ = type_.strip()
    if not type_:
        raise UsageError("give a job type")
    data: dict[str, Any] = {}
    if input_json.strip():
        try:
            value = json.loads(input_json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"input JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(value, dict):
            raise UsageError('input JSON must be an object, like {"steps": 3}')
        data = value
    path = path.strip()
    label = type_
    if path:
        file = Path(path).expanduser()
        label = file.name
        try:
            if file.is_dir():
                raise UsageError(f"{path}: is a directory, not a file")
            if file.stat().st_size > MAX_FILE_BYTES:
                raise UsageError(f"{path}: over the {MAX_FILE_BYTES // 1024} KiB input limit")
            raw = file.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{path}: not UTF-8 text") from None
        if "\x00" in text or not text.strip():
            raise UsageError(f"{path}: is empty or not text")
        if "text" in data:
            raise UsageError("input.text given twice: by the file and by the input JSON")
        data["text"] = text
        data["filename"] = file.name
    elif not data:
        raise UsageError("nothing to submit: give a file, or input JSON")
    return Submission(type_, data, label)


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
