"""`jobctl watch [ID...] | --last | --all`: follow jobs live; exit with the worst outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl.commands._shared import get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UsageError
from jobctl.models import Job

if TYPE_CHECKING:
    from jobctl.backends.appbackend import AppBackend
    from jobctl.backends.jobapi import JobClient
    from jobctl.backends.supabase_reader import SupabaseReader


class Notify(StrEnum):
    OFF = "off"
    BELL = "bell"
    OSC9 = "osc9"
    OSC777 = "osc777"


@dataclass
class WatchArgs:
    refs: list[str]
    last: bool = False
    all: bool = False
    fail_fast: bool = False
    timeout: float | None = None
    jsonl: bool = False
    notify: str = "off"
    poll: bool = False
    interval: float = 2.0
    logs: bool = False


def _targets(
    args: WatchArgs, ctx: Context, reader: JobClient | SupabaseReader | AppBackend
) -> list[Job]:
    from jobctl.commands import _last_submit as history

    if sum([bool(args.refs), args.last, args.all]) > 1:
        raise UsageError("give job ids, --last or --all, not several of them")
    if args.all:
        return list(reader.iter_jobs(["pending", "running"]))
    refs = args.refs
    if not refs:
        profile = ctx.settings.profile
        refs = history.last_submit(ctx.data_dir, profile)
        if not refs:
            raise UsageError(
                f"nothing submitted from this machine yet (profile {profile}); "
                "give job ids, or --all for every active job"
            )
    ids = list(dict.fromkeys(reader.resolve_id(r) for r in refs))
    return [reader.get_job(i) for i in ids]


def run_watch(args: WatchArgs, ctx: Context) -> int:
    from jobctl.backends.watchloop import WatchOptions
    from jobctl.commands.watchview import WatchPrinter, follow, view_config

    if args.interval <= 0:
        raise UsageError("--interval must be more than 0")
    reader = ctx.reader()
    jobs = _targets(args, ctx, reader)
    if not jobs:
        ctx.info("no active jobs to watch")
        return ExitCode.OK
    human = ctx.stderr if args.jsonl else ctx.stdout
    config = view_config(
        ctx,
        human=human,
        jsonl=args.jsonl,
        notify=args.notify,
        poll_interval=args.interval,
        logs=args.logs,
    )
    timeout = args.timeout
    if timeout is None and ctx.app is not None:
        # The app's give-up time for these types (its frontend stops polling then).
        limits = [ctx.app.timeout_for(j.type) for j in jobs]
        if limits and all(t is not None for t in limits):
            timeout = max(t for t in limits if t is not None)
    options = WatchOptions(
        fail_fast=args.fail_fast,
        timeout=timeout,
        lost_after=ctx.settings.reconnect_seconds,
    )
    result = follow(
        ctx,
        reader,
        jobs,
        WatchPrinter(config),
        options,
        poll_only=args.poll,
        interval=args.interval,
        logs=args.logs,
    )
    return result.code


def watch(
    typer_ctx: typer.Context,
    jobs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Job ids or unique prefixes. None: the jobs of the last submit.",
            show_default=False,
        ),
    ] = None,
    last: Annotated[
        bool, typer.Option("--last", help="The jobs of the last `submit` from this machine.")
    ] = False,
    all_: Annotated[bool, typer.Option("--all", "-a", help="All my active jobs.")] = False,
    fail_fast: Annotated[
        bool,
        typer.Option("--fail-fast", help="Exit 1 at the first failure (the others go on)."),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Give up after this many seconds (exit 7).", min=0, show_default=False),
    ] = None,
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl", help="One JSON object per transition on stdout, then a summary object."
        ),
    ] = False,
    notify: Annotated[
        Notify, typer.Option(help="Notify through the terminal when the watch ends.")
    ] = Notify.OFF,
    poll: Annotated[bool, typer.Option("--poll", help="Poll; do not use Realtime.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between polls when polling.", min=0.1)
    ] = 2.0,
    logs: Annotated[
        bool,
        typer.Option(
            "--logs",
            help="Interleave the jobs' log lines; a failed job ends with its step, error and"
            " last lines.",
        ),
    ] = False,
) -> None:
    """Follow jobs live: a progress bar per job, a line as each ends; exit with the worst outcome.

    Exit: 1 if any failed, else 6 if the job server was lost for good (reconnect_seconds),
    else 7 on --timeout, else 3 if any was cancelled, else 0. Off a terminal: one
    tab-separated line per transition (id, type, status, progress, message or error).

    Examples:

      jobctl watch 3fa2 9c01

      jobctl watch --all --fail-fast --notify osc9

      jobctl watch --last --jsonl | jq -c 'select(.type == "summary")'
    """
    args = WatchArgs(
        jobs or [], last, all_, fail_fast, timeout, jsonl, notify.value, poll, interval, logs
    )
    raise typer.Exit(run_watch(args, get_ctx(typer_ctx)))
