"""Job types for multi-server tests, loaded with `--functions pgjobs`.

`counted` works like `demo` with instant steps, and appends one line per step body
run, `JOB_ID STEP PID`, to $JOBCTL_TEST_EFFECTS with a single O_APPEND write (atomic
on a local filesystem, even from several processes), so a test can count how many
times each step really ran and in which server process.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobctl.server.jobcontext import JobContext
from jobctl.server.registry import registry

_fd: int | None = None


def effect(job_id: str, step: int) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["JOBCTL_TEST_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_fd, f"{job_id} {step} {os.getpid()}\n".encode())


async def wait_for_gate() -> None:
    """With $JOBCTL_TEST_GATE set, hold every job until that file exists (at most 60 s),
    so that a test can build a backlog before the servers work through it."""
    gate = os.environ.get("JOBCTL_TEST_GATE")
    deadline = time.monotonic() + 60
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@registry.job("counted", retries=2, description="Test: instant steps with counted side effects")
async def counted(ctx: JobContext) -> dict[str, Any]:
    await wait_for_gate()
    steps = int(ctx.input.get("steps", 1))
    for i in range(1, steps + 1):

        def work(i: int = i) -> int:
            effect(ctx.job_id, i)
            return i

        await ctx.step.run(f"step-{i}", work)
        await ctx.progress(100 * i // steps, f"Step {i}/{steps} done")
    return {"steps": steps}


@registry.job("paced", retries=2, description="Test: steps that take a while, counted")
async def paced(ctx: JobContext) -> dict[str, Any]:
    """Like `counted`, but each step's body records its run as it starts and then takes
    `step_seconds`: a server stopped at any moment is almost surely inside some step."""
    steps = int(ctx.input.get("steps", 1))
    pause = float(ctx.input.get("step_seconds", 0.2))
    for i in range(1, steps + 1):

        async def work(i: int = i) -> int:
            effect(ctx.job_id, i)
            await asyncio.sleep(pause)
            return i

        await ctx.step.run(f"step-{i}", work)
        await ctx.progress(100 * i // steps, f"Step {i}/{steps} done")
    return {"steps": steps}
