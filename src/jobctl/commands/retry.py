"""`jobctl retry ID... [--from-start]`, `jobctl retry --all-failed [--type T]`, and
`jobctl retry ID --input JSON | --input-file F | --edit` (a new attempt with new input)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from jobctl.commands._shared import YesOption, confirm_bulk, for_each, get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UsageError
from jobctl.models import Job


@dataclass
class RetryOptions:
    refs: list[str]
    all_failed: bool
    type: str | None
    from_start: bool
    yes: bool
    input_json: str | None = None
    input_file: Path | None = None
    edit: bool = False


def run_retry(opts: RetryOptions, ctx: Context) -> int:
    refs, all_failed = opts.refs, opts.all_failed
    if all_failed == bool(refs):
        raise UsageError("give job ids or --all-failed (one of them)")
    if opts.type and not all_failed:
        raise UsageError("--type goes with --all-failed")
    new_input = sum([opts.input_json is not None, opts.input_file is not None, opts.edit])
    if new_input > 1:
        raise UsageError("give one of --input, --input-file and --edit")
    if new_input and (all_failed or len(refs) != 1):
        raise UsageError("new input (--input, --input-file, --edit) is for one job at a time")
    client = ctx.jobs_client()
    if all_failed:
        ids = [j.id for j in client.iter_jobs(["failed"], opts.type, None, None)]
        if not ids:
            ctx.info("no failed jobs")
            return ExitCode.OK
    else:
        ids = [client.resolve_id(r) for r in refs]
    data: dict[str, Any] | None = None
    if new_input:
        data = _new_input(opts, client.get_job(ids[0]), ctx)
        if data is None:
            ctx.info("input unchanged; nothing retried")
            return ExitCode.OK
    single = not all_failed and len(ids) == 1  # --all-failed is bulk whatever the count
    if not confirm_bulk(ctx, "retry", len(ids), opts.yes or single):
        ctx.info("nothing retried")
        return ExitCode.OK

    def done(job: Job) -> None:
        ctx.out(job.id)

    return for_each(ctx, ids, lambda job_id: client.retry_job(job_id, opts.from_start, data), done)


def _new_input(opts: RetryOptions, job: Job, ctx: Context) -> dict[str, Any] | None:
    """The new input, or None when --edit left it unchanged."""
    from jobctl.jobinput import Stdin, job_input

    if not opts.edit:
        stdin = Stdin(ctx.stdin, ctx.stdin_tty)
        return job_input(None, opts.input_json, opts.input_file, stdin=stdin)
    from jobctl.commands._editor import edit_json

    return edit_json(job.input, ctx, f"jobctl-retry-{job.short_id}.json")


def retry(
    typer_ctx: typer.Context,
    jobs: Annotated[
        list[str] | None, typer.Argument(help="Job ids or unique prefixes.", show_default=False)
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Retry every failed job.")
    ] = False,
    type: Annotated[
        str | None,
        typer.Option("--type", "-t", help="With --all-failed: only this type.", show_default=False),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Run completed steps again too.")
    ] = False,
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input", help="New input (a JSON object) for the retry.", show_default=False
        ),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input-file", help="New input from a JSON file.", show_default=False),
    ] = None,
    edit: Annotated[
        bool,
        typer.Option("--edit", help="Edit the input in $VISUAL/$EDITOR; unchanged cancels."),
    ] = False,
    yes: YesOption = False,
) -> None:
    """Put failed or cancelled jobs back in the queue (keeping completed steps).

    With new input, the failed step (and those after it) run with it; completed steps
    keep their results unless --from-start. Prints the id of each retried job. Exit 8
    when a job is not failed or cancelled.
    """
    opts = RetryOptions(jobs or [], all_failed, type, from_start, yes, input_json, input_file, edit)
    raise typer.Exit(run_retry(opts, get_ctx(typer_ctx)))
