"""App-wide messages: what workers post when their network work is done.

A burst of progress for one job collapses to its latest snapshot
(`JobUpdated.can_replace`). A snapshot that ends a job is never dropped, so a
finished job is always seen (and notified), even when a retry follows at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from jobctl.backends.feed import FeedMode
from jobctl.models import Job, LogLine, Step


class JobUpdated(Message):
    """A newer snapshot of one job (from the feed, or from an action's answer)."""

    def __init__(self, job: Job, source: str = "feed") -> None:
        super().__init__()
        self.job = job
        self.source = source

    def can_replace(self, message: Message) -> bool:
        # Textual asks the older message whether the next one in the queue supersedes it.
        return (
            isinstance(message, JobUpdated)
            and message.job.id == self.job.id
            and not self.job.status.is_terminal
        )


@dataclass
class JobsLoaded(Message):
    """A page of the job list (the first page replaces what the table had)."""

    jobs: list[Job]
    first: bool = True
    done: bool = True


@dataclass
class ConnectionChanged(Message):
    mode: FeedMode
    detail: str = ""


@dataclass
class StatsLoaded(Message):
    stats: dict[str, Any]


@dataclass
class ActionDone(Message):
    """submit, retry or cancel succeeded for these jobs (the server's answers)."""

    verb: str
    jobs: list[Job]


@dataclass
class ActionFailed(Message):
    verb: str
    target: str  # a short job id, or the file submitted
    error: str


@dataclass
class DetailLoaded(Message):
    job: Job
    steps: list[Step]


@dataclass
class LogsLoaded(Message):
    job_id: str
    lines: list[LogLine] = field(default_factory=list)
