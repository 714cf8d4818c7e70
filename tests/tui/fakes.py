"""In-process fakes of the job API and the live feed, for unit-testing the UI layer only
(bench/tui.py has its own, which run on the feed's thread).

They record every call, so tests assert what the dashboard asked for; the
end-to-end tests use the real server, client and feed (on its thread) instead. They subclass the
protocols of jobctl.tui.ports, so mypy holds them to the one declaration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from jobctl.backends.feed import FeedEvent, FeedMode, JobChanged, ModeChanged
from jobctl.backends.feedthread import Batcher, FeedBatch
from jobctl.backends.jobapi import ListParams, LogPage
from jobctl.errors import ConflictError, JobctlError, NotFoundError
from jobctl.jobshape import HEAVY_FIELDS, SUMMARY_FIELDS
from jobctl.models import Job, JobPage, JobStatus, LogLine, Step
from jobctl.tui.ports import JobApi, LiveFeed

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def fixed_clock() -> datetime:
    return T0 + timedelta(minutes=10)


def job_id(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def make_job(n: int, status: JobStatus = JobStatus.PENDING, **kw: Any) -> Job:
    created = T0 + timedelta(seconds=n)
    started = created + timedelta(seconds=1) if status != JobStatus.PENDING else None
    done = created + timedelta(seconds=4) if status.is_terminal else None
    values: dict[str, Any] = {
        "id": job_id(n),
        "type": "demo",
        "status": status,
        "progress": 100 if status == JobStatus.COMPLETED else 0,
        "message": None,
        "created_at": created,
        "updated_at": done or started or created,
        "started_at": started,
        "completed_at": done,
        "max_attempts": 3,
        "input": {"steps": 3},
    }
    values.update(kw)
    return Job(**values)


def schedule_id(n: int) -> str:
    return f"5c{n:06x}-0000-4000-8000-{n:012x}"


def event_id(n: int) -> str:
    return f"e0{n:06x}-0000-4000-8000-{n:012x}"


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def make_schedule(n: int, name: str, **kw: Any) -> dict[str, Any]:
    """A schedule in the API's shape (GET /api/schedules)."""
    values: dict[str, Any] = {
        "id": schedule_id(n),
        "name": name,
        "type": "demo",
        "cron": None,
        "tz": None,
        "every_seconds": 60.0,
        "input": {"steps": 1},
        "overlap": "skip",
        "catchup_seconds": 60.0,
        "catchup_policy": "each",
        "jitter_seconds": 0.0,
        "paused": False,
        "note": None,
        "next_run_at": iso(fixed_clock() + timedelta(seconds=30 * n)),
        "buffered_tick": None,
        "last_tick": None,
        "last_job_id": None,
        "last_status": None,
        "user_id": "local",
        "created_at": iso(T0),
        "updated_at": iso(T0),
    }
    values.update(kw)
    return values


def make_event(n: int, name: str, job_ids: Sequence[str] = (), **kw: Any) -> dict[str, Any]:
    """An event in the API's shape (GET /api/events)."""
    values: dict[str, Any] = {
        "id": event_id(n),
        "name": name,
        "data": {"n": n},
        "event_id": None,
        "source": "event",
        "replay_of": None,
        "received_at": iso(T0 + timedelta(seconds=n)),
        "job_ids": list(job_ids),
        "user_id": "local",
    }
    values.update(kw)
    return values


def _as_listed(job: Job, fields: Sequence[str] | None) -> Job:
    """As the job API lists a job: the summary, or the fields named; without the input or
    output unless asked for (then their defaults, and marked missing, as Job.from_dict does)."""
    wanted = set(fields if fields is not None else SUMMARY_FIELDS)
    left_out = frozenset(name for name in HEAVY_FIELDS if name not in wanted)
    return replace(
        job,
        input={} if "input" in left_out else job.input,
        output=None if "output" in left_out else job.output,
        missing=left_out,
    )


