"""Reading jobs straight from a Supabase project's `jobs` table, over PostgREST.

For a profile that has a Supabase project and no job API: `list`, `show` and
`watch` read here; writes need the job API. Row-level security decides what
the user's JWT may read (your own jobs), exactly as on the Realtime channel.
Only postgrest-py is needed (not all of supabase-py, whose import costs about half
a second more); it is imported on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobctl.backends.jobapi import FEED_FIELDS, MAX_PAGE, UUID_RE, check_ref
from jobctl.errors import (
    AuthError,
    JobctlError,
    NotFoundError,
    ServerError,
    UnreachableError,
    UsageError,
)
from jobctl.jobshape import INPUT_BYTES, SUMMARY_FIELDS
from jobctl.models import Job, Step, format_time, parse_since

if TYPE_CHECKING:
    from postgrest import SyncPostgrestClient

AUTH_CODES = frozenset({"PGRST301", "PGRST302", "PGRST303", "42501"})
PREFIX_SCAN = 2000  # id prefixes are matched among this many of the newest jobs
IN_BATCH = 100
UNDEFINED_COLUMN = "42703"


def since_time(value: str, now: datetime | None = None) -> str:
    """`30m`, `2h`, `7d`, `1w` or an ISO time -> an ISO time, as the job API reads `since`."""
    try:
        when = parse_since(value, now or datetime.now(UTC))
    except ValueError:
        raise UsageError(
            f"--since: expected 30m, 2h, 7d or an ISO time, got {value[:40]!r}"
        ) from None
    return format_time(when) or ""


class SupabaseReader:
    """The read half of JobClient (`iter_jobs`, `resolve_id`, `get_job`, `get_steps`), plus
    what the live feed polls (`fetch_jobs`, `fetch_active`, blocking)."""

    def __init__(self, url: str, anon_key: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.anon_key = anon_key
        self.token = token
        self.timeout = timeout
        self._client: SyncPostgrestClient | None = None
        self._all_columns = False  # a table without some column of ours: select *

    def _rest(self) -> SyncPostgrestClient:
        if self._client is None:
            from postgrest import SyncPostgrestClient

            from jobctl.backends._httpx import httpx

            # PostgREST reads as the user: their JWT in Authorization, the anon key as apikey.
            headers = {"apikey": self.anon_key, "Authorization": f"Bearer {self.token}"}
            session = httpx.Client(headers=headers, timeout=self.timeout, follow_redirects=True)
            self._client = SyncPostgrestClient(
                f"{self.url}/rest/v1", headers=headers, http_client=session
            )
        return self._client

    def _columns(self, fields: Sequence[str] | None) -> str:
        """What a read selects: the columns named (the table has no input_bytes: PostgREST
        cannot size a column), or * for a table made by another app that lacks some."""
        if fields is None or self._all_columns:
            return "*"
        return ",".join(name for name in fields if name != INPUT_BYTES) or "id"

    def _rows(self, build: Any) -> list[dict[str, Any]]:
        from postgrest import APIError

        from jobctl.backends._httpx import httpx

        try:
            try:
                response = build(self._rest().from_("jobs")).execute()
            except APIError as exc:
                if exc.code != UNDEFINED_COLUMN or self._all_columns:
                    raise
                self._all_columns = True  # `build` reads it: the same read, with *
                response = build(self._rest().from_("jobs")).execute()
        except APIError as exc:
            raise self._error(exc) from None
        except httpx.TransportError as exc:
            raise UnreachableError(
                f"the Supabase project at {self.url} cannot be reached ({type(exc).__name__}); "
                "check supabase_url (`jobctl config show`)"
            ) from None
        return list(response.data or [])

    def _error(self, exc: Any) -> JobctlError:
        code, message = exc.code or "", exc.message or str(exc)
        if code in AUTH_CODES:
            return AuthError(
                f"not authenticated by the Supabase project: {message}; check the profile's "
                "token (the user's JWT) and supabase_anon_key",
                code=code,
            )
        return ServerError(f"the Supabase project at {self.url} answered: {message}", code=code)

    def iter_jobs(
        self,
        statuses: list[str] | None = None,
        type: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        max_pages: int = 10_000,
        fields: Sequence[str] | None = None,
    ) -> Iterator[Job]:
        """As JobClient.iter_jobs: the summary columns unless `fields` names others."""
        wanted = [w for s in statuses or [] for w in s.split(",") if w]
        since_iso = since_time(since) if since else None
        seen = 0
        for page in range(max_pages):
            size = MAX_PAGE if limit is None else min(MAX_PAGE, limit - seen)

            def build(q: Any, start: int = page * MAX_PAGE, size: int = size) -> Any:
                q = q.select(self._columns(fields or SUMMARY_FIELDS))
                if wanted:
                    q = q.in_("status", wanted)
                if type:
                    q = q.eq("type", type)
                if since_iso:
                    q = q.gte("created_at", since_iso)
                return q.order("created_at", desc=True).order("id").range(start, start + size - 1)

            rows = self._rows(build)
            for row in rows:
                yield Job.from_dict(row)
            seen += len(rows)
            if len(rows) < size or (limit is not None and seen >= limit):
                return

    def get_job(self, job_id: str) -> Job:
        rows = self._rows(lambda q: q.select("*").eq("id", job_id))
        if not rows:
            raise NotFoundError(f"job {job_id} not found")
        return Job.from_dict(rows[0])

    def get_steps(self, job_id: str) -> list[Step]:
        return []  # the table holds jobs only; the timeline needs the job API

    def resolve_id(self, ref: str) -> str:
        """A full id, or a unique prefix among your newest jobs (uuid columns have no LIKE)."""
        ref = check_ref(ref)
        if UUID_RE.match(ref):
            return ref
        rows = self._rows(
            lambda q: q.select("id").order("created_at", desc=True).limit(PREFIX_SCAN)
        )
        found = [str(r["id"]) for r in rows if str(r["id"]).startswith(ref)]
        if not found:
            raise NotFoundError(f"no job with an id starting {ref!r}")
        if len(found) > 1:
            raise UsageError(f"id prefix {ref!r} is ambiguous; give more characters")
        return found[0]

    def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        found: list[Job] = []
        for i in range(0, len(job_ids), IN_BATCH):
            batch = list(job_ids[i : i + IN_BATCH])
            found += [
                Job.from_dict(r)
                for r in self._rows(
                    lambda q, b=batch: q.select(self._columns(FEED_FIELDS)).in_("id", b)
                )
            ]
        return found

    def fetch_active(self) -> list[Job]:
        def cols() -> str:  # at each try: a retry after an unknown column selects *
            return self._columns(FEED_FIELDS)

        active = self._rows(
            lambda q: q.select(cols()).in_("status", ["pending", "running"]).limit(MAX_PAGE)
        )
        latest = self._rows(lambda q: q.select(cols()).order("created_at", desc=True).limit(50))
        merged = {str(r["id"]): Job.from_dict(r) for r in latest}
        merged.update({str(r["id"]): Job.from_dict(r) for r in active})
        return list(merged.values())

    def close(self) -> None:
        if self._client is not None:
            self._client.session.close()


class AsyncSupabaseSource:
    """feed.JobSource over a SupabaseReader: its blocking calls run in a worker thread."""

    def __init__(self, reader: SupabaseReader) -> None:
        self.reader = reader

    async def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        return await asyncio.to_thread(self.reader.fetch_jobs, list(job_ids))

    async def fetch_active(self) -> list[Job]:
        return await asyncio.to_thread(self.reader.fetch_active)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.reader.close)
