"""`jobctl tui [--readonly]`: the live dashboard.

Textual, the feed and the async client are imported inside run_tui, so
`jobctl --help` and every other command start without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl.commands._shared import get_ctx
from jobctl.context import Context
from jobctl.errors import ExitCode, UnreachableError

if TYPE_CHECKING:
    from jobctl.client import Endpoint
    from jobctl.feed import RealtimeConfig


@dataclass(frozen=True)
class TuiOptions:
    readonly: bool


def connect(ctx: Context) -> tuple[Endpoint, bool]:
    """The endpoint (starting the local server if that is how the profile works) and
    whether it offers Realtime. An unreachable server is not an error here: the
    dashboard starts offline and connects when the server is back."""
    from jobctl.client import Endpoint

    client = ctx.client()
    try:
        health = client.health()
    except UnreachableError:
        return Endpoint(client.core.base_url, client.core.token), False
    return Endpoint(client.core.base_url, client.core.token), bool(health.get("realtime"))


def realtime_config(ctx: Context, endpoint: Endpoint, offered: bool) -> RealtimeConfig | None:
    from jobctl.feed import RealtimeConfig

    s = ctx.settings
    supabase_url, anon_key = s.get("supabase_url"), s.get("supabase_anon_key")
    if supabase_url and anon_key:
        return RealtimeConfig(f"{supabase_url}/realtime/v1", anon_key, endpoint.token)
    if offered and endpoint.token:
        return RealtimeConfig(f"{endpoint.url}/realtime/v1", endpoint.token)
    return None


def run_tui(opts: TuiOptions, ctx: Context) -> int:
    import asyncio

    from jobctl.client import AsyncJobClient
    from jobctl.feed import JobFeed, Subscription
    from jobctl.tui.app import make_app
    from jobctl.tui.settings import tui_settings_from_file

    endpoint, offered = connect(ctx)
    settings = tui_settings_from_file(
        ctx.settings.config_path,
        readonly=opts.readonly,
        target=f"{ctx.settings.profile} · {endpoint.url}",
    )

    async def main() -> int:
        client = AsyncJobClient(
            endpoint.url,
            endpoint.token,
            timeout=ctx.settings.timeout,
            retries=1,  # the feed and the workers retry on their own schedule
            unreachable_hint=ctx.unreachable_hint(),
        )
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
