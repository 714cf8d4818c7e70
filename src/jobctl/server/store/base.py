"""The store interface. Both stores implement it; the engine and API use only this."""

from __future__ import annotations

import abc
import base64
import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from jobctl.server.changes import ChangeBus
from jobctl.server.records import JOB_SELECT, JobRow, Limits, LogRow, NewJob, StepRow
from jobctl.server.schedule_records import EventRow, FirePlan, RunRow, ScheduleRow

# The scheduler's rule for one due schedule, given whether its last job is still active.
PlanFn = Callable[[ScheduleRow, bool], FirePlan | None]
# Given the outcome of each create of a batch, (row, created) in order, inside its
# transaction: the event-history rows to commit with the jobs.
HistoryFn = Callable[[list[tuple[JobRow, bool]]], list[EventRow]]


DIALECTS = ("sqlite", "postgres")


def migrations(dialect: str = "sqlite") -> list[tuple[str, str]]:
    """(name, sql) of every migration, in order. Most are plain SQL for both stores
    (`0001_init.sql`); one that needs each database's own language (triggers) comes as
    `NNNN_name.sqlite.sql` and `NNNN_name.postgres.sql`, recorded by both stores under
    the one name `NNNN_name.sql`."""
    folder = resources.files("jobctl.server.store") / "migrations"
    found: dict[str, str] = {}
    for p in folder.iterdir():
        if not p.name.endswith(".sql"):
            continue
        stem = p.name[: -len(".sql")]
        base, _, suffix = stem.rpartition(".")
        if base and suffix in DIALECTS:
            if suffix == dialect:
                found[base + ".sql"] = p.read_text()
        else:
            found[p.name] = p.read_text()
    return sorted(found.items())


DIALECT_MARK = "-- dialect:"


def split_sql(script: str, dialect: str = "all") -> list[str]:
    """The statements of a migration for one store ("sqlite" or "postgresql"/"postgres").
    A line `-- dialect: sqlite` (or `postgresql`, or `all`) starts a part for that store only
    (or for both again); a migration without such lines is the same for both. Statements
    split on `;`, except inside a `$$`-quoted body (PostgreSQL functions) or a
    `CREATE TRIGGER ... END` block (SQLite)."""
    dialect = "postgresql" if dialect == "postgres" else dialect
    lines: list[str] = []
    part = "all"
    for line in script.splitlines():
        text = line.strip()
        if text.startswith(DIALECT_MARK):
            part = text.removeprefix(DIALECT_MARK).strip()
            if part not in ("all", "sqlite", "postgresql"):
                raise ValueError(f"unknown dialect in a migration: {part!r}")
        elif not text.startswith("--") and (part == "all" or dialect in ("all", part)):
            lines.append(line)
    out: list[str] = []
    current = ""
    for piece in "\n".join(lines).split(";"):
        current = f"{current};{piece}" if current else piece
        text = current.strip()
        open_dollar = text.count("$$") % 2 == 1
        upper = text.upper()
        open_trigger = (
            upper.startswith("CREATE TRIGGER")
            and re.search(r"\bBEGIN\b", upper) is not None
            and not upper.endswith("END")
        )
        if open_dollar or open_trigger:
            continue
        if text:
            out.append(text)
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


class StorageUnavailable(Exception):
    """The store could not be read or written: the disk is full or read-only, the
    database is locked for too long or damaged, PostgreSQL is unreachable. Nothing of
    the failed call was committed (or, for a lost connection, it may have been: every
    write of the engine is safe to repeat). The API answers 503 storage_unavailable;
    the engine keeps what it could not write and tries again."""


