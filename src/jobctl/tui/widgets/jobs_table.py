"""The jobs table: a Line API widget that draws only the rows on screen.

It keeps every job it was given, and the filtered, sorted order of the ones
shown. Updates come in batches (one per frame): rows whose place does not
change are only redrawn, a few moved rows are re-inserted by bisection, and
a large batch re-sorts once. So a burst of thousands of updates over ten
thousand rows costs one pass, not one per job.

The cursor is a job, not a position: when rows arrive above it, the view
moves with it (the highlighted row keeps its job and its line on screen),
except at the very top, where new rows show and the cursor moves down with
its job while it stays on screen. Actions read `selected_id`, which is the
row drawn highlighted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from jobctl.models import Job, JobStatus
from jobctl.tui.format import JobFilter, job_time, progress_bar, short_duration, status_label
from jobctl.tui.settings import COLUMNS as ALL_COLUMNS
from jobctl.tui.settings import DEFAULT_COLUMNS

SortKey = tuple[Any, ...]
REBUILD_AT = 64  # moved rows in one batch past which one sort beats many insertions
LINE_REFRESH_MAX = 500  # changed rows in one batch past which the table is repainted whole

# Columns: key -> header. `id` is always shown; `message` takes the width left.
COLUMN_TITLES = {
    "id": "ID",
    "type": "TYPE",
    "status": "STATUS",
    "progress": "PROGRESS",
    "time": "TIME",
    "age": "AGE",
    "attempt": "ATTEMPT",
    "message": "MESSAGE",
}
assert tuple(COLUMN_TITLES) == ALL_COLUMNS
# The first direction of each sort column (`>` picks the column, `I` inverts):
# age newest first, time and progress largest first, status the ones that need you first.
FIRST_DESCENDING = {"time": True, "progress": True}
STATUS_RANK = {
    JobStatus.FAILED: 0,
    JobStatus.RUNNING: 1,
    JobStatus.PENDING: 2,
    JobStatus.CANCELLED: 3,
    JobStatus.COMPLETED: 4,
}


def _created(job: Job) -> float:
    return job.created_at.timestamp() if job.created_at else 0.0


def _seconds(job: Job, now: datetime) -> float:
    """What the TIME column shows, in seconds: the duration, or the age while active."""
    if job.status.is_terminal and job.started_at and job.completed_at:
        return (job.completed_at - job.started_at).total_seconds()
    since = job.started_at or job.created_at
    return (now - since).total_seconds() if since else 0.0


@dataclass(frozen=True)
class Sort:
    column: str = "age"
    descending: bool = False  # age ascending: the newest first

    def key(self, now: datetime) -> Callable[[Job], SortKey]:
        """A total order (ties by newest, then id), so rows never swap places on a redraw."""
        sign = -1 if self.descending else 1
        column = self.column

        def key(job: Job) -> SortKey:
            tie = (-_created(job), job.id)
            if column == "age":
                return (-sign * _created(job), job.id)
            if column == "id":
                return (job.id,) if sign > 0 else (_Reversed(job.id),)
            if column == "type":
                value: Any = job.type if sign > 0 else _Reversed(job.type)
                return (value, *tie)
            if column == "status":
                return (sign * STATUS_RANK[job.status], *tie)
            if column == "progress":
                return (sign * job.progress, *tie)
            if column == "time":
                return (sign * _seconds(job, now), *tie)
            if column == "attempt":
                return (sign * job.attempt, *tie)
            text = (job.error if job.error and job.status.is_terminal else job.message) or ""
            return ((text if sign > 0 else _Reversed(text)), *tie)

        return key

    @property
    def arrow(self) -> str:
        return "▼" if self.descending else "▲"

    def describe(self) -> str:
        if self.column == "age":
            return "newest first" if not self.descending else "oldest first"
        return f"{COLUMN_TITLES[self.column].lower()} {self.arrow}"


class _Reversed:
    """Sorts a string backwards inside a tuple key."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True)
class Layout:
    """Cell widths of the shown columns for a table width; the message takes what is left."""

    widths: tuple[tuple[str, int], ...]
    bar: int

    @classmethod
    def for_width(cls, width: int, columns: Sequence[str]) -> Layout:
        bar = 10 if width >= 100 else 6
        fixed = {
            "id": 9,
            "type": 21 if width >= 110 else (17 if width >= 90 else 15),
            "status": 12,
            "progress": bar + 6,
            "time": 7,
            "age": 6,
            "attempt": 8,
        }
        shown = [c for c in ALL_COLUMNS if c in columns or c == "id"]
        used = 2 + sum(fixed[c] for c in shown if c != "message")
        widths = tuple((c, fixed[c] if c != "message" else max(8, width - used)) for c in shown)
        return cls(widths, bar)


