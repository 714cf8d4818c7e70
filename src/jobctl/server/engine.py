"""The durable step engine: claims jobs, runs their functions with memoized steps.

Execution follows Inngest's replay model in-process: a job function runs from the
top; `ctx.step.run` returns the stored result of a step that already completed
and runs the first one that has not, persisting its result before going on. A
crash loses at most the step that was running; the restarted server re-queues
the job and the replay skips everything already done.

Two kinds of fault are the store's, and the engine rides them out:

- A lost lease. Every write a worker makes for a job names its lease (owner and
  fencing token); a worker that stalled past its lease (SIGSTOP, a suspended VM, a
  partition from PostgreSQL) and was replaced is refused (LeaseLost), logs it and drops
  the job without writing anything. It also checks its lease before it starts a step's
  body when its renewal is overdue, so after a stall it does not run a step whose
  result is already someone else's.
- The store unavailable (disk full, read-only, locked, PostgreSQL unreachable): writes
  are kept and retried, with backoff, until they succeed; the job waits in its slot
  (the wait does not count towards its timeout), so nothing stays `running` without a
  worker. Pending time while the engine could not write does not count towards expiry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from jobctl.server.changes import ChangeBus
from jobctl.server.jobcontext import JobCancelled, JobContext, JobSuspended
from jobctl.server.joberrors import NonRetriableError, StepError
from jobctl.server.records import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    TERMINAL,
    Change,
    JobRow,
    Limits,
    StepRow,
    dumps,
    now_us,
)
from jobctl.server.registry import JobType, Registry
from jobctl.server.store.base import (
    SWEEP_BATCH,
    FinishWrite,
    Lease,
    LeaseLost,
    ProgressWrite,
    StepWrite,
    StorageUnavailable,
    Store,
)

log = logging.getLogger("jobctl.engine")
T = TypeVar("T")
W = TypeVar("W")

DEV_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
INNGEST_BACKOFF = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0, 7200.0)

US = 1_000_000
PEER_TTL = 5.0  # seconds: a server not seen holding a job for this long is forgotten
RANK_STEP = 0.002  # seconds between the looks of successive ranks (see _on_pending)
RANK_TTL = 0.1  # seconds a computed rank is reused
RETRY_FIRST, RETRY_MAX = 0.05, 2.0  # seconds between tries of a write the store refused
RETENTION_PAUSE = 0.005  # seconds between two batches of the retention sweep
SWEEP_FIRST = 20  # rows in the sweep's first batch (then adapted, up to SWEEP_BATCH)
# Seconds a sweep batch should take. On SQLite a batch runs in its own thread (the loop
# free) but holds the one writer: the server's writes wait for its commit.
SWEEP_TARGET = 0.02
EXPIRY_BATCH = 100  # jobs failed per statement by expiry
OUTAGES_KEPT = 256  # periods the store was unavailable, kept for expiry
PROGRESS_TICK = 0.002  # seconds progress reports and step rows gather before a transaction
PROGRESS_BATCH = 32  # writes per transaction at most: keeps each stamp-to-commit short
# Batches of one writer being written at once. A SQLite write does not wait (it holds the
# loop), so there it is always one; a PostgreSQL batch waits for a round trip per write
# and its commit, and one at a time could not keep up with 5,000 jobs in flight (#15).
# Batches in flight never share a job (a job waits for its write) and each takes its
# rows' locks in job-id order, so they neither reorder a job's writes nor deadlock.
FLUSHES_IN_FLIGHT = 2


def _rank_key(owner: str) -> bytes:
    """The same on every server (hash() of a str is salted per process)."""
    return hashlib.blake2b(owner.encode(), digest_size=8).digest()


@dataclass
class EngineSettings:
    slots: int = 8
    lease_seconds: float = 30.0
    poll_interval: float = 0.002  # how often to look for jobs written by other processes
    # A store with a change feed (PostgreSQL) wakes the dispatcher for new work; it looks
    # anyway this often, for a missed notification or a job scheduled for later.
    fallback_lookup: float = 1.0
    # A store without one (SQLite) is looked at every poll_interval while anything happened
    # in the last `poll_hot` seconds; then the look backs off, doubling, to `poll_idle` (an
    # idle server costs next to nothing: #15). The API's own writes wake the dispatcher at
    # once through the change bus, whatever the interval.
    poll_hot: float = 1.0
    poll_idle: float = 1.0
    backoff: Sequence[float] = DEV_BACKOFF
    suspend_after: float = 30.0  # step.sleep longer than this frees the slot
    limits: Limits = field(default_factory=Limits)
    expiry_interval: float = 5.0
    retention_interval: float = 60.0
    completed_retention_days: float = 30.0
    failed_retention_days: float = 7.0
    cancel_grace: float = 10.0  # then a step that ignores cancellation is interrupted
    idempotency_hours: float = 24.0
    single_process: bool = True  # the store is ours alone: every running job is an orphan
    stop_grace: float = 5.0  # on shutdown, running jobs get this long, then are re-queued


def format_seconds(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def timeout_message(job_type: str, seconds: float) -> str:
    return f"timed out: running longer than {format_seconds(seconds)} (the limit for {job_type})"


def expired_message(job_type: str, seconds: float) -> str:
    return f"expired: not started within {format_seconds(seconds)} (the limit for {job_type})"


def _first_start(row: JobRow) -> bool:
    """The claim that returned `row` was the job's first start: attempt 1, and the claim
    stamped started_at (it keeps an earlier start after a re-queue or a long sleep)."""
    return row.attempt == 1 and row.started_at == row.updated_at


@dataclass
class RunningJob:
    row: JobRow
    job_type: JobType
    steps: dict[str, StepRow]
    input: dict[str, Any]
    last_log_seq: int
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # The lease this run holds, and until when it was last known to hold it (store time,
    # microseconds): a step's body starts only on a lease known to be unexpired.
    lease: Lease = field(default=Lease("", 0))
    lease_until: int = 0
    lost: bool = False  # the lease was taken from us: write nothing more
    deadline: asyncio.Timeout | None = None  # the job's timeout, pushed back by store waits

    def __post_init__(self) -> None:
        if self.row.lease_owner is not None:
            self.lease = Lease.of(self.row)
            self.lease_until = self.row.lease_expires_at or 0


def _push_back(job: RunningJob, delay: float) -> None:
    """A wait for the store is not held against the job's timeout."""
    if job.deadline is not None:
        when = job.deadline.when()
        if when is not None:
            job.deadline.reschedule(when + delay)


