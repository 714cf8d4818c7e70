"""`demo`: configurable steps, durations and failures, for trying things out."""

from __future__ import annotations

from typing import Any

from jobctl.server.jobcontext import JobContext
from jobctl.server.joberrors import NonRetriableError
from jobctl.server.registry import registry

INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "steps": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 5},
        "step_seconds": {"type": "number", "minimum": 0, "maximum": 3600, "default": 1},
        "fail_at": {"type": ["integer", "null"], "description": "1-based step that fails"},
        "fail_times": {"type": "integer", "minimum": 0, "default": 1},
    },
}


def _int(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NonRetriableError(f"input.{name} must be an integer from {low} to {high}")
    return value


@registry.job(
    "demo",
    description="Demo job: `steps` steps of `step_seconds` each; step `fail_at` fails `fail_times` times",
    retries=2,
    input_schema=INPUT_SCHEMA,
)
async def demo(ctx: JobContext) -> dict[str, Any]:
    steps = _int(ctx.input.get("steps"), "steps", 5, 0, 1000)
    fail_at = _int(ctx.input.get("fail_at"), "fail_at", 0, 0, 1000)
    fail_times = _int(ctx.input.get("fail_times"), "fail_times", 1, 0, 1000)
    seconds = ctx.input.get("step_seconds", 1)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= 3600
    ):
        raise NonRetriableError("input.step_seconds must be a number from 0 to 3600")

    for i in range(1, steps + 1):

        async def work(i: int = i) -> dict[str, int]:
            await ctx.sleep_or_cancel(float(seconds))
            if i == fail_at and ctx.step.attempt <= fail_times:
                raise RuntimeError(
                    f"demo failure at step {i} (try {ctx.step.attempt} of {fail_times})"
                )
            return {"step": i}

        await ctx.step.run(f"step-{i}", work)
        await ctx.progress(100 * i // max(steps, 1), f"Step {i}/{steps} done")
    return {"steps": steps}
