"""`?`: the keys that work on the screen below, as they are bound now."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from jobctl.tui.widgets.scrolling import VimScroll

FILTER_HELP = (
    "Filter (/): words match id, type, message and error; "
    "status:failed,running, type:demo and id:1a2b3c4d,5e6f (id prefixes) narrow; "
    "notice:N keeps the jobs of a summary toast. "
    "A status that does not exist matches nothing (the filter line says why)."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close")]

    def __init__(self, title: str, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self.rows:
            table.add_row(key, description)
        with VimScroll(id="dialog"):
            yield Static(Text(f"Keys: {self.title_text}", style="bold"), id="help-title")
            yield Static(table, id="help-keys")
            yield Static(FILTER_HELP, id="help-filter")
            yield Static("Esc, q or ? closes this; j k scroll.", id="help-close")

    def on_mount(self) -> None:
        self.query_one(VimScroll).focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
