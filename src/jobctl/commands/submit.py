"""`jobctl submit [FILE|-]`: create a job, optionally follow it to its end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from jobctl.commands._shared import JsonOption, get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode
from jobctl.models import Job

DEFAULT_TYPE = "journal_extraction"


@dataclass
class SubmitOptions:
    file: str | None
    type: str | None
    input_json: str | None
    input_file: Path | None
    idempotency_key: str | None
    concurrency_key: str | None
    quiet: bool
    json_fields: str | None
    watch: bool
    timeout: float | None


def remember(ctx: Context, job_ids: list[str]) -> None:
    """For `watch --last`; a submit never fails for want of it."""
    from jobctl.commands import _last_submit as history

    try:
        history.record_submit(ctx.data_dir, ctx.settings.profile, job_ids)
    except OSError as exc:
        ctx.info(f"note: could not record the submit for `watch --last`: {exc.strerror}")


def run_submit(opts: SubmitOptions, ctx: Context) -> int:
    from jobctl.commands import render

    fields, raw = render.parse_job_fields(opts.json_fields)
    from jobctl.jobinput import Stdin, job_input

    data = job_input(
        opts.file,
        opts.input_json,
        None if opts.input_file is None else str(opts.input_file),
        stdin=Stdin(ctx.stdin, ctx.stdin_tty),
    )
    key = opts.idempotency_key or str(uuid.uuid4())
    client = ctx.jobs_client()
    app = ctx.app
    job_type = opts.type or (app.default_type if app is not None else DEFAULT_TYPE)
    if app is not None:
        from jobctl.backends.appbackend import AppBackend

        assert isinstance(client, AppBackend)
        client.want_raw = raw
        filename = None if opts.file in (None, "-") else Path(str(opts.file)).name
        job = client.create_job(job_type, data, key, opts.concurrency_key, filename=filename)
        if opts.timeout is None:
            opts.timeout = app.timeout_for(job.type)
    else:
        job = client.create_job(job_type, data, key, opts.concurrency_key)
    remember(ctx, [job.id])
    as_json = opts.json_fields is not None
    if not opts.watch:
        if as_json:
            ctx.out(render.to_json(render.job_json(job, fields, raw, client)))
        else:
            ctx.out(job.id)
            if not opts.quiet and ctx.stderr_tty:
                ctx.info(
                    f"submitted {job.type} job {job.short_id}; follow it with "
                    f"`jobctl show {job.short_id}`"
                )
        return ExitCode.OK
    return watch_to_end(ctx, client, job, opts, fields, raw)


def watch_to_end(
    ctx: Context, client: Any, job: Job, opts: SubmitOptions, fields: Any, raw: bool = False
) -> int:
    """Follow the job with `watch`'s machinery: progress on stderr, the outcome on stdout."""
    from jobctl.backends.watchloop import WatchOptions
    from jobctl.commands import render
    from jobctl.commands.watchview import WatchPrinter, ending_text, follow, view_config

    if not opts.quiet and opts.json_fields is None:
        ctx.info(f"submitted {job.type} job {job.id}")
    config = view_config(ctx, human=ctx.stderr, end_lines=False, summary=False)
    config.progress = not opts.quiet
    options = WatchOptions(timeout=opts.timeout, lost_after=ctx.settings.reconnect_seconds)
    result = follow(ctx, client, [job], WatchPrinter(config), options)
    final = result.jobs[job.id]
    if ending_text(result):
        ctx.info(ending_text(result))
    if opts.json_fields is not None:
        ctx.out(render.to_json(render.job_json(final, fields, raw, client)))
    elif opts.quiet:
        ctx.out(final.id)
    elif final.status.is_terminal:
        summary_of = getattr(client, "summary_of", None)
        ctx.out(render.render_summary(final, summary_of(final) if summary_of else None))
    return result.code


def submit(
    typer_ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(
            help="A text file; its text becomes input.text. '-' reads stdin.", show_default=False
        ),
    ] = None,
    type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help=f"Job type (default: {DEFAULT_TYPE}; with an app profile, its [app] type).",
            show_default=False,
        ),
    ] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="Input as a JSON object.", show_default=False)
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input-file", help="Input from a JSON file.", show_default=False),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="Same key, same job (for 24 h). Default: a new random key.", show_default=False
        ),
    ] = None,
    concurrency_key: Annotated[
        str | None, typer.Option(help="Key for concurrency limits.", show_default=False)
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the job id.")] = False,
    json_fields: JsonOption = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the job; exit with its outcome.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="With --watch: give up after this many seconds (exit 7).",
            min=0,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Submit a job. Prints its id; --watch follows it to the end.

    Examples:

      jobctl submit examples/journal.txt --watch

      jobctl submit --type demo --input '{"steps": 3}' -q
    """
    opts = SubmitOptions(
        file,
        type,
        input_json,
        input_file,
        idempotency_key,
        concurrency_key,
        quiet,
        json_fields,
        watch,
        timeout,
    )
    raise typer.Exit(run_submit(opts, get_ctx(typer_ctx)))
