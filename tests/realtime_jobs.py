"""Job types for the Realtime tests, loaded into a real server with `--functions realtime_jobs`."""

from __future__ import annotations

from typing import Any

from jobctl.server.jobcontext import JobContext
from jobctl.server.registry import registry


@registry.job("big_output", description="Returns `bytes` bytes of output", retries=0)
async def big_output(ctx: JobContext) -> dict[str, Any]:
    ctx.log("y" * int(ctx.input.get("log_bytes", 10)))
    await ctx.progress(50, "half way")
    return {"blob": "x" * int(ctx.input.get("bytes", 2_000_000))}


@registry.job("chatty", description="Logs `lines` lines, with progress", retries=0)
async def chatty(ctx: JobContext) -> dict[str, Any]:
    lines = int(ctx.input.get("lines", 5))
    for i in range(1, lines + 1):
        ctx.log(f"line {i} of {lines}", level="info")
    await ctx.progress(100, "logged")
    return {"lines": lines}