class LeaseLost(BaseException):
    """A worker wrote for a job it no longer holds: its lease ran out and the job was
    re-queued, claimed by another worker, or retried. Nothing was written. A
    BaseException, so that a job's `except Exception` cannot swallow it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id}: this worker no longer holds its lease")
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class Lease:
    """What a worker holds while it runs a job: its owner id and the job's fencing
    token as its claim set it. Every write a worker makes for the job names both."""

    owner: str
    token: int

    @classmethod
    def of(cls, row: JobRow) -> Lease:
        if row.lease_owner is None:
            raise ValueError(f"job {row.id} is not leased")
        return cls(row.lease_owner, row.lease_token)


def guard_storage(
    cls: type[Store], is_storage_error: Callable[[BaseException], bool], name: str
) -> None:
    """Wrap each Store method of `cls`: an error that `is_storage_error` says is the
    storage's (not a bug, not bad input) becomes StorageUnavailable. One place per store
    decides what a storage fault is; callers see one exception for all of them."""
    for method in sorted(Store.__abstractmethods__ - {"close"}):
        fn = getattr(cls, method)

        @functools.wraps(fn)
        async def guarded(
            self: Store, *args: Any, _fn: Callable[..., Awaitable[Any]] = fn, **kwargs: Any
        ) -> Any:
            try:
                return await _fn(self, *args, **kwargs)
            except StorageUnavailable:
                raise
            except Exception as exc:
                if not is_storage_error(exc):
                    raise
                message = " ".join(str(exc).split())[:300] or type(exc).__name__
                raise StorageUnavailable(f"{name}: {message}") from exc

        setattr(cls, method, guarded)


@dataclass(frozen=True, slots=True)
class ProgressWrite:
    """One job's progress report, written with others in one transaction (fenced)."""

    job_id: str
    lease: Lease
    progress: int | None
    message: str | None


@dataclass(frozen=True, slots=True)
class FinishWrite:
    """One job's end (Store.finish_job's arguments), written with others in one
    transaction (fenced by `lease`)."""

    job_id: str
    lease: Lease
    status: str
    output: str | None
    error: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class StepWrite:
    """One job's step row, written with others in one transaction (fenced by `lease`)."""

    step: StepRow
    lease: Lease


@dataclass
class ListQuery:
    user_id: str | None  # None: every user's jobs (service role)
    statuses: list[str] = field(default_factory=list)
    type: str | None = None
    since_us: int | None = None
    limit: int = 50
    cursor: str | None = None
    id_prefix: str | None = None
    # Summaries leave out the big columns: a row not read for them holds '' and None.
    read_input: bool = True
    read_output: bool = True


