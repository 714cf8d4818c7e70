"""An app as jobctl's backend: its jobs table read through PostgREST, its own API to submit,
cancel and retry, both with the user's Supabase access token (backends/apptokens.py).

`AppBackend` has the read half of JobClient (`iter_jobs`, `resolve_id`, `get_job`,
`get_steps`) plus `create_job`, `cancel_job` and `retry_job` through the profile's calls,
and what the live feed polls (`fetch_jobs`, `fetch_active`), all blocking. `AsyncAppApi`
is the same for asyncio (the live feed's JobSource and the dashboard's JobApi), each call
in a worker thread. Rows become jobctl's jobs through the profile's mapping
(`AppProfile.map_row`); the raw rows are kept for `--json raw`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Unpack
from urllib.parse import quote

from jobctl import __version__
from jobctl.backends._httpx import httpx
from jobctl.backends.appprofile import AppProfile, Call, dig, fill_template
from jobctl.backends.apptokens import TokenSession
from jobctl.backends.jobapi import MAX_PAGE, UUID_RE, ListParams, LogPage, check_ref
from jobctl.backends.supabase_reader import AUTH_CODES, IN_BATCH, PREFIX_SCAN, since_time
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
from jobctl.models import Job, JobPage, JobStatus, Step

EXPIRED_CODES = frozenset({"PGRST303", "PGRST301"})


class AppBackend:
    def __init__(
        self,
        profile: AppProfile,
        session: TokenSession,
        anon_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not profile.supabase_url:
            raise UsageError(
                f"app profile {profile.path}: [app] supabase_url is not set (where the "
                "app's jobs table is read, `/rest/v1`)"
            )
        self.profile = profile
        self.session = session
        self.anon_key = anon_key
        self.raw_rows: dict[str, dict[str, Any]] = {}
        self.want_raw = False  # select every column (for --json raw), not only the mapped ones
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            follow_redirects=True,
        )

    # PostgREST ----------------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        return f"{self.profile.supabase_url}/rest/v1/{self.profile.table}"

    def _rest_headers(self, token: str) -> dict[str, str]:
        headers = {
            "apikey": self.anon_key,
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"jobctl/{__version__}",
        }
        if self.profile.schema != "public":
            headers["Accept-Profile"] = self.profile.schema
        return headers

    def rows(self, params: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        """Rows of the app's table (mapped columns, or all of them for --json raw)."""
        select = "*" if self.want_raw else ",".join(self.profile.selected_columns())
        params = [("select", select), *params]
        token = self.session.bearer()
        response = self._get(self.rest_url, params, self._rest_headers(token))
        if response.status_code == 401 and self.session.tokens.refresh:
            # Expired between our look at `exp` and the server's: refresh once and resend.
            token = self.session.refresh(token)
            response = self._get(self.rest_url, params, self._rest_headers(token))
        if response.status_code >= 400:
            raise self._rest_error(response)
        try:
            data = response.json()
        except ValueError:
            raise ServerError(f"{self.rest_url} answered something that is not JSON") from None
        if not isinstance(data, list):
            raise ServerError(f"{self.rest_url} answered {type(data).__name__}, not rows")
        rows = [r for r in data if isinstance(r, dict)]
        if self.want_raw and rows:
            self._check_columns(set(rows[0]))
        return rows

    def _get(
        self, url: str, params: list[tuple[str, Any]], headers: dict[str, str]
    ) -> httpx.Response:
        try:
            return self._http.get(url, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise UnreachableError(
                f"the Supabase project at {self.profile.supabase_url} cannot be reached "
                f"({type(exc).__name__}); check supabase_url in {self.profile.path}"
            ) from None

    def _check_columns(self, present: set[str]) -> None:
        for name in self.profile.columns:
            column = self.profile.column(name)
            if column is not None and column not in present:
                raise self._mapping_error(column)

    def _mapping_error(self, column: str) -> UsageError:
        name = self.profile.field_of_column(column) or "?"
        return UsageError(
            f"app profile {self.profile.path}: table.{name} = "
            f"{self.profile.columns.get(name, column)!r}, but the table "
            f"{self.profile.table} has no column {column!r}; fix the mapping "
            f"(`jobctl config detect --profile {self.profile.name}` proposes one)"
        )

    def _rest_error(self, response: httpx.Response) -> JobctlError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        code = str(body.get("code") or "")
        message = str(body.get("message") or f"HTTP {response.status_code}")
        if code == "42703":
            column = _column_in(message, self.profile.table)
            if column is not None:
                return self._mapping_error(column)
        if code in ("PGRST205", "42P01"):
            return UsageError(
                f"app profile {self.profile.path}: table.name = {self.profile.table!r}, but "
                f"{self.profile.supabase_url}/rest/v1 has no such table ({message})"
            )
        if code in AUTH_CODES or response.status_code in (401, 403):
            return AuthError(
                f"not authenticated by the Supabase project: {message}; log in again with "
                f"`jobctl auth login --profile {self.profile.name} --email EMAIL`",
                code=code or None,
            )
        return ServerError(
            f"the Supabase project at {self.profile.supabase_url} answered: {message}",
            code=code or None,
        )

    # reads ---------------------------------------------------------------------------
    def _order(self) -> str:
        p = self.profile
        id_col = p.columns["id"]
        if p.is_plain("created_at"):
            return f"{p.columns['created_at']}.desc,{id_col}.asc"
        return f"{id_col}.desc"

    def _map(self, rows: list[dict[str, Any]]) -> list[Job]:
        jobs = []
        for row in rows:
            try:
                job = self.profile.map_row(row)
            except ValueError:
                continue
            self.raw_rows[job.id] = row
            jobs.append(job)
        return jobs

    def iter_jobs(
        self,
        statuses: list[str] | None = None,
        type: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        max_pages: int = 10_000,
        fields: list[str] | None = None,  # jobctl's fields: the mapped columns are read anyway
    ) -> Iterator[Job]:
        p = self.profile
        params: list[tuple[str, Any]] = []
        wanted = [w for s in statuses or [] for w in s.split(",") if w]
        if wanted:
            words = [x for w in wanted for x in p.words_for(JobStatus.parse(w))]
            params.append((p.columns["status"], f"in.({','.join(_quoted(w) for w in words)})"))
        if type:
            if p.is_plain("type"):
                params.append((p.columns["type"], f"eq.{_quoted(type)}"))
            elif type != p.default_type:
                return  # every row of a table without a type column is of the default type
        if since:
            if not p.is_plain("created_at"):
                raise UsageError(f"--since needs table.created_at in {p.path}")
            params.append((p.columns["created_at"], f"gte.{since_time(since)}"))
        params.append(("order", self._order()))
        seen = 0
        for page in range(max_pages):
            size = MAX_PAGE if limit is None else min(MAX_PAGE, limit - seen)
            rows = self.rows([*params, ("offset", str(page * MAX_PAGE)), ("limit", str(size))])
            yield from self._map(rows)
            seen += len(rows)
            if len(rows) < size or (limit is not None and seen >= limit):
                return

    def list_page(
        self,
        statuses: list[str] | None = None,
        type: str | None = None,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page for the dashboard: the cursor is the offset of the next page."""
        offset = int(cursor) if cursor and cursor.isdigit() else 0
        jobs = list(self.iter_jobs(statuses, type, since, offset + limit + 1))[offset:]
        more = len(jobs) > limit
        return JobPage(jobs[:limit], str(offset + limit) if more else None)

    def get_job(self, job_id: str) -> Job:
        found = self._map(self.rows([(self.profile.columns["id"], f"eq.{job_id}")]))
        if not found:
            raise NotFoundError(f"job {job_id} not found (or not yours)")
        return found[0]

    def get_steps(self, job_id: str) -> list[Step]:
        return []  # an app's table holds jobs only

    def resolve_id(self, ref: str) -> str:
        """A full id, or a unique prefix among your newest jobs."""
        ref = check_ref(ref)
        if UUID_RE.match(ref):
            return ref
        id_col = self.profile.columns["id"]
        rows = self.rows([("order", self._order()), ("limit", str(PREFIX_SCAN))])
        found = [str(r.get(id_col)) for r in rows if str(r.get(id_col)).startswith(ref)]
        if not found:
            raise NotFoundError(f"no job with an id starting {ref!r}")
        if len(found) > 1:
            raise UsageError(f"id prefix {ref!r} is ambiguous; give more characters")
        return found[0]

    def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        id_col = self.profile.columns["id"]
        found: list[Job] = []
        for i in range(0, len(job_ids), IN_BATCH):
            batch = ",".join(job_ids[i : i + IN_BATCH])
            try:
                found += self._map(self.rows([(id_col, f"in.({batch})")]))
            except (UnreachableError, ServerError):
                if not self.profile.job_url or not self.profile.api_url:
                    raise
                found += [j for j in map(self.poll_job, job_ids[i : i + IN_BATCH]) if j]
        return found

    def fetch_active(self) -> list[Job]:
        p = self.profile
        words = p.words_for(JobStatus.PENDING) + p.words_for(JobStatus.RUNNING)
        active = self.rows(
            [
                (p.columns["status"], f"in.({','.join(_quoted(w) for w in words)})"),
                ("limit", str(MAX_PAGE)),
            ]
        )
        latest = self.rows([("order", self._order()), ("limit", "50")])
        merged = {j.id: j for j in self._map(latest)}
        merged.update({j.id: j for j in self._map(active)})
        return list(merged.values())

    def poll_job(self, job_id: str) -> Job | None:
        """The job through the app's own job URL (`[job] url`), as its frontend polls it."""
        assert self.profile.job_url is not None
        answer = self._app_call(Call("GET", self.profile.job_url), job_id=job_id)
        row = dig(answer, self.profile.job_row) if self.profile.job_row else answer
        if not isinstance(row, dict):
            return None
        jobs = self._map([row])
        return jobs[0] if jobs else None

    # the app's API ------------------------------------------------------------------
    def create_job(
        self,
        type: str,
        input: dict[str, Any],
        idempotency_key: str,
        concurrency_key: str | None = None,
        *,
        filename: str | None = None,
    ) -> Job:
        p = self.profile
        if p.submit is None:
            raise self._missing("submit", "submit jobs")
        values: dict[str, Any] = {**input, "input": input, "type": type, "filename": filename}
        values.setdefault("text", input.get("text"))
        template = (
            p.submit.body if p.submit.body is not None else {"type": "{type}", "input": "{input}"}
        )
        body = fill_template(template, values)
        answer = self._app_call(
            Call(p.submit.method, p.submit.path, body), idempotency_key=idempotency_key
        )
        job_id = dig(answer, p.submit.job_id or "id")
        if job_id is None:
            raise ServerError(
                f"the app's answer to {p.submit.method} {p.submit.path} has no "
                f"{p.submit.job_id!r} (submit.job_id in {p.path}): {str(answer)[:200]}"
            )
        try:
            return self.get_job(str(job_id))
        except NotFoundError:
            # Not readable yet (or the app writes it later): pending until the feed sees it.
            return Job(id=str(job_id), type=type, status=JobStatus.PENDING)

    def cancel_job(self, job_id: str) -> Job:
        return self._act("cancel", job_id)

    def retry_job(
        self, job_id: str, from_start: bool = False, input: dict[str, Any] | None = None
    ) -> Job:
        return self._act("retry", job_id, input)

    def _act(self, name: str, job_id: str, input: dict[str, Any] | None = None) -> Job:
        call: Call | None = getattr(self.profile, name)
        if call is None:
            raise self._missing(name, f"{name} jobs")
        values = {"id": job_id, "input": input}
        body = None if call.body is None else fill_template(call.body, values)
        answer = self._app_call(Call(call.method, call.path, body), job_id=job_id)
        new_id = dig(answer, call.job_id) if call.job_id else None
        return self.get_job(str(new_id or job_id))

    def _missing(self, name: str, what: str) -> UsageError:
        return UsageError(
            f"profile {self.profile.name!r} cannot {what}: {self.profile.path} has no [{name}] "
            f'call (add `[{name}] method = "POST"`, `path = "/api/jobs/{{id}}/{name}"` if the '
            "app has one)"
        )

    def _app_call(
        self, call: Call, *, job_id: str | None = None, idempotency_key: str | None = None
    ) -> Any:
        if not self.profile.api_url:
            raise UsageError(
                f"app profile {self.profile.path}: [app] api_url is not set (the app's own "
                f"API, for {call.method} {call.path})"
            )
        path = call.path.replace("{id}", quote(job_id or "", safe=""))
        url = self.profile.api_url + path
        headers = {
            "Authorization": f"Bearer {self.session.bearer()}",
            "Accept": "application/json",
            "User-Agent": f"jobctl/{__version__}",
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self._http.request(call.method, url, json=call.body, headers=headers)
        except httpx.TransportError as exc:
            raise UnreachableError(
                f"the app at {self.profile.api_url} cannot be reached ({type(exc).__name__}); "
                f"check api_url in {self.profile.path}"
            ) from None
        if response.status_code >= 400:
            raise _app_error(response, f"{call.method} {path}")
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"the app's answer to {call.method} {path} is not JSON") from None

    def summary_of(self, job: Job) -> str | None:
        """The app's result in words (the profile's summary template), for a completed job."""
        if job.status == JobStatus.COMPLETED and self.profile.summary:
            return job.message
        return None

    def close(self) -> None:
        self._http.close()


def _column_in(message: str, table: str) -> str | None:
    """The column of PostgREST's `column jobs.progres does not exist`."""
    import re

    m = re.search(r"column (?:[\w\"]+\.)?\"?(\w+)\"? does not exist", message)
    return m[1] if m else None


def _quoted(word: str) -> str:
    return f'"{word}"' if any(c in word for c in ',()"') else word


def _app_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "statusMessage", "detail", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:  # FastAPI's validation errors
                first = value[0]
                return str(first.get("msg") if isinstance(first, dict) else first)
    return str(body)[:200]


def _app_error(response: httpx.Response, what: str) -> JobctlError:
    status, message = response.status_code, _app_message(response)
    text = f"the app answered {what} with {status}: {message}"
    if status in (400, 413, 422):
        return UsageError(text)
    if status in (401, 403):
        return AuthError(text)
    if status == 404:
        return NotFoundError(text)
    if status == 409:
        return ConflictError(text)
    if status == 429:
        return RateLimitedError(text)
    return ServerError(text)


class AsyncAppApi:
    """AppBackend for asyncio: the live feed's JobSource and the dashboard's JobApi. Every
    call runs in a worker thread; the token is kept fresh while it is in use."""

    def __init__(self, backend: AppBackend) -> None:
        self.backend = backend
        self._refresher: asyncio.Task[None] | None = None

    def _keep_fresh(self) -> None:
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(
                self.backend.session.keep_fresh(), name="app-token-refresh"
            )

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._keep_fresh()
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        jobs: list[Job] = await self._run(self.backend.fetch_jobs, list(job_ids))
        return jobs

    async def fetch_active(self) -> list[Job]:
        jobs: list[Job] = await self._run(self.backend.fetch_active)
        return jobs

    async def list_jobs(self, **query: Unpack[ListParams]) -> JobPage:
        # `fields` is not needed: the mapped columns are read anyway.
        page: JobPage = await self._run(
            self.backend.list_page, query.get("statuses"), query.get("type"),
            query.get("since"), query.get("limit", 50), query.get("cursor"),
        )  # fmt: skip
        if id_prefix := query.get("id_prefix"):  # the dashboard's `id:` filter, within the page
            page = replace(page, jobs=[j for j in page.jobs if j.id.startswith(id_prefix)])
        return page

    async def get_job(self, job_id: str) -> Job:
        job: Job = await self._run(self.backend.get_job, job_id)
        return job

    async def get_steps(self, job_id: str) -> list[Step]:
        return []

    async def get_logs(self, job_id: str, after: int = 0, limit: int = 1000) -> LogPage:
        return LogPage([], after, "")

    async def create_job(
        self,
        type: str,
        input: dict[str, Any],
        idempotency_key: str,
        concurrency_key: str | None = None,
    ) -> Job:
        job: Job = await self._run(self.backend.create_job, type, input, idempotency_key)
        return job

    async def cancel_job(self, job_id: str) -> Job:
        job: Job = await self._run(self.backend.cancel_job, job_id)
        return job

    async def retry_job(self, job_id: str, from_start: bool = False) -> Job:
        job: Job = await self._run(self.backend.retry_job, job_id, from_start)
        return job

    async def stats(self) -> dict[str, Any]:
        """Counts by status among your newest 500 jobs (an app has no stats endpoint)."""
        jobs: list[Job] = await self._run(lambda: list(self.backend.iter_jobs(limit=MAX_PAGE)))
        counts = {s.value: 0 for s in JobStatus}
        for job in jobs:
            counts[job.status.value] += 1
        return {"counts": counts, "queue_depth": counts["pending"]}

    async def types(self) -> list[dict[str, Any]]:
        names = [self.backend.profile.default_type, *self.backend.profile.types]
        return [{"name": n} for n in dict.fromkeys(names)]

    # Schedules and the event history belong to jobctl's own server; an app has neither.
    async def list_schedules(self) -> list[dict[str, Any]]:
        raise UsageError(self._not_here("schedules"))

    async def schedule_action(
        self, ref: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        raise UsageError(self._not_here("schedules"))

    async def list_events(
        self,
        name: str | None = None,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        raise UsageError(self._not_here("an event history"))

    async def replay_event(self, event_id: str) -> dict[str, Any]:
        raise UsageError(self._not_here("an event history"))

    def _not_here(self, what: str) -> str:
        return f"profile {self.backend.profile.name!r} is an app's own API: it has no {what}"

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresher
            self._refresher = None
