"""The job model shared by the client side: jobs, steps and log lines.

Plain dataclasses (no pydantic) so that the command line starts fast. The
field lists are exported for `--json FIELDS` and must match the API's shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            id=str(data["id"]),
            type=str(data.get("type") or ""),
            status=JobStatus.parse(str(data.get("status") or "pending")),
            progress=int(data.get("progress") or 0),
            message=data.get("message"),
            input=data.get("input") or {},
            output=data.get("output"),
            error=data.get("error"),
            attempt=int(data.get("attempt") or 1),
            max_attempts=int(data.get("max_attempts") or 1),
            user_id=str(data.get("user_id") or ""),
            concurrency_key=data.get("concurrency_key"),
            idempotency_key=data.get("idempotency_key"),
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
            started_at=parse_time(data.get("started_at")),
            completed_at=parse_time(data.get("completed_at")),
            schedule_id=data.get("schedule_id"),
            schedule_tick=parse_time(data.get("schedule_tick")),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = format_time(value)
            elif isinstance(value, JobStatus):
                value = value.value
            out[f.name] = value
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


JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Job))


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
