"""The jobs table: a Line API widget that draws only the rows on screen.

It keeps every job it was given, and the filtered, newest-first order of
the ones shown. An update redraws one line (when it is on screen), so a
thousand updates a second over ten thousand rows stay cheap; a new or
re-filtered row moves the others. The cursor follows its job, not its
position, when rows arrive above it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from jobctl.models import Job
from jobctl.tui.format import JobFilter, job_time, progress_bar, status_label

SortKey = tuple[float, str]


def sort_key(job: Job) -> SortKey:
    stamp = job.created_at.timestamp() if job.created_at else 0.0
    return (-stamp, job.id)


@dataclass(frozen=True)
class Columns:
    """Cell widths for a table width; the message takes what is left."""

    type: int
    bar: int
    message: int

    @classmethod
    def for_width(cls, width: int) -> Columns:
        bar = 10 if width >= 100 else 6
        type_ = 20 if width >= 110 else 16
        fixed = 2 + 9 + (type_ + 1) + 12 + (bar + 6) + 7
        return cls(type_, bar, max(8, width - fixed))


class JobsTable(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {
        "jobs-table--header",
        "jobs-table--cursor",
        "jobs-table--marked",
        "jobs-table--empty",
        "jobs-table--pending",
        "jobs-table--running",
        "jobs-table--completed",
        "jobs-table--failed",
        "jobs-table--cancelled",
    }
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "edge(0)", "First", show=False),
        Binding("end,G", "edge(1)", "Last", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)
    # A probe called with each job row drawn: set on an instance by tests, on the class by
    # the benchmark (which must see the very first frame).
    rendered: Callable[[Job], None] | None = None

    @dataclass
    class Opened(Message):
        """The user opened a row (Enter or a double click)."""

        job_id: str

    @dataclass
    class Changed(Message):
        """What the table shows changed: rows shown, marks, or the row under the cursor."""

        shown: int
        total: int
        marked: int

    def __init__(self, clock: Callable[[], datetime], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self.order: list[str] = []  # ids shown, newest first
        self._keys: list[SortKey] = []  # sort keys of `order`, for bisect
        self.filter = JobFilter()
        self.marked: set[str] = set()
        self.empty_text = "No jobs yet."

    # data in (called by the screen) -------------------------------------------
    def set_jobs(self, jobs: Iterable[Job], *, replace: bool = False) -> None:
        """Add or replace many jobs. Pages of the list arrive newest first, each older
        than the last: those are appended without sorting the table again."""
        selected = self.selected_id
        if replace:
            self.jobs = {}
        fresh = list(jobs)
        appendable = all(job.id not in self.jobs for job in fresh)
        for job in fresh:
            self.jobs[job.id] = job
        if appendable:
            shown = sorted((j for j in fresh if self.filter.matches(j)), key=sort_key)
            if not shown or not self._keys or sort_key(shown[0]) > self._keys[-1]:
                self.order.extend(j.id for j in shown)
                self._keys.extend(sort_key(j) for j in shown)
                self._after_reorder(selected)
                return
        self._rebuild(selected)

    def upsert(self, job: Job) -> None:
        old = self.jobs.get(job.id)
        self.jobs[job.id] = job
        was = old is not None and self.filter.matches(old)
        now = self.filter.matches(job)
        key = sort_key(job)
        if was and now and old is not None and sort_key(old) == key:
            index = bisect_left(self._keys, key)
            self._refresh_row(index)
            return
        selected = self.selected_id
        if was and old is not None:
            index = bisect_left(self._keys, sort_key(old))
            del self.order[index], self._keys[index]
        if now:
            index = bisect_left(self._keys, key)
            self.order.insert(index, job.id)
            self._keys.insert(index, key)
        self._after_reorder(selected)

    def set_filter(self, job_filter: JobFilter) -> None:
        self.filter = job_filter
        self._rebuild(self.selected_id)

    def toggle_mark(self) -> None:
        job_id = self.selected_id
        if job_id is None:
            return
        self.marked.symmetric_difference_update({job_id})
        self._refresh_row(self.cursor)
        self._announce()

    def mark_all(self) -> None:
        """Mark every row shown; when they all are already, clear the marks."""
        shown = set(self.order)
        self.marked = set() if shown and shown <= self.marked else self.marked | shown
        self.refresh()
        self._announce()

    def clear_marks(self) -> None:
        self.marked.clear()
        self.refresh()
        self._announce()

    def select(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or not self.filter.matches(job):
            return False
        self.cursor = bisect_left(self._keys, sort_key(job))
        return True

    # data out -------------------------------------------------------------------
    @property
    def selected_id(self) -> str | None:
        if 0 <= self.cursor < len(self.order):
            return self.order[self.cursor]
        return None

    @property
    def targets(self) -> list[str]:
        """The marked jobs that are still known, or else the selected one."""
        marked = [j for j in self.order if j in self.marked]
        marked += sorted(j for j in self.marked if j in self.jobs and j not in set(self.order))
        if marked:
            return marked
        return [self.selected_id] if self.selected_id else []

    # internals ----------------------------------------------------------------
    def _rebuild(self, selected: str | None) -> None:
        shown = [j for j in self.jobs.values() if self.filter.matches(j)]
        shown.sort(key=sort_key)
        self.order = [j.id for j in shown]
        self._keys = [sort_key(j) for j in shown]
        self._after_reorder(selected)

    def _after_reorder(self, selected: str | None) -> None:
        self.virtual_size = Size(self.size.width, len(self.order) + 1)
        if (
            selected is not None
            and selected in self.jobs
            and self.filter.matches(self.jobs[selected])
        ):
            self.set_reactive(
                JobsTable.cursor, bisect_left(self._keys, sort_key(self.jobs[selected]))
            )
        self.set_reactive(JobsTable.cursor, max(0, min(self.cursor, len(self.order) - 1)))
        self.refresh()
        self._announce()

    def _announce(self) -> None:
        self.post_message(self.Changed(len(self.order), len(self.jobs), len(self.marked)))

    def _refresh_row(self, index: int) -> None:
        top = int(self.scroll_offset.y)
        if top <= index < top + self.size.height:
            self.refresh_line(index + 1)

    def watch_cursor(self, old: int, new: int) -> None:
        clamped = max(0, min(new, len(self.order) - 1))
        if clamped != new:
            self.set_reactive(JobsTable.cursor, clamped)
        self._refresh_row(old)
        self._refresh_row(clamped)
        # keep the cursor in view (line 0 is the header)
        top = int(self.scroll_offset.y)
        rows = max(1, self.size.height - 1)
        if clamped < top:
            self.scroll_to(y=clamped, animate=False, immediate=True)
        elif clamped >= top + rows:
            self.scroll_to(y=clamped - rows + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.cursor = self.cursor + delta

    def action_page(self, direction: int) -> None:
        self.cursor = self.cursor + direction * max(1, self.size.height - 2)

    def action_edge(self, end: int) -> None:
        self.cursor = len(self.order) - 1 if end else 0

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if event.y < 1 or not 0 <= index < len(self.order):
            return
        self.cursor = index
        if event.chain >= 2:
            self.post_message(self.Opened(self.order[index]))

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.order) + 1)

    # drawing ------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        cols = Columns.for_width(width)
        if y == 0:
            return self._header(cols, width)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self.order):
            if index == 0:
                text = self.empty_text if not self.jobs else "No jobs match the filter."
                style = self.get_component_rich_style("jobs-table--empty")
                return Strip([Segment(set_cell_size(f"  {text}", width), style)], width)
            return Strip.blank(width, self.rich_style)
        job = self.jobs[self.order[index]]
        strip = self._row(job, index, cols, width)
        if self.rendered is not None:
            self.rendered(job)
        return strip

    def _header(self, cols: Columns, width: int) -> Strip:
        style = self.get_component_rich_style("jobs-table--header")
        cells = [
            ("  ", 2),
            ("ID", 9),
            ("TYPE", cols.type + 1),
            ("STATUS", 12),
            ("PROGRESS", cols.bar + 6),
            ("TIME", 7),
            ("MESSAGE", cols.message),
        ]
        text = "".join(set_cell_size(t, w) for t, w in cells)
        return Strip([Segment(set_cell_size(text, width), style)], width)

    def _row(self, job: Job, index: int, cols: Columns, width: int) -> Strip:
        base = self.rich_style
        marked = job.id in self.marked
        if index == self.cursor and self.has_focus:
            base = base + self.get_component_rich_style("jobs-table--cursor")
        elif index == self.cursor:
            base = base + self.get_component_rich_style("jobs-table--cursor", partial=True)
        status_style = base + self.get_component_rich_style(
            f"jobs-table--{job.status.value}", partial=True
        )
        mark_style = (
            base + self.get_component_rich_style("jobs-table--marked", partial=True)
            if marked
            else base
        )
        message = job.error if job.error and job.status.is_terminal else job.message
        segments = [
            Segment("* " if marked else "  ", mark_style),
            Segment(set_cell_size(job.short_id, 9), base),
            Segment(_fit(job.type, cols.type + 1), base),
            Segment(set_cell_size(status_label(job.status), 12), status_style),
            Segment(set_cell_size(progress_bar(job.progress, cols.bar), cols.bar + 6), base),
            Segment(set_cell_size(job_time(job, self.clock()), 7), base),
            Segment(_fit(" ".join((message or "").split()), cols.message), base),
        ]
        used = sum(s.cell_length for s in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), base))
        return Strip(segments, width).crop(0, width)


def _fit(text: str, width: int) -> str:
    """Truncate with an ellipsis, keeping one cell of space after the text."""
    if cell_len(text) < width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 2) + "… "
