"""A small table of records (schedules, events) with vim keys, that keeps the cursor on
the same record when it is refilled. A few hundred rows at most: Textual's DataTable
draws them well enough (the jobs table is the one built for ten thousand)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

VIM_CURSOR: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g", "scroll_top", "Top", show=False),
    Binding("G", "scroll_bottom", "Bottom", show=False),
    Binding("ctrl+f", "page_down", "Page down", show=False),
    Binding("ctrl+b", "page_up", "Page up", show=False),
    Binding("ctrl+d", "half_page(1)", "Half a page down", show=False),
    Binding("ctrl+u", "half_page(-1)", "Half a page up", show=False),
]


class RecordTable(DataTable[str], inherit_bindings=False):
    # DataTable's own Enter (select_cursor, hidden) would hide the screen's Enter from the
    # footer, and could not be rebound with the keymap: the screen's "open" binding does it.
    BINDINGS = [b for b in DataTable.BINDINGS if isinstance(b, Binding) and b.key != "enter"]
    BINDINGS += VIM_CURSOR

    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.column_names = tuple(columns)
        self.keys: list[str] = []

    def on_mount(self) -> None:
        for name in self.column_names:
            self.add_column(name, key=name)

    @property
    def selected_key(self) -> str | None:
        if not self.keys:
            return None
        return self.keys[min(self.cursor_row, len(self.keys) - 1)]

    def show(self, rows: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Refill with (key, cells) rows; the cursor stays on its record when it is still
        there, else on the same line."""
        if [key for key, _ in rows] == self.keys:  # the same records (a poll, a tick)
            for key, cells in rows:
                self.update_row(key, cells)  # only changed cells redraw; scroll stays
            return
        selected, line = self.selected_key, self.cursor_row
        self.clear()
        self.keys = [key for key, _ in rows]
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if selected in self.keys:
            line = self.keys.index(selected)
        if self.keys:
            self.move_cursor(row=min(line, len(self.keys) - 1), animate=False)
        self._widen_now()

    def update_row(self, key: str, cells: Sequence[str]) -> None:
        """Redraw one record in place (after an action's answer)."""
        if key not in self.keys:
            return
        for name, value in zip(self.column_names, cells, strict=True):
            if self.get_cell(key, name) != value:
                self.update_cell(key, name, value, update_width=True)
        self._widen_now()

    def _widen_now(self) -> None:
        """Widen the columns to the cells just filled in, now. DataTable does it when it
        is next idle, and rows filled in by the screen, with nothing posted to the table
        afterwards, kept the headers' widths ("tui-" for "tui-hourly") until a key or a
        resize came; asking for that idle (check_idle) still lost the race now and then
        (a fresh-clone CI run). So the idle handler's two steps run here, at once."""
        if self._updated_cells:
            updated = self._updated_cells.copy()
            self._updated_cells.clear()
            self._update_column_widths(updated)
        if self._require_update_dimensions:
            self._require_update_dimensions = False
            new_rows = self._new_rows.copy()
            self._new_rows.clear()
            self._update_dimensions(new_rows)

    def action_half_page(self, direction: int) -> None:
        step = max(1, self.scrollable_content_region.height // 2)
        self.move_cursor(row=max(0, self.cursor_row + direction * step), animate=False)
