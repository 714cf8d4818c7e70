"""Live job updates: Supabase Realtime first, polling when it is unavailable (no UI code).

One async interface for `watch` and the dashboard::

    async with JobFeed(source, Subscription(job_ids={...}), realtime=RealtimeConfig(...)) as feed:
        async for event in feed.events():
            ...  # JobChanged(job) or ModeChanged(mode, detail)

Rules it keeps (DESIGN.md section 5, reference/realtime-protocol.md):
- After every (re)subscribe it fetches current state over HTTP before trusting the
  stream: Realtime does not replay what was missed.
- When Realtime is unavailable or drops, it polls (per-type interval, slower when
  nothing changes, jittered, Retry-After honoured) and keeps reconnecting with
  backoff on its own (the client library gives up after 5 tries), switching back
  when Realtime returns.
- Callbacks never raise into the realtime client: an exception there silently
  stops all delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from jobctl.backends.backoff import Backoff
from jobctl.errors import JobctlError, RateLimitedError
from jobctl.models import Job, LogLine

log = logging.getLogger("jobctl.backends.feed")


class FeedMode(StrEnum):
    CONNECTING = "connecting"
    REALTIME = "realtime"
    POLLING = "polling"
    OFFLINE = "offline"


class JobSource(Protocol):
    """What the feed needs over HTTP (the job API or PostgREST)."""

    async def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """Current state of these jobs; unknown ids are left out."""

    async def fetch_active(self) -> list[Job]:
        """The caller's jobs that are pending or running, plus recently changed ones."""


@dataclass(frozen=True)
class Subscription:
    """Which jobs: these ids, or (when empty) every job the token may read."""

    job_ids: frozenset[str] = frozenset()

    @property
    def all_mine(self) -> bool:
        return not self.job_ids

    def realtime_filter(self, column: str = "id") -> str | None:
        ids = sorted(self.job_ids)
        if len(ids) == 1:
            return f"{column}=eq.{ids[0]}"
        if 1 < len(ids) <= 100:
            return f"{column}=in.({','.join(ids)})"
        return None  # all of mine (row-level security scopes it), or too many ids


@dataclass(frozen=True)
class RealtimeConfig:
    url: str  # http(s) base of the Realtime service, e.g. http://127.0.0.1:8765/realtime/v1
    apikey: str  # sent as ?apikey= (anon key on Supabase, the token on the embedded server)
    access_token: str | None = None  # the user's JWT, set on the client before subscribing
    # An app's own jobs table (app profiles): its name, its id column, how a row becomes a
    # Job, and the user's current token (sent to the channel when it was refreshed).
    table: str = "jobs"
    schema: str = "public"
    id_column: str = "id"
    decode: Callable[[dict[str, Any]], Job] | None = None
    token: Callable[[], str | None] | None = None


@dataclass(frozen=True)
class JobChanged:
    job: Job
    source: str  # "realtime" | "poll" | "snapshot"


@dataclass(frozen=True)
class ModeChanged:
    mode: FeedMode
    previous: FeedMode
    detail: str = ""


@dataclass(frozen=True)
class LogReceived:
    """A job's log line (feeds made with logs=True): in seq order per job, each once."""

    line: LogLine
    source: str  # "realtime" | "poll" | "snapshot"


FeedEvent = JobChanged | ModeChanged
AnyFeedEvent = JobChanged | ModeChanged | LogReceived  # LogReceived only with logs=True


@dataclass
class PollSettings:
    interval: float = 2.0
    by_type: dict[str, float] = field(default_factory=dict)
    max_interval: float = 15.0
    backoff: float = 1.5  # interval multiplier after a poll that saw no change
    jitter: float = 0.2  # +-20%
    realtime_check: float = 30.0  # a safety poll even while Realtime is up


# Realtime reconnects: 0.5 s, doubling up to 30 s, +-20% so that clients do not stampede.
RECONNECT = Backoff(0.5, factor=2.0, cap=30.0, jitter=(0.8, 1.2))


