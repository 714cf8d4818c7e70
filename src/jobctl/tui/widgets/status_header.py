"""The top line: what we are connected to, and how (realtime, polling, offline)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from jobctl.backends.feed import FeedMode
from jobctl.tui.format import MODE_LABEL


class StatusHeader(Widget):
    mode: reactive[FeedMode] = reactive(FeedMode.CONNECTING)
    detail: reactive[str] = reactive("")
    target: reactive[str] = reactive("")
    readonly: reactive[bool] = reactive(False)
    title: reactive[str] = reactive("jobs")

    def render(self) -> Text:
        left = Text.assemble(("jobctl", "bold"), f" · {self.title}")
        if self.target:
            left.append(f" · {self.target}")
        right = Text(MODE_LABEL[self.mode])
        if self.mode == FeedMode.OFFLINE:
            right.append(" (showing the last known state; reconnecting)")
        if self.readonly:
            right = Text.assemble("read-only · ", right)
        width = self.size.width
        space = width - left.cell_len - right.cell_len - 2
        if space < 1:
            left.truncate(max(0, width - right.cell_len - 3), overflow="ellipsis")
            space = 1
        return Text.assemble(" ", left, " " * space, right, " ")

    def watch_mode(self, mode: FeedMode) -> None:
        self.set_class(mode == FeedMode.OFFLINE, "-offline")
