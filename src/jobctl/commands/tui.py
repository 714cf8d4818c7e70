"""`jobctl tui [--readonly] [--web [--port N]]`: the live dashboard, in the terminal or a
browser tab.

Textual, the feed, the async client and textual-serve are imported inside
run_tui, so `jobctl --help` and every other command start without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl.commands._shared import get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UnreachableError, UsageError

if TYPE_CHECKING:
    from jobctl.backends.appbackend import AppBackend
    from jobctl.backends.feed import PollSettings, RealtimeConfig
    from jobctl.backends.feedproc import FeedProcess
    from jobctl.backends.jobapi import Endpoint


WEB_PORT = 8766  # the job server's default is 8765


@dataclass(frozen=True)
class TuiOptions:
    readonly: bool
    web: bool = False
    port: int = WEB_PORT


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


def session_command(opts: TuiOptions, ctx: Context) -> list[str]:
    """What textual-serve runs for each browser tab: this dashboard, same profile."""
    import sys

    argv = [sys.executable, "-m", "jobctl"]
    if ctx.flags.get("profile"):
        argv += ["--profile", str(ctx.flags["profile"])]
    if ctx.flags.get("api_url"):
        argv += ["--api-url", str(ctx.flags["api_url"])]
    if ctx.no_color:
        argv.append("--no-color")
    argv.append("tui")
    if opts.readonly:
        argv.append("--readonly")
    return argv


def run_web(opts: TuiOptions, ctx: Context) -> int:
    import shlex

    from jobctl.tui.web import bind, serve

    endpoint, _ = connect(ctx)  # starts the local server when that is how the profile works
    if not endpoint.token:
        raise UsageError(
            "`jobctl tui --web` opens only with the job server's token, and this profile "
            "has none; log in first (`jobctl auth login`)"
        )
    try:
        sock = bind(opts.port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on 127.0.0.1:{opts.port}: {exc.strerror}; "
            "pick another port with --port (0: any free one)"
        ) from None

    def ready(address: str) -> None:
        ctx.info(f"dashboard at {address}  (Ctrl+C stops it)")

    serve(shlex.join(session_command(opts, ctx)), endpoint.token, sock, ready)
    return ExitCode.OK


def run_tui(opts: TuiOptions, ctx: Context) -> int:
    import asyncio

    from jobctl.backends.feedproc import FeedProcess, server_feed
    from jobctl.commands._shared import quiet_libraries
    from jobctl.tui.app import make_app
    from jobctl.tui.settings import tui_settings_from_file

    if ctx.app is not None and not opts.web:
        return run_app_tui(opts, ctx)
    if ctx.settings.supabase_only:
        raise UsageError(
            f"profile {ctx.settings.profile!r} has a Supabase project but no job API (api_url): "
            "the dashboard needs the job API; `jobctl watch` works with Supabase alone"
        )
    if opts.web:
        return run_web(opts, ctx)
    # textual-serve runs each browser tab's dashboard with pipes and its own driver.
    served = bool(ctx.env.get("TEXTUAL_DRIVER"))
    if not served and not (ctx.stdin_tty and ctx.stdout_tty):
        raise UsageError(
            "`jobctl tui` needs a terminal (its input or output is not one); "
            "for a pipe use `jobctl list` or `jobctl watch`, for a browser `jobctl tui --web`"
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
        # The feed runs in a process of its own (parsing a storm of Realtime frames would
        # take keys' and frames' time, even on a thread: the GIL), with its own client.
        realtime = realtime_config(ctx, endpoint, offered)
        feed = FeedProcess(server_feed, ctx.feed_client_options(retries=1), realtime)
        app = make_app(client, feed, settings)
        try:
            await app.run_async()
        finally:
            await client.aclose()
        return app.return_code or ExitCode.OK

    return asyncio.run(main())


def run_app_tui(opts: TuiOptions, ctx: Context) -> int:
    """The dashboard over an app profile: its table through PostgREST, its Realtime, its
    submit, cancel and retry calls (the same JobApi port as the job server's client)."""
    import asyncio

    from jobctl.backends.appbackend import AsyncAppApi
    from jobctl.commands._shared import quiet_libraries
    from jobctl.tui.app import make_app
    from jobctl.tui.settings import tui_settings_from_file

    served = bool(ctx.env.get("TEXTUAL_DRIVER"))
    if not served and not (ctx.stdin_tty and ctx.stdout_tty):
        raise UsageError(
            "`jobctl tui` needs a terminal (its input or output is not one); "
            "for a pipe use `jobctl list` or `jobctl watch`"
        )
    quiet_libraries(ctx)
    backend = ctx.app_backend()
    settings = tui_settings_from_file(
        ctx.settings.config_path,
        readonly=opts.readonly,
        target=f"{ctx.settings.profile} · {backend.profile.supabase_url}",
    )
    realtime = ctx.realtime_config(None)

    async def main() -> int:
        client = AsyncAppApi(backend)
        app = make_app(client, app_feed_process(ctx, backend, realtime), settings)
        try:
            await app.run_async()
        finally:
            await client.aclose()
        return app.return_code or ExitCode.OK

    return asyncio.run(main())


def app_feed_process(
    ctx: Context, backend: AppBackend, realtime: RealtimeConfig, poll: PollSettings | None = None
) -> FeedProcess:
    """An app profile's live feed, in a process of its own with an AppBackend of its own.
    The token stays this process's (the dashboard client's keep_fresh refreshes it) and
    is sent on to the feed's process whenever it changes."""
    from jobctl.backends.feedproc import FeedProcess, app_feed, app_realtime

    session = backend.session
    return FeedProcess(
        app_feed,
        backend.profile,
        session.current,
        backend.anon_key,
        ctx.settings.timeout,
        app_realtime(realtime),
        poll,
        token=lambda: session.current,
    )


def tui(
    typer_ctx: typer.Context,
    readonly: Annotated[
        bool,
        typer.Option("--readonly", help="Turn off every action that changes a job."),
    ] = False,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="Serve the dashboard to a browser on 127.0.0.1 (the address printed "
            "carries the server's token).",
        ),
    ] = False,
    port: Annotated[
        int,
        typer.Option("--port", help="Port for --web (0: any free one).", min=0, max=65535),
    ] = WEB_PORT,
) -> None:
    """The live dashboard: jobs, progress, details and logs; submit, retry and cancel.

    Keys: ? shows them all; / filters; Enter opens a job; s submits; r retries;
    c cancels (asks first); Space marks rows for bulk actions; > sorts; q quits.
    Rebind keys in the config file's [tui.keys] table.
    """
    raise typer.Exit(run_tui(TuiOptions(readonly, web, port), get_ctx(typer_ctx)))
