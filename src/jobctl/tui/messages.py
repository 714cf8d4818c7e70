"""App-wide messages: what workers post when their network work is done.

Live job snapshots do not come as messages, one per change: the feed's thread
gathers them into batches (backends/feedthread.py), which the feed worker applies
once per frame, with the changes of mode among them (`ConnectionChanged`, applied
in order with the jobs, not posted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from jobctl.backends.feed import FeedMode
from jobctl.models import Job, LogLine, Step


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


# the schedules and events views ------------------------------------------------------
@dataclass
class RecordsLoaded(Message):
    """A view's list (schedules or events, the API's dicts), or why it could not load."""

    records: list[dict[str, Any]]
    error: str | None = None


@dataclass
class RecordChanged(Message):
    """An action's answer: this record as it is now (a paused schedule, a replay's new
    event), or None when the answer is not one (a trigger's runs: the view reloads)."""

    record: dict[str, Any] | None
    note: str  # what to tell the user


@dataclass
class JobsStarted(Message):
    """A trigger or a replay made these jobs: the app follows them."""

    job_ids: list[str]


@dataclass
class ShowJobs(Message):
    """Show these jobs: one opens its detail over the view, several filter the table."""

    job_ids: list[str]


@dataclass
class JobFetched(Message):
    """A job fetched to be opened (the table had not loaded it)."""

    job: Job
