"""`C`: which columns the jobs table shows (the id always is)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection

from jobctl.tui.settings import COLUMNS

DESCRIPTION = {
    "id": "ID (always shown)",
    "type": "TYPE",
    "status": "STATUS",
    "progress": "PROGRESS bar",
    "time": "TIME: duration, or how long it has been running",
    "age": "AGE: since it was created",
    "attempt": "ATTEMPT: the whole job's attempt (retries add one)",
    "message": "MESSAGE: progress text, or the error",
}


class ColumnList(SelectionList[str]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]


class ColumnsScreen(ModalScreen[tuple[str, ...] | None]):
    BINDINGS = [
        Binding("escape,q", "close", "Cancel"),
        Binding("enter", "keep", "Keep"),
    ]

    def __init__(self, shown: tuple[str, ...]) -> None:
        super().__init__()
        self.shown = shown

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Columns", id="dialog-title")
            yield ColumnList(
                *(
                    Selection(DESCRIPTION[c], c, c in self.shown or c == "id", disabled=c == "id")
                    for c in COLUMNS
                ),
                id="columns",
            )
            yield Static(
                "Space turns a column on or off · Enter keeps · Esc cancels", id="help-close"
            )

    def on_mount(self) -> None:
        self.query_one(ColumnList).focus()

    def action_keep(self) -> None:
        chosen = set(self.query_one(ColumnList).selected) | {"id"}
        self.dismiss(tuple(c for c in COLUMNS if c in chosen))

    def action_close(self) -> None:
        self.dismiss(None)
