"""The job API (DESIGN.md section 3): validates, then calls the store or the engine."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from jobctl import __version__
from jobctl.server.auth import AuthFailed, Principal
from jobctl.server.engine import Engine
from jobctl.server.errors import ApiError, JobNotFound
from jobctl.server.records import STATUSES, NewJob, dumps, now_us
from jobctl.server.registry import JobType
from jobctl.server.stats import compute_stats
from jobctl.server.store.base import ListQuery, decode_cursor

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PREFIX_RE = re.compile(r"^[0-9a-f-]{1,36}$")
DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
KEY_MAX = 255


class CreateJob(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=KEY_MAX)
    concurrency_key: str | None = Field(default=None, min_length=1, max_length=KEY_MAX)


class RetryJob(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    from_start: bool = False


class JobOut(BaseModel):
    id: str
    type: str
    status: str
    progress: int
    message: str | None
    input: dict[str, Any]
    output: Any
    error: str | None
    attempt: int
    max_attempts: int
    user_id: str
    concurrency_key: str | None
    idempotency_key: str | None
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None


class JobList(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "unauthenticated", "use Authorization: Bearer <token>")
        token = value.strip()
    try:
        who: Principal = request.app.state.auth.authenticate(token)
    except AuthFailed as exc:
        raise ApiError(401, "unauthenticated", str(exc)) from None
    if who.user_id is None and not who.is_service:
        raise ApiError(403, "forbidden", "this token has no user; sign in to use the job API")
    return who


Caller = Annotated[Principal, Depends(principal)]
EngineDep = Annotated[Engine, Depends(engine_of)]

router = APIRouter()


def check_id(job_id: str) -> str:
    if not UUID_RE.match(job_id):
        raise ApiError(400, "invalid_id", f"not a job id: {job_id[:80]!r} (expected a UUID)")
    return job_id


def parse_since(value: str) -> int:
    if m := DURATION_RE.match(value):
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m[2]]
        return now_us() - int(m[1]) * unit * 1_000_000
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "invalid_since", f"since: expected ISO-8601 time or 1h/30m/7d, got {value[:40]!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def validate_input(job_type: JobType, data: dict[str, Any]) -> None:
    """The checks of the type's schema that matter at the door: required fields, basic types."""
    schema = job_type.input_schema
    for name in schema.get("required", []):
        if name not in data:
            raise ApiError(422, "invalid_input", f"input.{name} is required for {job_type.name}")
    kinds: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
             "array": list, "null": type(None)}  # fmt: skip
    for name, prop in schema.get("properties", {}).items():
        if name not in data or "type" not in prop:
            continue
        allowed = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        value = data[name]
        ok = any(
            isinstance(value, kinds[t])
            and not (t in ("integer", "number") and isinstance(value, bool))
            for t in allowed
            if t in kinds
        )
        if not ok:
            raise ApiError(422, "invalid_input", f"input.{name} must be {' or '.join(allowed)}")


@router.post("/api/jobs", status_code=201, response_model=JobOut, responses=ERRORS)
async def create_job(
    body: CreateJob, who: Caller, engine: EngineDep, request: Request, response: Response
) -> Any:
    if who.user_id is None:
        raise ApiError(403, "forbidden", "jobs belong to a user; use a token with a subject")
    job_type = engine.registry.get(body.type)
    if job_type is None:
        known = ", ".join(engine.registry.names())
        raise ApiError(400, "unknown_type", f"unknown job type {body.type!r} (known: {known})")
    validate_input(job_type, body.input)
    text = dumps(body.input)
    limit: int = request.app.state.max_input_bytes
    if len(text.encode()) > limit:
        raise ApiError(413, "too_large", f"input is over the {limit // 1024} KiB limit")
    if job_type.reject_when_limited:
        await _reject_if_limited(engine, who.user_id, body.concurrency_key)
    new = NewJob(
        id=str(uuid.uuid4()),
        type=body.type,
        input=text,
        user_id=who.user_id,
        max_attempts=job_type.retries + 1,
        concurrency_key=body.concurrency_key,
        idempotency_key=body.idempotency_key,
    )
    ttl = int(engine.settings.idempotency_hours * 3600 * 1_000_000)
    row, created = await engine.store.create_job(new, now_us(), ttl)
    if created:
        engine.wake()
    else:
        response.status_code = 200
    return row.to_api()


async def _reject_if_limited(engine: Engine, user_id: str, key: str | None) -> None:
    limits = engine.settings.limits
    by_user, by_key = await engine.store.count_running(user_id, key)
    full = limits.per_user is not None and by_user >= limits.per_user
    if key is not None:
        key_limit = limits.key_limit(key)
        full = full or (key_limit is not None and by_key >= key_limit)
    if full:
        raise ApiError(
            429,
            "limit_reached",
            "concurrency limit reached for this job type; try again later",
            headers={"Retry-After": "5"},
        )


@router.get("/api/jobs", response_model=JobList, responses=ERRORS)
async def list_jobs(
    who: Caller,
    engine: EngineDep,
    status: Annotated[list[str] | None, Query()] = None,
    type: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    id_prefix: Annotated[str | None, Query(max_length=36)] = None,
) -> Any:
    statuses = []
    for value in status or []:
        for part in value.split(","):
            part = "running" if part == "processing" else part
            if part not in STATUSES:
                raise ApiError(
                    400,
                    "invalid_status",
                    f"unknown status {part[:40]!r} (one of {', '.join(STATUSES)})",
                )
            statuses.append(part)
    if id_prefix is not None and not PREFIX_RE.match(id_prefix.lower()):
        raise ApiError(400, "invalid_id", "id_prefix: hex digits and dashes only")
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_cursor", "cursor is not one this server made") from None
    query = ListQuery(
        user_id=who.scope,
        statuses=statuses,
        type=type,
        since_us=parse_since(since) if since else None,
        limit=limit,
        cursor=cursor,
        id_prefix=id_prefix.lower() if id_prefix else None,
    )
    rows, next_cursor = await engine.store.list_jobs(query)
    return {"jobs": [r.to_api() for r in rows], "next_cursor": next_cursor}


