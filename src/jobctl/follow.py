"""Follow jobs to their end by polling, reporting each new snapshot.

The one place that `submit --watch` (and later `watch`) uses to follow jobs.
The live-updates feed will replace the polling here; callers only see
`on_snapshot(job)` calls and the final jobs. No UI code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from jobctl.errors import ExitCode, ServerError, UnreachableError, WatchTimeoutError
from jobctl.models import Job, JobStatus


class JobSource(Protocol):
    def get_job(self, job_id: str) -> Job: ...


@dataclass(frozen=True)
class FollowOptions:
    interval: float = 0.25  # first poll delay; grows while nothing changes
    max_interval: float = 2.0
    timeout: float | None = None  # give up (exit 7) when jobs still run after this
    reconnect_seconds: float = 60.0  # keep retrying a lost server this long (then exit 6)


def follow_jobs(
    client: JobSource,
    job_ids: Iterable[str],
    on_snapshot: Callable[[Job], None],
    options: FollowOptions = FollowOptions(),
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Job]:
    """Poll until every job is terminal; returns the last snapshot of each.

    Raises WatchTimeoutError after `options.timeout`, and UnreachableError when
    the server stays unreachable for `options.reconnect_seconds`.
    """
    ids = list(dict.fromkeys(job_ids))
    last: dict[str, Job] = {}
    start = clock()
    failing_since: float | None = None
    interval = options.interval
    while True:
        changed = False
        try:
            for job_id in ids:
                if job_id in last and last[job_id].status.is_terminal:
                    continue
                job = client.get_job(job_id)
                if last.get(job_id) != job:
                    last[job_id] = job
                    changed = True
                    on_snapshot(job)
            failing_since = None
        except (UnreachableError, ServerError) as exc:
            # The client already retried; keep trying for a while before giving up.
            now = clock()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since >= options.reconnect_seconds:
                raise UnreachableError(
                    f"lost the job server for {options.reconnect_seconds:g}s: {exc.message}"
                ) from None
        if len(last) == len(ids) and all(j.status.is_terminal for j in last.values()):
            return last
        if options.timeout is not None and clock() - start >= options.timeout:
            running = [j for j in ids if j not in last or not last[j].status.is_terminal]
            raise WatchTimeoutError(
                f"timed out after {options.timeout:g}s; still running: {', '.join(running)}"
            )
        interval = options.interval if changed else min(interval * 1.5, options.max_interval)
        if options.timeout is not None:
            interval = max(0.0, min(interval, options.timeout - (clock() - start)))
        sleep(interval)


def outcome_code(jobs: Iterable[Job]) -> ExitCode:
    """The exit code for finished jobs: any failed -> 1, else any cancelled -> 3, else 0."""
    statuses = {j.status for j in jobs}
    if JobStatus.FAILED in statuses:
        return ExitCode.JOB_FAILED
    if JobStatus.CANCELLED in statuses:
        return ExitCode.JOB_CANCELLED
    return ExitCode.OK