class JobFeed:
    def __init__(
        self,
        source: JobSource,
        subscription: Subscription,
        *,
        realtime: RealtimeConfig | None = None,
        poll: PollSettings | None = None,
        reconnect: Backoff = RECONNECT,
        rng: Callable[[], float] = random.random,
        logs: bool = False,
    ) -> None:
        """`logs`: also deliver the jobs' log lines (Realtime changes to job_logs, and
        HTTP reads after every (re)subscribe and poll), when the source can read them."""
        self.source = source
        self.logs = logs and hasattr(source, "fetch_logs")
        self._log_seq: dict[str, int] = {}  # the last seq delivered, per job
        self._log_fetches: dict[str, asyncio.Task[bool]] = {}
        self.subscription = subscription
        self.realtime = realtime
        self.poll = poll or PollSettings()
        self.reconnect = reconnect
        self._rng = rng
        self._mode = FeedMode.CONNECTING if realtime else FeedMode.POLLING
        self._queue: asyncio.Queue[AnyFeedEvent] = asyncio.Queue()
        self._known: dict[str, Job] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._mode_changed = asyncio.Event()
        self._poll_now = asyncio.Event()
        self._closed = False
        # While a Realtime session joins and reads its snapshot, what the stream sends
        # waits here (("job", Job) or ("log", LogLine)), to come after the mode change.
        self._held: list[tuple[str, Any]] | None = None
        self.realtime_events = 0
        self.token_updates = 0  # refreshed tokens sent to the Realtime channel
        self.poll_requests = 0
        # Called after each Realtime record is handled, on the feed's loop: FeedThread
        # sets it to rest its thread now and then during a storm (see feedthread.py).
        self.pace: Callable[[], None] = _no_pace

    # public ------------------------------------------------------------------
    @property
    def mode(self) -> FeedMode:
        return self._mode

    @property
    def jobs(self) -> dict[str, Job]:
        """The latest snapshot of every job seen."""
        return dict(self._known)

    async def __aenter__(self) -> JobFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.realtime is not None:
            self._tasks.append(loop.create_task(self._realtime_loop(), name="feed-realtime"))
        self._tasks.append(loop.create_task(self._poll_loop(), name="feed-poll"))

    async def close(self) -> None:
        self._closed = True
        for task in [*self._tasks, *self._log_fetches.values()]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def events(self) -> AsyncIterator[FeedEvent]:
        while True:
            event = await self._queue.get()
            if not isinstance(event, LogReceived):
                yield event

    async def next_event(self, timeout: float | None = None) -> FeedEvent | None:
        """The next event, or None after `timeout` seconds (safe to call in a loop with a
        deadline: unlike cancelling `events()`, a timeout here loses nothing). Log lines
        (a feed made with logs=True) come only from `next_any`."""
        while True:
            event = await self.next_any(timeout)
            if not isinstance(event, LogReceived):
                return event

    async def next_any(self, timeout: float | None = None) -> AnyFeedEvent | None:
        """`next_event`, log lines included, in the order they arrived."""
        if timeout is not None and timeout <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when it
        # is cancelled just as the result arrives (gh-86296), so a ^C landing beside an
        # event was swallowed and `watch` ran on to the job's end and exited 0.
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    def add_jobs(self, job_ids: Sequence[str]) -> None:
        """Follow more jobs (an id subscription grows; takes effect on the next (re)subscribe,
        and polling picks them up at once)."""
        if self.subscription.all_mine:
            self._poll_now.set()
            return
        self.subscription = Subscription(self.subscription.job_ids | frozenset(job_ids))
        self._poll_now.set()

    def refresh(self) -> None:
        """Ask for a poll now (e.g. after the user acted on a job)."""
        self._poll_now.set()

    # state -------------------------------------------------------------------
    def _set_mode(self, mode: FeedMode, detail: str = "") -> None:
        if mode == self._mode:
            return
        previous, self._mode = self._mode, mode
        self._queue.put_nowait(ModeChanged(mode, previous, detail))
        self._mode_changed.set()

    def _offer(self, job: Job, source: str) -> bool:
        """Emit a snapshot if it is newer than what we have. Returns True if emitted."""
        if not self.subscription.all_mine and job.id not in self.subscription.job_ids:
            return False
        old = self._known.get(job.id)
        if old is not None:
            if _key(job) < _key(old):
                return False  # an older snapshot (a late poll racing the stream)
            if _same(job, old):
                return False
        self._known[job.id] = job
        self._queue.put_nowait(JobChanged(job, source))
        return True

    def _jitter(self, seconds: float) -> float:
        return max(0.0, seconds * (1 + self.poll.jitter * (2 * self._rng() - 1)))

    async def _fetch(self) -> list[Job]:
        self.poll_requests += 1
        if self.subscription.all_mine:
            return await self.source.fetch_active()
        wanted = [
            job_id
            for job_id in sorted(self.subscription.job_ids)
            if job_id not in self._known or not self._known[job_id].status.is_terminal
        ]
        return await self.source.fetch_jobs(wanted) if wanted else []

    async def _refresh(self, source: str) -> bool:
        changed = False
        jobs = await self._fetch()
        for job in jobs:
            changed = self._offer(job, source) or changed
        if self.logs:
            # The jobs just read (active, or ended since the last look) may have new lines.
            for job in jobs:
                changed = await self._read_logs(job.id, source) or changed
        return changed

    # log lines -----------------------------------------------------------------
    def _offer_log(self, line: LogLine, source: str) -> bool:
        """Deliver a line if it is the next of its job; a gap (Realtime ahead of what was
        read) starts a read of what is missing, which delivers it in order."""
        if not self.subscription.all_mine and line.job_id not in self.subscription.job_ids:
            return False
        last = self._log_seq.get(line.job_id, 0)
        if line.seq <= last:
            return False
        if line.seq > last + 1:
            if line.job_id not in self._log_fetches:
                task = asyncio.get_running_loop().create_task(
                    self._read_logs(line.job_id, source), name="feed-logs"
                )
                job_id = line.job_id
                self._log_fetches[job_id] = task

                def done(_task: asyncio.Task[bool], job_id: str = job_id) -> None:
                    self._log_fetches.pop(job_id, None)

                task.add_done_callback(done)
            return False
        self._log_seq[line.job_id] = line.seq
        self._queue.put_nowait(LogReceived(line, source))
        return True

    async def _read_logs(self, job_id: str, source: str) -> bool:
        fetch = getattr(self.source, "fetch_logs", None)
        if fetch is None:
            return False
        try:
            lines: list[LogLine] = await fetch(job_id, self._log_seq.get(job_id, 0))
        except JobctlError:
            return False
        delivered = False
        for line in lines:
            delivered = self._offer_log(line, source) or delivered
        return delivered

    async def drain_logs(self, job_ids: Sequence[str]) -> None:
        """Read every line not delivered yet (at the end of a watch): a poll can see a job
        end before it has read the lines written just before."""
        if self.logs:
            for job_id in job_ids:
                await self._read_logs(job_id, "poll")

    # polling -----------------------------------------------------------------
    def _base_interval(self) -> float:
        active = [j for j in self._known.values() if not j.status.is_terminal]
        types = {j.type for j in active} or {j.type for j in self._known.values()}
        intervals = [self.poll.by_type.get(t, self.poll.interval) for t in types]
        return min(intervals) if intervals else self.poll.interval

    async def _poll_loop(self) -> None:
        interval = self._base_interval()
        failures = 0
        first = True
        while not self._closed:
            realtime_up = self._mode == FeedMode.REALTIME
            if not first:
                wait = self.poll.realtime_check if realtime_up else self._jitter(interval)
                await self._sleep_or_signal(wait)
            first = False
            self._poll_now.clear()
            if self._mode == FeedMode.REALTIME and not realtime_up:
                continue  # Realtime came back while we slept; it fetched a snapshot itself
            try:
                changed = await self._refresh("poll")
            except RateLimitedError as exc:
                interval = max(interval, exc.retry_after or interval * 2)
                continue
            except JobctlError as exc:
                failures += 1
                if self._mode != FeedMode.REALTIME:
                    self._set_mode(FeedMode.OFFLINE, exc.message)
                interval = self._failing_interval(failures)
                continue
            except Exception as exc:  # never let the feed die on a surprise
                log.warning("poll failed: %s", exc)
                failures += 1
                interval = self._failing_interval(failures)
                continue
            failures = 0
            if self._mode in (FeedMode.OFFLINE, FeedMode.CONNECTING) and (
                self.realtime is None or self._mode == FeedMode.OFFLINE
            ):
                self._set_mode(FeedMode.POLLING, "the job API answers")
            base = self._base_interval()
            interval = (
                base if changed else min(self.poll.max_interval, interval * self.poll.backoff)
            )

    def _failing_interval(self, failures: int) -> float:
        """While polls fail: the usual interval, doubled per failure, up to max_interval."""
        return Backoff(self._base_interval(), 2.0, self.poll.max_interval).step(failures)

    async def _sleep_or_signal(self, seconds: float) -> None:
        """Sleep, waking early for a poll request or a change of mode."""
        self._mode_changed.clear()
        waiters = [
            asyncio.ensure_future(self._poll_now.wait()),
            asyncio.ensure_future(self._mode_changed.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    # realtime ----------------------------------------------------------------
    async def _realtime_loop(self) -> None:
        assert self.realtime is not None
        attempt = 0
        while not self._closed:
            detail = ""
            try:
                await self._realtime_session()
                detail = "the Realtime connection dropped"
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = f"Realtime unavailable ({_short(exc)})"
            if self._closed:
                return
            fallback = FeedMode.OFFLINE if self._mode == FeedMode.OFFLINE else FeedMode.POLLING
            self._set_mode(fallback, detail)
            self._poll_now.set()
            delay = self.reconnect.delay(attempt, self._rng)
            attempt += 1
            await asyncio.sleep(delay)

    async def _realtime_session(self) -> None:
        """One connection: subscribe, snapshot, then deliver until the channel is lost."""
        from realtime import (
            AsyncRealtimeClient,
            RealtimePostgresChangesListenEvent,
            RealtimeSubscribeStates,
        )

        config = self.realtime
        assert config is not None
        lost = asyncio.Event()
        joined = asyncio.Event()
        client = AsyncRealtimeClient(
            config.url, token=config.apikey, auto_reconnect=False, max_retries=1, timeout=5
        )

        def on_state(state: Any, error: Exception | None = None) -> None:
            try:
                if state == RealtimeSubscribeStates.SUBSCRIBED:
                    joined.set()
                else:
                    lost.set()
            except Exception:  # pragma: no cover - must never raise into the client
                pass

        try:
            if config.token is not None:
                config = dataclasses.replace(config, access_token=config.token())
            if config.access_token:
                await client.set_auth(config.access_token)
            channel = client.channel(f"jobctl-{uuid.uuid4().hex[:12]}")
            channel.on_postgres_changes(
                RealtimePostgresChangesListenEvent.All,
                self._on_postgres_change,
                table=config.table,
                schema=config.schema,
                filter=self.subscription.realtime_filter(config.id_column),
            )
            if self.logs:
                by_id = self.subscription.realtime_filter()
                channel.on_postgres_changes(
                    RealtimePostgresChangesListenEvent.Insert,
                    self._on_log_change,
                    table="job_logs",
                    schema="public",
                    filter=None if by_id is None else "job_" + by_id,
                )
            self._held = []
            await asyncio.wait_for(channel.subscribe(on_state), timeout=12)
            if not joined.is_set():
                raise ConnectionError("the Realtime join was refused")
            # Realtime does not replay: read current state before trusting the stream.
            jobs = await self._fetch()
            # Then, in this order: the mode, the snapshot, what the stream sent meanwhile
            # (older snapshots among it are dropped by _offer). A consumer that hears
            # "realtime" has not yet seen a job of this session.
            self._set_mode(FeedMode.REALTIME, "subscribed")
            sent = config.access_token
            held, self._held = self._held or [], None
            for job in jobs:
                self._offer(job, "snapshot")
            for kind, record in held:
                if kind == "job":
                    self._offer(record, "realtime")
                else:
                    self._offer_log(record, "realtime")
            if self.logs:
                for job in jobs:
                    await self._read_logs(job.id, "snapshot")
            while not lost.is_set() and client.is_connected and not self._closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=1.0)
                fresh = config.token() if config.token is not None else None
                if fresh and fresh != sent:
                    # Refreshed: the channel would close at the old token's expiry.
                    await client.set_auth(fresh)
                    sent = fresh
                    self.token_updates += 1
        finally:
            self._held = None  # a session that failed to join: the polls read what it held
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), timeout=2)

    def _on_postgres_change(self, payload: Any) -> None:
        """Called inside the realtime client's receive loop: must never raise."""
        try:
            data = payload.get("data") or {}
            record = data.get("record")
            id_column = self.realtime.id_column if self.realtime is not None else "id"
            if not isinstance(record, dict) or id_column not in record:
                return
            self.realtime_events += 1
            decode = self.realtime.decode if self.realtime is not None else None
            job = (decode or Job.from_dict)(record)
            if self._held is not None:
                self._held.append(("job", job))
            else:
                self._offer(job, "realtime")
            self.pace()
        except Exception:
            log.debug("ignored an unreadable realtime record", exc_info=True)

    def _on_log_change(self, payload: Any) -> None:
        """Called inside the realtime client's receive loop: must never raise."""
        try:
            record = (payload.get("data") or {}).get("record")
            if isinstance(record, dict) and "job_id" in record and "seq" in record:
                line = LogLine.from_dict(record)
                if self._held is not None:
                    self._held.append(("log", line))
                else:
                    self._offer_log(line, "realtime")
        except Exception:
            log.debug("ignored an unreadable realtime log record", exc_info=True)


def _no_pace() -> None:
    return None


def _key(job: Job) -> tuple[float, int]:
    stamp = job.updated_at.timestamp() if job.updated_at else 0.0
    return (stamp, 1 if job.status.is_terminal else 0)


def _same(a: Job, b: Job) -> bool:
    return (a.status, a.progress, a.message, a.updated_at, a.attempt) == (
        b.status,
        b.progress,
        b.message,
        b.updated_at,
        b.attempt,
    )


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
