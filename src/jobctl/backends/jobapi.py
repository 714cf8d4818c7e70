"""JobClient / AsyncJobClient: the job API over httpx, returning models.

One place (`error_for`, `transport_error`) turns HTTP answers and connection
failures into the errors of jobctl.errors, whose exit codes are DESIGN.md
section 6. One send policy (`_Core.plan`) serves both clients: retries with
backoff and jitter apply to idempotent requests and to submits (which always
carry an idempotency key), a 429's Retry-After is honoured, and a refused
connection may start the local server once (`on_unreachable`). The transport
is injectable for tests. No Rich, Textual or server imports here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypedDict, TypeVar, Unpack
from urllib.parse import quote

from jobctl import __version__
from jobctl.backends._httpx import httpx
from jobctl.backends.backoff import Backoff
from jobctl.errors import (
    AuthError,
    ConflictError,
    JobctlError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnreachableError,
    UsageError,
)
from jobctl.jobshape import JOB_FIELD_NAMES
from jobctl.models import Job, JobPage, LogLine, Step

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PREFIX_RE = re.compile(r"^[0-9a-f-]{1,36}$")
MAX_PAGE = 500
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is reported, not slept through
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
# What the live feed's polls ask a listing for: every field but the input (a watch shows
# the output of the jobs that end; nothing it shows reads the input).
FEED_FIELDS = tuple(name for name in JOB_FIELD_NAMES if name != "input")
BATCH_FETCH = 3  # fetch_jobs lists the active jobs when asked for more ids than this
MAX_ACTIVE_PAGES = 20


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str | None


@dataclass
class LogPage:
    logs: list[LogLine]
    next_after: int
    job_status: str


@dataclass(frozen=True)
class Call:
    """One API request, and whether it is safe to send again."""

    method: str
    path: str
    params: list[tuple[str, str | int | float | bool | None]] = field(default_factory=list)
    body: Any = None
    retry_safe: bool = True


def _message_of(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return str(error.get("message") or response.reason_phrase), error.get("code")
    except ValueError:
        pass
    return f"HTTP {response.status_code} {response.reason_phrase}", None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for(response: httpx.Response) -> JobctlError:
    """The one mapping from an HTTP error answer to a jobctl error (and exit code)."""
    status = response.status_code
    message, code = _message_of(response)
    if status in (400, 413, 422):
        return UsageError(message, code=code)
    if status in (401, 403):
        hint = "; check the token (`jobctl auth status`)" if status == 401 else ""
        return AuthError(
            f"{'not authenticated' if status == 401 else 'not allowed'}: {message}{hint}", code=code
        )
    if status == 404:
        return NotFoundError(message, code=code)
    if status == 409:
        return ConflictError(message, code=code)
    if status == 429:
        wait = _retry_after(response)
        extra = f" (retry after {wait:g}s)" if wait is not None else ""
        return RateLimitedError(f"rejected: {message}{extra}", code=code, retry_after=wait)
    return ServerError(f"server error {status} from {response.request.url}: {message}", code=code)


def transport_error(exc: httpx.TransportError, url: str, hint: str) -> UnreachableError:
    if isinstance(exc, httpx.TimeoutException):
        what = "did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        what = "refused the connection" if "refused" in str(exc).lower() else "cannot be reached"
    else:
        what = "dropped the connection"
    return UnreachableError(f"the job server at {url} {what}{hint}")


@dataclass(frozen=True)
class Recover:
    """A step of the send plan: call the owner's hook (it may start the local server)."""

    hook: Callable[[], Endpoint | None]


@dataclass(frozen=True)
class Done:
    """The send plan's end: the decoded answer."""

    value: Any


SEND = "send"  # a step of the send plan: send the request now
Outcome = httpx.Response | httpx.TransportError
PlanStep = str | float | Recover  # SEND, seconds to sleep, or Recover
Plan = Generator[PlanStep, Any, Any]


