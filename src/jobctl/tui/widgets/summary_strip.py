"""Counts by status, queue depth and the last hour's failure rate (from /api/stats),
plus what the table shows: its order, the time window, a filter or marks."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from jobctl.glyphs import STATUS_GLYPHS as STATUS_SYMBOL
from jobctl.models import JobStatus


class SummaryStrip(Widget):
    stats: reactive[dict[str, Any] | None] = reactive(None)
    stale: reactive[bool] = reactive(False)
    shown: reactive[int] = reactive(0)
    total: reactive[int] = reactive(0)
    marked: reactive[int] = reactive(0)
    filter_text: reactive[str] = reactive("")
    sort_text: reactive[str] = reactive("")
    window_text: reactive[str] = reactive("")

    def render(self) -> Text:
        line = Text(" ")
        stats = self.stats
        if stats is None:
            line.append("waiting for the server's figures…\n ")
        else:
            counts = stats.get("counts") or {}
            parts = [
                f"{STATUS_SYMBOL[s]} {int(counts.get(s.value, 0))} {s.value}" for s in JobStatus
            ]
            line.append("  ".join(parts))
            line.append(f"\n queue {int(stats.get('queue_depth') or 0)}")
            rate = stats.get("failure_rate")
            rate_text = "n/a" if rate is None else f"{100 * float(rate):.1f}%"
            line.append(f" · failed in the last hour {rate_text}")
            if self.stale:
                line.append(" (last known)")
        if self.sort_text:
            line.append(f" · sort: {self.sort_text}")
        if self.window_text:
            line.append(f" · window: {self.window_text}")
        if self.filter_text or self.marked or self.window_text:
            line.append(f" · showing {self.shown} of {self.total}")
            if self.filter_text:
                line.append(f" · filter: {self.filter_text}")
            if self.marked:
                line.append(f" · {self.marked} marked")
        return line
