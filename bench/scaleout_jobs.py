"""The scale-out benchmark's job type, loaded with `--functions scaleout_jobs`: one step
that burns `ms` milliseconds of CPU (this thread's own time, so a capped server takes
longer in wall time, as a small machine would)."""

from __future__ import annotations

import time

from jobctl.server import JobContext, registry


def burn(ms: float) -> int:
    end = time.thread_time() + ms / 1000
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


@registry.job("burn", retries=0, description="benchmark: a step of CPU work")
async def burn_job(ctx: JobContext) -> int:
    ms = float(ctx.input.get("ms", 10))
    return int(await ctx.step.run("work", burn, ms))
