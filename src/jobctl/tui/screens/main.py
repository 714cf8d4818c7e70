"""The main screen: header, summary strip, the jobs table, the filter line, the footer.

It owns no network work: actions become requests to the app (messages up),
and the app hands it jobs, stats and the connection mode (attributes down).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer

from jobctl.tui.format import parse_filter
from jobctl.tui.settings import KEYS, MUTATING_ACTIONS, TuiSettings
from jobctl.tui.widgets.filter_bar import FilterBar
from jobctl.tui.widgets.jobs_table import JobsTable
from jobctl.tui.widgets.status_header import StatusHeader
from jobctl.tui.widgets.summary_strip import SummaryStrip


def key_binding(binding_id: str, action: str, description: str, *, show: bool = True) -> Binding:
    return Binding(KEYS[binding_id][0], action, description, show=show, id=binding_id)


class TableReady(Message):
    """The jobs table is mounted: the app fills it with what it already has."""


@dataclass
class JobsRequested(Message):
    """The user asked for an action on jobs: verb is open, retry, cancel or copy_id."""

    verb: str
    job_ids: list[str]


class MainScreen(Screen[None]):
    BINDINGS = [
        key_binding("open", "open", "Open"),
        key_binding("submit", "submit", "Submit"),
        key_binding("retry", "retry", "Retry"),
        key_binding("cancel", "cancel", "Cancel"),
        key_binding("copy_id", "copy_id", "Copy id", show=False),
        key_binding("filter", "filter", "Filter"),
        key_binding("mark", "mark", "Mark"),
        key_binding("mark_all", "mark_all", "Mark all", show=False),
        key_binding("back", "back", "Clear", show=False),
    ]

    def __init__(self, settings: TuiSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        header = StatusHeader()
        header.target = self.settings.target
        header.readonly = self.settings.readonly
        yield header
        yield SummaryStrip()
        table = JobsTable(self.settings.clock, id="jobs")
        table.empty_text = (
            "No jobs yet."
            if self.settings.readonly
            else f"No jobs yet. Press {self.settings.key_for('submit')} to submit one."
        )
        yield table
        yield FilterBar(id="filter")
        yield Footer(show_command_palette=False)

    @property
    def table(self) -> JobsTable:
        return self.query_one(JobsTable)

    @property
    def mounted_table(self) -> JobsTable | None:
        """The table, or None before the screen is composed or after it is gone
        (feed events can arrive at either end of the app's life)."""
        if not self.is_mounted:
            return None
        tables = self.query(JobsTable)
        return tables.first() if tables else None

    def on_mount(self) -> None:
        self.table.focus()
        self.post_message(TableReady())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in MUTATING_ACTIONS and self.settings.readonly)

    # actions ------------------------------------------------------------------
    def _request(self, verb: str) -> None:
        targets = self.table.targets if verb in ("retry", "cancel") else []
        if verb not in ("retry", "cancel"):
            selected = self.table.selected_id
            targets = [selected] if selected else []
        if not targets:
            self.notify("No job selected.", severity="warning")
            return
        self.post_message(JobsRequested(verb, targets))

    def action_open(self) -> None:
        self._request("open")

    def action_retry(self) -> None:
        self._request("retry")

    def action_cancel(self) -> None:
        self._request("cancel")

    def action_copy_id(self) -> None:
        self._request("copy_id")

    def action_submit(self) -> None:
        self.post_message(JobsRequested("submit", []))

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self.table.action_cursor(1)

    def action_mark_all(self) -> None:
        self.table.mark_all()

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.add_class("-open")
        bar.focus()

    def action_back(self) -> None:
        bar = self.query_one(FilterBar)
        if bar.value:
            bar.action_clear_filter()
        elif self.table.marked:
            self.table.clear_marks()

    # from the widgets -----------------------------------------------------------
    @on(JobsTable.Opened)
    def open_row(self, event: JobsTable.Opened) -> None:
        self.post_message(JobsRequested("open", [event.job_id]))

    @on(JobsTable.Changed)
    def table_changed(self, event: JobsTable.Changed) -> None:
        strip = self.query_one(SummaryStrip)
        strip.shown, strip.total, strip.marked = event.shown, event.total, event.marked

    @on(FilterBar.Applied)
    def filter_applied(self, event: FilterBar.Applied) -> None:
        job_filter = parse_filter(event.text)
        self.table.set_filter(job_filter)
        self.query_one(SummaryStrip).filter_text = job_filter.describe()
        if job_filter.errors:
            self.notify("; ".join(job_filter.errors), severity="warning", timeout=3)
        if event.done:
            bar = self.query_one(FilterBar)
            bar.set_class(bool(event.text), "-open")
            self.table.focus()