def _advance(plan: Plan, reply: Outcome | Endpoint | None) -> PlanStep | Done:
    """Tell the plan how the last step went; its next step, or Done with the answer (or
    the error it raises)."""
    try:
        return plan.send(reply)
    except StopIteration as stop:
        return Done(stop.value)


class _Core:
    """What both clients share: the endpoint, the headers and the one send policy."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        unreachable_hint: str = "",
        on_unreachable: Callable[[], Endpoint | None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self.retries = retries
        self.resend = Backoff(backoff, factor=2.0, cap=8.0, jitter=(0.5, 1.0))
        self.unreachable_hint = unreachable_hint
        self.on_unreachable = on_unreachable

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"jobctl/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, call: Call) -> dict[str, Any]:
        """httpx's arguments for one try of `call` (the endpoint may have moved since)."""
        return {
            "url": self.base_url + call.path,
            "params": call.params,
            "json": call.body,
            "headers": self.headers(),
        }

    @property
    def tls(self) -> bool:
        # TLS settings only matter for https; building them loads the CA bundle
        # (~40 ms of start-up), so a plain-http client (the local server) skips it.
        return not self.base_url.startswith("http://")

    def plan(self, call: Call) -> Plan:
        """The send policy, free of I/O: yields what to do next (SEND the request and be
        told its Outcome, sleep some seconds, or Recover through the owner's hook and be
        told the new Endpoint or None) and returns the answer, or raises the error."""
        attempt = 0
        while True:
            outcome: Outcome = yield SEND
            if isinstance(outcome, httpx.ConnectError) and self.on_unreachable is not None:
                hook, self.on_unreachable = self.on_unreachable, None  # once per client
                endpoint: Endpoint | None = yield Recover(hook)
                if endpoint is not None:
                    self.base_url, self.token = endpoint.url.rstrip("/"), endpoint.token
                    continue
            delay = self.next_delay(call, attempt, outcome)
            if delay is None:
                return self.finish(outcome)
            attempt += 1
            yield delay

    def next_delay(self, call: Call, attempt: int, outcome: Outcome) -> float | None:
        """Seconds to wait before resending, or None to take this outcome as final."""
        if attempt >= self.retries:
            return None
        if isinstance(outcome, httpx.Response):
            if outcome.status_code == 429:
                wait = _retry_after(outcome)
                if wait is not None and wait > MAX_RETRY_AFTER:
                    return None
                return self.resend.delay(attempt) if wait is None else wait
            if outcome.status_code in RETRYABLE_STATUS and call.retry_safe:
                return self.resend.delay(attempt)
            return None
        # A refused connection never reached the server: safe to resend any request.
        if isinstance(outcome, httpx.ConnectError) or call.retry_safe:
            return self.resend.delay(attempt)
        return None

    def finish(self, outcome: Outcome) -> Any:
        """The final outcome as the caller gets it: the decoded answer, or its error."""
        if not isinstance(outcome, httpx.Response):
            raise transport_error(outcome, self.base_url, self.unreachable_hint) from None
        response = outcome
        if response.status_code >= 400:
            raise error_for(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                f"unexpected answer from {response.request.url}: not JSON "
                f"(HTTP {response.status_code}); is {self.base_url} a jobctl server?"
            ) from None


# The calls of the job API, each declared once: a builder (the call's parameters and
# its request) and a reader of the answer. Both clients make their methods from them.
def _job_path(job_id: str, suffix: str = "") -> str:
    return f"/api/jobs/{job_id}{suffix}"


def create_call(
    type: str,
    input: dict[str, Any],
    idempotency_key: str,
    concurrency_key: str | None = None,
) -> Call:
    """Create a job (or get the one already made with this idempotency key)."""
    body: dict[str, Any] = {"type": type, "input": input, "idempotency_key": idempotency_key}
    if concurrency_key:
        body["concurrency_key"] = concurrency_key
    # Safe to resend: the idempotency key makes a repeat return the same job.
    return Call("POST", "/api/jobs", body=body, retry_safe=True)


