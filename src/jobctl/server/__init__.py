"""The embedded job server: job API, durable step engine, stores, Realtime.

Public API for job authors::

    from jobctl.server import registry, NonRetriableError, RetryAfterError

    @registry.job("resize_image", retries=3)
    async def resize(ctx):
        data = await ctx.step.run("download", download, ctx.input["url"])
        ...
"""

from jobctl.server.jobcontext import JobContext
from jobctl.server.joberrors import NonRetriableError, RetryAfterError, StepError
from jobctl.server.registry import JobType, Registry, registry

__all__ = [
    "JobContext",
    "JobType",
    "NonRetriableError",
    "Registry",
    "RetryAfterError",
    "StepError",
    "registry",
]
