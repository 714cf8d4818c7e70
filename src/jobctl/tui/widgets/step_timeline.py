"""The step timeline of one job: each step with its status, attempt and duration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from jobctl.glyphs import STEP_GLYPHS as STEP_SYMBOL
from jobctl.models import Step
from jobctl.tui.format import short_duration


def render_steps(steps: list[Step], now: datetime) -> Table | Text:
    if not steps:
        return Text("No steps yet.", style="italic")
    table = Table(box=None, pad_edge=False, expand=False, show_edge=False, padding=(0, 1))
    for name in ("#", "STEP", "STATUS", "TRY", "TIME", "ERROR"):
        table.add_column(name, no_wrap=name != "ERROR", overflow="fold")
    for number, step in enumerate(steps, 1):
        if step.started_at is None:
            took = ""
        else:
            end = step.completed_at or now
            took = short_duration(max(0.0, (end - step.started_at).total_seconds()))
        symbol = STEP_SYMBOL.get(step.status, "·")
        table.add_row(
            str(number),
            step.name,
            f"{symbol} {step.status}",
            str(step.attempt),
            took,
            step.error or "",
        )
    return table


class StepTimeline(Static):
    def __init__(self, clock: Callable[[], datetime], **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.clock = clock

    def show(self, steps: list[Step]) -> None:
        self.update(render_steps(steps, self.clock()))
