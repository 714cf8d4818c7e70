"""`jobctl logs ID [--follow]`: a job's log lines, optionally as they arrive."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer

from jobctl.commands._shared import JsonlOption, get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UnreachableError, WatchTimeoutError
from jobctl.models import TERMINAL_STATUSES, LogLine

MAX_PAGES = 100_000


def run_logs(
    ref: str,
    follow: bool,
    jsonl: bool,
    timeout: float | None,
    ctx: Context,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    from jobctl.backends.backoff import Backoff
    from jobctl.commands import render

    # While no new lines come (or the server is away): 0.25 s, 1.5x per quiet poll, up to 2 s.
    quiet_wait = Backoff(0.25, factor=1.5, cap=2.0)

    client = ctx.client()
    job_id = client.resolve_id(ref)

    def emit(line: LogLine) -> None:
        ctx.out(
            render.to_json(line.to_dict(), pretty=False) if jsonl else render.render_log_line(line)
        )

    after, quiet, start = 0, 0, clock()
    failing_since: float | None = None
    for _ in range(MAX_PAGES):
        try:
            page = client.get_logs(job_id, after)
            failing_since = None
        except UnreachableError:
            if not follow:
                raise
            failing_since = failing_since if failing_since is not None else clock()
            if clock() - failing_since >= ctx.settings.reconnect_seconds:
                raise
            sleep(quiet_wait.step(quiet))
            continue
        for line in page.logs:
            emit(line)
        ctx.stdout.flush()
        after = page.next_after
        if page.logs:
            quiet = 0
            continue  # there may be more right away
        if not follow or page.job_status in {s.value for s in TERMINAL_STATUSES}:
            return ExitCode.OK
        if timeout is not None and clock() - start >= timeout:
            raise WatchTimeoutError(
                f"timed out after {timeout:g}s; job {job_id} still {page.job_status}"
            )
        quiet += 1
        sleep(quiet_wait.step(quiet))
    return ExitCode.OK


def logs(
    typer_ctx: typer.Context,
    job: Annotated[
        str, typer.Argument(help="Job id or a unique prefix of one.", show_default=False)
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    jsonl: JsonlOption = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="With --follow: give up after this many seconds (exit 7).",
            min=0,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print a job's log lines (time, level, step, message)."""
    raise typer.Exit(run_logs(job, follow, jsonl, timeout, get_ctx(typer_ctx)))