@dataclass
class FakeClient(JobApi):
    jobs: dict[str, Job] = field(default_factory=dict)
    steps: dict[str, list[Step]] = field(default_factory=dict)
    logs: dict[str, list[LogLine]] = field(default_factory=dict)
    stats_value: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: JobctlError | None = None  # raised by every call while set
    created: int = 0
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first
    listed_fields: list[tuple[str, ...] | None] = field(default_factory=list)  # per page
    _listing: list[Job] = field(default_factory=list)  # newest first, as of the first page

    def add(self, *jobs: Job) -> None:
        for job in jobs:
            self.jobs[job.id] = job

    def _check(self, name: str, arg: Any = None) -> None:
        self.calls.append((name, arg))
        if self.fail is not None:
            raise self.fail

    async def list_jobs(self, **query: Unpack[ListParams]) -> JobPage:
        cursor, limit, fields = query.get("cursor"), query.get("limit", 50), query.get("fields")
        self._check("list_jobs", cursor)
        self.listed_fields.append(tuple(fields) if fields is not None else None)
        if not cursor:  # a listing is read as of its first page, as the server's cursor is
            self._listing = sorted(
                self.jobs.values(), key=lambda j: j.created_at or T0, reverse=True
            )
        start = int(cursor or 0)
        page = [_as_listed(j, fields) for j in self._listing[start : start + limit]]
        more = start + limit < len(self._listing)
        return JobPage(page, str(start + limit) if more else None)

    async def get_job(self, job_id: str) -> Job:
        self._check("get_job", job_id)
        if job_id not in self.jobs:
            raise NotFoundError(f"no job {job_id}")
        return self.jobs[job_id]

    async def get_steps(self, job_id: str) -> list[Step]:
        self._check("get_steps", job_id)
        return self.steps.get(job_id, [])

    async def get_logs(self, job_id: str, after: int = 0, limit: int = 1000) -> LogPage:
        self._check("get_logs", job_id)
        lines = [x for x in self.logs.get(job_id, []) if x.seq > after]
        status = self.jobs[job_id].status.value if job_id in self.jobs else "completed"
        return LogPage(lines, lines[-1].seq if lines else after, status)

    async def create_job(
        self,
        type: str,
        input: dict[str, Any],
        idempotency_key: str,
        concurrency_key: str | None = None,
    ) -> Job:
        self._check("create_job", (type, input))
        self.created += 1
        job = make_job(1000 + self.created, type=type, input=input)
        self.jobs[job.id] = job
        return job

    async def cancel_job(self, job_id: str) -> Job:
        self._check("cancel_job", job_id)
        job = self.jobs[job_id]
        if job.status.is_terminal:
            raise ConflictError(f"job {job_id} already finished")
        job = replace(job, status=JobStatus.CANCELLED, updated_at=fixed_clock())
        self.jobs[job_id] = job
        return job

    async def retry_job(self, job_id: str, from_start: bool = False) -> Job:
        self._check("retry_job", job_id)
        job = self.jobs[job_id]
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise ConflictError(f"job {job_id} is not failed or cancelled")
        job = replace(
            job,
            status=JobStatus.PENDING,
            attempt=job.attempt + 1,
            error=None,
            updated_at=fixed_clock(),
        )
        self.jobs[job_id] = job
        return job

    async def stats(self) -> dict[str, Any]:
        self._check("stats")
        if self.stats_value:
            return self.stats_value
        counts = {s.value: 0 for s in JobStatus}
        for job in self.jobs.values():
            counts[job.status.value] += 1
        return {"counts": counts, "queue_depth": counts["pending"], "failure_rate": 0.0}

    async def types(self) -> list[dict[str, Any]]:
        self._check("types")
        return [{"name": "journal_extraction"}, {"name": "demo"}]

    # schedules and events: the server's rules, as far as the views can tell ---------
    def add_schedules(self, *schedules: dict[str, Any]) -> None:
        for schedule in schedules:
            self.schedules[schedule["id"]] = schedule

    async def list_schedules(self) -> list[dict[str, Any]]:
        self._check("list_schedules")
        return [dict(s) for s in sorted(self.schedules.values(), key=lambda s: s["name"])]

    async def schedule_action(
        self, ref: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self._check("schedule_action", (ref, action, body))
        found = [s for s in self.schedules.values() if ref in (s["id"], s["name"])]
        if not found:
            raise NotFoundError(f"schedule {ref} not found")
        schedule = found[0]
        now = iso(fixed_clock())
        if action in ("pause", "resume"):
            paused = action == "pause"
            schedule.update(
                paused=paused,
                note=(body or {}).get("note"),
                next_run_at=None if paused else iso(fixed_clock() + timedelta(seconds=60)),
                updated_at=now,
            )
            return dict(schedule)
        if action == "trigger":
            job = await self.create_job(schedule["type"], schedule["input"], f"trigger-{now}")
            schedule.update(last_tick=now, last_job_id=job.id, last_status=job.status.value)
            return {"runs": [{"outcome": "started", "tick": now, "job_id": job.id}]}
        raise ConflictError(f"the fake does not {action}")

    async def list_events(
        self,
        name: str | None = None,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        self._check("list_events", limit)
        shown = [dict(e) for e in self.events if name is None or e["name"] == name]
        return shown[:limit], None

    async def replay_event(self, event_id: str) -> dict[str, Any]:
        self._check("replay_event", event_id)
        original = next((e for e in self.events if e["id"] == event_id), None)
        if original is None:
            raise NotFoundError(f"event {event_id} not found")
        job = await self.create_job("demo", dict(original["data"]), f"replay-{event_id}")
        replayed = make_event(
            len(self.events) + 100,
            original["name"],
            [job.id],
            data=original["data"],
            source="replay",
            replay_of=event_id,
            received_at=iso(fixed_clock()),
        )
        self.events.insert(0, replayed)
        return {"event": dict(replayed), "job_ids": [job.id]}


class FakeFeed(LiveFeed):
    """Events are pushed by the test with `push` / `set_mode`, and gathered into batches
    as the real FeedThread gathers them (on the app's loop here: no thread)."""

    def __init__(self, mode: FeedMode = FeedMode.POLLING) -> None:
        self._mode = mode
        self.batcher = Batcher()
        self._ready = asyncio.Event()
        self.added: list[str] = []
        self.refreshes = 0
        self.entered = False
        self.closed = False

    @property
    def mode(self) -> FeedMode:
        return self._mode

    async def __aenter__(self) -> FakeFeed:
        self.entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True

    async def batches(self) -> AsyncIterator[list[FeedBatch]]:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if taken := self.batcher.take():
                yield taken

    def _add(self, event: FeedEvent) -> None:
        self.batcher.add(event)
        self._ready.set()

    def push(self, *jobs: Job) -> None:
        for job in jobs:
            self._add(JobChanged(job, "poll"))

    def set_mode(self, mode: FeedMode, detail: str = "") -> None:
        previous, self._mode = self._mode, mode
        self._add(ModeChanged(mode, previous, detail))

    def add_jobs(self, job_ids: Sequence[str]) -> None:
        self.added.extend(job_ids)

    def refresh(self) -> None:
        self.refreshes += 1
