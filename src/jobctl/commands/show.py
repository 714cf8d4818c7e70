"""`jobctl show ID`: one job with its step timeline, output and error."""

from __future__ import annotations

from typing import Annotated

import typer

from jobctl.commands._shared import JsonOption, get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode
from jobctl.jobshape import JOB_FIELD_NAMES

SHOW_FIELDS = (*JOB_FIELD_NAMES, "steps")


def run_show(ref: str, json_fields: str | None, ctx: Context, trace: bool = False) -> int:
    from jobctl.commands import render

    fields = render.parse_fields(json_fields, (*SHOW_FIELDS, "raw"))
    raw = fields is not None and "raw" in fields
    if raw:
        assert fields is not None
        fields = [f for f in fields if f != "raw"] or None
    client = ctx.reader()
    if raw and hasattr(client, "want_raw"):
        client.want_raw = True
    job_id = client.resolve_id(ref)
    job = client.get_job(job_id)
    steps = client.get_steps(job_id)
    if trace:
        from jobctl.commands._trace import print_trace

        return print_trace(client, job, steps, json_fields is not None, ctx)
    if json_fields is not None:
        data = job.to_dict()
        data["steps"] = [s.to_dict() for s in steps]
        if fields is None:
            data.pop("steps")  # the bare --json is the API's job shape; ask for steps by name
        data = render.select(data, fields)
        if raw:
            data["raw"] = render.job_json(job, [], True, client)["raw"]
        ctx.out(render.to_json(data))
    else:
        ctx.out(render.render_job_detail(job, steps, ctx.clock(), ctx.color))
    return ExitCode.OK


def show(
    typer_ctx: typer.Context,
    job: Annotated[
        str, typer.Argument(help="Job id or a unique prefix of one.", show_default=False)
    ],
    json_fields: JsonOption = None,
    trace: Annotated[
        bool,
        typer.Option(
            "--trace", help="The run as a tree with timings: event, job, attempt, steps, retries."
        ),
    ] = False,
) -> None:
    """Show a job: fields, the step timeline with attempts and durations, output, error.

    With --json, the job as the API returns it; add the field `steps` for the timeline
    (--json id,status,steps). --trace --json prints {job, events, steps, logs}.
    """
    raise typer.Exit(run_show(job, json_fields, get_ctx(typer_ctx), trace))
