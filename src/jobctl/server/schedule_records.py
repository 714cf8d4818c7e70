"""Rows of schedules, their runs and the event history, as the store returns them.

Kept apart from records.py (jobs, steps, logs) so the store can build them without
importing the scheduler's rules (server/schedules.py) or the cron library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jobctl.server.records import NewJob, iso, loads

SCHEDULE_COLUMNS = (
    "id",
    "user_id",
    "name",
    "type",
    "cron",
    "tz",
    "every_us",
    "input",
    "overlap",
    "catchup_us",
    "catchup_policy",
    "jitter_us",
    "paused",
    "note",
    "next_tick",
    "buffered_tick",
    "last_tick",
    "last_job_id",
    "created_at",
    "updated_at",
)
SCHEDULE_SELECT = ", ".join(SCHEDULE_COLUMNS)
RUN_COLUMNS = ("schedule_id", "tick", "kind", "outcome", "job_id", "detail", "recorded_at")
RUN_SELECT = ", ".join(RUN_COLUMNS)
EVENT_COLUMNS = ("id", "user_id", "name", "data", "event_id", "source", "replay_of", "received_at")
EVENT_SELECT = ", ".join(EVENT_COLUMNS)

# Run outcomes and kinds.
STARTED, SKIPPED_MISSED, SKIPPED_OVERLAP, COALESCED, BUFFERED = (
    "started",
    "skipped_missed",
    "skipped_overlap",
    "coalesced",
    "buffered",
)
TICK, TRIGGER, BACKFILL = "tick", "trigger", "backfill"


@dataclass(slots=True)
class ScheduleRow:
    id: str
    user_id: str
    name: str
    type: str
    cron: str | None
    tz: str
    every_us: int | None
    input: str
    overlap: str
    catchup_us: int
    catchup_policy: str
    jitter_us: int
    paused: int
    note: str | None
    next_tick: int | None
    buffered_tick: int | None
    last_tick: int | None
    last_job_id: str | None
    created_at: int
    updated_at: int
    # Filled by reads that join the last job (list, show): its status.
    last_status: str | None = None

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in SCHEDULE_COLUMNS)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "cron": self.cron,
            "tz": self.tz,
            "every_seconds": None if self.every_us is None else self.every_us / 1_000_000,
            "input": json.loads(self.input),
            "overlap": self.overlap,
            "catchup_seconds": self.catchup_us / 1_000_000,
            "catchup_policy": self.catchup_policy,
            "jitter_seconds": self.jitter_us / 1_000_000,
            "paused": bool(self.paused),
            "note": self.note,
            "next_run_at": None if self.paused else iso(self.next_tick),
            "buffered_tick": iso(self.buffered_tick),
            "last_tick": iso(self.last_tick),
            "last_job_id": self.last_job_id,
            "last_status": self.last_status,
            "user_id": self.user_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(slots=True)
class RunRow:
    schedule_id: str
    tick: int
    kind: str
    outcome: str
    job_id: str | None
    detail: str | None
    recorded_at: int
    job_status: str | None = None  # joined by reads that show runs

    def to_api(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "tick": iso(self.tick),
            "kind": self.kind,
            "outcome": self.outcome,
            "job_id": self.job_id,
            "job_status": self.job_status,
            "detail": self.detail,
            "recorded_at": iso(self.recorded_at),
        }


@dataclass(slots=True)
class PlannedRun:
    """One tick's fate. For `started`, `job` is the job to insert (if the tick is new)."""

    tick: int
    kind: str
    outcome: str
    job: NewJob | None = None
    run_at: int = 0
    detail: str | None = None


@dataclass(slots=True)
class FirePlan:
    """What to do with one due schedule, decided by the scheduler inside the store's
    transaction (so the last job's status and the next tick cannot change under it)."""

    runs: list[PlannedRun] = field(default_factory=list)
    next_tick: int | None = None
    buffered_tick: int | None = None
    advance: bool = True  # write next_tick/buffered_tick (False: trigger/backfill)


@dataclass(slots=True)
class EventRow:
    id: str
    user_id: str
    name: str
    data: str
    event_id: str | None
    source: str
    replay_of: str | None
    received_at: int
    job_ids: list[str] = field(default_factory=list)

    def values(self) -> tuple[Any, ...]:
        """In EVENT_COLUMNS order."""
        return (self.id, self.user_id, self.name, self.data, self.event_id, self.source,
                self.replay_of, self.received_at)  # fmt: skip

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "data": loads(self.data),
            "event_id": self.event_id,
            "source": self.source,
            "replay_of": self.replay_of,
            "received_at": iso(self.received_at),
            "job_ids": list(self.job_ids),
            "user_id": self.user_id,
        }
