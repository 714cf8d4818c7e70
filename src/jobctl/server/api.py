"""The job API (DESIGN.md section 3): parses HTTP, calls the job service, answers.

Handlers parse and check what HTTP brings (ids, query values, the JSON body, who is
calling) and leave every rule to `JobService`; its domain errors become HTTP answers
in one place, `http_error`. Every JSON body is parsed by `inputs.load_json` before
FastAPI sees it (GuardedRoute), and every query value is checked by `check_query`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from jobctl import __version__
from jobctl.jobshape import (
    HEAVY_FIELDS,
    JOB_FIELDS,
    LIST_FIELDS,
    SUMMARY_FIELDS,
    JobField,
    Kind,
)
from jobctl.models import parse_since as parse_since_time
from jobctl.server.auth import AuthFailed, Principal
from jobctl.server.engine import Engine
from jobctl.server.events import SOURCE_EVENT
from jobctl.server.inputs import MAX_DEPTH, UnsafeJson, check_text, load_json
from jobctl.server.joberrors import (
    ApiError,
    DomainError,
    EventMissing,
    InvalidInput,
    LimitReached,
    StateConflict,
    TooLarge,
    UnknownType,
)
from jobctl.server.joberrors import JobMissing as _JobMissing
from jobctl.server.records import STATUSES, api_dumps, fresh_job_json
from jobctl.server.service import JobService, Submission, Submitted
from jobctl.server.store.base import ListQuery, decode_cursor

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
PREFIX_RE = re.compile(r"[0-9a-f-]{1,36}")
DURATION_RE = re.compile(r"([0-9]{1,10})([smhdw])")
SINCE_PATTERN = (
    r"^([0-9]{1,10}[smhdw]|[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)$"
)
SINCE_RE = re.compile(SINCE_PATTERN)
CURSOR_RE = re.compile(r"([0-9]{1,19}):([0-9a-f-]{36})")
STATUS_PATTERN = "^({s})(,({s}))*$".format(s="|".join((*STATUSES, "processing")))
KEY_MAX = 255
MAX_US = 2**63 - 1
# A job's input may nest MAX_DEPTH levels; its body holds it one level down (an event
# list two), so bodies may nest that much deeper and the service still has the last word.
BODY_DEPTH = MAX_DEPTH + 2
MAX_QUERY_VALUES = 100


class CreateJob(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=KEY_MAX)
    concurrency_key: str | None = Field(default=None, min_length=1, max_length=KEY_MAX)


class RetryJob(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    from_start: bool = False
    input: dict[str, Any] | None = None  # replaces the job's input for the new attempt


Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Status = Literal["pending", "running", "completed", "failed", "cancelled"]

# The job as the API returns it: the fields of jobshape.JOB_FIELDS, all present, with the
# formats and ranges the OpenAPI declares (the fuzz checks every answer against them).
_KIND_TYPES: dict[Kind, Any] = {Kind.UUID: Uuid, Kind.TIME: Time, Kind.STATUS: Status}
_RANGES: dict[str, Any] = {
    "progress": Field(ge=0, le=100),
    "attempt": Field(ge=1),
    "max_attempts": Field(ge=1),
}


def _out_type(f: JobField) -> Any:
    base = _KIND_TYPES.get(f.kind)
    if base is None:
        return f.json_type
    return base | None if f.nullable else base


if TYPE_CHECKING:
    JobOut = BaseModel
else:
    JobOut = create_model(
        "JobOut", **{f.name: (_out_type(f), _RANGES.get(f.name, ...)) for f in JOB_FIELDS}
    )


# A listed job: the fields `fields=` asked for (by default the summary, SUMMARY_FIELDS:
# every field but input and output, plus input_bytes); `id` is always there.
_ROW_DOC = (
    "A listed job: the fields asked for with `fields=`, by default every field but "
    "`input` and `output`, plus `input_bytes`. `id` is always present."
)
_ROW_RANGES: dict[str, dict[str, int]] = {
    "progress": {"ge": 0, "le": 100},
    "attempt": {"ge": 1},
    "max_attempts": {"ge": 1},
}
if TYPE_CHECKING:
    JobRowOut = BaseModel
else:
    JobRowOut = create_model(
        "JobRowOut",
        __doc__=_ROW_DOC,
        **{
            f.name: (
                (_out_type(f), ...)
                if f.name == "id"
                else (_out_type(f), Field(default=None, **_ROW_RANGES.get(f.name, {})))
            )
            for f in JOB_FIELDS
        },
        input_bytes=(
            int | None,
            Field(default=None, ge=0, description="the size of the stored input (JSON) in bytes"),
        ),
    )


class JobList(BaseModel):
    jobs: list[JobRowOut]
    next_cursor: str | None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "bad input: a malformed id, parameter or JSON body (too deep, NUL, bad Unicode)",
        401: "no valid token",
        403: "the token has no user",
        404: "no such job (or not yours)",
        409: "the job's state does not allow this, or an idempotency key was reused",
        413: "the body or the input is over the size limit",
        422: "the body does not fit the schema, or the input does not fit the type's schema",
        429: "a concurrency limit rejects the job (see Retry-After)",
        503: "the store is unavailable (see Retry-After)",
    }
    return {s: {"model": ErrorOut, "description": described[s]} for s in statuses}


READ_ERRORS = error_responses(400, 401, 403, 404, 422, 503)
WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503)

# The one mapping from the service's domain errors to HTTP (most specific class first).
HTTP_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (UnsafeJson, 400),
    (UnknownType, 400),
    (TooLarge, 413),
    (InvalidInput, 422),
    (_JobMissing, 404),
    (EventMissing, 404),
    (StateConflict, 409),
    (LimitReached, 429),
    (DomainError, 409),  # IdempotencyConflict and any other refusal
)


def http_error(exc: DomainError) -> ApiError:
    status = next(code for cls, code in HTTP_STATUS if isinstance(exc, cls))
    headers = {}
    if isinstance(exc, LimitReached):
        headers["Retry-After"] = f"{exc.retry_after:g}"
    return ApiError(status, exc.code, exc.message, headers)


def validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            return 400, "malformed_json", "request body is not valid JSON"
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            parts.append(f"unknown field {loc!r}")
        elif kind == "missing":
            parts.append(f"{loc} is required")
        else:
            msg = err.get("msg", "invalid")
            parts.append(f"{loc}: {msg}" if loc else msg)
    return 422, "invalid_request", "; ".join(parts) or "invalid request"


class _CheckedRequest(Request):
    """A request whose JSON body is parsed once, by `inputs.load_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_checked_json"):
            self._checked_json = load_json(await self.body(), BODY_DEPTH)
        return self._checked_json


class GuardedRoute(APIRoute):
    """Routes with a JSON body parse it with the depth, Unicode and NUL checks first, so
    a refusal is a clear 400 (FastAPI would call a RecursionError 'error parsing the
    body'), and nothing unsafe reaches a handler."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def guarded(request: Request) -> Response:
            checked = _CheckedRequest(request.scope, request.receive)
            kind = checked.headers.get("content-type", "")
            if (not kind or "json" in kind) and await checked.body():
                # Not JSON at all: FastAPI parses it again and answers 400 malformed_json.
                with contextlib.suppress(json.JSONDecodeError):
                    await checked.json()
            response: Response = await handler(checked)
            return response

        return guarded


async def check_query(request: Request) -> None:
    """Every query value (and name) is text a store can compare against: no NUL, no
    lone surrogate; and there are not too many of them."""
    if not request.scope.get("query_string"):
        return  # none (most requests): nothing to parse
    items = request.query_params.multi_items()
    if len(items) > MAX_QUERY_VALUES:
        raise ApiError(400, "invalid_query", f"at most {MAX_QUERY_VALUES} query parameters")
    for name, value in items:
        try:
            check_text(name, "a query parameter's name")
            check_text(value, f"query parameter {name[:40]!r}")
        except UnsafeJson as exc:
            raise ApiError(400, exc.code, exc.message) from None


# Dependencies are coroutines: FastAPI runs a plain `def` dependency in a worker thread,
# a thread hop per dependency per request (most of a submit's time on a busy machine).
async def service_of(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
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


def owner(who: Principal) -> str:
    if who.user_id is None:
        raise ApiError(403, "forbidden", "jobs belong to a user; use a token with a subject")
    return who.user_id


Caller = Annotated[Principal, Depends(principal)]
Service = Annotated[JobService, Depends(service_of)]
EngineDep = Annotated[Engine, Depends(engine_of)]
JobId = Annotated[
    str,
    Path(
        description="A job's id (a UUID)",
        json_schema_extra={"format": "uuid", "pattern": UUID_PATTERN},
    ),
]

router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(check_query)])


def check_id(job_id: str) -> str:
    lowered = job_id.lower()
    if not UUID_RE.fullmatch(lowered):
        raise ApiError(400, "invalid_id", f"not a job id: {job_id[:80]!r} (expected a UUID)")
    return lowered


def parse_since(value: str) -> int:
    """`since`: 30m / 2h / 7d / 2w ago or an ISO-8601 time (read by jobctl.models.parse_since,
    as the CLI and the Supabase reader read it), in microseconds since the epoch, clamped."""
    try:
        if not (DURATION_RE.fullmatch(value) or SINCE_RE.fullmatch(value)):
            raise ValueError(value)
        when = parse_since_time(value, datetime.now(UTC))
    except ValueError:
        raise ApiError(
            400, "invalid_since", f"since: expected ISO-8601 time or 1h/30m/7d, got {value[:40]!r}"
        ) from None
    return max(0, int(when.timestamp() * 1_000_000))


def check_cursor(cursor: str) -> str:
    """A cursor this server made (store.base.encode_cursor): base64 of
    `<created_at>:<id>`, in ASCII digits that fit 63 bits (int() alone takes any
    Unicode digits and any length)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        decode_cursor(cursor)
    except (ValueError, UnicodeDecodeError):
        raw = ""
    m = CURSOR_RE.fullmatch(raw)
    if m is None or int(m[1]) > MAX_US:
        raise ApiError(400, "invalid_cursor", "cursor is not one this server made")
    return cursor


def parse_statuses(values: list[str]) -> list[str]:
    statuses = []
    for value in values:
        for part in value.split(","):
            part = "running" if part == "processing" else part
            if part not in STATUSES:
                raise ApiError(
                    400,
                    "invalid_status",
                    f"unknown status {part[:40]!r} (one of {', '.join(STATUSES)})",
                )
            statuses.append(part)
    return statuses


MAX_BATCH = 1000  # jobs in one POST /api/jobs list


class BatchItem(BaseModel):
    """One job of a list: `status` is what a single submit of it would have answered
    (201 created, 200 an earlier job with the same idempotency key, else the error's)."""

    status: int
    job: JobOut | None = None
    error: ErrorBody | None = None


class BatchOut(BaseModel):
    results: list[BatchItem]
    created: int
    existing: int
    refused: int


CREATE_SCHEMA = CreateJob.model_json_schema()
CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        CREATE_SCHEMA,
                        {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "description": "Jobs, each as the single form; each is checked on"
                            " its own, and one that does not fit gets its own error in"
                            " `results` (the others are still created).",
                            "items": {},
                        },
                    ]
                }
            }
        },
    }
}
CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **WRITE_ERRORS,
    200: {"model": JobOut | BatchOut, "description": "the job an earlier submit with this"
          " idempotency key created; for a list: every job accepted (see each result)"},
    201: {"model": JobOut, "description": "the job, created"},
    207: {"model": BatchOut, "description": "a list of which some jobs were refused: each"
          " result has its own status and error; the others were created"},
}  # fmt: skip


def _body_error(exc: ValidationError, where: tuple[str | int, ...]) -> RequestValidationError:
    errors = [{**err, "loc": ("body", *where, *err.get("loc", ()))} for err in exc.errors()]
    return RequestValidationError(errors)


def _submission(item: Any) -> Submission:
    body = CreateJob.model_validate(item)
    return Submission(body.type, body.input, body.idempotency_key, body.concurrency_key)


@router.post("/api/jobs", status_code=201, response_model=JobOut, responses=CREATE_RESPONSES,
             openapi_extra=CREATE_BODY)  # fmt: skip
async def create_job(request: Request, who: Caller, service: Service) -> Any:
    """One job (an object), or a list of up to MAX_BATCH jobs (an array), each with its
    own idempotency key and its own result, created in one commit."""
    # Declared here for the OpenAPI document; the server answers it with create_job_direct
    # (app.JobApp.direct), which makes the same checks in the same order.
    return await _create_jobs(request, who, service)


async def create_job_direct(request: Request) -> Response:
    """POST /api/jobs without FastAPI's dependency solving: the router's query check, the
    caller, then the body, as the declared route's dependencies run."""
    await check_query(request)
    who = await principal(request, request.headers.get("authorization"))
    return await _create_jobs(request, who, request.app.state.service)


async def _create_jobs(request: Request, who: Principal, service: JobService) -> Response:
    payload = await _json_body(request)
    if not isinstance(payload, list):
        try:
            sub = _submission(payload)
        except ValidationError as exc:
            raise _body_error(exc, ()) from None
        result = await service.submit(sub, owner(who))
        return _json_response(_job_json(result), 201 if result.created else 200)
    if not payload:
        raise ApiError(422, "invalid_request", "a list of jobs needs at least one")
    if len(payload) > MAX_BATCH:
        raise ApiError(413, "too_large", f"at most {MAX_BATCH} jobs in one request")
    user = owner(who)
    subs: list[Submission | DomainError] = []
    for item in payload:
        try:
            subs.append(_submission(item))
        except ValidationError as exc:
            _, code, message = validation_message(_body_error(exc, ()))
            subs.append(InvalidInput(message, code=code))
    wanted = [s for s in subs if isinstance(s, Submission)]
    created = iter(await service.submit_many(wanted, user))
    # The body is {"results": [...], "created", "existing", "refused"}, as JSONResponse
    # would render it, with each job's JSON made by _job_json.
    results: list[str] = []
    counts = {"created": 0, "existing": 0, "refused": 0}
    for asked in subs:
        outcome = next(created) if isinstance(asked, Submission) else asked
        if isinstance(outcome, Submitted):
            counts["created" if outcome.created else "existing"] += 1
            status = 201 if outcome.created else 200
            results.append(f'{{"status":{status},"job":{_job_json(outcome)}}}')
        else:
            counts["refused"] += 1
            err = http_error(outcome)
            results.append(api_dumps({"status": err.status,
                                      "error": {"code": err.code, "message": err.message}}))  # fmt: skip
    body = f'{{"results":[{",".join(results)}],{api_dumps(counts)[1:]}'
    return _json_response(body, 207 if counts["refused"] else 200)


def _job_json(result: Submitted) -> str:
    """A submitted job as JSON text: a new job's input is the canonical text the service
    stored, put in as is (records.fresh_job_json); an earlier job's goes the usual way."""
    if result.created:
        return fresh_job_json(result.job)
    return api_dumps(result.job.to_api())


def _json_response(text: str, status: int) -> Response:
    return Response(text.encode(), status_code=status, media_type="application/json")


async def _json_body(request: Request) -> Any:
    """The body as JSON, parsed by `inputs.load_json` (depth, NUL and Unicode checks)."""
    kind = request.headers.get("content-type", "")
    raw = await request.body()
    if kind and "json" not in kind:
        raise ApiError(422, "invalid_request", "send JSON (Content-Type: application/json)")
    if not raw:
        raise ApiError(422, "invalid_request", "body is required: a job or a list of jobs")
    try:
        return load_json(raw, BODY_DEPTH)
    except json.JSONDecodeError:
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
    except UnsafeJson as exc:
        raise ApiError(400, exc.code, exc.message) from None


def parse_fields(values: list[str]) -> tuple[str, ...]:
    """`fields=`: job fields (comma-separated, or repeated), in the API's order; `id` is
    always one of them. None given: the summary (SUMMARY_FIELDS)."""
    if not values:
        return SUMMARY_FIELDS
    wanted = {"id"}
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            if name not in LIST_FIELDS:
                raise ApiError(
                    400,
                    "invalid_fields",
                    f"fields: unknown field {name[:40]!r} (one of {', '.join(LIST_FIELDS)})",
                )
            wanted.add(name)
    return tuple(name for name in LIST_FIELDS if name in wanted)


FIELDS_DOC = (
    "The fields of each job, comma-separated (default: every field but input and output, "
    "plus input_bytes)"
)


@router.get(
    "/api/jobs", response_model=JobList, response_model_exclude_unset=True, responses=READ_ERRORS
)
async def list_jobs(
    who: Caller,
    service: Service,
    status: Annotated[
        list[str] | None,
        Query(json_schema_extra={"items": {"type": "string", "pattern": STATUS_PATTERN}}),
    ] = None,
    type: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="ISO-8601 time, or 30m / 2h / 7d / 2w ago",
            json_schema_extra={"pattern": SINCE_PATTERN},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    id_prefix: Annotated[
        str | None, Query(max_length=36, json_schema_extra={"pattern": "^[0-9a-fA-F-]{1,36}$"})
    ] = None,
    fields: Annotated[list[str] | None, Query(max_length=400, description=FIELDS_DOC)] = None,
) -> Any:
    names = parse_fields(fields or [])
    prefix = id_prefix.lower() if id_prefix is not None else None
    if prefix is not None and not PREFIX_RE.fullmatch(prefix):
        raise ApiError(400, "invalid_id", "id_prefix: hex digits and dashes only")
    query = ListQuery(
        user_id=who.scope,
        statuses=parse_statuses(status or []),
        type=type,
        since_us=parse_since(since) if since is not None else None,
        limit=limit,
        cursor=check_cursor(cursor) if cursor is not None else None,
        id_prefix=prefix,
        read_input=HEAVY_FIELDS[0] in names,
        read_output=HEAVY_FIELDS[1] in names,
    )
    rows, next_cursor = await service.list_jobs(query)
    return {"jobs": [r.to_api_fields(names) for r in rows], "next_cursor": next_cursor}


@router.get("/api/jobs/{job_id}", response_model=JobOut, responses=READ_ERRORS)
async def get_job(job_id: JobId, who: Caller, service: Service) -> Any:
    return (await service.job(check_id(job_id), who.scope)).to_api()


@router.get("/api/jobs/{job_id}/steps", responses=READ_ERRORS)
async def get_steps(job_id: JobId, who: Caller, service: Service) -> dict[str, Any]:
    steps = await service.steps(check_id(job_id), who.scope)
    return {"steps": [s.to_api() for s in steps]}


@router.get("/api/jobs/{job_id}/logs", responses=READ_ERRORS)
async def get_logs(
    job_id: JobId,
    who: Caller,
    service: Service,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    row, lines = await service.logs(check_id(job_id), who.scope, after, limit)
    return {
        "logs": [ln.to_api() for ln in lines],
        "next_after": lines[-1].seq if lines else after,
        "job_status": row.status,
    }


@router.post("/api/jobs/{job_id}/cancel", status_code=202, response_model=JobOut,
             responses=WRITE_ERRORS)  # fmt: skip
async def cancel_job(job_id: JobId, who: Caller, service: Service) -> Any:
    return (await service.cancel(check_id(job_id), who.scope)).to_api()


@router.post("/api/jobs/{job_id}/retry", status_code=202, response_model=JobOut,
             responses=WRITE_ERRORS)  # fmt: skip
async def retry_job(
    job_id: JobId, who: Caller, service: Service, body: RetryJob | None = None
) -> Any:
    from_start = body.from_start if body else False
    new_input = body.input if body else None
    return (await service.retry(check_id(job_id), who.scope, from_start, new_input)).to_api()


@router.get("/api/types", responses=error_responses(400, 401, 403, 503))
async def list_types(who: Caller, service: Service) -> dict[str, Any]:
    return {"types": [t.describe() for t in service.types()]}


@router.get("/api/stats", responses=error_responses(400, 401, 403, 503))
async def stats(who: Caller, service: Service) -> dict[str, Any]:
    return await service.stats(who.scope)


@router.get("/api/health", responses=error_responses(400))
async def health(request: Request, engine: Annotated[Engine, Depends(engine_of)]) -> dict[str, Any]:
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
MAX_EVENTS = 5000


class Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=512)
    data: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(default=None, max_length=KEY_MAX)
    ts: int | None = Field(default=None, ge=0, le=2**53)


class EventError(BaseModel):
    index: int
    status: int
    code: str
    message: str


class EventsOut(BaseModel):
    """Inngest's answer: `ids` one per event in order ("" where refused), `status` as
    the HTTP status, `error` a line about the first refusal; `errors` one per refusal."""

    ids: list[str]
    status: int
    error: str | None = None
    code: str | None = None
    errors: list[EventError] | None = None


EVENT_SCHEMA = Event.model_json_schema()  # inline: nothing else puts Event in components
EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        EVENT_SCHEMA,
                        {
                            "type": "array",
                            "items": EVENT_SCHEMA,
                            "minItems": 1,
                            "maxItems": MAX_EVENTS,
                        },
                    ]
                }
            }
        },
    }
}
EVENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": EventsOut, "description": d}
    for s, d in (
        (400, "a malformed body, or some events refused (each in `errors`)"),
        (401, "the key is not a valid token"),
        (403, "the key has no user"),
        (413, "the body is over the size limit"),
        (503, "the store is unavailable"),
    )
}


def events_error(status: int, code: str, message: str) -> JSONResponse:
    body = {"ids": [], "status": status, "error": message, "code": code}
    return JSONResponse(body, status_code=status)


@router.post("/e/{event_key}", response_model=EventsOut, responses=EVENT_RESPONSES,
             openapi_extra=EVENT_BODY)  # fmt: skip
async def receive_events(event_key: str, request: Request, service: Service) -> Any:
    auth_header = request.headers.get("authorization", "")
    token = auth_header.partition(" ")[2].strip() or event_key
    try:
        who = request.app.state.auth.authenticate(token)
    except AuthFailed as exc:
        return events_error(401, "unauthenticated", str(exc))
    if who.user_id is None:
        return events_error(403, "forbidden", "this key has no user")
    try:
        payload = load_json(await request.body(), BODY_DEPTH)
    except json.JSONDecodeError:
        return events_error(400, "malformed_json", "request body is not valid JSON")
    except UnsafeJson as exc:
        return events_error(400, exc.code, exc.message)
    raw = payload if isinstance(payload, list) else [payload]
    if not raw or len(raw) > MAX_EVENTS:
        return events_error(400, "invalid_request", f"send 1 to {MAX_EVENTS} events")
    subs: list[Submission | DomainError] = [_event_submission(service, item) for item in raw]
    wanted = [s for s in subs if isinstance(s, Submission)]
    created = iter(await service.submit_many(wanted, who.user_id))
    results = [next(created) if isinstance(s, Submission) else s for s in subs]
    ids: list[str] = []
    errors: list[EventError] = []
    for index, result in enumerate(results):
        if isinstance(result, Submitted):
            ids.append(result.job.id)
            continue
        ids.append("")
        err = http_error(result)
        errors.append(EventError(index=index, status=err.status, code=err.code,
                                 message=err.message))  # fmt: skip
    if not errors:
        return {"ids": ids, "status": 200}
    first = errors[0]
    summary = f"event {first.index}: {first.message}"
    if len(errors) > 1:
        summary += f" (and {len(errors) - 1} more refused; see errors)"
    body = EventsOut(ids=ids, status=400, error=summary, code=first.code, errors=errors)
    return JSONResponse(body.model_dump(), status_code=400)


def _event_submission(service: JobService, item: Any) -> Submission | DomainError:
    try:
        event = Event.model_validate(item)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:3]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else err.get("msg", ""))
        return InvalidInput(f"invalid event: {'; '.join(parts)}")
    job_type = service.type_for_event(event.name)
    if job_type is None:
        return UnknownType(f"no job type for event {event.name[:100]!r}")
    return Submission(
        type=job_type.name,
        input=event.data,
        idempotency_key=f"event:{event.id}" if event.id else None,
        key_label=f"event id {event.id!r}" if event.id else None,
        source=SOURCE_EVENT,
        event_name=event.name,
        event_id=event.id,
    )
