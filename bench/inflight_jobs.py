"""The in-flight benchmark's job type, loaded with `--functions inflight_jobs`.

An AI-style job: `calls` network calls of `call_seconds` each (an asyncio sleep, as a
step, so its result is kept as a real call's would be), reporting progress after each.
"""

from __future__ import annotations

import asyncio

from jobctl.server import JobContext, registry


@registry.job("waiter", retries=0, timeout=3600, description="benchmark: waits on the network")
async def waiter(ctx: JobContext) -> int:
    calls = int(ctx.input.get("calls", 10))
    seconds = float(ctx.input.get("call_seconds", 1.0))
    as_steps = bool(ctx.input.get("steps", True))

    async def call(i: int) -> int:
        await asyncio.sleep(seconds)
        return i

    for i in range(calls):
        if as_steps:
            await ctx.step.run(f"call-{i}", call, i)
        else:
            await call(i)
        await ctx.progress(100 * (i + 1) / calls, f"call {i + 1}/{calls}")
    return calls