class ListParams(TypedDict, total=False):
    """What a page of jobs is asked for with, declared once for every `list_jobs` (the
    clients here, the dashboard's port, an app profile's API): keyword arguments."""

    statuses: list[str] | None  # any of these (none: all)
    type: str | None
    since: str | None  # a duration ("2h") or a date, as the API takes it
    limit: int  # 50 when not given
    cursor: str | None
    id_prefix: str | None
    fields: Sequence[str] | None  # none: the summary fields


def list_call(**query: Unpack[ListParams]) -> Call:
    """One page of jobs, newest first: the summary of each (no input, no output, the
    input's size in bytes), or the `fields` named."""
    params: list[tuple[str, str | int | float | bool | None]]
    params = [("status", s) for s in query.get("statuses") or []]
    params += [("limit", str(max(1, min(query.get("limit", 50), MAX_PAGE))))]
    for name, value in (
        ("type", query.get("type")),
        ("since", query.get("since")),
        ("cursor", query.get("cursor")),
        ("id_prefix", query.get("id_prefix")),
        ("fields", ",".join(query.get("fields") or ())),
    ):
        if value:
            params.append((name, value))
    return Call("GET", "/api/jobs", params=params)


def get_call(job_id: str) -> Call:
    """One job."""
    return Call("GET", _job_path(job_id))


def steps_call(job_id: str) -> Call:
    """A job's step timeline."""
    return Call("GET", _job_path(job_id, "/steps"))


def logs_call(job_id: str, after: int = 0, limit: int = 1000) -> Call:
    """A job's log lines after `after`."""
    return Call(
        "GET", _job_path(job_id, "/logs"), params=[("after", str(after)), ("limit", str(limit))]
    )


def retry_call(job_id: str, from_start: bool = False, input: dict[str, Any] | None = None) -> Call:
    """Put a failed or cancelled job back in the queue (keeping completed steps unless
    `from_start`), with replacement input when `input` is given."""
    body: dict[str, Any] = {"from_start": from_start}
    if input is not None:
        body["input"] = input
    return Call("POST", _job_path(job_id, "/retry"), body=body, retry_safe=False)


def cancel_call(job_id: str) -> Call:
    """Cancel a pending or running job."""
    return Call("POST", _job_path(job_id, "/cancel"), retry_safe=False)


def types_call() -> Call:
    """The registered job types, with descriptions and input schemas."""
    return Call("GET", "/api/types")


def stats_call() -> Call:
    """Monitoring figures: counts, rates, durations, alerts."""
    return Call("GET", "/api/stats")


def health_call() -> Call:
    """Version, store, Realtime and workers (needs no token)."""
    return Call("GET", "/api/health")


# schedules and the event history: plain dicts in the API's shape ---------------------
def _schedule_path(ref: str, suffix: str = "") -> str:
    return f"/api/schedules/{quote(ref, safe='')}{suffix}"


def create_schedule_call(body: dict[str, Any]) -> Call:
    """Create a schedule."""
    # Not resent once the server may have seen it: a repeat would be a name conflict.
    return Call("POST", "/api/schedules", body=body, retry_safe=False)


def schedules_call() -> Call:
    """The caller's schedules, with their next run and last outcome."""
    return Call("GET", "/api/schedules")


def schedule_call(ref: str, runs: int = 20) -> Call:
    """One schedule (by name or id) and its recent runs."""
    return Call("GET", _schedule_path(ref), params=[("runs", str(runs))])


def schedule_action_call(ref: str, action: str, body: dict[str, Any] | None = None) -> Call:
    """pause, resume (both answer the schedule), trigger or backfill (both answer the runs)."""
    # Pausing twice is pausing; a second trigger would be a second run.
    return Call("POST", _schedule_path(ref, f"/{action}"), body=body,
                retry_safe=action in ("pause", "resume"))  # fmt: skip


def delete_schedule_call(ref: str) -> Call:
    """Delete a schedule and its run history (not its jobs)."""
    return Call("DELETE", _schedule_path(ref), retry_safe=False)


