"""Which live snapshots are news for the notices (no Textual here).

The feed's thread gathers snapshots into batches (`jobctl.backends.feedthread`):
the newest of each job, and every ending in order. The app applies a batch once
per frame; these rules decide what in it is older than what it shows, and which
endings it announces.
"""

from __future__ import annotations

from datetime import datetime

from jobctl.backends.feedthread import is_older
from jobctl.models import Job

__all__ = ["is_new_ending", "is_older"]


def is_new_ending(job: Job, before: Job | None, started_at: datetime) -> bool:
    """Whether this terminal snapshot is an ending the dashboard saw happen: a job known
    unfinished, a retried job ending again, or a job first seen ended after we started."""
    if not job.status.is_terminal:
        return False
    if before is None:
        return job.completed_at is not None and job.completed_at >= started_at
    if is_older(job, before):
        return False
    if not before.status.is_terminal:
        return True
    return job.attempt > before.attempt
