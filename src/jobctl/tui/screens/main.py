"""The main screen: header, summary strip, the jobs table, the filter line, the footer.

It owns no network work: actions become requests to the app (messages up),
and the app hands it jobs, stats and the connection mode (attributes and
methods down). It holds its widgets (made in `__init__`), so the app's hot
path never searches the DOM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer

from jobctl.backends.feed import FeedMode
from jobctl.tui.format import WINDOW_LABEL, WINDOWS, JobFilter, parse_filter, window_start
from jobctl.tui.screens.columns import ColumnsScreen
from jobctl.tui.settings import KEYS, MUTATING_ACTIONS, TuiSettings
from jobctl.tui.widgets.filter_bar import FilterBar
from jobctl.tui.widgets.jobs_table import FIRST_DESCENDING, JobsTable, Sort
from jobctl.tui.widgets.status_header import StatusHeader
from jobctl.tui.widgets.summary_strip import SummaryStrip

WINDOW_REFRESH = 30  # ticks between moves of a sliding window's start
VIEW_KEYS = frozenset({"schedules", "events"})
# The footer names the views' keys from this width on (below it they would push
# "q Quit  ? Keys" off an 80-column footer); `?` always lists them.
VIEW_KEYS_WIDTH = 100


def key_binding(binding_id: str, action: str, description: str, *, show: bool = True) -> Binding:
    return Binding(KEYS[binding_id][0], action, description, show=show, id=binding_id)


def hide_bindings(node: DOMNode, ids: frozenset[str], *, show: bool = False) -> None:
    """Take these bindings out of the footer (they still run, and say why they do nothing),
    or with `show`, put them back."""
    bindings = node._bindings
    for key, found in list(bindings.key_to_bindings.items()):
        bindings.key_to_bindings[key] = [
            dataclasses.replace(b, show=show) if b.id in ids else b for b in found
        ]


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
        key_binding("schedules", "app.open_schedules", "Schedules"),
        key_binding("events", "app.open_events", "Events"),
        key_binding("mark_all", "mark_all", "Mark all", show=False),
        key_binding("sort", "sort(1)", "Sort", show=False),  # the header shows it (▲ ▼)
        key_binding("sort_back", "sort(-1)", "Sort back", show=False),
        key_binding("sort_invert", "sort_invert", "Invert sort", show=False),
        key_binding("columns", "columns", "Columns", show=False),
        key_binding("window", "window", "Window", show=False),
        key_binding("back", "back", "Clear", show=False),
    ]

    def __init__(self, settings: TuiSettings, notices: Mapping[int, frozenset[str]]) -> None:
        super().__init__()
        self.settings = settings
        self.notices = notices  # the app's, kept up to date there: `notice:N` reads it
        self.window = "all"
        self.text_filter = JobFilter()
        self._ticks = 0
        self.header = StatusHeader()
        self.header.target = settings.target
        self.header.readonly = settings.readonly
        self.strip = SummaryStrip()
        self.table = JobsTable(settings.clock, settings.columns, id="jobs")
        self.table.empty_text = "Loading jobs…"
        self.filter_bar = FilterBar(id="filter")
        if settings.readonly:
            hide_bindings(self, MUTATING_ACTIONS)
        self._view_keys_shown = True

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.strip
        yield self.table
        yield self.filter_bar
        yield Footer(show_command_palette=False)

    @property
    def mounted_table(self) -> JobsTable | None:
        """The table, or None before the screen is composed or after it is gone
        (feed events can arrive at either end of the app's life)."""
        return self.table if self.table.is_mounted else None

    def on_mount(self) -> None:
        self.table.focus()
        self.post_message(TableReady())

    def on_resize(self) -> None:
        show = self.size.width >= VIEW_KEYS_WIDTH or self.settings.readonly
        if show != self._view_keys_shown:
            self._view_keys_shown = show
            hide_bindings(self, VIEW_KEYS, show=show)
            self.refresh_bindings()

    # from the app ---------------------------------------------------------------
    def show_mode(self, mode: FeedMode, detail: str, loaded: bool) -> None:
        self.header.mode, self.header.detail = mode, detail
        if mode == FeedMode.OFFLINE:
            self.table.empty_text = (
                "No jobs to show: the job server does not answer (reconnecting)."
            )
        elif not loaded:
            self.table.empty_text = "Loading jobs…"
        elif self.settings.readonly:
            self.table.empty_text = "No jobs yet."
        else:
            key = self.app.get_key_display(Binding(self.settings.key_for("submit"), ""))
            self.table.empty_text = f"No jobs yet. Press {key} to submit one."
        self.table.refresh()

    def tick(self) -> None:
        self._ticks += 1
        if self.window != "all" and self._ticks % WINDOW_REFRESH == 0:
            self._apply_filter()  # the window slides
        else:
            self.table.tick()

    def set_filter_text(self, text: str) -> None:
        """Put this text in the filter line and apply it (the palette, a toast's link)."""
        self.filter_bar.value = text
        self.filter_applied(FilterBar.Applied(text, done=True))

    # actions ------------------------------------------------------------------
    def _request(self, verb: str) -> None:
        if verb in ("retry", "cancel"):
            targets = self.table.targets
        else:
            selected = self.table.selected_id
            targets = [selected] if selected else []
        if not targets and not (verb in MUTATING_ACTIONS and self.settings.readonly):
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

    def action_sort(self, step: int) -> None:
        columns = list(self.table.columns)
        current = self.table.sort.column
        at = columns.index(current) if current in columns else -1
        column = columns[(at + step) % len(columns)]
        self.table.set_sort(Sort(column, FIRST_DESCENDING.get(column, False)))
        self.strip.sort_text = self.table.sort.describe()

    def action_sort_invert(self) -> None:
        sort = self.table.sort
        self.table.set_sort(Sort(sort.column, not sort.descending))
        self.strip.sort_text = self.table.sort.describe()

    def action_columns(self) -> None:
        def chosen(columns: tuple[str, ...] | None) -> None:
            if columns:
                self.table.set_columns(columns)
                if self.table.sort.column not in self.table.columns:
                    self.table.set_sort(Sort())
                    self.strip.sort_text = self.table.sort.describe()

        self.app.push_screen(ColumnsScreen(self.table.columns), chosen)

    def action_window(self) -> None:
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        self.strip.window_text = "" if self.window == "all" else WINDOW_LABEL[self.window]
        self._apply_filter()

    def action_filter(self) -> None:
        self.filter_bar.add_class("-open")
        self.filter_bar.focus()

    def action_back(self) -> None:
        if self.filter_bar.value:
            self.filter_bar.action_clear_filter()
        elif self.table.marked:
            self.table.clear_marks()

    # from the widgets -----------------------------------------------------------
    @on(JobsTable.Opened)
    def open_row(self, event: JobsTable.Opened) -> None:
        self.post_message(JobsRequested("open", [event.job_id]))

    @on(JobsTable.Changed)
    def table_changed(self, event: JobsTable.Changed) -> None:
        strip = self.strip
        strip.shown, strip.total, strip.marked = event.shown, event.total, event.marked

    @on(FilterBar.Applied)
    def filter_applied(self, event: FilterBar.Applied) -> None:
        self.text_filter = parse_filter(event.text, self.notices)
        self.filter_bar.show_errors(self.text_filter.errors)
        self._apply_filter()
        if event.done:
            self.filter_bar.set_class(bool(event.text), "-open")
            self.table.focus()

    def _apply_filter(self) -> None:
        since = window_start(self.window, self.settings.clock())
        self.table.set_filter(dataclasses.replace(self.text_filter, since=since))
        self.strip.filter_text = self.text_filter.describe() or (
            "(invalid)" if self.text_filter.errors else ""
        )