class _GroupWriter(Generic[W]):
    """Writes many jobs make, gathered into one transaction: the writes queued within a
    tick (PROGRESS_TICK) go in one store call (FLUSHES_IN_FLIGHT of them at once at most),
    each still fenced by its job's lease (the store checks each one's token; a refused
    one is that job's LeaseLost alone), kept and tried again through an outage, the jobs
    waiting in their slots. With thousands of jobs in flight this is one commit per
    tick, not one per write. A job waits for its write, so it has at most one queued
    here and does not change it meanwhile."""

    doing = "writing"
    tick = PROGRESS_TICK  # seconds a write waits for others before its batch starts

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[tuple[RunningJob, W, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()  # batches being written
        self.batches = 0

    async def _store_many(self, writes: list[W]) -> Sequence[Any]:
        """One store call for the batch: in each write's place its result or LeaseLost."""
        raise NotImplementedError

    async def _put(self, job: RunningJob, write: W) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((job, write, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._flush_loop(), name=f"jobctl-{self.doing}")
        return await future

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            await asyncio.sleep(self.tick if len(self._queue) < PROGRESS_BATCH else 0)
            if len(self._flushing) >= FLUSHES_IN_FLIGHT:
                await asyncio.wait(self._flushing, return_when=asyncio.FIRST_COMPLETED)
                continue
            batch = self._queue[:PROGRESS_BATCH]
            del self._queue[:PROGRESS_BATCH]
            task = loop.create_task(self._flush_one(batch), name=f"jobctl-{self.doing}-batch")
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush_one(self, batch: list[tuple[RunningJob, W, asyncio.Future[Any]]]) -> None:
        try:
            await self._flush(batch)
        except Exception as exc:  # a bug, not the store: each waiter hears of it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)

    async def _flush(self, batch: list[tuple[RunningJob, W, asyncio.Future[Any]]]) -> None:
        engine = self.engine
        delay = RETRY_FIRST
        while True:
            live = []
            for item in batch:
                job, _, future = item
                if future.done():  # the job was cancelled while it waited
                    continue
                if job.lost:
                    future.set_exception(LeaseLost(job.row.id))
                    continue
                live.append(item)
            if not live:
                return
            try:
                results = await self._store_many([w for _, w, _ in live])
            except StorageUnavailable as exc:
                engine._store_failed(exc, self.doing)
                for job, _, _ in live:
                    _push_back(job, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                batch = live
                continue
            engine._store_ok()
            self.batches += 1
            for (job, _, future), result in zip(live, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, LeaseLost):
                    engine.lost_lease(job, self.doing)
                    future.set_exception(LeaseLost(job.row.id))
                else:
                    future.set_result(result)
            return


class ProgressWriter(_GroupWriter[ProgressWrite]):
    """Every running job's progress reports (Store.set_progress_many)."""

    doing = "reporting progress"

    async def write(self, job: RunningJob, progress: int | None, message: str | None) -> Any:
        """The job's row after the write (None: no longer running); LeaseLost if refused."""
        return await self._put(job, ProgressWrite(job.row.id, job.lease, progress, message))

    async def _store_many(self, writes: list[ProgressWrite]) -> Sequence[Any]:
        return await self.engine.store.set_progress_many(writes, now_us())


class FinishWriter(_GroupWriter[FinishWrite]):
    """Every job's end (Store.finish_jobs_many). The jobs that end within one pass of the
    loop (a batch's steps are written together, so its jobs end together) are written in
    one transaction: no tick of waiting, since a job's slot is free only once its end is
    written. On SQLite a commit's cost is mostly its pages (every index of jobs and the
    stats rollups are rewritten on a job's end): one commit for the batch shares them (#15)."""

    doing = "finishing a job"
    tick = 0.0

    async def write(self, job: RunningJob, w: FinishWrite) -> Any:
        """The job's row after the write (None: no longer running); LeaseLost if refused."""
        return await self._put(job, w)

    async def _store_many(self, writes: list[FinishWrite]) -> Sequence[Any]:
        return await self.engine.store.finish_jobs_many(writes, now_us())


class StepWriter(_GroupWriter[StepWrite]):
    """Every running job's step rows (Store.save_steps_many): a step's start and its
    result, two writes per step, were two commits each (#15)."""

    doing = "saving a step"

    async def write(self, job: RunningJob, step: StepRow) -> None:
        """Stored (or LeaseLost) when this returns; `step` must not change meanwhile."""
        await self._put(job, StepWrite(step, job.lease))

    async def _store_many(self, writes: list[StepWrite]) -> Sequence[Any]:
        return await self.engine.store.save_steps_many(writes)


class Engine:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        settings: EngineSettings,
        *,
        up_since: int | None = None,
    ) -> None:
        """`up_since`: since when this engine counts as able to run jobs, for expiry (now;
        a pending job's wait before that is not held against it)."""
        self.store = store
        self.registry = registry
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[str, RunningJob] = {}
        # Claimed jobs of types this server does not have, failed one at a time (they
        # hold a slot until then, so that claims do not outrun the failing).
        self._unknown: collections.deque[JobRow] = collections.deque()
        self._unknown_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._next_due: int | None = 0
        self._version: int | None = None
        self._held_back = False  # due jobs were left pending by limits at the last claim
        # The last claim came back short: the queue looked empty, so new work must wake us.
        # (After a full claim we claim again as soon as a slot frees anyway.)
        self._short = True
        # Other servers on a shared store, by owner id -> when we last saw them hold a job
        # (monotonic seconds); our rank among them; the new jobs we left to them, not yet
        # seen claimed, and the timer of our look at those (see _on_pending).
        self._peers: dict[str, float] = {}
        self._rank = 0
        self._ranked_at = -RANK_TTL
        self._unclaimed: set[str] = set()
        self._spill_timer: asyncio.TimerHandle | None = None
        self.jobs_started = 0
        self.leases_lost = 0
        # Store health, for expiry: since when we could not write (None: we can), and
        # the periods we could not, as (start, end) in microseconds, oldest first.
        self._unavailable_since: int | None = None
        self._outages: list[tuple[int, int]] = []
        self._started_us = now_us() if up_since is None else up_since
        self._recovered = False
        self.progress_writer = ProgressWriter(self)
        self.step_writer = StepWriter(self)
        self.finish_writer = FinishWriter(self)
        store.changes.add_listener(self._on_change)

    @property
    def changes(self) -> ChangeBus:
        return self.store.changes

    # lifecycle ------------------------------------------------------------
    async def recover(self) -> None:
        """Re-queue what a stopped server left running (once; `start` does it if not yet).
        Run before serving, so that a store that fails here fails the start-up."""
        if self._recovered:
            return
        owner = None if self.settings.single_process else self.owner
        orphans = await self.store.requeue_orphans(now_us(), owner)
        if orphans:
            log.info("re-queued %d job(s) left running by a stopped server", len(orphans))
        self._recovered = True

    async def start(self) -> None:
        await self.recover()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._dispatch_loop(), name="jobctl-dispatch"),
            loop.create_task(self._lease_loop(), name="jobctl-leases"),
            loop.create_task(self._expiry_loop(), name="jobctl-expiry"),
            loop.create_task(self._retention_loop(), name="jobctl-retention"),
        ]

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; give running jobs `grace` seconds (settings.stop_grace), then put
        them back in the queue."""
        if grace is None:
            grace = self.settings.stop_grace
        self._stopping = True
        self._wake.set()
        if self._spill_timer is not None:
            self._spill_timer.cancel()
        tasks = [*self._tasks, *([self._unknown_task] if self._unknown_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        jobs = [j.task for j in self.running.values() if j.task is not None]
        if jobs:
            _, still = await asyncio.wait(jobs, timeout=grace)
            for task in still:
                task.cancel()
            for task in still:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def wake(self) -> None:
        """Something changed in the queue (a new job, a retry): look now."""
        self._next_due = 0
        self._wake.set()

    def backoff(self, attempt: int) -> float:
        table = self.settings.backoff or DEV_BACKOFF
        return float(table[min(attempt - 1, len(table) - 1)])

    # store faults -------------------------------------------------------------
    @property
    def store_available(self) -> bool:
        return self._unavailable_since is None

    def _store_failed(self, exc: StorageUnavailable, doing: str) -> None:
        if self._unavailable_since is None:
            self._unavailable_since = now_us()
            log.warning("the store is unavailable (%s, while %s); keeping what could not be"
                        " written and trying again", exc, doing)  # fmt: skip

    def _store_ok(self) -> None:
        since = self._unavailable_since
        if since is None:
            return
        self._unavailable_since = None
        now = now_us()
        self._outages.append((since, now))
        del self._outages[:-OUTAGES_KEPT]
        log.info("the store is available again, after %s", format_seconds((now - since) / US))
        self.wake()

    def available_us(self, start: int, end: int) -> int:
        """How much of [start, end] this engine was up with its store available: the time
        a pending job can fairly be said to have waited for."""
        start = max(start, self._started_us)
        if end <= start:
            return 0
        lost = 0
        outages = self._outages
        if self._unavailable_since is not None:
            outages = [*outages, (self._unavailable_since, end)]
        for a, b in outages:
            lost += max(0, min(b, end) - max(a, start))
        return max(0, end - start - lost)

    async def durable(
        self, job: RunningJob | None, doing: str, write: Callable[[], Awaitable[T]]
    ) -> T:
        """`write()`, tried again until the store takes it: what could not be written is
        kept (in the closure), and the job waits in its slot. The wait is not held against
        the job's timeout. LeaseLost ends the wait: another worker has the job."""
        delay = RETRY_FIRST
        while True:
            if job is not None and job.lost:
                raise LeaseLost(job.row.id)
            try:
                result = await write()
            except StorageUnavailable as exc:
                self._store_failed(exc, doing)
                if job is not None:
                    _push_back(job, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except LeaseLost:
                if job is not None:
                    self.lost_lease(job, doing)
                raise
            self._store_ok()
            return result

    def lost_lease(self, job: RunningJob, doing: str) -> None:
        """The store refused a write of ours for `job`: someone else holds it now."""
        if job.lost:
            return
        job.lost = True
        self.leases_lost += 1
        log.warning(
            "job %s: lost its lease while %s (this server stalled past it and the job was"
            " re-queued or taken over); abandoning it without writing anything more",
            job.row.id, doing,
        )  # fmt: skip
        job.cancel_event.set()  # wake it from any sleep, to stop at the next boundary

    async def check_lease(self, job: RunningJob) -> None:
        """Before a step's body: when our renewal of the lease is overdue (a stall: the
        event loop or the process stood still), make sure we still hold the job."""
        if job.lost:
            raise LeaseLost(job.row.id)
        lease_us = int(self.settings.lease_seconds * US)
        now = now_us()
        if now < job.lease_until - lease_us // 3:
            return
        until = now + lease_us
        held = await self.durable(
            job, "checking its lease",
            lambda: self.store.renew_leases(self.owner, {job.row.id: job.lease.token}, until),
        )  # fmt: skip
        if job.row.id not in held:
            self.lost_lease(job, "checking its lease before a step")
            raise LeaseLost(job.row.id)
        job.lease_until = until

    # the dispatcher ----------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        settings = self.settings
        lease_us = int(settings.lease_seconds * US)
        fallback_us = int(settings.fallback_lookup * US)
        data_version = getattr(self.store, "data_version", None)
        poll = settings.poll_interval
        active_at = time.monotonic()  # when something last happened (a change, a claim)
        while not self._stopping:
            free = settings.slots - len(self.running) - len(self._unknown)
            now = now_us()
            due = self._next_due is not None and self._next_due <= now
            if data_version is not None:
                try:
                    version = data_version()
                except Exception:  # a damaged or vanished file: claims will say so
                    version = None
                if version != self._version:
                    self._version = version
                    # While limits hold due jobs back, a claim passes over every one of
                    # them: another process's commit waits for the look due within a
                    # second, or for a freed slot.
                    due = due or not self._held_back
                    active_at = time.monotonic()
            if free > 0 and due:
                try:
                    rows = await self.store.claim_jobs(
                        self.owner, free, now, lease_us, settings.limits
                    )
                    self._store_ok()
                except StorageUnavailable as exc:
                    self._store_failed(exc, "claiming jobs")
                    await asyncio.sleep(0.5)
                    continue
                except Exception:
                    log.exception("claiming jobs failed; trying again shortly")
                    rows = []
                    await asyncio.sleep(0.5)
                for row in rows:
                    self._start(row)
                if rows:
                    active_at = time.monotonic()
                self._short = len(rows) < free
                if not self._short:
                    self._next_due = now  # there may be more: look again once a slot frees
                    continue
                if settings.single_process or settings.limits.active:
                    try:
                        nxt = await self.store.next_run_at()
                    except StorageUnavailable as exc:
                        self._store_failed(exc, "looking for work")
                        nxt = now
                    # Jobs held back by limits are due already: look again when a slot
                    # frees (wake), or after a second at most.
                    self._held_back = nxt is not None and nxt <= now
                    self._next_due = None if nxt is None else max(nxt, now + US)
                    if self._next_due is None and not settings.single_process:
                        # A shared store wakes us through its change feed; should a
                        # notification be missed (a reconnect), look anyway once a second.
                        self._next_due = now + fallback_us
                else:
                    # A shared store without limits: a short claim left nothing due (rows
                    # that other servers hold locked are theirs), and the change feed
                    # announces every pending row (_on_pending), so skip the look-up (a
                    # round trip per job when the queue runs empty) and look anyway once a
                    # second, for a missed notification or a job scheduled for later.
                    self._held_back = False
                    self._next_due = now + fallback_us
            if self._wake.is_set():
                active_at = time.monotonic()
            self._wake.clear()
            nxt = self._next_due
            free = settings.slots - len(self.running) - len(self._unknown)
            if data_version is None:
                # The store announces new work through its change feed (wake): sleep until
                # the next job is due, or a second, rather than polling.
                cap = settings.fallback_lookup
                timeout = cap if nxt is None or free <= 0 else (nxt - now_us()) / US
                timeout = min(cap, max(timeout, settings.poll_interval))
            else:
                # Outside writers are seen only by looking: every poll_interval while
                # anything happened in the last poll_hot seconds, then less and less
                # often, up to poll_idle (and never later than the next job is due).
                if time.monotonic() - active_at < settings.poll_hot:
                    poll = settings.poll_interval
                else:
                    poll = min(max(poll * 2, settings.poll_interval), settings.poll_idle)
                timeout = poll
                if nxt is not None and free > 0:
                    timeout = min(timeout, max((nxt - now_us()) / US, settings.poll_interval))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _start(self, row: JobRow) -> None:
        job_type = self.registry.get(row.type)
        if job_type is None:
            self._unknown.append(row)
            if self._unknown_task is None or self._unknown_task.done():
                self._unknown_task = asyncio.get_running_loop().create_task(
                    self._fail_unknowns(), name="jobctl-unknown-types"
                )
            return
        old = self.running.get(row.id)
        if old is not None:
            # Still here from a lease we lost (re-queued while we stalled), now claimed
            # anew: the old run is dropped; the store refuses its writes anyway.
            self.lost_lease(old, "running when the job was claimed again")
            if old.task is not None:
                old.task.cancel()
        job = RunningJob(row, job_type, {}, row.input_obj(), 0)
        self.running[row.id] = job
        self.jobs_started += 1
        job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"job-{row.id}")

    async def _fail_unknowns(self) -> None:
        """One at a time, with a pass of the loop between two: on a table of 10M rows a
        job's end costs the loop 2-3 ms, and a claim's worth of them failed in one pass
        (a task each) stalled it 20 ms and more (bench/history.py, #15)."""
        while self._unknown:
            try:
                await self._fail_unknown(self._unknown[0])
            except Exception:  # its lease runs out and it comes back
                log.exception("failing job %s of an unknown type", self._unknown[0].id)
            finally:
                self._unknown.popleft()
                self._wake.set()  # its slot is free
            await asyncio.sleep(0)

    async def _fail_unknown(self, row: JobRow) -> None:
        lease = Lease.of(row)
        error = (f"job type {row.type!r} is not registered on this server"
                 " (start it with --functions MODULE)")  # fmt: skip
        with contextlib.suppress(LeaseLost):
            await self.durable(
                None, "failing a job of an unknown type",
                lambda: self.store.finish_job(
                    row.id, lease, FAILED, None, error, "Unknown job type", now_us()
                ),
            )  # fmt: skip

    # running one job -------------------------------------------------------
    async def _run(self, job: RunningJob) -> None:
        row = job.row
        store = self.store
        lease = job.lease
        try:
            if not _first_start(row):  # a first start has no steps or logs to replay
                steps = await self.durable(job, "loading steps", lambda: store.load_steps(row.id))
                job.steps = {s.step_id: s for s in steps}
                job.last_log_seq = await self.durable(
                    job, "loading logs", lambda: store.last_log_seq(row.id)
                )
            timeout = job.job_type.timeout
            started = row.started_at or now_us()
            remaining = timeout - (now_us() - started) / US
            outcome = await self._attempts(job, max(remaining, 0.0))
            await self._finish(job, *outcome)
        except LeaseLost:
            self.lost_lease(job, "running it")
        except asyncio.CancelledError:
            if job.lost:
                pass
            elif self._stopping:
                with contextlib.suppress(Exception, LeaseLost):
                    await store.suspend_job(
                        row.id, lease, now_us(), "Interrupted by a server shutdown", now_us()
                    )
            else:  # cancelled by request and the step ignored it past the grace period
                with contextlib.suppress(Exception, LeaseLost):
                    await store.finish_job(row.id, lease, CANCELLED, None, None, None, now_us())
        except Exception:
            log.exception("internal error running job %s", row.id)
            with contextlib.suppress(Exception, LeaseLost):
                await self.durable(
                    job, "failing a job",
                    lambda: store.finish_job(row.id, lease, FAILED, None,
                                             "internal error in the job engine", "Failed",
                                             now_us()),
                )  # fmt: skip
        finally:
            if self.running.get(row.id) is job:
                del self.running[row.id]
            self._wake.set()

    async def _attempts(self, job: RunningJob, timeout: float) -> tuple[str, Any, str | None]:
        """Run the function (again after errors outside steps); -> (status, output, error)."""
        max_attempts = job.job_type.retries + 1
        attempt = 1
        while True:
            ctx = JobContext(self, job)
            try:
                async with asyncio.timeout(timeout) as deadline:
                    job.deadline = deadline
                    result = await job.job_type.fn(ctx)
                await ctx.flush_logs()
                try:
                    return COMPLETED, dumps(result), None
                except (TypeError, ValueError) as exc:
                    return FAILED, None, f"the job returned a value that is not JSON: {exc}"
            except JobCancelled:
                await ctx.flush_logs()
                return CANCELLED, None, None
            except JobSuspended as exc:
                await ctx.flush_logs()
                return "suspend", exc, None
            except TimeoutError:
                if not deadline.expired():
                    raise
                await ctx.flush_logs()
                return FAILED, None, timeout_message(job.row.type, job.job_type.timeout)
            except (StepError, NonRetriableError) as exc:
                await ctx.flush_logs()
                return FAILED, None, str(exc) or type(exc).__name__
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt >= max_attempts or ctx.is_cancelled:
                    ctx.log(f"job failed after {attempt} attempts: {message}", "error")
                    await ctx.flush_logs()
                    return (CANCELLED, None, None) if ctx.is_cancelled else (FAILED, None, message)
                delay = self.backoff(attempt)
                ctx.log(f"job raised {message}; retrying in {delay:g}s", "warning")
                await ctx.flush_logs()
                await ctx.sleep_or_cancel(delay)
                attempt += 1

    async def _finish(self, job: RunningJob, status: str, output: Any, error: str | None) -> None:
        row = job.row
        lease = job.lease
        if status == "suspend":
            await self.durable(
                job, "suspending a job",
                lambda: self.store.suspend_job(
                    row.id, lease, output.until_us, f"Sleeping ({output.name})", now_us()
                ),
            )  # fmt: skip
            self.wake()
            return
        # A completed job keeps its last progress message (its summary); None -> "completed".
        message = {COMPLETED: None, FAILED: "Failed", CANCELLED: "Cancelled"}[status]
        if self.store.finishes_together:
            done = await self.finish_writer.write(
                job, FinishWrite(row.id, lease, status, output, error, message)
            )
        else:
            done = await self.durable(
                job, "finishing a job",
                lambda: self.store.finish_job(row.id, lease, status, output, error, message,
                                              now_us()),
            )  # fmt: skip
        if status == FAILED and done is not None and job.job_type.on_failure is not None:
            ctx = JobContext(self, job)
            try:
                await job.job_type.on_failure(ctx, error or "")
                await ctx.flush_logs()
            except Exception:
                log.exception("on_failure hook of %s raised", row.type)

    # cancellation, leases, expiry, retention ---------------------------------
    def _on_change(self, change: Change) -> None:
        if change.table != "jobs" or not isinstance(change.row, JobRow):
            return
        row = change.row
        if row.status == PENDING:
            self._on_pending(row)  # new or re-queued work, possibly from another server
        else:
            self._unclaimed.discard(row.id)  # claimed (or cancelled) already
            if row.lease_owner is not None and row.lease_owner != self.owner:
                self._peers[row.lease_owner] = time.monotonic()
            if row.status in TERMINAL and self._held_back:
                self.wake()  # a freed limit
        job = self.running.get(change.job_id)
        if job is None:
            return
        if row.lease_token > job.lease.token and not job.lost:
            # Re-queued, claimed or retried since our claim: the lease is no longer ours
            # (a shared store tells us before our next write would).
            self.lost_lease(job, "hearing that the job was re-queued")
            return
        if row.lease_owner != self.owner or row.attempt != job.row.attempt:
            # Not about our claim: a shared store can deliver a change committed before
            # we claimed the job (its insert, an earlier run) after the claim.
            return
        if row.status != RUNNING and not job.cancel_event.is_set():
            job.cancel_event.set()
            asyncio.get_running_loop().call_later(
                self.settings.cancel_grace, self._hard_cancel, change.job_id, job
            )

    def _on_pending(self, row: JobRow) -> None:
        """Wake for a pending row, but not every server at once on a shared store.

        Only a server whose last claim came back short cares (the others claim again when
        a slot frees). The servers seen holding jobs lately are ranked the same way on
        every server, by a hash of their ids: the first claims at once, and the k-th
        looks after k * RANK_STEP, once for all the jobs announced meanwhile, if one of
        them has not been seen claimed by then. So work gathers on one server while it
        has free slots and spills over to the next when it has none (spread evenly, each
        job would wake a mostly idle process). Every server ranks itself among the peers
        it knows, so someone claims at once; a peer not known yet only adds a claim, a
        stale one a step.
        """
        if not self._short:
            return
        if row.run_at > now_us():  # scheduled for later (a long sleep): look then
            if self._next_due is None or row.run_at < self._next_due:
                self._next_due = row.run_at
                self._wake.set()
            return
        rank = self._my_rank()
        if rank == 0:
            self.wake()
            return
        self._unclaimed.add(row.id)
        if self._spill_timer is None:
            self._spill_timer = asyncio.get_running_loop().call_later(rank * RANK_STEP, self._spill)

    def _my_rank(self) -> int:
        now = time.monotonic()
        if now - self._ranked_at >= RANK_TTL:
            for owner, seen in list(self._peers.items()):
                if now - seen > PEER_TTL:
                    del self._peers[owner]
            mine = _rank_key(self.owner)
            self._rank = sum(_rank_key(owner) < mine for owner in self._peers)
            self._ranked_at = now
        return self._rank

    def _spill(self) -> None:
        self._spill_timer = None
        if self._unclaimed:  # left pending by the servers ranked before us: claim
            self._unclaimed.clear()
            self.wake()

    def _hard_cancel(self, job_id: str, job: RunningJob) -> None:
        if self.running.get(job_id) is job and job.task is not None and not job.task.done():
            log.warning("job %s ignored cancellation for %ss; interrupting it", job_id,
                        self.settings.cancel_grace)  # fmt: skip
            job.task.cancel()

    async def _lease_loop(self) -> None:
        period = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self.lease_tick()
            except StorageUnavailable as exc:
                self._store_failed(exc, "renewing leases")
            except Exception:
                log.exception("renewing leases failed")

    async def lease_tick(self) -> None:
        """Renew our leases, then re-queue jobs whose lease ran out: another server's that
        died, or, on a store of our own, one of ours that lost its worker (a bug, a task
        that ended without its finish): nothing stays `running` without a worker."""
        await self.renew_leases()
        orphans = await self.store.requeue_orphans(now_us(), self.owner)
        if orphans:
            log.info("re-queued %d job(s) whose worker lease ran out", len(orphans))
        self._store_ok()

    async def renew_leases(self) -> None:
        """Extend the leases of the jobs we run; a job whose lease was taken from us while
        we stood still is dropped (its next write would be refused anyway)."""
        jobs = [job for job in self.running.values() if not job.lost]
        if not jobs:
            return
        until = now_us() + int(self.settings.lease_seconds * US)
        held = await self.store.renew_leases(
            self.owner, {job.row.id: job.lease.token for job in jobs}, until
        )
        for job in jobs:
            if job.row.id in held:
                job.lease_until = until
            elif self.running.get(job.row.id) is job and job.task and not job.task.done():
                self.lost_lease(job, "renewing its lease")

    async def expire_once(self) -> int:
        types = self.registry.types()
        if not types:
            return 0
        now = now_us()
        min_run = min(t.timeout for t in types)
        min_pending = min(t.pending_timeout for t in types)
        rows = await self.store.active_jobs_older_than(
            now - int(min_run * US), now - int(min_pending * US), types=[t.name for t in types]
        )
        # Fail them a batch at a time (one statement each), yielding between batches.
        by_message: dict[str, list[str]] = {}
        for row in rows:
            job_type = self.registry.get(row.type)
            if job_type is None:
                continue
            if row.status == RUNNING and row.started_at is not None:
                if row.id in self.running:
                    continue  # ours: its timeout is enforced in-process, less store waits
                if now - row.started_at > job_type.timeout * US:
                    msg = timeout_message(row.type, job_type.timeout)
                    by_message.setdefault(msg, []).append(row.id)
            elif self.available_us(row.created_at, now) > job_type.pending_timeout * US:
                # Time pending counts only while this engine was up and could write: a
                # job is never failed for what the server itself could not do.
                msg = expired_message(row.type, job_type.pending_timeout)
                by_message.setdefault(msg, []).append(row.id)
        expired = 0
        for msg, ids in by_message.items():
            for i in range(0, len(ids), EXPIRY_BATCH):
                expired += len(await self.store.fail_jobs(ids[i : i + EXPIRY_BATCH], msg, now))
                await asyncio.sleep(0)
        return expired

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.expiry_interval)
            try:
                await self.expire_once()
            except StorageUnavailable as exc:
                self._store_failed(exc, "expiring jobs")
            except Exception:
                log.exception("expiring jobs failed")

    async def sweep_retention(self, pause: float = RETENTION_PAUSE) -> int:
        """Delete finished jobs past retention, a batch per transaction, pausing between
        batches so that the server's own writes go first. Where the store has one writer
        (SQLite), the batch adapts to take about SWEEP_TARGET: halved when a batch took
        longer, doubled up to SWEEP_BATCH when it took under half."""
        day = 86_400 * US
        now = now_us()
        completed_before = now - int(self.settings.completed_retention_days * day)
        failed_before = now - int(self.settings.failed_retention_days * day)
        # PostgreSQL's writers are many: full batches there
        adapt = self.store.writes_hold_the_loop
        deleted, batch = 0, SWEEP_FIRST if adapt else SWEEP_BATCH
        while True:
            started = time.perf_counter()
            n = await self._sweep_batch(completed_before, failed_before, batch)
            took = time.perf_counter() - started
            deleted += n
            if n < batch:
                return deleted
            if not adapt:
                pass
            elif took > SWEEP_TARGET and batch > 10:
                batch //= 2
            elif took < SWEEP_TARGET / 2:
                batch = min(batch * 2, SWEEP_BATCH)
            await asyncio.sleep(pause)

    async def _sweep_batch(self, completed_before: int, failed_before: int, limit: int) -> int:
        n = await self.store.sweep(completed_before, failed_before, limit)
        if getattr(self.store, "data_version", None) is not None:
            # The store takes its sweep's commits for its own (they set off no claim), and
            # with them any other process's that slipped in beside one: look within a second.
            look_by = now_us() + US
            if self._next_due is None or self._next_due > look_by:
                self._next_due = look_by
        return n

    async def _retention_loop(self) -> None:
        while True:
            try:
                deleted = await self.sweep_retention()
                if deleted:
                    log.info("retention: deleted %d finished job(s)", deleted)
            except StorageUnavailable as exc:
                self._store_failed(exc, "deleting old jobs")
            except Exception:
                log.exception("retention sweep failed")
            await asyncio.sleep(self.settings.retention_interval)
