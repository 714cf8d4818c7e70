"""What the schedules and events views share: a header, a status line, a table of the
API's records, polling, and the keys (q/Esc back, ctrl+r refresh, vim keys).

The screen's own workers fetch the list every `settings.history_interval` seconds
(a fetch still under way is never cancelled: on a busy server it would never land)
and carry out its actions; each ends by posting a message (tui/messages.py) that the
screen handles. Jobs the actions start go up to the app (JobsStarted), which follows
them in the jobs table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker

from jobctl.backends.feed import FeedMode
from jobctl.errors import JobctlError
from jobctl.tui.format import count_label
from jobctl.tui.messages import RecordChanged, RecordsLoaded
from jobctl.tui.screens.main import hide_bindings, key_binding
from jobctl.tui.settings import KEYS, MUTATING_ACTIONS, READONLY_NOTE, TuiSettings
from jobctl.tui.widgets.record_table import RecordTable
from jobctl.tui.widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from jobctl.tui.ports import JobApi

Record = dict[str, Any]


class RecordsScreen(Screen[None]):
    COLUMNS: tuple[str, ...] = ()
    NOUN = "record"  # "schedule", "event": for the status line and the notices
    TITLE = ""
    EMPTY = ""  # what the status line says when there are none
    OFF_WHEN_READONLY = ""  # what read-only mode turns off, in words

    # Each view lists its own keys first, then these (so they come first in the footer).
    COMMON_BINDINGS = [
        key_binding("refresh", "refresh", "Refresh"),
        key_binding("back", "back", "Back"),
        # The quit key goes back from here (k9s); ctrl+c still quits.
        Binding(KEYS["quit"][0], "back", "Back", show=False, id="quit"),
    ]

    def __init__(
        self, client: JobApi, settings: TuiSettings, mode: FeedMode = FeedMode.CONNECTING
    ) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.records: dict[str, Record] = {}  # by id, in the order shown
        self.loaded = False
        self.error: str | None = None
        self.refreshed_at: datetime | None = None
        self._loading: Worker[None] | None = None
        self.header = StatusHeader()
        self.header.title = self.TITLE
        self.header.target = settings.target
        self.header.readonly = settings.readonly
        self.header.mode = mode
        self.status = Static("Loading…", id="records-status")
        self.table = RecordTable(self.COLUMNS, id="records")
        if settings.readonly:
            hide_bindings(self, MUTATING_ACTIONS)

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.status
        yield self.table
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.table.focus()
        self.load()
        self.set_interval(self.settings.history_interval, self.load, name=f"{self.NOUN}s poll")

    def tick(self) -> None:
        """Once a second: next runs and ages move on."""
        if self.loaded:
            self.redraw()

    # what a view says ------------------------------------------------------------------
    async def fetch(self) -> list[Record]:
        raise NotImplementedError

    def cells(self, record: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
        raise NotImplementedError

    def summary(self) -> str:
        return count_label(len(self.records), self.NOUN)

    # loading ---------------------------------------------------------------------------
    def load(self) -> None:
        if self._loading is not None and not self._loading.is_finished:
            return  # the next poll asks again
        self._loading = self._fetch()

    @work(group="load", exit_on_error=False)
    async def _fetch(self) -> None:
        try:
            records = await self.fetch()
        except JobctlError as exc:
            self.post_message(RecordsLoaded([], exc.message))
            return
        self.post_message(RecordsLoaded(records))

    @on(RecordsLoaded)
    def records_loaded(self, message: RecordsLoaded) -> None:
        message.stop()
        if message.error is not None:
            self.error = message.error  # what was loaded stays on screen
        else:
            self.error = None
            self.loaded = True
            self.refreshed_at = self.settings.clock()
            self.records = {str(r["id"]): r for r in message.records}
        self.redraw()

    @on(RecordChanged)
    def record_changed(self, message: RecordChanged) -> None:
        message.stop()
        record = message.record
        if record is not None:
            key = str(record["id"])
            if key in self.records:
                self.records[key] = record
                self.table.update_row(key, self.cells(record, self.settings.clock()))
            else:  # a new one (a replay's event): the newest, on top
                self.records = {key: record, **self.records}
                self.redraw()
                self.table.move_cursor(row=0, animate=False)
        self.show_status()
        self.notify(message.note, timeout=5)

    # drawing ---------------------------------------------------------------------------
    def redraw(self) -> None:
        now = self.settings.clock()
        self.table.show([(key, self.cells(r, now)) for key, r in self.records.items()])
        self.show_status()

    def show_status(self) -> None:
        if self.error is not None:
            when = self._stamp() if self.loaded else "nothing loaded yet"
            text = f"✖ could not load the {self.NOUN}s: {self.error} ({when}; retrying)"
        elif not self.loaded:
            text = "Loading…"
        elif not self.records:
            text = self.EMPTY
        else:
            text = f"{self.summary()} · {self._stamp()}"
        if self.settings.readonly and self.OFF_WHEN_READONLY:
            text += f" · read-only: {self.OFF_WHEN_READONLY}"
        self.status.update(text)
        self.status.set_class(self.error is not None, "-error")

    def _stamp(self) -> str:
        at = self.refreshed_at.astimezone(UTC).strftime("%H:%M:%S") if self.refreshed_at else "-"
        return f"refreshed {at} UTC (every {self.settings.history_interval:g}s)"

    # keys --------------------------------------------------------------------------------
    def selected(self) -> Record | None:
        key = self.table.selected_key
        if key is None or key not in self.records:
            self.notify(f"No {self.NOUN} selected.", severity="warning")
            return None
        return self.records[key]

    def refused(self, verb: str) -> bool:
        """Read-only mode: say why the key does nothing."""
        if not self.settings.readonly:
            return False
        self.notify(READONLY_NOTE.format(verb=verb).capitalize() + ".", severity="warning")
        return True

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        """Enter: what the record's jobs are (each view says)."""

    def action_back(self) -> None:
        self.dismiss(None)

    def action_refresh(self) -> None:
        self.load()
