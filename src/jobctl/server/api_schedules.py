"""HTTP for schedules (/api/schedules) and the event history (/api/events), per user like
jobs. Parses and checks requests; the rules are in server/schedules.py and events.py."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from jobctl.server.api import (
    UUID_RE,
    Caller,
    EngineDep,
    GuardedRoute,
    Service,
    check_id,
    check_query,
    error_responses,
    parse_since,
)
from jobctl.server.joberrors import ApiError, JobNotFound
from jobctl.server.records import now_us
from jobctl.server.schedule_records import BACKFILL, TRIGGER, ScheduleRow
from jobctl.server.schedules import (
    CATCHUP_POLICIES,
    MAX_BACKFILL,
    MAX_EVERY_US,
    OVERLAPS,
    InvalidSchedule,
    Scheduler,
    Spec,
    parse_duration,
    plan_manual,
    validate_spec,
)
from jobctl.server.service import Submission
from jobctl.server.store.base import decode_cursor

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
Duration = str | int | float  # "90s", "5m", "1h" or seconds


class CreateSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=100)
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    tz: str | None = Field(default=None, min_length=1, max_length=64)
    every: Duration | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    overlap: str = "skip"
    catchup: Duration = "1m"
    catchup_policy: str = "each"
    jitter: Duration = 0
    paused: bool = False
    note: str | None = Field(default=None, max_length=500)


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    note: str | None = Field(default=None, max_length=500)


class Backfill(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    start: str = Field(alias="from", max_length=64)
    end: str = Field(alias="to", max_length=64)


router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(check_query)])
ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503)


def _duration(value: Duration, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidSchedule(f"{what}: not a duration")
    if isinstance(value, int | float):
        if not 0 <= value <= MAX_EVERY_US // 1_000_000:
            raise InvalidSchedule(f"{what}: from 0 to 366d")
        return round(value * 1_000_000)
    return parse_duration(value, what)


def _bad(exc: InvalidSchedule) -> ApiError:
    return ApiError(400, "invalid_schedule", str(exc))


def scheduler_of(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


async def _schedule(engine: EngineDep, ref: str, who: Caller) -> ScheduleRow:
    if not ref or len(ref) > 100:
        raise ApiError(400, "invalid_id", "not a schedule id or name")
    row = await engine.store.get_schedule(ref, who.scope)
    if row is None:
        raise ApiError(404, "not_found", f"schedule {ref} not found")
    return row


@router.post("/api/schedules", status_code=201, responses=ERRORS)
async def create_schedule(
    body: CreateSchedule, who: Caller, engine: EngineDep, service: Service, request: Request
) -> dict[str, Any]:
    if who.user_id is None:
        raise ApiError(403, "forbidden", "schedules belong to a user; use a token with a subject")
    if not NAME_RE.match(body.name):
        raise ApiError(
            400, "invalid_schedule", "name: letters, digits and . _ : - (up to 100, no spaces)"
        )
    job_type = engine.registry.get(body.type)
    if job_type is None:
        known = ", ".join(engine.registry.names())
        raise ApiError(400, "unknown_type", f"unknown job type {body.type!r} (known: {known})")
    try:
        every = body.every
        if isinstance(every, int | float):
            if not 0 <= every <= MAX_EVERY_US // 1_000_000:
                raise InvalidSchedule("every: from 1s to 366d")
            every = f"{every:.6f}s"
        spec = validate_spec(body.cron, body.tz, every)
        catchup = _duration(body.catchup, "catchup")
        jitter = _duration(body.jitter, "jitter")
    except InvalidSchedule as exc:
        raise _bad(exc) from None
    if body.overlap not in OVERLAPS:
        raise ApiError(400, "invalid_schedule", f"overlap: one of {', '.join(OVERLAPS)}")
    if body.catchup_policy not in CATCHUP_POLICIES:
        raise ApiError(
            400, "invalid_schedule", f"catchup_policy: one of {', '.join(CATCHUP_POLICIES)}"
        )
    if spec.every_us is not None and jitter >= spec.every_us:
        raise ApiError(400, "invalid_schedule", "jitter: must be shorter than the interval")
    # the same checks as a submit's, so every tick's job is one the door would take
    text = service.prepare(Submission(job_type.name, body.input), who.user_id).input
    now = now_us()
    row = ScheduleRow(
        id=str(uuid.uuid4()),
        user_id=who.user_id,
        name=body.name,
        type=body.type,
        cron=spec.cron,
        tz=spec.tz,
        every_us=spec.every_us,
        input=text,
        overlap=body.overlap,
        catchup_us=catchup,
        catchup_policy=body.catchup_policy,
        jitter_us=jitter,
        paused=int(body.paused),
        note=body.note,
        next_tick=spec.next_after(now),
        buffered_tick=None,
        last_tick=None,
        last_job_id=None,
        created_at=now,
        updated_at=now,
    )
    await engine.store.create_schedule(row)
    scheduler_of(request).wake()
    return row.to_api()


@router.get("/api/schedules", responses=ERRORS)
async def list_schedules(
    who: Caller, engine: EngineDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> dict[str, Any]:
    rows = await engine.store.list_schedules(who.scope, limit)
    return {"schedules": [r.to_api() for r in rows]}


@router.get("/api/schedules/{ref}", responses=ERRORS)
async def show_schedule(
    ref: str, who: Caller, engine: EngineDep, runs: Annotated[int, Query(ge=0, le=1000)] = 20
) -> dict[str, Any]:
    row = await _schedule(engine, ref, who)
    out = row.to_api()
    out["runs"] = [r.to_api() for r in await engine.store.list_schedule_runs(row.id, runs)]
    return out


async def _pause(
    ref: str, who: Caller, engine: EngineDep, request: Request, paused: bool, body: Note | None
) -> dict[str, Any]:
    row = await _schedule(engine, ref, who)
    now = now_us()
    # Resuming starts from the next tick after now: ticks while paused are not run.
    next_tick = None if paused else Spec.of(row).next_after(now)
    done = await engine.store.set_schedule_paused(
        row.id, paused, body.note if body else None, next_tick, now
    )
    if done is None:
        raise ApiError(404, "not_found", f"schedule {ref} not found")
    scheduler_of(request).wake()
    return done.to_api()


@router.post("/api/schedules/{ref}/pause", responses=ERRORS)
async def pause_schedule(
    ref: str, who: Caller, engine: EngineDep, request: Request, body: Note | None = None
) -> dict[str, Any]:
    return await _pause(ref, who, engine, request, True, body)


@router.post("/api/schedules/{ref}/resume", responses=ERRORS)
async def resume_schedule(
    ref: str, who: Caller, engine: EngineDep, request: Request, body: Note | None = None
) -> dict[str, Any]:
    return await _pause(ref, who, engine, request, False, body)


def _runs_out(results: list[tuple[str, int, str | None]]) -> list[dict[str, Any]]:
    from jobctl.server.records import iso

    return [{"outcome": o, "tick": iso(t), "job_id": j} for o, t, j in results]


@router.post("/api/schedules/{ref}/trigger", status_code=201, responses=ERRORS)
async def trigger_schedule(
    ref: str, who: Caller, engine: EngineDep, request: Request
) -> dict[str, Any]:
    row = await _schedule(engine, ref, who)
    scheduler = scheduler_of(request)
    tick = now_us()
    results = await engine.store.run_schedule(
        row.id, lambda s: plan_manual(s, [tick], TRIGGER, scheduler.make_job)
    )
    engine.wake()
    return {"runs": _runs_out(results)}


@router.post("/api/schedules/{ref}/backfill", status_code=201, responses=ERRORS)
async def backfill_schedule(
    ref: str, body: Backfill, who: Caller, engine: EngineDep, request: Request
) -> dict[str, Any]:
    row = await _schedule(engine, ref, who)
    start, end = parse_since(body.start), parse_since(body.end)
    if end < start:
        raise ApiError(400, "invalid_schedule", "backfill: --to is before --from")
    if end > now_us():
        raise ApiError(400, "invalid_schedule", "backfill: --to is in the future")
    if start < now_us() - MAX_EVERY_US:
        raise ApiError(400, "invalid_schedule", "backfill: --from is over 366 days ago")
    ticks = Spec.of(row).ticks(start, end, MAX_BACKFILL + 1)
    if len(ticks) > MAX_BACKFILL:
        raise ApiError(400, "invalid_schedule", f"backfill: over {MAX_BACKFILL} ticks; narrow it")
    scheduler = scheduler_of(request)
    results = await engine.store.run_schedule(
        row.id, lambda s: plan_manual(s, ticks, BACKFILL, scheduler.make_job)
    )
    engine.wake()
    return {"runs": _runs_out(results)}


@router.delete("/api/schedules/{ref}", status_code=204, responses=ERRORS)
async def delete_schedule(ref: str, who: Caller, engine: EngineDep) -> Response:
    row = await _schedule(engine, ref, who)
    await engine.store.delete_schedule(row.id)
    return Response(status_code=204)


# the event history ---------------------------------------------------------------
@router.get("/api/events", responses=ERRORS)
async def list_events(
    who: Caller,
    engine: EngineDep,
    name: Annotated[str | None, Query(max_length=512)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_cursor", "cursor is not one this server made") from None
    rows, next_cursor = await engine.store.list_events(
        who.scope, name, parse_since(since) if since is not None else None, limit, cursor
    )
    return {"events": [r.to_api() for r in rows], "next_cursor": next_cursor}


@router.get("/api/events/{event_id}", responses=ERRORS)
async def show_event(event_id: str, who: Caller, engine: EngineDep) -> dict[str, Any]:
    row = await engine.store.get_event(check_event_id(event_id), who.scope)
    if row is None:
        raise ApiError(404, "not_found", f"event {event_id} not found")
    out = row.to_api()
    jobs = [await engine.store.get_job(j, who.scope) for j in row.job_ids[:100]]
    out["jobs"] = [j.to_api() for j in jobs if j is not None]
    return out


@router.post("/api/events/{event_id}/replay", status_code=201, responses=ERRORS)
async def replay(event_id: str, who: Caller, service: Service) -> dict[str, Any]:
    event, job_ids = await service.replay(check_event_id(event_id), who.scope)
    return {"event": event.to_api(), "job_ids": job_ids}


@router.get("/api/jobs/{job_id}/events", responses=ERRORS)
async def job_events(job_id: str, who: Caller, engine: EngineDep) -> dict[str, Any]:
    row = await engine.store.get_job(check_id(job_id), who.scope)
    if row is None:
        raise JobNotFound(job_id)
    return {"events": [e.to_api() for e in await engine.store.events_for_job(job_id)]}


def check_event_id(event_id: str) -> str:
    if not UUID_RE.match(event_id):
        raise ApiError(400, "invalid_id", f"not an event id: {event_id[:80]!r} (expected a UUID)")
    return event_id
