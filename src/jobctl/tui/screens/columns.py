"""`C`: which columns the jobs table shows (the id always is).

Each line says whether its column is on in words ([x] or [ ]), not by colour alone.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static

from jobctl.tui.settings import COLUMNS

DESCRIPTION = {
    "id": "ID (always shown)",
    "type": "TYPE",
    "status": "STATUS",
    "progress": "PROGRESS bar",
    "time": "TIME: duration, or how long it has been running",
    "age": "AGE: since it was created",
    "attempt": "ATTEMPT: the whole job's attempt (a retry adds one)",
    "message": "MESSAGE: progress text, or the error",
}


class ColumnList(OptionList):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("space", "flip", "On/off", show=False),
    ]

    def __init__(self, shown: tuple[str, ...], **kwargs: object) -> None:
        self.on = {c for c in COLUMNS if c in shown or c == "id"}
        super().__init__(*(self._prompt(c) for c in COLUMNS), **kwargs)  # type: ignore[arg-type]

    def _prompt(self, column: str) -> Text:
        return Text(f"{'[x]' if column in self.on else '[ ]'} {DESCRIPTION[column]}")

    def action_flip(self) -> None:
        index = self.highlighted
        if index is None or COLUMNS[index] == "id":
            return
        self.on.symmetric_difference_update({COLUMNS[index]})
        self.replace_option_prompt_at_index(index, self._prompt(COLUMNS[index]))


class ColumnsScreen(ModalScreen[tuple[str, ...] | None]):
    BINDINGS = [Binding("escape,q", "close", "Cancel")]

    def __init__(self, shown: tuple[str, ...]) -> None:
        super().__init__()
        self.list = ColumnList(shown, id="columns")

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Columns", id="dialog-title")
            yield self.list
            yield Static("Space: on or off · Enter keeps them · Esc leaves them", id="help-close")

    def on_mount(self) -> None:
        self.list.highlighted = 1
        self.list.focus()

    @on(OptionList.OptionSelected)
    def keep(self) -> None:
        self.dismiss(tuple(c for c in COLUMNS if c in self.list.on))

    def action_close(self) -> None:
        self.dismiss(None)
