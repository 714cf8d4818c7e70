"""Job types for the tests, loaded into a real server with `--functions jobfns`.

Every step appends `<job id> <step>` to $JOBCTL_TEST_EFFECTS (O_APPEND, fsynced)
as its last act, so a test can count how often each step really ran.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobctl.server import JobContext, NonRetriableError, registry


def record(job_id: str, name: str) -> None:
    path = os.environ.get("JOBCTL_TEST_EFFECTS")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job_id} {name}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@registry.job("counted", retries=2, description="steps that record each run")
async def counted(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.input.get("steps", 3))
    seconds = float(ctx.input.get("step_seconds", 0.05))
    fail_at = ctx.input.get("fail_at")
    fail_times = int(ctx.input.get("fail_times", 0))
    # fail in every try of the first N whole-job attempts (so a retry of the job can succeed)
    fail_job_attempts = int(ctx.input.get("fail_job_attempts", 0))
    for i in range(1, steps + 1):

        async def work(i: int = i) -> int:
            await ctx.sleep_or_cancel(seconds)
            if i == fail_at and (
                ctx.step.attempt <= fail_times or ctx.attempt <= fail_job_attempts
            ):
                record(ctx.job_id, f"fail-{i}")
                raise RuntimeError(f"planned failure at step {i}")
            record(ctx.job_id, f"step-{i}")
            return i

        await ctx.step.run(f"step-{i}", work)
        await ctx.progress(100 * i // steps, f"step {i}/{steps}")
    return {"steps": steps}


@registry.job("slow", retries=0, timeout=1.0, description="runs past its 1 s timeout")
async def slow(ctx: JobContext) -> None:
    await ctx.step.run("forever", lambda: asyncio.sleep(60))


@registry.job("fatal", retries=3, description="fails without retries")
async def fatal(ctx: JobContext) -> None:
    async def boom() -> None:
        record(ctx.job_id, "boom")
        raise NonRetriableError("cannot go on")

    await ctx.step.run("boom", boom)


@registry.job("stubborn", retries=0, description="a step that ignores cancellation")
async def stubborn(ctx: JobContext) -> None:
    await ctx.step.run("one", lambda: asyncio.sleep(float(ctx.input.get("seconds", 0.5))))
    await ctx.step.run("two", lambda: record(ctx.job_id, "two"))


@registry.job("limited", retries=0, reject_when_limited=True, description="429 when limited")
async def limited(ctx: JobContext) -> None:
    await ctx.step.run("wait", lambda: asyncio.sleep(float(ctx.input.get("seconds", 1))))


def _on_failure_hook(ctx: JobContext, error: str) -> Any:
    async def hook() -> None:
        record(ctx.job_id, f"on_failure:{error}")

    return hook()


@registry.job("hooked", retries=0, on_failure=_on_failure_hook, description="has on_failure")
async def hooked(ctx: JobContext) -> None:
    async def bad() -> None:
        raise RuntimeError("bad things")

    await ctx.step.run("bad", bad)


@registry.job("burst", retries=0, description="runs until the time in $JOBCTL_TEST_BURST")
async def burst(ctx: JobContext) -> None:
    """Waits for the file $JOBCTL_TEST_BURST (at most 10 minutes), then sleeps until the
    time.time() written in it: jobs submitted at any pace end together, a burst."""
    path = os.environ["JOBCTL_TEST_BURST"]

    async def wait() -> None:
        for _ in range(3000):
            try:
                with open(path) as f:
                    end_at = float(f.read())
            except (OSError, ValueError):  # not written yet (or half written)
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(max(0.0, end_at - time.time()))
            return

    await ctx.step.run("wait", wait)
