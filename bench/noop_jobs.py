"""The benchmark's no-op job type, loaded into the server with `--functions noop_jobs`.

Its whole body is the peer harness's `record(seq, enq_ts)`: one O_APPEND write,
exactly what the Huey/Procrastinate/RQ/Celery tasks do (../shared/bench/peers).
"""

from __future__ import annotations

from common import record  # the shared peer harness, on PYTHONPATH

from jobctl.server import JobContext, registry


@registry.job("noop", retries=0, description="benchmark no-op")
async def noop(ctx: JobContext) -> None:
    record(ctx.input["seq"], ctx.input["enq_ts"])
