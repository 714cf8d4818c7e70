"""The job model shared by the client side: jobs, steps and log lines.

Plain dataclasses (no pydantic) so that the command line starts fast. A job's
fields are those of `jobshape.JOB_FIELDS`: `Job.from_dict` and `Job.to_dict`
read and write exactly those, and `Job`'s attributes are their typed Python view
(tests/test_jobshape.py holds the two together).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from jobctl.jobshape import (
    HEAVY_FIELDS,
    INPUT_BYTES,
    JOB_FIELD_NAMES,
    JOB_FIELDS,
    PRIMARY_KEY,
    JobField,
    Kind,
)


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def parse(cls, value: str) -> JobStatus:
        # Some Supabase apps write `processing`; it means running.
        if value == "processing":
            return cls.RUNNING
        return cls(value)


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING})


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SINCE_RE = re.compile(r"^(\d+)([smhdw])$")


def parse_since(value: str, now: datetime) -> datetime:
    """A `since` bound, as the job API, PostgREST reads and `list --since` take it: `30m`,
    `2h`, `7d`, `1w` (that long before `now`) or an ISO-8601 time (UTC when it names no
    zone). Raises ValueError for anything else."""
    text = value.strip()
    if m := _SINCE_RE.match(text):
        try:
            return now - timedelta(seconds=int(m[1]) * SINCE_UNITS[m[2]])
        except OverflowError:  # longer ago than any job: all of them
            return datetime.min.replace(tzinfo=UTC)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    # The API's own format: always microseconds, always Z.
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Job:
    id: str
    type: str
    status: JobStatus
    progress: int = 0
    message: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    error: str | None = None
    attempt: int = 1
    max_attempts: int = 1
    user_id: str = ""
    concurrency_key: str | None = None
    idempotency_key: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    schedule_id: str | None = None  # made by a schedule, for its tick
    schedule_tick: datetime | None = None
    # Beside the job's shape: what a listing's summary carries instead of the input (its
    # size, GET /api/jobs), and which of input and output the record left out (a summary,
    # or a table made by another app): those two then hold their defaults, not the job's.
    input_bytes: int | None = field(default=None, compare=False)
    missing: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """A job from its API (or Realtime, or PostgREST) record; lenient about what a table
        made by another app leaves out."""
        size = data.get(INPUT_BYTES)
        return cls(
            **{name: read(data) for name, read in _READERS},
            input_bytes=size if isinstance(size, int) else None,
            missing=frozenset(name for name in HEAVY_FIELDS if name not in data),
        )

    def filled_from(self, full: Job) -> Job:
        """This snapshot with the input and output it left out taken from `full` (an older
        whole record of the same job); still marked missing, as they may be stale."""
        if not self.missing or full.missing >= self.missing:
            return self
        found = {name: getattr(full, name) for name in self.missing - full.missing}
        return dataclasses.replace(self, **found)

    def to_dict(self) -> dict[str, Any]:
        """The API's shape: the fields of jobshape.JOB_FIELDS, times in the API's format."""
        out: dict[str, Any] = {}
        for name in JOB_FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = format_time(value)
            elif isinstance(value, JobStatus):
                value = value.value
            out[name] = value
        return out

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at or datetime.now(UTC)
        return max(0.0, (end - self.started_at).total_seconds())


def _reader(f: JobField) -> Callable[[dict[str, Any]], Any]:
    """How Job.from_dict reads one field of a record."""
    convert: Callable[[Any], Any] = _CONVERT[f.kind]
    name, default = f.name, f.default
    if f.name in PRIMARY_KEY:
        return lambda data: convert(data[name])
    if f.nullable:
        return lambda data: None if (v := data.get(name)) is None else convert(v)
    if f.kind == Kind.OBJECT:
        return lambda data: data.get(name) or {}  # a new dict each time, never a shared default
    return lambda data: convert(data.get(name) or default)


_CONVERT: dict[Kind, Callable[[Any], Any]] = {
    Kind.UUID: str,
    Kind.TEXT: str,
    Kind.STATUS: lambda v: JobStatus.parse(str(v)),
    Kind.INT: int,
    Kind.OBJECT: lambda v: v,
    Kind.JSON: lambda v: v,
    Kind.TIME: lambda v: parse_time(v),
}
_READERS = tuple((f.name, _reader(f)) for f in JOB_FIELDS)


@dataclass(frozen=True)
class Step:
    job_id: str
    step_id: str
    name: str
    status: str
    attempt: int = 1
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    kind: str = "run"  # or "sleep" (step.sleep: completed_at is when it woke)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            job_id=str(data["job_id"]),
            step_id=str(data["step_id"]),
            name=str(data.get("name") or ""),
            kind=str(data.get("kind") or "run"),
            status=str(data.get("status") or ""),
            attempt=int(data.get("attempt") or 1),
            output=data.get("output"),
            error=data.get("error"),
            started_at=parse_time(data.get("started_at")),
            completed_at=parse_time(data.get("completed_at")),
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["started_at"] = format_time(self.started_at)
        out["completed_at"] = format_time(self.completed_at)
        return out

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return max(0.0, (self.completed_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class LogLine:
    job_id: str
    seq: int
    ts: datetime | None
    level: str
    step: str | None
    message: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogLine:
        return cls(
            job_id=str(data["job_id"]),
            seq=int(data["seq"]),
            ts=parse_time(data.get("ts")),
            level=str(data.get("level") or "info"),
            step=data.get("step"),
            message=str(data.get("message") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ts"] = format_time(self.ts)
        return out


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None
