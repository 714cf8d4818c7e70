"""`jobctl tui [--readonly]`: the live dashboard.

Textual, the feed and the async client are imported inside run_tui, so
`jobctl --help` and every other command start without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl.commands._shared import get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UnreachableError, UsageError

if TYPE_CHECKING:
    from jobctl.backends.feed import RealtimeConfig
    from jobctl.backends.jobapi import Endpoint


@dataclass(frozen=True)
class TuiOptions:
    readonly: bool


def connect(ctx: Context) -> tuple[Endpoint, bool]:
    """The endpoint (starting the local server if that is how the profile works) and
    whether it offers Realtime. An unreachable server is not an error here: the
    dashboard starts offline and connects when the server is back (trying Realtime
    then, and polling if the server has none)."""
    from jobctl.backends.jobapi import Endpoint

    client = ctx.client()
    try:
        health = client.health()
    except UnreachableError:
        return Endpoint(client.core.base_url, client.core.token), True
    return Endpoint(client.core.base_url, client.core.token), bool(health.get("realtime"))


def realtime_config(ctx: Context, endpoint: Endpoint, offered: bool) -> RealtimeConfig | None:
    """The profile's Supabase project, else the job server's own endpoint when it offers one."""
    s = ctx.settings
    if (s.get("supabase_url") and not s.is_local) or offered:
        return ctx.realtime_config(endpoint)
    return None


def run_tui(opts: TuiOptions, ctx: Context) -> int:
    import asyncio

    from jobctl.backends.feed import JobFeed, Subscription
    from jobctl.commands._shared import quiet_libraries
    from jobctl.tui.app import make_app
    from jobctl.tui.settings import tui_settings_from_file

    if ctx.settings.supabase_only:
        raise UsageError(
            f"profile {ctx.settings.profile!r} has a Supabase project but no job API (api_url): "
            "the dashboard needs the job API; `jobctl watch` works with Supabase alone"
        )
    # A library writing a log line to stderr would tear the screen Textual draws there.
    quiet_libraries(ctx)
    endpoint, offered = connect(ctx)
    settings = tui_settings_from_file(
        ctx.settings.config_path,
        readonly=opts.readonly,
        target=f"{ctx.settings.profile} · {endpoint.url}",
    )

    async def main() -> int:
        # connect() has started the local server if that is how the profile works; no
        # second start from inside the dashboard (its stderr note would tear the screen).
        # At most one resend: the feed and the workers retry on their own schedule.
        client = ctx.async_client(autostart=False, retries=1)
        feed = JobFeed(client, Subscription(), realtime=realtime_config(ctx, endpoint, offered))
        app = make_app(client, feed, settings)
        try:
            await app.run_async()
        finally:
            await client.aclose()
        return app.return_code or ExitCode.OK

    return asyncio.run(main())


def tui(
    typer_ctx: typer.Context,
    readonly: Annotated[
        bool,
        typer.Option("--readonly", help="Turn off every action that changes a job."),
    ] = False,
) -> None:
    """The live dashboard: jobs, progress, details and logs; submit, retry and cancel.

    Keys: ? shows them all; / filters; Enter opens a job; s submits; r retries;
    c cancels (asks first); Space marks rows for bulk actions. Rebind keys in the
    config file's [tui.keys] table.
    """
    raise typer.Exit(run_tui(TuiOptions(readonly), get_ctx(typer_ctx)))
