"""Vim keys wherever something scrolls: j k, g G, ctrl+d ctrl+u, ctrl+f ctrl+b."""

from __future__ import annotations

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import RichLog

VIM_SCROLL: list[BindingType] = [
    Binding("j", "scroll_down", "Down", show=False),
    Binding("k", "scroll_up", "Up", show=False),
    Binding("g", "scroll_home", "Top", show=False),
    Binding("G", "scroll_end", "Bottom", show=False),
    Binding("ctrl+f", "page_down", "Page down", show=False),
    Binding("ctrl+b", "page_up", "Page up", show=False),
    Binding("ctrl+d", "half_page(1)", "Half a page down", show=False),
    Binding("ctrl+u", "half_page(-1)", "Half a page up", show=False),
]


def _half_page(widget: Widget, direction: int) -> None:
    step = max(1, widget.scrollable_content_region.height // 2)
    widget.scroll_relative(y=direction * step, animate=False)


class VimScroll(VerticalScroll):
    BINDINGS = VIM_SCROLL

    def action_half_page(self, direction: int) -> None:
        _half_page(self, direction)


class VimLog(RichLog):
    BINDINGS = VIM_SCROLL

    def action_half_page(self, direction: int) -> None:
        _half_page(self, direction)