class JobsTable(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {
        "jobs-table--header",
        "jobs-table--sorted",
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
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False),
        Binding("ctrl+u", "half_page(-1)", "Half a page up", show=False),
        Binding("ctrl+d", "half_page(1)", "Half a page down", show=False),
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

    def __init__(
        self,
        clock: Callable[[], datetime],
        columns: Sequence[str] = DEFAULT_COLUMNS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self.order: list[str] = []  # ids shown, in sort order
        self._keys: list[SortKey] = []  # sort keys of `order`, for bisect
        self.filter = JobFilter()
        self.sort = Sort()
        self._key = self.sort.key(clock())
        self.columns: tuple[str, ...] = tuple(columns)
        self.marked: set[str] = set()
        self.empty_text = "No jobs yet."
        self._announced: tuple[int, int, int] | None = None
        # Styles from the CSS, worked out once (they cost more than the text): kept until
        # the styles change (notify_style_update) or the focus does (the cursor's style).
        self._styles: dict[str, Style] | None = None
        self._styles_focus = False
        # Each row's last line: drawn again as it was while nothing it shows has changed
        # (rows arriving above shift every line of the table, not what is in them).
        self._lines: dict[str, tuple[Job, tuple[Any, ...], Strip]] = {}

    # data in (called by the screen) -------------------------------------------
    def set_jobs(self, jobs: Iterable[Job], *, replace: bool = False) -> None:
        """Add or replace many jobs. Pages of the list arrive newest first, each older
        than the last: in the default order those are appended without sorting again."""
        selected = self.selected_id
        if replace:
            self.jobs = {}
        fresh = list(jobs)
        appendable = not replace and all(job.id not in self.jobs for job in fresh)
        for job in fresh:
            self.jobs[job.id] = job
        if appendable:
            shown = sorted((j for j in fresh if self.filter.matches(j)), key=self._key)
            if not shown or not self._keys or self._key(shown[0]) > self._keys[-1]:
                self.order.extend(j.id for j in shown)
                self._keys.extend(self._key(j) for j in shown)
                self._after_reorder(selected)
                return
        self._rebuild(selected)

    def upsert(self, job: Job) -> None:
        self.apply([job])

    def apply(self, jobs: Sequence[Job]) -> None:
        """A batch of newer snapshots (one per job). Rows that keep their place are
        redrawn; moved ones are re-inserted, or the whole order re-sorted if many moved."""
        if not jobs:
            return
        moved: list[tuple[Job | None, Job | None]] = []
        for job in jobs:
            old = self.jobs.get(job.id)
            self.jobs[job.id] = job
            was = old is not None and self.filter.matches(old)
            now = self.filter.matches(job)
            if was and now and old is not None and self._key(old) == self._key(job):
                continue
            if was or now:
                moved.append((old if was else None, job if now else None))
        if not moved:
            self._refresh_rows(jobs)
            self._announce()
            return
        selected = self.selected_id
        if len(moved) > REBUILD_AT:
            self._rebuild(selected)
            return
        for old, new in moved:
            if old is not None:
                index = bisect_left(self._keys, self._key(old))
                if index < len(self.order) and self.order[index] == old.id:
                    del self.order[index], self._keys[index]
            if new is not None:
                key = self._key(new)
                index = bisect_left(self._keys, key)
                self.order.insert(index, new.id)
                self._keys.insert(index, key)
        self._after_reorder(selected)

    def set_filter(self, job_filter: JobFilter) -> None:
        self.filter = job_filter
        self._rebuild(self.selected_id)

    def set_sort(self, sort: Sort) -> None:
        self.sort = sort
        self._rebuild(self.selected_id)

    def set_columns(self, columns: Sequence[str]) -> None:
        self.columns = tuple(c for c in ALL_COLUMNS if c in columns or c == "id")
        self.refresh()

    def tick(self) -> None:
        """Once a second: ages move on (and so does the order, when sorted by time)."""
        if self.sort.column == "time":
            self._rebuild(self.selected_id)
        else:
            self.refresh()

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
        index = self.index_of(job_id)
        if index is None:
            return False
        self.cursor = index
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
        shown = set(self.order)
        marked = [j for j in self.order if j in self.marked]
        marked += sorted(j for j in self.marked if j in self.jobs and j not in shown)
        if marked:
            return marked
        return [self.selected_id] if self.selected_id else []

    def index_of(self, job_id: str) -> int | None:
        job = self.jobs.get(job_id)
        if job is None or not self.filter.matches(job):
            return None
        index = bisect_left(self._keys, self._key(job))
        return index if index < len(self.order) and self.order[index] == job_id else None

    @property
    def rows_on_screen(self) -> int:
        """Job rows that fit under the header line."""
        return max(1, self.scrollable_content_region.height - 1)

    # internals ----------------------------------------------------------------
    def _rebuild(self, selected: str | None) -> None:
        self._key = self.sort.key(self.clock())
        shown = [j for j in self.jobs.values() if self.filter.matches(j)]
        shown.sort(key=self._key)
        self.order = [j.id for j in shown]
        self._keys = [self._key(j) for j in shown]
        self._after_reorder(selected)

    def _after_reorder(self, selected: str | None) -> None:
        """Keep the cursor on its job, and that job's row on screen."""
        old_cursor, top = self.cursor, int(self.scroll_offset.y)
        self.virtual_size = Size(0, len(self.order) + 1)
        index = self.index_of(selected) if selected is not None else None
        rows = self.rows_on_screen
        if index is None:
            index = max(0, min(old_cursor, len(self.order) - 1))
            new_top = top
        elif top == 0 and index < rows:
            new_top = 0  # at the top: new rows show above the cursor
        else:
            new_top = max(0, top + index - old_cursor)  # the row keeps its line
        new_top = max(0, min(new_top, len(self.order) + 1 - rows - 1))
        if not new_top <= index < new_top + rows:
            new_top = max(0, index - rows + 1) if index >= new_top + rows else index
        self.set_reactive(JobsTable.cursor, index)
        if new_top != top:
            self.scroll_to(y=new_top, animate=False, immediate=True)
        self.refresh()
        self._announce()

    def _announce(self) -> None:
        figures = (len(self.order), len(self.jobs), len(self.marked))
        if figures != self._announced:
            self._announced = figures
            self.post_message(self.Changed(*figures))

    def _refresh_rows(self, jobs: Sequence[Job]) -> None:
        """Redraw the lines of these jobs that are on screen: in a burst over thousands of
        rows most changes are off screen, and a whole repaint per frame costs more than
        finding the few lines (a bisection each). Past LINE_REFRESH_MAX, repaint it all."""
        rows = self.rows_on_screen
        if len(jobs) > LINE_REFRESH_MAX:
            self.refresh()
            return
        top = int(self.scroll_offset.y)
        for job in jobs:
            index = self.index_of(job.id)
            if index is not None and top <= index < top + rows:
                self.refresh_line(index + 1)  # virtual lines: the header is line 0

    def _refresh_row(self, index: int) -> None:
        top = int(self.scroll_offset.y)
        if top <= index < top + self.rows_on_screen:
            self.refresh_line(index + 1)

    def watch_cursor(self, old: int, new: int) -> None:
        clamped = max(0, min(new, len(self.order) - 1))
        if clamped != new:
            self.set_reactive(JobsTable.cursor, clamped)
        self._refresh_row(old)
        self._refresh_row(clamped)
        # keep the cursor in view (line 0 is the header)
        top = int(self.scroll_offset.y)
        rows = self.rows_on_screen
        if clamped < top:
            self.scroll_to(y=clamped, animate=False, immediate=True)
        elif clamped >= top + rows:
            self.scroll_to(y=clamped - rows + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.cursor = self.cursor + delta

    def action_page(self, direction: int) -> None:
        self.cursor = self.cursor + direction * max(1, self.rows_on_screen - 1)

    def action_half_page(self, direction: int) -> None:
        self.cursor = self.cursor + direction * max(1, self.rows_on_screen // 2)

    def action_edge(self, end: int) -> None:
        self.cursor = len(self.order) - 1 if end else 0

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if event.y < 1 or not 0 <= index < len(self.order):
            return
        self.cursor = index
        if event.chain >= 2:
            self.post_message(self.Opened(self.order[index]))

    def on_focus(self, event: events.Focus) -> None:
        self.refresh()  # the cursor is drawn apart when the table has the focus

    def on_blur(self, event: events.Blur) -> None:
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(0, len(self.order) + 1)

    # drawing ------------------------------------------------------------------
    def render_lines(self, crop: Region) -> list[Strip]:
        if self._styles is not None and self._styles_focus != self.has_focus:
            self._forget_styles()
        if len(self._lines) > 4 * max(1, self.rows_on_screen):
            self._lines.clear()  # rows long scrolled away, or jobs no longer shown
        return super().render_lines(crop)

    def notify_style_update(self) -> None:
        self._forget_styles()
        super().notify_style_update()

    def _forget_styles(self) -> None:
        self._styles = None
        self._lines.clear()  # drawn with the old styles

    def _style(self, name: str) -> Style:
        styles = self._styles
        if styles is None:
            self._styles_focus = self.has_focus
            base = self.rich_style
            cursor = self.get_component_rich_style("jobs-table--cursor", partial=not self.has_focus)
            partial = {
                n: self.get_component_rich_style(f"jobs-table--{n}", partial=True)
                for n in ("marked", "sorted", *(s.value for s in JobStatus))
            }
            styles = {"base": base, "cursor": base + cursor}
            for row in ("base", "cursor"):
                for n, style in partial.items():
                    styles[f"{row}:{n}"] = styles[row] + style
            styles["header"] = self.get_component_rich_style("jobs-table--header")
            styles["header:sorted"] = styles["header"] + partial["sorted"]
            styles["empty"] = self.get_component_rich_style("jobs-table--empty")
            self._styles = styles
        return styles[name]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        layout = Layout.for_width(width, self.columns)
        if y == 0:
            return self._header(layout, width)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self.order):
            if index == 0:
                text = self.empty_text if not self.jobs else "No jobs match the filter."
                style = self._style("empty")
                return Strip([Segment(set_cell_size(f"  {text}", width), style)], width)
            return Strip.blank(width, self._style("base"))
        job = self.jobs[self.order[index]]
        strip = self._row(job, index, layout, width)
        if self.rendered is not None:
            self.rendered(job)
        return strip

    def _header(self, layout: Layout, width: int) -> Strip:
        style, sorted_style = self._style("header"), self._style("header:sorted")
        segments = [Segment("  ", style)]
        for column, cells in layout.widths:
            title = COLUMN_TITLES[column]
            if column == self.sort.column:
                label = f"{title}{self.sort.arrow}"
                segments.append(Segment(label, sorted_style))
                segments.append(Segment(" " * max(0, cells - cell_len(label)), style))
            else:
                segments.append(Segment(set_cell_size(title, cells), style))
        used = sum(s.cell_length for s in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        return Strip(segments, width).crop(0, width)

    def _row(self, job: Job, index: int, layout: Layout, width: int) -> Strip:
        row = "cursor" if index == self.cursor else "base"
        marked = job.id in self.marked
        now = self.clock()
        # What the line shows: the same snapshot, row kind, mark, columns and width, and
        # the same texts of the clock's columns (ages move on).
        clocked = tuple(
            self._cell(job, column, cells, layout.bar, now)
            for column, cells in layout.widths
            if column in ("time", "age")
        )
        key = (row, marked, width, self.columns, clocked)
        cached = self._lines.get(job.id)
        if cached is not None and cached[0] is job and cached[1] == key:
            return cached[2]
        base = self._style(row)
        segments = [
            Segment("* " if marked else "  ", self._style(f"{row}:marked") if marked else base)
        ]
        for column, cells in layout.widths:
            style = self._style(f"{row}:{job.status.value}") if column == "status" else base
            segments.append(Segment(self._cell(job, column, cells, layout.bar, now), style))
        used = sum(s.cell_length for s in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), base))
        strip = Strip(segments, width).crop(0, width)
        self._lines[job.id] = (job, key, strip)
        return strip

    @staticmethod
    def _cell(job: Job, column: str, cells: int, bar: int, now: datetime) -> str:
        if column == "id":
            return set_cell_size(job.short_id, cells)
        if column == "type":
            return _fit(job.type, cells)
        if column == "status":
            return set_cell_size(status_label(job.status), cells)
        if column == "progress":
            return set_cell_size(progress_bar(job.progress, bar), cells)
        if column == "time":
            return set_cell_size(job_time(job, now), cells)
        if column == "age":
            if job.created_at is None:
                return set_cell_size("", cells)
            return set_cell_size(
                short_duration(max(0.0, (now - job.created_at).total_seconds())), cells
            )
        if column == "attempt":
            return set_cell_size(f"{job.attempt}", cells)
        message = job.error if job.error and job.status.is_terminal else job.message
        return _fit(" ".join((message or "").split()), cells)


def _fit(text: str, width: int) -> str:
    """Truncate with an ellipsis, keeping one cell of space after the text."""
    if cell_len(text) < width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 2) + "… "