def events_call(
    name: str | None = None, since: str | None = None, limit: int = 50, cursor: str | None = None
) -> Call:
    """One page of the event history, newest first."""
    params: list[tuple[str, str | int | float | bool | None]] = [("limit", str(limit))]
    params += [(k, v) for k, v in (("name", name), ("since", since), ("cursor", cursor)) if v]
    return Call("GET", "/api/events", params=params)


def event_call(event_id: str) -> Call:
    """One event, with the jobs it started."""
    return Call("GET", f"/api/events/{event_id}")


def replay_call(event_id: str) -> Call:
    """The same event again: new jobs, the new event linked to the original."""
    return Call("POST", f"/api/events/{event_id}/replay", retry_safe=False)


def job_events_call(job_id: str) -> Call:
    """The events that started a job."""
    return Call("GET", _job_path(job_id, "/events"))


def page_of(data: Any) -> JobPage:
    return JobPage([Job.from_dict(j) for j in data.get("jobs", [])], data.get("next_cursor"))


def steps_of(data: Any) -> list[Step]:
    return [Step.from_dict(s) for s in data.get("steps", [])]


def log_page_of(data: Any) -> LogPage:
    return LogPage(
        [LogLine.from_dict(x) for x in data.get("logs", [])],
        int(data.get("next_after") or 0),
        str(data.get("job_status") or ""),
    )


def types_of(data: Any) -> list[dict[str, Any]]:
    return list(data.get("types", []))


def object_of(data: Any) -> dict[str, Any]:
    return dict(data or {})


def schedules_of(data: Any) -> list[dict[str, Any]]:
    return list(data.get("schedules", []))


def events_page_of(data: Any) -> tuple[list[dict[str, Any]], str | None]:
    return list(data.get("events", [])), data.get("next_cursor")


def events_of(data: Any) -> list[dict[str, Any]]:
    return list(data.get("events", []))


def nothing_of(data: Any) -> None:
    return None


def check_ref(ref: str) -> str:
    ref = ref.strip().lower()
    if not PREFIX_RE.match(ref):
        raise UsageError(f"not a job id or id prefix: {ref[:60]!r} (hex digits and dashes)")
    return ref


P = ParamSpec("P")
R = TypeVar("R")


