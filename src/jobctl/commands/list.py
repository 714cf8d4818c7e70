"""`jobctl list`: recent jobs, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from jobctl.commands._shared import JsonlOption, JsonOption, get_ctx, terminal_width
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UsageError
from jobctl.jobshape import JOB_FIELD_NAMES
from jobctl.models import JobStatus

STATUS_WORDS = [s.value for s in JobStatus]


@dataclass
class ListOptions:
    statuses: list[str]
    type: str | None
    since: str | None
    limit: int
    all: bool
    json_fields: str | None
    jsonl: bool


def run_list(opts: ListOptions, ctx: Context) -> int:
    from jobctl.commands import render

    for status in opts.statuses:
        for word in status.split(","):
            if word not in STATUS_WORDS and word != "processing":  # an app's words are mapped
                raise UsageError(
                    f"--status: unknown status {word!r} (one of {', '.join(STATUS_WORDS)})"
                )
    if opts.json_fields is not None and opts.jsonl:
        raise UsageError("give --json or --jsonl, not both")
    fields, raw = render.parse_job_fields(opts.json_fields, list_fields=True)
    # The server sends what is printed: --json FIELDS those fields, --json and --jsonl every
    # field of the job, a table or tab-separated lines the summary (no input, no output).
    wanted: list[str] | None = None
    if opts.json_fields is not None or opts.jsonl:
        wanted = fields or list(JOB_FIELD_NAMES)
    client = ctx.reader()
    if raw and hasattr(client, "want_raw"):
        client.want_raw = True
    limit = None if opts.all else opts.limit
    jobs = list(client.iter_jobs(opts.statuses, opts.type, opts.since, limit, fields=wanted))
    if opts.json_fields is not None:
        ctx.out(render.to_json([render.job_json(j, fields, raw, client) for j in jobs]))
    elif opts.jsonl:
        for job in jobs:
            ctx.out(render.to_json(job.to_dict(), pretty=False))
    elif ctx.stdout_tty:
        if jobs:
            ctx.out(render.render_jobs_table(jobs, ctx.clock(), ctx.color, terminal_width(ctx)))
        else:
            ctx.info("no jobs match")
    elif jobs:
        ctx.out(render.render_jobs_tsv(jobs))
    return ExitCode.OK


def list_jobs(
    typer_ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only this status (repeatable, or comma-separated).",
            show_default=False,
        ),
    ] = None,
    type: Annotated[
        str | None, typer.Option("--type", "-t", help="Only this job type.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only jobs created since: 30m, 2h, 7d or an ISO time.", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-L", help="At most this many jobs.", min=1)
    ] = 20,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Every matching job (follows pages).")
    ] = False,
    json_fields: JsonOption = None,
    jsonl: JsonlOption = False,
) -> None:
    """List jobs, newest first: a table on a terminal, tab-separated when piped.

    Piped columns: id, type, status, progress, created_at, message (or error).
    """
    opts = ListOptions(status or [], type, since, limit, all_, json_fields, jsonl)
    raise typer.Exit(run_list(opts, get_ctx(typer_ctx)))
