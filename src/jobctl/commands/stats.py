"""`jobctl stats [--json] [--check]`: monitoring figures and alert thresholds."""

from __future__ import annotations

from typing import Annotated

import typer

from jobctl.commands._shared import JsonOption, get_ctx
from jobctl.commands.context import Context
from jobctl.errors import ExitCode

# `--check` reuses code 1 ("failed") for "a threshold is crossed": the table of
# DESIGN.md section 6 has no code of its own for it, and 1 is what cron and CI
# read as "something is wrong".
ALERT_EXIT = ExitCode.JOB_FAILED
STATS_FIELDS = (
    "counts",
    "by_type",
    "created_last_hour",
    "creation_rate_per_minute",
    "finished_last_hour",
    "failed_last_hour",
    "failure_rate",
    "queue_depth",
    "duration_by_type",
    "stuck_jobs",
    "stuck_job_ids",
    "thresholds",
    "alerts",
)


def run_stats(json_fields: str | None, check: bool, ctx: Context) -> int:
    from jobctl.commands import render

    fields = render.parse_fields(json_fields, STATS_FIELDS)
    stats = ctx.client().stats()
    if json_fields is not None:
        ctx.out(render.to_json(render.select(stats, fields)))
    else:
        ctx.out(render.render_stats(stats))
    alerts = stats.get("alerts") or []
    if check and alerts:
        ctx.info(
            f"{len(alerts)} alert threshold(s) crossed: "
            + ", ".join(str(a.get("name")) for a in alerts)
        )
        return ALERT_EXIT
    return ExitCode.OK


def stats(
    typer_ctx: typer.Context,
    json_fields: JsonOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when an alert threshold is crossed.")
    ] = False,
) -> None:
    """Creation rate, durations by type (avg, p95), failure rate, queue depth, stuck jobs.

    Alerts: failure rate over 10% in the last hour, more than 50 pending, a type's
    last-hour p95 over twice its usual, more than 5 stuck jobs. With --check the
    command exits 1 when one is crossed (for cron and CI).
    """
    raise typer.Exit(run_stats(json_fields, check, get_ctx(typer_ctx)))
