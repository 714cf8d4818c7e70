"""Following jobs live from a command: the feed for the active profile, the view, the loop.

Shared by `watch` and `submit --watch`. Imports asyncio, the feed and the view
only when a command follows jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from jobctl.commands.context import Context, _isatty
from jobctl.models import Job

if TYPE_CHECKING:
    from jobctl.backends.jobapi import JobClient
    from jobctl.backends.supabase_reader import SupabaseReader
    from jobctl.backends.watchloop import WatchOptions, WatchResult
    from jobctl.commands.watchview import ViewConfig, WatchPrinter


def view_config(
    ctx: Context,
    *,
    human: IO[str],
    jsonl: bool = False,
    notify: str = "off",
    poll_interval: float = 2.0,
    **extra: Any,
) -> ViewConfig:
    from jobctl.commands.watchview import ViewConfig

    live = _isatty(human) and ctx.env.get("TERM") != "dumb"
    color = live and not ctx.no_color and not ctx.env.get("NO_COLOR")
    terminal = ctx.stderr if ctx.stderr_tty else ctx.stdout if ctx.stdout_tty else None
    return ViewConfig(
        human=human,
        notes=ctx.stderr,
        live=live,
        jsonl=ctx.stdout if jsonl else None,
        notify=notify,
        notify_stream=terminal,
        poll_interval=poll_interval,
        lost_after=ctx.settings.reconnect_seconds,
        color=color,
        now=ctx.clock,
        **extra,
    )


def _quiet_libraries(ctx: Context) -> None:
    """The realtime client logs every failed connect at ERROR; with no handler Python prints
    those on stderr. The watch says what matters itself (JOBCTL_DEBUG=1 shows them)."""
    if ctx.debug:
        logging.basicConfig(level=logging.DEBUG)
        return
    for name in ("realtime", "websockets", "jobctl"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())  # found before Python's last resort


def follow(
    ctx: Context,
    reader: JobClient | SupabaseReader,
    initial: Sequence[Job],
    view: WatchPrinter,
    options: WatchOptions,
    *,
    poll_only: bool = False,
    interval: float = 2.0,
) -> WatchResult:
    """Follow `initial` to their end (or the watch's), telling `view`; returns the result."""
    import asyncio

    from jobctl.backends.feed import JobFeed, PollSettings, Subscription
    from jobctl.backends.jobapi import AsyncJobClient, Endpoint, JobClient
    from jobctl.backends.supabase_reader import AsyncSupabaseSource
    from jobctl.backends.watchloop import watch_jobs

    _quiet_libraries(ctx)

    async def run() -> WatchResult:
        source: AsyncJobClient | AsyncSupabaseSource
        endpoint = None
        if isinstance(reader, JobClient):
            endpoint = Endpoint(reader.base_url, reader.core.token)
            source = AsyncJobClient(
                reader.base_url,
                reader.core.token,
                timeout=ctx.settings.timeout,
                retries=ctx.settings.retries,
                unreachable_hint=reader.core.unreachable_hint,
            )
        else:
            source = AsyncSupabaseSource(reader)
        active = frozenset(j.id for j in initial if not j.status.is_terminal)
        feed = JobFeed(
            source,
            Subscription(active),
            realtime=None if poll_only else ctx.realtime_config(endpoint),
            poll=PollSettings(interval=interval, max_interval=max(15.0, interval)),
        )
        try:
            return await watch_jobs(feed, initial, view, options)
        finally:
            await source.aclose()

    try:
        result = asyncio.run(run())
    finally:
        view.close()
    view.finish(result)
    return result
