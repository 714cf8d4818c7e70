"""`jobctl cancel ID...`."""

from __future__ import annotations

from typing import Annotated

import typer

from jobctl.commands._shared import YesOption, confirm_bulk, for_each, get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode
from jobctl.models import Job


def run_cancel(refs: list[str], yes: bool, ctx: Context) -> int:
    client = ctx.jobs_client()
    ids = [client.resolve_id(r) for r in refs]
    if not confirm_bulk(ctx, "cancel", len(ids), yes or len(ids) == 1):
        ctx.info("nothing cancelled")
        return ExitCode.OK

    def done(job: Job) -> None:
        ctx.out(job.id)

    return for_each(ctx, ids, client.cancel_job, done)


def cancel(
    typer_ctx: typer.Context,
    jobs: Annotated[
        list[str], typer.Argument(help="Job ids or unique prefixes.", show_default=False)
    ],
    yes: YesOption = False,
) -> None:
    """Cancel pending or running jobs: no further step starts.

    Prints the id of each cancelled job. Exit 8 when a job has already finished.
    """
    raise typer.Exit(run_cancel(jobs, yes, get_ctx(typer_ctx)))
