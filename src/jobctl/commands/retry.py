"""`jobctl retry ID... [--from-start]` and `jobctl retry --all-failed [--type T]`."""

from __future__ import annotations

from typing import Annotated

import typer

from jobctl.commands._shared import YesOption, confirm_bulk, for_each, get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UsageError
from jobctl.models import Job


def run_retry(
    refs: list[str], all_failed: bool, type: str | None, from_start: bool, yes: bool, ctx: Context
) -> int:
    if all_failed == bool(refs):
        raise UsageError("give job ids or --all-failed (one of them)")
    if type and not all_failed:
        raise UsageError("--type goes with --all-failed")
    client = ctx.client()
    if all_failed:
        ids = [j.id for j in client.iter_jobs(["failed"], type, None, None)]
        if not ids:
            ctx.info("no failed jobs")
            return ExitCode.OK
    else:
        ids = [client.resolve_id(r) for r in refs]
    single = not all_failed and len(ids) == 1  # --all-failed is bulk whatever the count
    if not confirm_bulk(ctx, "retry", len(ids), yes or single):
        ctx.info("nothing retried")
        return ExitCode.OK

    def done(job: Job) -> None:
        ctx.out(job.id)

    code = for_each(ctx, ids, lambda job_id: client.retry_job(job_id, from_start), done)
    return code


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
    yes: YesOption = False,
) -> None:
    """Put failed or cancelled jobs back in the queue (keeping completed steps).

    Prints the id of each retried job. Exit 8 when a job is not failed or cancelled.
    """
    raise typer.Exit(run_retry(jobs or [], all_failed, type, from_start, yes, get_ctx(typer_ctx)))
