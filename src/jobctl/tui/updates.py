"""What the feed delivered since the last frame, gathered for one pass (no Textual here).

The feed worker adds each snapshot as it comes; the app takes them all once
per frame. Many snapshots of one job collapse to the newest, but every
ending is kept, in order, even when a retry follows at once within the same
frame: a finished job is always seen (counted and notified).
"""

from __future__ import annotations

from datetime import datetime

from jobctl.models import Job


def is_older(new: Job, old: Job) -> bool:
    """A snapshot older than one already seen (a late poll racing the stream)."""
    if new.updated_at is None or old.updated_at is None:
        return False
    return new.updated_at < old.updated_at


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


class UpdateBuffer:
    def __init__(self) -> None:
        self.latest: dict[str, Job] = {}
        self.endings: list[Job] = []

    def __len__(self) -> int:
        return len(self.latest)

    def add(self, job: Job) -> None:
        old = self.latest.get(job.id)
        if old is not None and is_older(job, old):
            return
        self.latest[job.id] = job
        if job.status.is_terminal:
            self.endings.append(job)

    def take(self) -> tuple[list[Job], list[Job]]:
        """(the newest snapshot of each job, every terminal snapshot in arrival order)."""
        latest, endings = list(self.latest.values()), self.endings
        self.latest, self.endings = {}, []
        return latest, endings
