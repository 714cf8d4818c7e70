"""`jobctl show ID --trace`: what a run did, as a tree with timings."""

from __future__ import annotations

from typing import Any

from jobctl.backends.jobapi import JobClient
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, NotFoundError
from jobctl.models import Job, LogLine, Step

MAX_LOG_LINES = 20_000


def print_trace(client: Any, job: Job, steps: list[Step], as_json: bool, ctx: Context) -> int:
    from jobctl.commands import render, render_history

    logs: list[LogLine] = []
    after = 0
    while isinstance(client, JobClient) and len(logs) < MAX_LOG_LINES:
        page = client.get_logs(job.id, after, 5000)
        logs.extend(page.logs)
        if not page.logs:
            break
        after = page.next_after
    events: list[dict[str, Any]] = []
    if isinstance(client, JobClient):  # a Supabase project keeps no event history
        try:
            events = client.job_events(job.id)
        except NotFoundError:  # a server without the event history
            events = []
    if as_json:
        ctx.out(
            render.to_json(
                {
                    "job": job.to_dict(),
                    "events": events,
                    "steps": [s.to_dict() for s in steps],
                    "logs": [ln.to_dict() for ln in logs],
                }
            )
        )
    else:
        ctx.out(render_history.render_trace(job, steps, logs, events, ctx.color))
    return ExitCode.OK