def encode_cursor(created_at: int, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ValueError on a cursor we did not make."""
    padded = cursor + "=" * (-len(cursor) % 4)
    raw = base64.urlsafe_b64decode(padded.encode()).decode()
    created, job_id = raw.split(":", 1)
    return int(created), job_id


MINUTE_US = 60_000_000
SWEEP_BATCH = 500  # rows a retention or expiry statement touches at most


@dataclass(frozen=True)
class StatsWindow:
    """What /api/stats reads: whole minutes of completed_at (rollup rows) for the last
    hour, whole hours for the week, microseconds for the rest."""

    user_id: str | None
    hour_minute: int  # the first minute of "the last hour" (completed_at // MINUTE_US)
    week_minute: int  # "the last 7 days": from the start of the hour of this minute
    created_since: int
    stuck_started_before: int  # running since before this
    stuck_created_before: int  # or pending, never started, created before this
    stuck_ids: int = 50


@dataclass
class StatsFigures:
    counts: list[tuple[str, str, int]]  # (type, status, n) over every job
    last_hour: list[tuple[str, str, int, int, int]]  # (type, status, bucket, n, total_us)
    week: list[tuple[str, int, int, int]]  # completed, started: (type, bucket, n, total_us)
    created: int
    stuck: int
    stuck_ids: list[str]  # running ones first


def stats_queries(w: StatsWindow, *, pin: bool = False) -> dict[str, tuple[str, list[Any]]]:
    """The statements behind StatsFigures, with `?` placeholders (PostgreSQL: `%s`).
    Each reads an index range or rollup rows, never the history of jobs: finished jobs
    are counted in job_totals and the rollups of migrations 0006 and 0008 (the last hour
    in minutes and tens of minutes, the week in hours and days); pending and running ones
    live, over the partial index jobs_active. `pin` (SQLite): the stuck-job counts name
    their partial index (`INDEXED BY`); SQLite's planner takes the (status, created_at)
    one instead, and reads the table row of every pending job to check started_at."""
    by_user = "" if w.user_id is None else " AND user_id = ?"
    # stuck jobs of one user: `user_id || ''` keeps the planner off the user's index
    # (jobs_user_created would read the user's whole history), on the partial index
    # (which holds the user: migration 0008); a pinned index needs no such trick.
    by_user_late = "" if w.user_id is None else (by_user if pin else " AND user_id || '' = ?")
    running_from = "jobs INDEXED BY jobs_running_started" if pin else "jobs"
    pending_from = "jobs INDEXED BY jobs_unstarted" if pin else "jobs"
    u: list[Any] = [] if w.user_id is None else [w.user_id]
    first_ten = -(-w.hour_minute // 10)  # the last hour's first whole ten minutes
    week_hour = w.week_minute // 60  # the week starts at the start of its first hour
    first_day = -(-week_hour // 24)  # the week's first whole (UTC) day
    return {
        "totals": (
            "SELECT type, status, SUM(n) FROM job_totals WHERE n <> 0"
            f"{by_user} GROUP BY type, status",
            u,
        ),
        "active": (
            "SELECT type, status, COUNT(*) FROM jobs WHERE status IN ('pending', 'running')"
            f"{by_user} GROUP BY type, status",
            u,
        ),
        "last_hour": (
            # the minutes up to the first whole ten, then tens (migration 0008)
            "SELECT type, status, bucket, SUM(n), SUM(total_us) FROM ("
            "SELECT type, status, bucket, n, total_us FROM job_finish_minutes"
            f" WHERE minute >= ? AND minute < ?{by_user}"
            " UNION ALL SELECT type, status, bucket, n, total_us FROM job_finish_tens"
            f" WHERE ten >= ?{by_user}) h GROUP BY type, status, bucket",
            [w.hour_minute, first_ten * 10, *u, first_ten, *u],
        ),
        "week": (
            # whole hours: the hours up to the first whole day, then days (0008)
            "SELECT type, bucket, SUM(n), SUM(total_us) FROM ("
            "SELECT type, bucket, n, total_us FROM job_finish_hours WHERE hour >= ?"
            f" AND hour < ? AND status = 'completed' AND bucket >= 0{by_user}"
            " UNION ALL SELECT type, bucket, n, total_us FROM job_finish_days"
            f" WHERE day >= ? AND status = 'completed' AND bucket >= 0{by_user}"
            ") w GROUP BY type, bucket",
            [week_hour, first_day * 24, *u, first_day, *u],
        ),
        "created": (
            f"SELECT COUNT(*) FROM jobs WHERE created_at >= ?{by_user}",
            [w.created_since, *u],
        ),
        "stuck_running": (
            f"SELECT COUNT(*) FROM {running_from} WHERE status = 'running'"
            f" AND started_at < ?{by_user_late}",
            [w.stuck_started_before, *u],
        ),
        "stuck_pending": (
            f"SELECT COUNT(*) FROM {pending_from} WHERE status = 'pending' AND started_at IS NULL"
            f" AND created_at < ?{by_user_late}",
            [w.stuck_created_before, *u],
        ),
        "stuck_running_ids": (
            f"SELECT id FROM {running_from} WHERE status = 'running' AND started_at < ?{by_user_late}"
            " ORDER BY started_at LIMIT ?",
            [w.stuck_started_before, *u, w.stuck_ids],
        ),
        "stuck_pending_ids": (
            f"SELECT id FROM {pending_from} WHERE status = 'pending' AND started_at IS NULL"
            f" AND created_at < ?{by_user_late} ORDER BY created_at LIMIT ?",
            [w.stuck_created_before, *u, w.stuck_ids],
        ),
    }


def stats_figures(results: dict[str, list[Sequence[Any]]], w: StatsWindow) -> StatsFigures:
    """StatsFigures from the rows of each of stats_queries(w)."""

    def one(name: str) -> int:
        return int(results[name][0][0] or 0)

    counts = [(str(t), str(s), int(n)) for t, s, n in results["totals"]]
    counts += [(str(t), str(s), int(n)) for t, s, n in results["active"]]
    ids = [str(r[0]) for r in results["stuck_running_ids"]]
    ids += [str(r[0]) for r in results["stuck_pending_ids"]]
    return StatsFigures(
        counts=counts,
        last_hour=[
            (str(t), str(s), int(b), int(n), int(d)) for t, s, b, n, d in results["last_hour"]
        ],
        week=[(str(t), int(b), int(n), int(d)) for t, b, n, d in results["week"]],
        created=one("created"),
        stuck=one("stuck_running") + one("stuck_pending"),
        stuck_ids=ids[: w.stuck_ids],
    )


def expiry_queries(
    started_before: int, created_before: int, limit: int, types: Sequence[str] | None = None
) -> list[tuple[str, list[Any]]]:
    """Running jobs started before, then never-started pending jobs created before: each
    a range of a partial index (jobs_running_started, jobs_unstarted; migrations 0006,
    0008). `types`: of these types only (the ones a server runs: it would fetch the jobs
    of every other type only to pass over them, up to `limit` full rows each time), a
    filter that the partial indexes answer on their own (they hold the type)."""
    of_types = "" if types is None else f" AND type IN ({', '.join('?' * len(types))})"
    t: list[Any] = [] if types is None else list(types)
    if types is not None and not types:
        return []
    return [
        (f"SELECT {JOB_SELECT} FROM jobs WHERE status = 'running' AND started_at < ?{of_types}"
         " ORDER BY started_at LIMIT ?", [started_before, *t, limit]),
        (f"SELECT {JOB_SELECT} FROM jobs WHERE status = 'pending' AND started_at IS NULL"
         f" AND created_at < ?{of_types} ORDER BY created_at LIMIT ?", [created_before, *t, limit]),
    ]  # fmt: skip


def sweep_events_query(
    completed_before: int, failed_before: int, limit: int
) -> tuple[str, list[Any]]:
    """Events past retention, oldest first, a range of events_received: every event before
    the completed-job cut-off, and before the failed-job one those whose jobs are all gone."""
    return (
        "SELECT e.id FROM events e WHERE e.received_at < ? AND (e.received_at < ?"
        " OR NOT EXISTS (SELECT 1 FROM event_jobs ej JOIN jobs j ON j.id = ej.job_id"
        " WHERE ej.event_id = e.id)) ORDER BY e.received_at LIMIT ?",
        [max(completed_before, failed_before), completed_before, limit],
    )


def sweep_queries(completed_before: int, failed_before: int) -> list[tuple[str, list[Any]]]:
    """Finished jobs past retention, oldest first, a range of jobs_finished each (`LIMIT ?`
    to be bound to what is left of the batch)."""
    return [
        ("SELECT id FROM jobs WHERE status = 'completed' AND completed_at < ?"
         " ORDER BY status, completed_at LIMIT ?", [completed_before]),
        ("SELECT id FROM jobs WHERE status IN ('failed', 'cancelled') AND completed_at < ?"
         " LIMIT ?", [failed_before]),
    ]  # fmt: skip


class Store(abc.ABC):
    """Durable state. Every method commits before it returns, then announces on `changes`."""

    changes: ChangeBus
    description: str
    # True where a write runs on the event loop's thread (SQLite's one writer): a
    # long write then holds up everything, so batch jobs keep their writes short.
    writes_hold_the_loop: bool = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and run migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # jobs ---------------------------------------------------------------
    @abc.abstractmethod
    async def create_job(
        self, new: NewJob, now: int, idempotency_ttl_us: int
    ) -> tuple[JobRow, bool]:
        """Insert a job, or return the existing one for a live idempotency key (created=False)."""

    @abc.abstractmethod
    async def create_jobs(
        self,
        news: list[NewJob],
        now: int,
        idempotency_ttl_us: int,
        history: HistoryFn | None = None,
    ) -> list[tuple[JobRow, bool]]:
        """`create_job` for each, in order, in one transaction (a key used twice in the
        list: the second gets the first's job), with the event rows `history` returns for
        the outcomes. All or nothing: a storage fault commits none of them."""

    @abc.abstractmethod
    async def get_job(self, job_id: str, user_id: str | None) -> JobRow | None: ...

    @abc.abstractmethod
    async def list_jobs(self, query: ListQuery) -> tuple[list[JobRow], str | None]: ...

    @abc.abstractmethod
    async def count_running(self, user_id: str, concurrency_key: str | None) -> tuple[int, int]:
        """Running jobs of this user, and with this concurrency key."""

    @abc.abstractmethod
    async def claim_jobs(
        self, owner: str, limit: int, now: int, lease_us: int, limits: Limits
    ) -> list[JobRow]:
        """Move up to `limit` runnable pending jobs to running under `owner`, within limits."""

    @abc.abstractmethod
    async def next_run_at(self) -> int | None:
        """The earliest run_at among pending jobs (to sleep until then)."""

    @abc.abstractmethod
    async def renew_leases(self, owner: str, held: dict[str, int], until: int) -> set[str]:
        """Extend the leases of `held` (job id -> fencing token) that `owner` still holds;
        returns their ids. A job missing from the answer was taken from this worker."""

    @abc.abstractmethod
    async def requeue_orphans(self, now: int, owner: str | None) -> list[JobRow]:
        """Running jobs whose lease ran out go back to pending (a new fencing token: the
        worker that lost them can no longer write for them). With owner=None (a
        single-process store that holds the database lock) every running job is an orphan."""

    @abc.abstractmethod
    async def set_progress(
        self, job_id: str, lease: Lease, progress: int | None, message: str | None, now: int
    ) -> JobRow | None:
        """None when the job is no longer running (cancelled, expired) though the lease is
        still this worker's; LeaseLost when it is not."""

    @abc.abstractmethod
    async def set_progress_many(
        self, writes: list[ProgressWrite], now: int
    ) -> list[JobRow | LeaseLost | None]:
        """`set_progress` for each, in one transaction; in each one's place its row, None
        (no longer running) or the LeaseLost it would have raised (nothing written for it)."""

    @abc.abstractmethod
    async def finish_job(
        self,
        job_id: str,
        lease: Lease,
        status: str,
        output: str | None,
        error: str | None,
        message: str | None,
        now: int,
    ) -> JobRow | None:
        """End a running job. Releases the lease even when the job is no longer running
        (then None). A None message keeps the job's last message (or, if it has none, the
        status word). LeaseLost when the lease is no longer this worker's."""

    # Whether finish_jobs_many ends its jobs cheaper together than one call each (one
    # transaction on SQLite, one round trip on PostgreSQL), so that the engine gathers the
    # jobs that end together into one call.
    finishes_together = False

    @abc.abstractmethod
    async def finish_jobs_many(
        self, writes: list[FinishWrite], now: int
    ) -> list[JobRow | LeaseLost | None]:
        """`finish_job` for each, together where the store can; in each one's
        place its row, None or the LeaseLost it would have raised (nothing written for it)."""

    @abc.abstractmethod
    async def suspend_job(
        self, job_id: str, lease: Lease, run_at: int, message: str, now: int
    ) -> JobRow | None:
        """Back to pending until run_at (a long step.sleep), keeping the steps. None when
        the job is no longer running; LeaseLost when the lease is not this worker's."""

    @abc.abstractmethod
    async def cancel_job(self, job_id: str, user_id: str | None, now: int) -> JobRow:
        """Raises JobNotFound, or JobConflict when the job has finished."""

    @abc.abstractmethod
    async def retry_job(
        self,
        job_id: str,
        user_id: str | None,
        from_start: bool,
        now: int,
        input: str | None = None,
    ) -> JobRow:
        """Raises JobNotFound, or JobConflict unless the job failed or was cancelled.
        `input` (JSON text) replaces the job's input for the new attempt. A new fencing
        token: a worker still finishing the cancelled run cannot write into the new."""

    @abc.abstractmethod
    async def fail_jobs(self, job_ids: list[str], error: str, now: int) -> list[JobRow]:
        """Expiry: end these pending or running jobs as failed."""

    @abc.abstractmethod
    async def active_jobs_older_than(
        self,
        started_before: int,
        created_before: int,
        limit: int = 10_000,
        types: Sequence[str] | None = None,
    ) -> list[JobRow]:
        """Running jobs started before (oldest first), then never-started pending jobs
        created before (oldest first), up to `limit` of each (of `types` only, if given):
        index ranges."""

    @abc.abstractmethod
    async def sweep(
        self, completed_before: int, failed_before: int, limit: int = SWEEP_BATCH
    ) -> int:
        """Delete up to `limit` finished jobs past retention, with their steps, logs and
        idempotency keys, in one transaction; returns the count (the caller calls again,
        after yielding, while it is `limit`)."""

    # steps ----------------------------------------------------------------
    @abc.abstractmethod
    async def load_steps(self, job_id: str) -> list[StepRow]: ...

    @abc.abstractmethod
    async def save_step(self, step: StepRow, lease: Lease | None) -> None:
        """Insert or replace one step's row, if `lease` still holds the job (LeaseLost if
        not; a cancelled job's worker still holds it). None: unfenced, for tools and tests."""

    @abc.abstractmethod
    async def save_steps_many(self, writes: list[StepWrite]) -> list[LeaseLost | None]:
        """`save_step` for each, in one transaction; in each one's place None (written) or
        the LeaseLost it would have raised (nothing written for it)."""

    # logs -----------------------------------------------------------------
    @abc.abstractmethod
    async def append_logs(self, lines: list[LogRow], lease: Lease | None) -> None:
        """Add log lines; with a lease, lines of that one job, written only while the
        worker holds the job or has just let go of it (its own finish), else LeaseLost."""

    @abc.abstractmethod
    async def last_log_seq(self, job_id: str) -> int: ...

    @abc.abstractmethod
    async def list_logs(self, job_id: str, after: int, limit: int) -> list[LogRow]: ...

    # monitoring -----------------------------------------------------------
    @abc.abstractmethod
    async def stats(self, window: StatsWindow) -> StatsFigures:
        """The figures of /api/stats (stats_queries), read in one snapshot."""

    # schedules and the event history (migration 0005) -------------------------
    @abc.abstractmethod
    async def create_schedule(self, row: ScheduleRow) -> ScheduleRow:
        """Raises JobConflict when the user has a schedule of that name."""

    @abc.abstractmethod
    async def get_schedule(self, ref: str, user_id: str | None) -> ScheduleRow | None:
        """By id or by name (the user's own), with the last job's status."""

    @abc.abstractmethod
    async def list_schedules(self, user_id: str | None, limit: int) -> list[ScheduleRow]: ...

    @abc.abstractmethod
    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, note: str | None, next_tick: int | None, now: int
    ) -> ScheduleRow | None:
        """Pause, or resume from `next_tick` (ticks while paused are not run)."""

    @abc.abstractmethod
    async def delete_schedule(self, schedule_id: str) -> bool:
        """The schedule and its runs; its jobs stay."""

    @abc.abstractmethod
    async def list_schedule_runs(self, schedule_id: str, limit: int) -> list[RunRow]:
        """Newest tick first, with each job's status."""

    @abc.abstractmethod
    async def fire_due_schedules(self, now: int, limit: int, plan: PlanFn) -> tuple[int, int]:
        """Take up to `limit` due schedules that no other server holds, apply `plan` to
        each in one transaction. Returns (schedules looked at, jobs started)."""

    @abc.abstractmethod
    async def run_schedule(
        self, schedule_id: str, plan: Callable[[ScheduleRow], FirePlan]
    ) -> list[tuple[str, int, str | None]]:
        """Trigger/backfill: apply `plan` under the schedule's lock; -> (outcome, tick,
        job id) per run, `duplicate` for a tick that had a run already."""

    @abc.abstractmethod
    async def next_schedule_tick(self) -> int | None:
        """The earliest next tick of an active schedule."""

    @abc.abstractmethod
    async def sweep_history(
        self, completed_before: int, failed_before: int, limit: int = SWEEP_BATCH
    ) -> int:
        """Delete up to `limit` schedule runs and `limit` events past retention (events
        whose jobs are all gone after the failed-job period, every event after the
        completed-job one); the caller calls again while something was deleted."""

    @abc.abstractmethod
    async def record_events(self, events: list[EventRow]) -> None:
        """Insert events with the jobs each started (`event.job_ids`), in one transaction."""

    @abc.abstractmethod
    async def get_event(self, event_id: str, user_id: str | None) -> EventRow | None: ...

    @abc.abstractmethod
    async def list_events(
        self,
        user_id: str | None,
        name: str | None,
        since_us: int | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[EventRow], str | None]:
        """Newest first; the cursor is encode_cursor(received_at, id)."""

    @abc.abstractmethod
    async def events_for_job(self, job_id: str) -> list[EventRow]: ...