def _blocking(
    build: Callable[P, Call], read: Callable[[Any], R]
) -> Callable[Concatenate[JobClient, P], R]:
    """A JobClient method: build the call, send it, read the answer."""

    def method(self: JobClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return read(self.send(build(*args, **kwargs)))

    method.__doc__ = build.__doc__
    return method


def _awaitable(
    build: Callable[P, Call], read: Callable[[Any], R]
) -> Callable[Concatenate[AsyncJobClient, P], Coroutine[Any, Any, R]]:
    """An AsyncJobClient method: the same, awaited."""

    async def method(self: AsyncJobClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return read(await self.send(build(*args, **kwargs)))

    method.__doc__ = build.__doc__
    return method


class ClientOptions(TypedDict, total=False):
    """How a client sends (the defaults are _Core's)."""

    timeout: float
    retries: int
    backoff: float
    unreachable_hint: str
    on_unreachable: Callable[[], Endpoint | None] | None


class JobClient:
    """Blocking client used by the commands."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.core = _Core(base_url, token, **options)
        self._transport = transport
        self._clients: dict[bool, httpx.Client] = {}
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        return self.core.base_url

    def close(self) -> None:
        for http in self._clients.values():
            http.close()

    def __enter__(self) -> JobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, call: Call) -> Any:
        """Carry out the core's send plan with blocking I/O."""
        plan, reply = self.core.plan(call), None
        while not isinstance(step := _advance(plan, reply), Done):
            reply = self._carry_out(step, call)
        return step.value

    def _carry_out(self, step: PlanStep, call: Call) -> Outcome | Endpoint | None:
        if isinstance(step, Recover):
            return step.hook()
        if isinstance(step, float):
            self._sleep(step)
            return None
        return self._request(call)

    def _request(self, call: Call) -> Outcome:
        tls = self.core.tls
        if tls not in self._clients:
            self._clients[tls] = httpx.Client(
                timeout=self.core.timeout, transport=self._transport, verify=tls
            )
        try:
            return self._clients[tls].request(call.method, **self.core.request(call))
        except httpx.TransportError as exc:
            return exc

    create_job = _blocking(create_call, Job.from_dict)
    list_jobs = _blocking(list_call, page_of)
    get_job = _blocking(get_call, Job.from_dict)
    get_steps = _blocking(steps_call, steps_of)
    get_logs = _blocking(logs_call, log_page_of)
    cancel_job = _blocking(cancel_call, Job.from_dict)
    retry_job = _blocking(retry_call, Job.from_dict)
    types = _blocking(types_call, types_of)
    stats = _blocking(stats_call, object_of)
    health = _blocking(health_call, object_of)

    def iter_jobs(
        self,
        statuses: list[str] | None = None,
        type: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        max_pages: int = 10_000,
        fields: Sequence[str] | None = None,
    ) -> Iterator[Job]:
        """Follow cursors until `limit` jobs (None: all), bounded by `max_pages`; summaries
        unless `fields` names others."""
        cursor: str | None = None
        seen = 0
        for _ in range(max_pages):
            want = MAX_PAGE if limit is None else min(MAX_PAGE, limit - seen)
            page = self.list_jobs(
                statuses=statuses, type=type, since=since, limit=want, cursor=cursor,
                fields=fields,
            )  # fmt: skip
            for job in page.jobs:
                yield job
                seen += 1
            cursor = page.next_cursor
            if not cursor or not page.jobs or (limit is not None and seen >= limit):
                return

    def resolve_id(self, ref: str) -> str:
        """A full id, or a unique prefix of one (as git does with commits)."""
        ref = check_ref(ref)
        if UUID_RE.match(ref):
            return ref
        jobs = self.list_jobs(limit=2, id_prefix=ref).jobs
        if not jobs:
            raise NotFoundError(f"no job with an id starting {ref!r}")
        if len(jobs) > 1:
            raise UsageError(f"id prefix {ref!r} is ambiguous; give more characters")
        return jobs[0].id

    create_schedule = _blocking(create_schedule_call, object_of)
    list_schedules = _blocking(schedules_call, schedules_of)
    get_schedule = _blocking(schedule_call, object_of)
    schedule_action = _blocking(schedule_action_call, object_of)
    delete_schedule = _blocking(delete_schedule_call, nothing_of)
    list_events = _blocking(events_call, events_page_of)
    get_event = _blocking(event_call, object_of)
    replay_event = _blocking(replay_call, object_of)
    job_events = _blocking(job_events_call, events_of)

    def resolve_event_id(self, ref: str) -> str:
        """A full event id, or a unique prefix among the newest 2,000 events."""
        ref = check_ref(ref)
        if UUID_RE.match(ref):
            return ref
        found: set[str] = set()
        cursor: str | None = None
        for _ in range(4):
            events, cursor = self.list_events(limit=MAX_PAGE, cursor=cursor)
            found.update(str(e["id"]) for e in events if str(e["id"]).startswith(ref))
            if not cursor or len(found) > 1:
                break
        if not found:
            raise NotFoundError(f"no event with an id starting {ref!r} (among the newest 2,000)")
        if len(found) > 1:
            raise UsageError(f"event id prefix {ref!r} is ambiguous; give more characters")
        return found.pop()


class AsyncJobClient:
    """The same API for asyncio callers (the TUI and the live feed)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.core = _Core(base_url, token, **options)
        self._transport = transport
        self._clients: dict[bool, httpx.AsyncClient] = {}

    @property
    def base_url(self) -> str:
        return self.core.base_url

    async def aclose(self) -> None:
        for http in self._clients.values():
            await http.aclose()

    async def send(self, call: Call) -> Any:
        """Carry out the core's send plan on the event loop."""
        plan, reply = self.core.plan(call), None
        while not isinstance(step := _advance(plan, reply), Done):
            reply = await self._carry_out(step, call)
        return step.value

    async def _carry_out(self, step: PlanStep, call: Call) -> Outcome | Endpoint | None:
        import asyncio  # here, not at the top: the blocking commands never pay for it

        if isinstance(step, Recover):  # it may start a server and wait: not on the loop
            return await asyncio.to_thread(step.hook)
        if isinstance(step, float):
            await asyncio.sleep(step)
            return None
        return await self._request(call)

    async def _request(self, call: Call) -> Outcome:
        tls = self.core.tls
        if tls not in self._clients:
            self._clients[tls] = httpx.AsyncClient(
                timeout=self.core.timeout, transport=self._transport, verify=tls
            )
        try:
            return await self._clients[tls].request(call.method, **self.core.request(call))
        except httpx.TransportError as exc:
            return exc

    create_job = _awaitable(create_call, Job.from_dict)
    list_jobs = _awaitable(list_call, page_of)
    get_job = _awaitable(get_call, Job.from_dict)
    get_steps = _awaitable(steps_call, steps_of)
    get_logs = _awaitable(logs_call, log_page_of)
    cancel_job = _awaitable(cancel_call, Job.from_dict)
    retry_job = _awaitable(retry_call, Job.from_dict)
    types = _awaitable(types_call, types_of)
    stats = _awaitable(stats_call, object_of)
    health = _awaitable(health_call, object_of)
    list_schedules = _awaitable(schedules_call, schedules_of)
    get_schedule = _awaitable(schedule_call, object_of)
    schedule_action = _awaitable(schedule_action_call, object_of)
    list_events = _awaitable(events_call, events_page_of)
    get_event = _awaitable(event_call, object_of)
    replay_event = _awaitable(replay_call, object_of)

    # feed.JobSource: lets the live feed poll through this client -----------------
    async def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """Current state of these jobs; unknown ids are left out.

        Many ids: one listing of the active jobs answers for those still active, and only
        the rest (ended since the last look, usually few) are fetched one by one, so a
        poll of a big batch costs a request or two rather than one per job.
        """
        found: dict[str, Job] = {}
        if len(job_ids) > BATCH_FETCH:
            wanted = set(job_ids)
            cursor: str | None = None
            for _ in range(MAX_ACTIVE_PAGES):
                page = await self.list_jobs(
                    statuses=["pending", "running"], limit=MAX_PAGE, cursor=cursor,
                    fields=FEED_FIELDS,
                )  # fmt: skip
                found.update((j.id, j) for j in page.jobs if j.id in wanted)
                cursor = page.next_cursor
                if not cursor or not page.jobs:
                    break
        for job_id in job_ids:
            if job_id in found:
                continue
            try:
                found[job_id] = await self.get_job(job_id)
            except NotFoundError:
                continue
        return [found[i] for i in job_ids if i in found]

    async def fetch_logs(self, job_id: str, after: int) -> list[LogLine]:
        """Log lines after `after`, all pages (bounded: 20 pages of 5,000)."""
        lines: list[LogLine] = []
        for _ in range(20):
            page = await self.get_logs(job_id, after, 5000)
            lines.extend(page.logs)
            if len(page.logs) < 5000:
                break
            after = page.next_after
        return lines

    async def fetch_active(self) -> list[Job]:
        """Pending and running jobs, plus the latest ones (which include recent changes)."""
        active = await self.list_jobs(
            statuses=["pending", "running"], limit=MAX_PAGE, fields=FEED_FIELDS
        )
        latest = await self.list_jobs(limit=50, fields=FEED_FIELDS)
        merged = {j.id: j for j in latest.jobs}
        merged.update({j.id: j for j in active.jobs})
        return list(merged.values())