@router.get("/api/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
async def get_job(job_id: str, who: Caller, engine: EngineDep) -> Any:
    row = await engine.store.get_job(check_id(job_id), who.scope)
    if row is None:
        raise JobNotFound(job_id)
    return row.to_api()


@router.get("/api/jobs/{job_id}/steps", responses=ERRORS)
async def get_steps(job_id: str, who: Caller, engine: EngineDep) -> dict[str, Any]:
    row = await engine.store.get_job(check_id(job_id), who.scope)
    if row is None:
        raise JobNotFound(job_id)
    return {"steps": [s.to_api() for s in await engine.store.load_steps(job_id)]}


@router.get("/api/jobs/{job_id}/logs", responses=ERRORS)
async def get_logs(
    job_id: str,
    who: Caller,
    engine: EngineDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    row = await engine.store.get_job(check_id(job_id), who.scope)
    if row is None:
        raise JobNotFound(job_id)
    lines = await engine.store.list_logs(job_id, after, limit)
    return {
        "logs": [ln.to_api() for ln in lines],
        "next_after": lines[-1].seq if lines else after,
        "job_status": row.status,
    }


@router.post("/api/jobs/{job_id}/cancel", status_code=202, response_model=JobOut, responses=ERRORS)
async def cancel_job(job_id: str, who: Caller, engine: EngineDep) -> Any:
    row = await engine.store.cancel_job(check_id(job_id), who.scope, now_us())
    return row.to_api()


@router.post("/api/jobs/{job_id}/retry", status_code=202, response_model=JobOut, responses=ERRORS)
async def retry_job(
    job_id: str, who: Caller, engine: EngineDep, body: RetryJob | None = None
) -> Any:
    from_start = body.from_start if body else False
    row = await engine.store.retry_job(check_id(job_id), who.scope, from_start, now_us())
    engine.wake()
    return row.to_api()


@router.get("/api/types", responses=ERRORS)
async def list_types(who: Caller, engine: EngineDep) -> dict[str, Any]:
    return {"types": [t.describe() for t in engine.registry.types()]}


@router.get("/api/stats", responses=ERRORS)
async def stats(who: Caller, engine: EngineDep) -> dict[str, Any]:
    return await compute_stats(engine.store, who.scope)


@router.get("/api/health")
async def health(request: Request, engine: EngineDep) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "store": engine.store.description.split(":", 1)[0],
        "db": request.app.state.db_display,
        "realtime": bool(getattr(request.app.state, "realtime_enabled", False)),
        "workers": {"slots": engine.settings.slots, "running": len(engine.running)},
        "pid": request.app.state.pid,
    }


# Inngest-shaped event intake ---------------------------------------------------
class Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=512)
    data: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(default=None, max_length=KEY_MAX)
    ts: int | None = None


def event_type(engine: Engine, name: str) -> JobType | None:
    """An event named after a type (`demo`), or `anything/<type>`, starts that type."""
    return engine.registry.get(name) or engine.registry.get(name.rsplit("/", 1)[-1])


@router.post("/e/{event_key}")
async def receive_events(event_key: str, request: Request, engine: EngineDep) -> Any:
    auth_header = request.headers.get("authorization", "")
    token = auth_header.partition(" ")[2].strip() or event_key
    try:
        who = request.app.state.auth.authenticate(token)
    except AuthFailed as exc:
        return JSONResponse({"ids": [], "status": 401, "error": str(exc)}, status_code=401)
    if who.user_id is None:
        return JSONResponse(
            {"ids": [], "status": 403, "error": "this key has no user"}, status_code=403
        )
    try:
        payload = await request.json()
    except ValueError:
        return JSONResponse({"ids": [], "status": 400, "error": "malformed JSON"}, status_code=400)
    raw = payload if isinstance(payload, list) else [payload]
    if not raw or len(raw) > 5000:
        return JSONResponse(
            {"ids": [], "status": 400, "error": "send 1 to 5000 events"}, status_code=400
        )
    events: list[tuple[Event, JobType]] = []
    for item in raw:
        try:
            event = Event.model_validate(item)
        except ValueError as exc:
            msg = f"invalid event: {str(exc).splitlines()[0]}"
            return JSONResponse({"ids": [], "status": 400, "error": msg}, status_code=400)
        job_type = event_type(engine, event.name)
        if job_type is None:
            msg = f"no job type for event {event.name!r}"
            return JSONResponse({"ids": [], "status": 400, "error": msg}, status_code=400)
        events.append((event, job_type))
    ids = []
    ttl = int(engine.settings.idempotency_hours * 3600 * 1_000_000)
    for event, job_type in events:
        new = NewJob(
            id=str(uuid.uuid4()),
            type=job_type.name,
            input=dumps(event.data),
            user_id=who.user_id,
            max_attempts=job_type.retries + 1,
            idempotency_key=f"event:{event.id}" if event.id else None,
        )
        row, _ = await engine.store.create_job(new, now_us(), ttl)
        ids.append(row.id)
    engine.wake()
    return {"ids": ids, "status": 200}
