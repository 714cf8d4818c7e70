"""The step timeline of one job: each step with its status, attempt and duration.

A step's attempt is shown out of the type's per-step budget (`max_attempts`),
as the job's is in the fields above and in `jobctl show`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from jobctl.glyphs import STEP_GLYPHS as STEP_SYMBOL
from jobctl.models import Step
from jobctl.tui.format import short_duration

STEP_STYLE = {"running": "cyan", "completed": "green", "failed": "bold red", "pending": "dim"}


def render_steps(steps: list[Step], now: datetime, budget: int = 0) -> Table | Text:
    if not steps:
        return Text("No steps yet.", style="italic")
    table = Table(box=None, pad_edge=False, expand=False, show_edge=False, padding=(0, 1))
    for name in ("#", "STEP", "STATUS", "ATTEMPT", "TIME", "ERROR"):
        table.add_column(name, no_wrap=name != "ERROR", overflow="fold")
    for number, step in enumerate(steps, 1):
        if step.started_at is None:
            took = ""
        else:
            end = step.completed_at or now
            took = short_duration(max(0.0, (end - step.started_at).total_seconds()))
        symbol = STEP_SYMBOL.get(step.status, "·")
        style = STEP_STYLE.get(step.status, "")
        attempt = f"{step.attempt} of {budget}" if budget >= step.attempt else str(step.attempt)
        table.add_row(
            str(number),
            step.name,
            Text(f"{symbol} {step.status}", style=style),
            attempt,
            took,
            Text(step.error or "", style="red"),
        )
    return table


class StepTimeline(Static):
    def __init__(self, clock: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.clock = clock
        self.budget = 0  # the job's max_attempts

    def show(self, steps: list[Step]) -> None:
        self.update(render_steps(steps, self.clock(), self.budget))
