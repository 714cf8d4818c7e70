"""SQLite store (WAL), the embedded default.

Writes run on the event loop's thread, on the one writer connection: each is a few
statements on a handful of rows (microseconds), and a thread hop per write would cost
more than the write. Reads whose cost is not such a constant (a list page, a job with
its input, logs, stats, events, schedules, the expiry's candidates) run in a small
thread pool, each thread on its own read-only connection: WAL lets readers run beside
the writer, each read sees every commit made before it started, and the loop goes on
serving while a read runs (sqlite3 lets go of the GIL inside SQLite). The retention
sweep deletes a bounded batch per call (the engine yields between batches).

One server process owns a database at a time (an exclusive lock file next to it),
which is what lets a restarted server re-queue every job the dead one was running,
at once.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import fcntl
import functools
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from jobctl.server.changes import ChangeBus
from jobctl.server.joberrors import ApiError, JobConflict, JobNotFound
from jobctl.server.records import (
    CANCELLED,
    FAILED,
    JOB_SELECT,
    PENDING,
    RUNNING,
    STEP_SELECT,
    TERMINAL,
    Change,
    JobRow,
    Limits,
    LogRow,
    NewJob,
    StepRow,
    now_us,
)
from jobctl.server.schedule_records import (
    EVENT_COLUMNS,
    EVENT_SELECT,
    RUN_COLUMNS,
    RUN_SELECT,
    SCHEDULE_COLUMNS,
    SCHEDULE_SELECT,
    EventRow,
    FirePlan,
    PlannedRun,
    RunRow,
    ScheduleRow,
)
from jobctl.server.store import listing
from jobctl.server.store.base import (
    SWEEP_BATCH,
    FinishWrite,
    HistoryFn,
    Lease,
    LeaseLost,
    ListQuery,
    PlanFn,
    ProgressWrite,
    StatsFigures,
    StatsWindow,
    StepWrite,
    StorageUnavailable,
    Store,
    decode_cursor,
    encode_cursor,
    expiry_queries,
    guard_storage,
    migrations,
    split_sql,
    stats_figures,
    stats_queries,
    sweep_events_query,
    sweep_queries,
)

T = TypeVar("T")
log = logging.getLogger("jobctl.store")

READERS = 2  # threads (each with its own connection) for reads off the event loop
# Checkpoints run in a thread of their own, not in the commit that fills the WAL
# (SQLite's wal_autocheckpoint, on the writer, on the event loop): a checkpoint copies the
# WAL into the database and syncs it, tens of ms on a busy disk, which with 5,000 jobs in
# flight was a stall of the whole server several times a second (#15). After a commit,
# once CHECKPOINT_ROWS rows were written since the last one began and CHECKPOINT_PAUSE
# passed: a PASSIVE checkpoint (it never waits for, nor holds up, the writer). The WAL
# starts over at the first write that finds it wholly copied; writes landing during every
# checkpoint (a retention sweep, thousands of jobs in flight) can keep that from ever
# happening. So past WAL_RESTART_BYTES the store's writes wait (awaiting, the loop free:
# reads, sockets and timers go on) for the next passive checkpoint to copy it all, and
# the first write after it starts the WAL over. A TRUNCATE checkpoint did the same while
# holding the writer lock, which the loop's next write waited on: 56-71 ms stalls of the
# whole server every 64 MB during a sweep (bench/history.py). journal_size_limit trims a
# WAL file that grew past WAL_RESTART_BYTES when it starts over.
CHECKPOINT_ROWS = 1000
CHECKPOINT_PAUSE = 0.1  # seconds
WAL_RESTART_BYTES = 64 * 1024 * 1024
WRITES_WAIT_MAX = 1.0  # seconds a write waits for that checkpoint, at most
PAGE_BYTES = 4096  # SQLite's default page size (a WAL frame holds one page)
# Page caches (negative: KiB). SQLite's default is 2 MB a connection: on a history of
# millions of jobs (GBs) every list page or sweep batch then reads most of its index
# pages from the OS again. The readers also map the file (pages shared with the OS
# cache, no copy; SQLite caps the map at its compile-time maximum, 2 GB by default).
WRITER_CACHE_KIB = -65536
READER_CACHE_KIB = -32768
READER_MMAP = 1 << 34


class DatabaseLocked(RuntimeError):
    pass


# Another process holding SQLite's write lock (a script writing to the database, a
# `sqlite3` shell) must not stop the server's loop: the writer's busy_timeout is 0, and a
# write call whose first BEGIN finds the lock taken awaits and tries again (the loop
# free), for BUSY_WAIT_MAX in all. Only where the call cannot simply start over (a call
# that has begun a transaction already, or a sync caller) does BEGIN wait in place.
BUSY_WAIT_MAX = 10.0  # seconds, as the busy_timeout the writer had
BUSY_RETRY_FIRST, BUSY_RETRY_MAX = 0.001, 0.05  # seconds between two tries


class _WriterBusy(Exception):
    """BEGIN IMMEDIATE found the write lock taken, before this call began anything."""


# Per write call (and task): [True] until the call's first BEGIN has gone through.
_may_start_over: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "jobctl_sqlite_may_start_over", default=None
)


def _is_busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == 5


class _BusyBackoff:
    """The pauses between tries of a BEGIN that found the lock taken: 1 ms doubling to
    50 ms, None once BUSY_WAIT_MAX has passed since the first."""

    def __init__(self) -> None:
        self._deadline = 0.0
        self._pause = BUSY_RETRY_FIRST

    def next_pause(self) -> float | None:
        now = time.monotonic()
        self._deadline = self._deadline or now + BUSY_WAIT_MAX
        if now >= self._deadline:
            return None
        pause, self._pause = self._pause, min(self._pause * 2, BUSY_RETRY_MAX)
        return pause


# Primary result codes that mean the storage failed, not the statement: the API answers
# 503 and the engine retries (codes from sqlite3.h).
STORAGE_CODES = frozenset({
    3,  # PERM
    5,  # BUSY: locked by another connection past busy_timeout
    6,  # LOCKED
    7,  # NOMEM
    8,  # READONLY
    10,  # IOERR
    11,  # CORRUPT: damaged pages
    13,  # FULL
    14,  # CANTOPEN
    15,  # PROTOCOL
    26,  # NOTADB
})  # fmt: skip


def is_storage_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is None or (code & 0xFF) in STORAGE_CODES
    return isinstance(exc, OSError)


def _owner_only(path: str) -> None:
    """The database and its WAL/SHM hold every user's inputs and outputs: 0600."""
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(name, mode & 0o700)


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class SQLiteStore(Store):
    writes_hold_the_loop = True

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.description = f"sqlite:{path}"
        self.changes = ChangeBus()
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._local = threading.local()
        self._checkpointer: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointing: concurrent.futures.Future[None] | None = None
        self._checkpoint_rows = 0  # total_changes when the last checkpoint began
        self._checkpoint_at = 0.0  # time.monotonic() then
        self._wal_frames = 0  # in the WAL at the last checkpoint (since it last began)
        # While a checkpoint that must copy the whole WAL runs: what writes wait for.
        self._writes_wait: asyncio.Future[None] | None = None
        self.checkpoints = 0  # run so far (a counter for tests and operators)
        self.wal_restarts = 0  # WAL restarts the checkpoint thread made (the same)
        # The retention sweep's batches, in their thread on their own connection; while
        # one runs, the writer is lent to it: what the store's writes wait for.
        self._sweeper: concurrent.futures.ThreadPoolExecutor | None = None
        self._sweep_conn: sqlite3.Connection | None = None
        self._sweep_changes = 0  # its total_changes after its last batch
        self._writer_lent: asyncio.Future[None] | None = None
        # data_version() as last reported, and (after the last batch, as reported then)
        self._version_seen: int | None = None
        self._version_alias: tuple[int, int] | None = None

    # lifecycle ------------------------------------------------------------
    def open_sync(self, *, lock: bool = True) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if lock:
            self._take_lock()
        # Created (and kept) 0600 before SQLite opens it: SQLite gives the WAL and SHM
        # files the database file's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        _owner_only(self.path)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        self._conn = conn
        self._migrate()
        conn.execute("PRAGMA busy_timeout=0")  # see BUSY_WAIT_MAX
        _owner_only(self.path)
        self._readers = concurrent.futures.ThreadPoolExecutor(READERS, "jobctl-sqlite-read")
        self._checkpointer = concurrent.futures.ThreadPoolExecutor(1, "jobctl-sqlite-checkpoint")
        self._sweeper = concurrent.futures.ThreadPoolExecutor(1, "jobctl-sqlite-sweep")

    def _connect(self) -> sqlite3.Connection:
        """A connection that writes: the writer's, or the sweep thread's."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # our checkpoint thread does it
        conn.execute(f"PRAGMA journal_size_limit={WAL_RESTART_BYTES}")
        conn.execute(f"PRAGMA cache_size={WRITER_CACHE_KIB}")
        # A statement that fires a trigger (the stats rollups) keeps a statement journal
        # (to undo just that statement); with temp files on disk, SQLite created, wrote
        # and unlinked a file for it in every finishing transaction (#15). The writer's
        # statements are each a few rows, so in memory it is a few KB.
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    async def open(self) -> None:
        self.open_sync()

    def _take_lock(self) -> None:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseLocked(
                f"another jobctl server is using {self.path}; "
                "stop it first, or use PostgreSQL to run several servers"
            ) from None
        self._lock_fd = fd

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        if self._readers is not None:
            self._readers.shutdown(wait=True, cancel_futures=True)
            self._readers = None
        if self._checkpointer is not None:
            self._checkpointer.shutdown(wait=True, cancel_futures=True)
            self._checkpointer = None
        if self._sweeper is not None:
            self._sweeper.shutdown(wait=True, cancel_futures=True)
            self._sweeper = None
        for attr in ("_checkpoint_conn", "_sweep_conn"):
            other = getattr(self, attr)
            if other is not None:
                other.close()
                setattr(self, attr, None)
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for reader in conns:
            reader.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    # checkpoints off the loop ----------------------------------------------
    def _committed(self) -> None:
        """After each commit of the writer: start a checkpoint in its thread when due."""
        if self._checkpointer is None or self._checkpointing is not None:
            return
        rows = self.conn.total_changes + self._sweep_changes
        if rows - self._checkpoint_rows < CHECKPOINT_ROWS:
            return
        now = time.monotonic()
        if now - self._checkpoint_at < CHECKPOINT_PAUSE:
            return
        self._checkpoint_rows, self._checkpoint_at = rows, now
        try:
            self._checkpointing = self._checkpointer.submit(self._checkpoint)
        except RuntimeError:  # shutting down
            return
        self._checkpointing.add_done_callback(self._checkpoint_done)
        if self._wal_frames * PAGE_BYTES >= WAL_RESTART_BYTES:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a sync caller (no loop): nothing waits
                return
            wait = asyncio.wrap_future(self._checkpointing, loop=loop)
            wait.add_done_callback(self._writes_may_go)
            self._writes_wait = wait

    def _writes_may_go(self, wait: asyncio.Future[None]) -> None:
        if self._writes_wait is wait:
            self._writes_wait = None

    async def _before_write(self) -> None:
        """Let the checkpoint that copies the whole WAL finish first (at most a second)."""
        wait = self._writes_wait
        if wait is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(wait), WRITES_WAIT_MAX)

    def _checkpoint(self) -> None:
        """In the checkpoint thread, on its own connection."""
        conn = self._checkpoint_conn
        if conn is None:
            conn = self._checkpoint_conn = self._connect()  # journal_size_limit: see below
            conn.execute("PRAGMA busy_timeout=0")
        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self._wal_frames = frames  # the WAL's size since it began
        self.checkpoints += 1
        if frames > 0 and copied == frames:
            self._restart_wal(conn)

    def _restart_wal(self, conn: sqlite3.Connection) -> None:
        """The whole WAL is in the database now, so the next write starts it over: it
        writes the WAL's new header and syncs it, and trims the file to
        journal_size_limit. On the loop that was a stall of its own when the disk was
        busy: after a large outside write, an ftruncate of 30-50 ms (the `discard` mount
        option discards the freed blocks before it returns) and an fdatasync behind the
        checkpoint's writes (bench/history.py, kernel stacks of the loop's thread). A
        write of this thread's own (the same user_version) does it here; the loop's
        writes meanwhile find the lock taken and wait for it without blocking the loop.
        If a write is under way, it is left to the next one, as before. data_version()
        sees its commit as another connection's: a claim per checkpoint at most."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                return
            raise
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
            self.wal_restarts += 1
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    def _checkpoint_done(self, future: concurrent.futures.Future[None]) -> None:
        self._checkpointing = None
        exc = future.exception() if not future.cancelled() else None
        if exc is not None:  # the writer's own next commit says what is wrong, if anything
            log.debug("sqlite: checkpoint failed: %s", exc)

    # reads off the loop ----------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        """This pool thread's read-only connection (made on its first read)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute(f"PRAGMA cache_size={READER_CACHE_KIB}")
            conn.execute(f"PRAGMA mmap_size={READER_MMAP}")
            with self._reader_lock:
                self._reader_conns.append(conn)
            self._local.conn = conn
        return conn

    def _in_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        conn.execute("BEGIN")  # one snapshot for every statement of the read
        try:
            return fn(conn)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the reader pool, in one read transaction."""
        if self._readers is None:
            raise RuntimeError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._in_reader, fn)

    def _migrate(self) -> None:
        c = self.conn
        c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)")
        done = {r[0] for r in c.execute("SELECT name FROM schema_migrations")}
        for name, sql in migrations("sqlite"):
            if name in done:
                continue
            c.execute("BEGIN IMMEDIATE")
            try:
                for stmt in split_sql(sql, "sqlite"):
                    c.execute(stmt)
                c.execute("INSERT INTO schema_migrations (name) VALUES (?)", (name,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def data_version(self) -> int:
        """Changes when another connection commits: a cheap way to notice outside writers.
        The sweep's batches commit on a connection of their own: they do not count (the
        dispatcher would claim after each, #15), nor does another commit landing right
        beside one (the engine looks within a second after a batch).

        In WAL mode the pragma is only refreshed when a read transaction starts, so the
        first statement touches the database (a one-page read of the schema table).
        """
        if self._writer_lent is not None and self._version_seen is not None:
            return self._version_seen  # a batch is under way: after it
        version = self._data_version()
        if self._version_alias is not None and version == self._version_alias[0]:
            version = self._version_alias[1]
        else:
            self._version_alias = None
        self._version_seen = version
        return version

    def _data_version(self) -> int:
        return int(
            self.conn.execute(
                "SELECT (SELECT 1 FROM sqlite_master LIMIT 1), data_version FROM pragma_data_version"
            ).fetchone()[1]
        )

    # helpers --------------------------------------------------------------
    def _write(self) -> _Txn:
        return _Txn(self)

    def _announce(self, kind: str, rows: Iterable[JobRow], now: int) -> None:
        bus = self.changes
        if not bus.active:
            return
        for row in rows:
            bus.publish(Change(bus.next_seq(), "jobs", kind, row, {"id": row.id}, now, row.user_id))

    def _select_job(
        self, job_id: str, user_id: str | None, conn: sqlite3.Connection | None = None
    ) -> JobRow | None:
        sql = f"SELECT {JOB_SELECT} FROM jobs WHERE id = ?"
        args: list[Any] = [job_id]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        row = (conn or self.conn).execute(sql, args).fetchone()
        return JobRow(*row) if row else None

    def _update_returning(self, sql: str, args: Sequence[Any]) -> list[JobRow]:
        return [JobRow(*r) for r in self.conn.execute(sql + f" RETURNING {JOB_SELECT}", args)]

    # jobs -----------------------------------------------------------------
    def create_job_sync(
        self, new: NewJob, now: int, idempotency_ttl_us: int
    ) -> tuple[JobRow, bool]:
        return self.create_jobs_sync([new], now, idempotency_ttl_us)[0]

    def create_jobs_sync(
        self,
        news: list[NewJob],
        now: int,
        idempotency_ttl_us: int,
        history: HistoryFn | None = None,
    ) -> list[tuple[JobRow, bool]]:
        with self._write():
            results: list[tuple[JobRow, bool]] = []
            at = 0
            while at < len(news):
                if news[at].idempotency_key is not None:
                    results.append(self._create_one(news[at], now, idempotency_ttl_us))
                    at += 1
                    continue
                end = at + 1  # a run of jobs without keys: one executemany
                while end < len(news) and news[end].idempotency_key is None:
                    end += 1
                run = news[at:end]
                self.conn.executemany(_INSERT_JOB, [_insert_args(new, now) for new in run])
                results.extend((_fresh_row(new, now), True) for new in run)
                at = end
            events = history(results) if history is not None else []
            if events:
                self._insert_events(events)
        self._announce("INSERT", [row for row, created in results if created], now)
        return results

    def _create_one(self, new: NewJob, now: int, idempotency_ttl_us: int) -> tuple[JobRow, bool]:
        """Inside a write transaction."""
        c = self.conn
        if new.idempotency_key is not None:
            hit = c.execute(
                "SELECT job_id, expires_at FROM idempotency_keys WHERE user_id = ? AND key = ?",
                (new.user_id, new.idempotency_key),
            ).fetchone()
            if hit is not None:
                existing = self._select_job(hit[0], new.user_id)
                if existing is not None and hit[1] > now:
                    return existing, False
                c.execute(
                    "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ?",
                    (new.user_id, new.idempotency_key),
                )
            c.execute(
                "INSERT INTO idempotency_keys (user_id, key, job_id, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (new.user_id, new.idempotency_key, new.id, now + idempotency_ttl_us),
            )
        c.execute(_INSERT_JOB, _insert_args(new, now))
        return _fresh_row(new, now), True

    async def create_job(
        self, new: NewJob, now: int, idempotency_ttl_us: int
    ) -> tuple[JobRow, bool]:
        return self.create_job_sync(new, now, idempotency_ttl_us)

    async def create_jobs(
        self,
        news: list[NewJob],
        now: int,
        idempotency_ttl_us: int,
        history: HistoryFn | None = None,
    ) -> list[tuple[JobRow, bool]]:
        return self.create_jobs_sync(news, now, idempotency_ttl_us, history)

    async def get_job(self, job_id: str, user_id: str | None) -> JobRow | None:
        return await self._read(lambda conn: self._select_job(job_id, user_id, conn))

    async def list_jobs(self, query: ListQuery) -> tuple[list[JobRow], str | None]:
        return await self._read(lambda conn: self._list_jobs(conn, query))

    @staticmethod
    def _list_jobs(conn: sqlite3.Connection, query: ListQuery) -> tuple[list[JobRow], str | None]:
        sql, args = listing.list_sql(listing.SQLITE, query)
        return listing.page_of([JobRow(*r) for r in conn.execute(sql, args)], query)

    async def count_running(self, user_id: str, concurrency_key: str | None) -> tuple[int, int]:
        by_user = self.conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND user_id = ?", (user_id,)
        ).fetchone()[0]
        by_key = 0
        if concurrency_key is not None:
            by_key = self.conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND concurrency_key = ?",
                (concurrency_key,),
            ).fetchone()[0]
        return int(by_user), int(by_key)

    def claim_jobs_sync(
        self, owner: str, limit: int, now: int, lease_us: int, limits: Limits
    ) -> list[JobRow]:
        c = self.conn
        with self._write():
            users: collections.Counter[str] = collections.Counter()
            keys: collections.Counter[str] = collections.Counter()
            # The running jobs are counted only when some limit needs the counts: with
            # --slots 5000 that is a walk over 5,000 rows per claim otherwise (#15).
            running = (
                c.execute("SELECT user_id, concurrency_key FROM jobs WHERE status = 'running'")
                if limits.active
                else ()
            )
            for user_id, key in running:
                users[user_id] += 1
                if key is not None:
                    keys[key] += 1
            full_users = [u for u, n in users.items() if _full(n, limits.per_user)]
            full_keys = [k for k, n in keys.items() if _full(n, limits.key_limit(k))]
            sql = (
                # Named: without ANALYZE figures SQLite may prefer jobs_status_created
                # (all pending rows, sorted) to the partial index that is in this order.
                f"SELECT {JOB_SELECT} FROM jobs INDEXED BY jobs_pending"
                " WHERE status = 'pending' AND run_at <= ?"
                " AND (lease_expires_at IS NULL OR lease_expires_at < ?)"
            )
            args: list[Any] = [now, now]
            if full_users:
                sql += f" AND user_id NOT IN ({_placeholders(len(full_users))})"
                args.extend(full_users)
            if full_keys:
                sql += (
                    " AND (concurrency_key IS NULL OR concurrency_key NOT IN"
                    f" ({_placeholders(len(full_keys))}))"
                )
                args.extend(full_keys)
            sql += " ORDER BY run_at LIMIT ?"
            args.append(limit * 4)
            picked: list[JobRow] = []
            for raw in c.execute(sql, args).fetchall():
                row = JobRow(*raw)
                if _full(users[row.user_id], limits.per_user):
                    continue
                if row.concurrency_key is not None and _full(
                    keys[row.concurrency_key], limits.key_limit(row.concurrency_key)
                ):
                    continue
                users[row.user_id] += 1
                if row.concurrency_key is not None:
                    keys[row.concurrency_key] += 1
                picked.append(row)
                if len(picked) >= limit:
                    break
            if not picked:
                return []
            lease = now + lease_us
            c.executemany(
                "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?),"
                " lease_owner = ?, lease_expires_at = ?, updated_at = ?,"
                " lease_token = lease_token + 1 WHERE id = ?",
                [(now, owner, lease, now, row.id) for row in picked],
            )
        for row in picked:
            row.status = RUNNING
            row.started_at = row.started_at or now
            row.lease_owner = owner
            row.lease_expires_at = lease
            row.updated_at = now
            row.lease_token += 1
        self._announce("UPDATE", picked, now)
        return picked

    async def claim_jobs(
        self, owner: str, limit: int, now: int, lease_us: int, limits: Limits
    ) -> list[JobRow]:
        return self.claim_jobs_sync(owner, limit, now, lease_us, limits)

    async def next_run_at(self) -> int | None:
        row = self.conn.execute(
            "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_pending WHERE status = 'pending'"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    async def renew_leases(self, owner: str, held: dict[str, int], until: int) -> set[str]:
        """A transaction per RENEW_BATCH leases, yielding between them: with 5,000 jobs in
        flight one transaction of all of them held the loop for tens of ms (#15). A batch
        whose every lease held (the usual case) is one executemany."""
        kept: set[str] = set()
        items = list(held.items())
        for start in range(0, len(items), RENEW_BATCH):
            if start:
                await asyncio.sleep(0)
            batch = items[start : start + RENEW_BATCH]
            args = [(until, job_id, owner, token) for job_id, token in batch]
            with self._write():
                cur = self.conn.executemany(_RENEW, args)
                if cur.rowcount == len(batch):
                    kept.update(job_id for job_id, _ in batch)
                    continue
                for one in args:  # some lease was lost: which ones (this changes nothing)
                    if self.conn.execute(_RENEW, one).rowcount:
                        kept.add(one[1])
        return kept

    def _leases(self, job_ids: Iterable[str]) -> dict[str, tuple[str | None, int]]:
        """Inside a write transaction: job id -> (lease owner, token), for a batch of
        fenced writes (one statement, not one per write)."""
        ids = list(dict.fromkeys(job_ids))
        return {
            r[0]: (r[1], r[2])
            for r in self.conn.execute(
                "SELECT id, lease_owner, lease_token FROM jobs"
                f" WHERE id IN ({_placeholders(len(ids))})",
                ids,
            )
        }

    def _check_lease(self, job_id: str, lease: Lease, *, released_ok: bool = False) -> None:
        """Inside a write transaction: raise LeaseLost unless `lease` still holds the job
        (or, with released_ok, held it last and let go: its own finish)."""
        row = self.conn.execute(
            "SELECT lease_owner, lease_token FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None or row[1] != lease.token:
            raise LeaseLost(job_id)
        if row[0] != lease.owner and not (released_ok and row[0] is None):
            raise LeaseLost(job_id)

    async def requeue_orphans(self, now: int, owner: str | None) -> list[JobRow]:
        with self._write():
            if owner is None:
                rows = self._update_returning(
                    "UPDATE jobs SET status = 'pending', lease_owner = NULL,"
                    " lease_expires_at = NULL, updated_at = ?, run_at = ?,"
                    " lease_token = lease_token + 1,"
                    " message = 'Resuming after a server restart' WHERE status = 'running'",
                    (now, now),
                )
                self.conn.execute(
                    "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL"
                    " WHERE lease_owner IS NOT NULL"
                )
            else:
                rows = self._update_returning(
                    "UPDATE jobs SET status = 'pending', lease_owner = NULL,"
                    " lease_expires_at = NULL, updated_at = ?, run_at = ?,"
                    " lease_token = lease_token + 1,"
                    " message = 'Resuming after a lost worker'"
                    " WHERE status = 'running' AND lease_expires_at < ?",
                    (now, now, now),
                )
        self._announce("UPDATE", rows, now)
        return rows

    async def set_progress(
        self, job_id: str, lease: Lease, progress: int | None, message: str | None, now: int
    ) -> JobRow | None:
        with self._write():
            self._check_lease(job_id, lease)
            rows = self._update_returning(
                "UPDATE jobs SET progress = COALESCE(?, progress), message = ?, updated_at = ?"
                " WHERE id = ? AND status = 'running'",
                (progress, message, now, job_id),
            )
        self._announce("UPDATE", rows, now)
        return rows[0] if rows else None

    async def set_progress_many(
        self, writes: list[ProgressWrite], now: int
    ) -> list[JobRow | LeaseLost | None]:
        results: list[JobRow | LeaseLost | None] = []
        with self._write():
            held = self._leases(w.job_id for w in writes)
            for w in writes:
                if held.get(w.job_id) != (w.lease.owner, w.lease.token):
                    results.append(LeaseLost(w.job_id))
                    continue
                rows = self._update_returning(
                    "UPDATE jobs SET progress = COALESCE(?, progress), message = ?,"
                    " updated_at = ? WHERE id = ? AND status = 'running'",
                    (w.progress, w.message, now, w.job_id),
                )
                results.append(rows[0] if rows else None)
        self._announce("UPDATE", [r for r in results if isinstance(r, JobRow)], now)
        return results

    def _finish_one(self, w: FinishWrite, now: int) -> list[JobRow]:
        """Inside a write transaction, the lease checked: end the job; release the
        lease even when it is no longer running (cancelled or expired meanwhile)."""
        rows = self._update_returning(
            "UPDATE jobs SET status = ?, output = ?, error = ?, message = COALESCE(?, message, ?),"
            " progress = CASE WHEN ? = 'completed' THEN 100 ELSE progress END,"
            " completed_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND status = 'running' AND lease_owner = ?",
            (w.status, w.output, w.error, w.message, w.status, w.status, now, now, w.job_id,
             w.lease.owner),
        )  # fmt: skip
        if not rows:
            self.conn.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
                (w.job_id,),
            )
        return rows

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
        with self._write():
            # Released already (a finish repeated after a failed commit): nothing to do.
            self._check_lease(job_id, lease, released_ok=True)
            rows = self._finish_one(FinishWrite(job_id, lease, status, output, error, message), now)
        self._announce("UPDATE", rows, now)
        return rows[0] if rows else None

    finishes_together = True  # one writer: no other transaction to deadlock with

    async def finish_jobs_many(
        self, writes: list[FinishWrite], now: int
    ) -> list[JobRow | LeaseLost | None]:
        results: list[JobRow | LeaseLost | None] = []
        with self._write():
            held = self._leases(w.job_id for w in writes)
            for w in writes:
                owner, token = held.get(w.job_id, (None, None))
                if token != w.lease.token or owner not in (w.lease.owner, None):
                    results.append(LeaseLost(w.job_id))
                    continue
                rows = self._finish_one(w, now)
                results.append(rows[0] if rows else None)
        self._announce("UPDATE", [r for r in results if isinstance(r, JobRow)], now)
        return results

    async def suspend_job(
        self, job_id: str, lease: Lease, run_at: int, message: str, now: int
    ) -> JobRow | None:
        with self._write():
            self._check_lease(job_id, lease)
            rows = self._update_returning(
                "UPDATE jobs SET status = 'pending', run_at = ?, message = ?, updated_at = ?,"
                " lease_owner = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND status = 'running'",
                (run_at, message, now, job_id),
            )
        self._announce("UPDATE", rows, now)
        return rows[0] if rows else None

    async def cancel_job(self, job_id: str, user_id: str | None, now: int) -> JobRow:
        with self._write():
            current = self._select_job(job_id, user_id)
            if current is None:
                raise JobNotFound(job_id)
            if current.status in TERMINAL:
                raise JobConflict(f"job {job_id} already {current.status}; nothing to cancel")
            rows = self._update_returning(
                "UPDATE jobs SET status = 'cancelled', message = 'Cancelled',"
                " error = 'cancelled by request', completed_at = ?, updated_at = ? WHERE id = ?",
                (now, now, job_id),
            )
        self._announce("UPDATE", rows, now)
        return rows[0]

    async def retry_job(
        self,
        job_id: str,
        user_id: str | None,
        from_start: bool,
        now: int,
        input: str | None = None,
    ) -> JobRow:
        with self._write():
            current = self._select_job(job_id, user_id)
            if current is None:
                raise JobNotFound(job_id)
            if current.status not in (FAILED, CANCELLED):
                raise JobConflict(
                    f"job {job_id} is {current.status}; only failed or cancelled jobs can be retried"
                )
            if from_start:
                self.conn.execute("DELETE FROM steps WHERE job_id = ?", (job_id,))
            else:
                self.conn.execute(
                    "DELETE FROM steps WHERE job_id = ? AND status != 'completed'", (job_id,)
                )
            rows = self._update_returning(
                "UPDATE jobs SET status = 'pending', attempt = attempt + 1,"
                " max_attempts = MAX(max_attempts, attempt + 1), progress = 0,"
                " message = ?, output = NULL, error = NULL, started_at = NULL,"
                " completed_at = NULL, run_at = ?, updated_at = ?, input = COALESCE(?, input),"
                " lease_owner = NULL, lease_expires_at = NULL, lease_token = lease_token + 1"
                " WHERE id = ?",
                ("Retrying from the start" if from_start else "Retrying", now, now, input, job_id),
            )
        self._announce("UPDATE", rows, now)
        return rows[0]

    async def fail_jobs(self, job_ids: list[str], error: str, now: int) -> list[JobRow]:
        if not job_ids:
            return []
        with self._write():
            rows = self._update_returning(
                "UPDATE jobs SET status = 'failed', error = ?, message = ?, completed_at = ?,"
                " updated_at = ? WHERE status IN ('pending', 'running')"
                f" AND id IN ({_placeholders(len(job_ids))})",
                [error, error, now, now, *job_ids],
            )
        self._announce("UPDATE", rows, now)
        return rows

    async def active_jobs_older_than(
        self,
        started_before: int,
        created_before: int,
        limit: int = 10_000,
        types: Sequence[str] | None = None,
    ) -> list[JobRow]:
        def read(conn: sqlite3.Connection) -> list[JobRow]:
            return [
                JobRow(*r)
                for sql, args in expiry_queries(started_before, created_before, limit, types)
                for r in conn.execute(sql, args)
            ]

        return await self._read(read)

    async def sweep(
        self, completed_before: int, failed_before: int, limit: int = SWEEP_BATCH
    ) -> int:
        """A batch in the sweep thread, on its own connection. Deleting a finished job
        from a history of millions reads its index pages at random (13 indexes, its
        steps, logs and rollups): on the loop, batches of 10 rows stalled the server up
        to 171 ms (bench/history.py, 10M rows). There SQLite runs without the GIL, so
        the loop goes on (reads, sockets, timers); the server's own writes wait for the
        batch's commit (see _writes_keep_the_loop_free), never for a lock."""
        if self._sweeper is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        seen = self.data_version()
        lent = self._writer_lent = loop.create_future()
        try:
            work = self._sweeper.submit(self._sweep_batch, completed_before, failed_before, limit)
            n = await asyncio.wrap_future(work, loop=loop)
        finally:
            self._writer_lent = None
            lent.set_result(None)
        self._version_alias = (self._data_version(), seen)  # the batch's commit: seen
        self._committed()
        return n

    def _sweep_batch(self, completed_before: int, failed_before: int, limit: int) -> int:
        """In the sweep thread: one batch, one transaction."""
        c = self._sweep_conn
        if c is None:
            c = self._sweep_conn = self._connect()
            c.execute(f"PRAGMA busy_timeout={int(BUSY_WAIT_MAX * 1000)}")  # waits in its thread
        c.execute("BEGIN IMMEDIATE")
        try:
            ids: list[str] = []
            for sql, args in sweep_queries(completed_before, failed_before):
                if len(ids) < limit:
                    ids += [r[0] for r in c.execute(sql, [*args, limit - len(ids)])]
            if ids:
                marks = _placeholders(len(ids))
                c.execute(f"DELETE FROM steps WHERE job_id IN ({marks})", ids)
                c.execute(f"DELETE FROM job_logs WHERE job_id IN ({marks})", ids)
                c.execute(f"DELETE FROM idempotency_keys WHERE job_id IN ({marks})", ids)
                c.execute(f"DELETE FROM jobs WHERE id IN ({marks})", ids)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    c.execute("ROLLBACK")
            raise
        self._sweep_changes = c.total_changes
        return len(ids)

    # steps ----------------------------------------------------------------
    async def load_steps(self, job_id: str) -> list[StepRow]:
        return [
            StepRow(*r)
            for r in self.conn.execute(
                f"SELECT {STEP_SELECT} FROM steps WHERE job_id = ? ORDER BY position, started_at",
                (job_id,),
            )
        ]

    async def save_step(self, step: StepRow, lease: Lease | None) -> None:
        with self._write():
            if lease is not None:
                self._check_lease(step.job_id, lease)
            self.conn.execute(_SAVE_STEP, _step_values(step))

    async def save_steps_many(self, writes: list[StepWrite]) -> list[LeaseLost | None]:
        if not writes:
            return []
        results: list[LeaseLost | None] = []
        rows: list[tuple[Any, ...]] = []
        with self._write():
            held = self._leases(w.step.job_id for w in writes)
            for w in writes:
                if held.get(w.step.job_id) != (w.lease.owner, w.lease.token):
                    results.append(LeaseLost(w.step.job_id))
                    continue
                rows.append(_step_values(w.step))
                results.append(None)
            if rows:
                self.conn.executemany(_SAVE_STEP, rows)
        return results

    # logs -----------------------------------------------------------------
    async def append_logs(self, lines: list[LogRow], lease: Lease | None) -> None:
        if not lines:
            return
        with self._write():
            if lease is not None:
                for job_id in {ln.job_id for ln in lines}:
                    self._check_lease(job_id, lease, released_ok=True)
            self.conn.executemany(
                "INSERT INTO job_logs (job_id, seq, ts, level, step, message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(ln.job_id, ln.seq, ln.ts, ln.level, ln.step, ln.message) for ln in lines],
            )
        bus = self.changes
        if bus.active:
            user_ids = dict(
                self.conn.execute(
                    f"SELECT id, user_id FROM jobs WHERE id IN"
                    f" ({_placeholders(len({ln.job_id for ln in lines}))})",
                    list({ln.job_id for ln in lines}),
                ).fetchall()
            )
            for ln in lines:
                bus.publish(
                    Change(
                        bus.next_seq(), "job_logs", "INSERT", ln, None, ln.ts,
                        str(user_ids.get(ln.job_id, "")),
                    )
                )  # fmt: skip

    async def last_log_seq(self, job_id: str) -> int:
        row = self.conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return int(row[0])

    async def list_logs(self, job_id: str, after: int, limit: int) -> list[LogRow]:
        def read(conn: sqlite3.Connection) -> list[LogRow]:
            return [
                LogRow(*r)
                for r in conn.execute(
                    "SELECT job_id, seq, ts, level, step, message FROM job_logs"
                    " WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (job_id, after, limit),
                )
            ]

        return await self._read(read)

    # monitoring -----------------------------------------------------------
    async def stats(self, window: StatsWindow) -> StatsFigures:
        """The statements in two halves, one per reader thread, at once: on a 10M-row
        table they cost about 70 ms in all (the live counts over 200,000 pending and
        running jobs 20, jobs created in the last hour 11, the rollups 22), and SQLite
        runs them without the GIL. Each half is one snapshot; the two are taken ms apart,
        as two requests would be."""
        queries = stats_queries(window, pin=True)

        def read(names: tuple[str, ...]) -> Callable[[sqlite3.Connection], dict[str, Any]]:
            def run(conn: sqlite3.Connection) -> dict[str, Any]:
                return {
                    name: list(_active_counts(conn, window.user_id))
                    if name == "active"
                    else conn.execute(*queries[name]).fetchall()
                    for name in names
                }

            return run

        rollups = ("last_hour", "week", "created")
        live = tuple(name for name in queries if name not in rollups)
        first, second = await asyncio.gather(self._read(read(live)), self._read(read(rollups)))
        return stats_figures(first | second, window)

    # schedules and the event history (migration 0005) -------------------------
    def _schedule_query(self, where: str) -> str:
        return (
            f"SELECT {', '.join('s.' + c for c in SCHEDULE_COLUMNS)}, j.status FROM schedules s"
            f" LEFT JOIN jobs j ON j.id = s.last_job_id WHERE {where}"
        )

    async def create_schedule(self, row: ScheduleRow) -> ScheduleRow:
        try:
            with self._write():
                self.conn.execute(
                    f"INSERT INTO schedules ({SCHEDULE_SELECT})"
                    f" VALUES ({_placeholders(len(SCHEDULE_COLUMNS))})",
                    row.values(),
                )
        except sqlite3.IntegrityError:
            raise JobConflict(f"a schedule named {row.name!r} exists already") from None
        return row

    def _get_schedule(
        self, conn: sqlite3.Connection, ref: str, user_id: str | None
    ) -> ScheduleRow | None:
        where, args = "(s.id = ? OR s.name = ?)", [ref, ref]
        if user_id is not None:
            where += " AND s.user_id = ?"
            args.append(user_id)
        rows = conn.execute(self._schedule_query(where) + " LIMIT 2", args).fetchall()
        exact = [r for r in rows if r[0] == ref] or rows
        return ScheduleRow(*exact[0]) if len(exact) == 1 else None

    async def get_schedule(self, ref: str, user_id: str | None) -> ScheduleRow | None:
        return await self._read(lambda conn: self._get_schedule(conn, ref, user_id))

    async def list_schedules(self, user_id: str | None, limit: int) -> list[ScheduleRow]:
        where, args = "1 = 1", []
        if user_id is not None:
            where, args = "s.user_id = ?", [user_id]
        sql = self._schedule_query(where) + " ORDER BY s.name LIMIT ?"
        return await self._read(
            lambda conn: [ScheduleRow(*r) for r in conn.execute(sql, [*args, limit])]
        )

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, note: str | None, next_tick: int | None, now: int
    ) -> ScheduleRow | None:
        with self._write():
            self.conn.execute(
                "UPDATE schedules SET paused = ?, note = ?, updated_at = ?,"
                " next_tick = CASE WHEN ? THEN next_tick ELSE ? END,"
                " buffered_tick = CASE WHEN ? THEN buffered_tick ELSE NULL END WHERE id = ?",
                (int(paused), note, now, int(paused), next_tick, int(paused), schedule_id),
            )
        return self._get_schedule(self.conn, schedule_id, None)

    async def delete_schedule(self, schedule_id: str) -> bool:
        with self._write():
            gone = self.conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
            self.conn.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", (schedule_id,))
        return gone.rowcount > 0

    async def list_schedule_runs(self, schedule_id: str, limit: int) -> list[RunRow]:
        sql = (
            f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)}, j.status FROM schedule_runs r"
            " LEFT JOIN jobs j ON j.id = r.job_id WHERE r.schedule_id = ?"
            " ORDER BY r.tick DESC LIMIT ?"
        )
        return await self._read(
            lambda conn: [RunRow(*r) for r in conn.execute(sql, (schedule_id, limit))]
        )

    _UPSERT_RUN = (
        f"INSERT INTO schedule_runs ({RUN_SELECT}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (schedule_id, tick) DO UPDATE SET outcome = excluded.outcome,"
        " job_id = excluded.job_id, recorded_at = excluded.recorded_at,"
        " detail = excluded.detail"
        " WHERE schedule_runs.outcome = 'buffered' AND excluded.outcome = 'started'"
    )
    _INSERT_SCHEDULED_JOB = (
        "INSERT INTO jobs (id, type, status, progress, input, attempt, max_attempts,"
        " user_id, concurrency_key, idempotency_key, created_at, updated_at, run_at,"
        " schedule_id, schedule_tick)"
        " VALUES (?, ?, 'pending', 0, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    @staticmethod
    def _scheduled_job(s: ScheduleRow, run: PlannedRun, now: int) -> JobRow:
        new = run.job
        assert new is not None
        return JobRow(
            new.id, new.type, PENDING, 0, None, new.input, None, None, 1, new.max_attempts,
            new.user_id, new.concurrency_key, new.idempotency_key, now, now, None, None,
            s.id, run.tick, run.run_at, None, None,
        )  # fmt: skip

    @staticmethod
    def _job_params(row: JobRow) -> tuple[Any, ...]:
        return (row.id, row.type, row.input, row.max_attempts, row.user_id, row.concurrency_key,
                row.idempotency_key, row.created_at, row.updated_at, row.run_at, row.schedule_id,
                row.schedule_tick)  # fmt: skip

    def _update_schedule(
        self, s: ScheduleRow, plan: FirePlan, last: tuple[int | None, str | None], now: int
    ) -> tuple[str, tuple[Any, ...]] | None:
        if plan.advance:
            return (
                "UPDATE schedules SET next_tick = ?, buffered_tick = ?, last_tick = ?,"
                " last_job_id = ?, updated_at = ? WHERE id = ?",
                (plan.next_tick, plan.buffered_tick, *last, now, s.id),
            )
        if last[1] != s.last_job_id:
            return (
                "UPDATE schedules SET last_tick = ?, last_job_id = ?, updated_at = ? WHERE id = ?",
                (*last, now, s.id),
            )
        return None

    @staticmethod
    def _last_after(s: ScheduleRow, plan: FirePlan) -> tuple[int | None, str | None]:
        last_tick, last_job = s.last_tick, s.last_job_id
        for run in plan.runs:
            if run.job is not None and (last_tick is None or run.tick >= last_tick):
                last_tick, last_job = run.tick, run.job.id
        return last_tick, last_job

    def _apply_plan(
        self, s: ScheduleRow, plan: FirePlan, now: int
    ) -> tuple[list[tuple[str, int, str | None]], list[JobRow]]:
        """Inside a write transaction, run by run: a tick that has a run already is a
        duplicate (no job). The runs, their jobs, the schedule's new state."""
        c = self.conn
        results: list[tuple[str, int, str | None]] = []
        jobs: list[JobRow] = []
        last_tick, last_job = s.last_tick, s.last_job_id
        for run in plan.runs:
            job_id = run.job.id if run.job is not None else None
            took = c.execute(
                self._UPSERT_RUN + " RETURNING tick",
                (s.id, run.tick, run.kind, run.outcome, job_id, run.detail, now),
            ).fetchall()
            if not took:
                results.append(("duplicate", run.tick, None))
                continue
            results.append((run.outcome, run.tick, job_id))
            if run.job is None:
                continue
            row = self._scheduled_job(s, run, now)
            c.execute(self._INSERT_SCHEDULED_JOB, self._job_params(row))
            jobs.append(row)
            if last_tick is None or run.tick >= last_tick:
                last_tick, last_job = run.tick, row.id
        update = self._update_schedule(s, plan, (last_tick, last_job), now)
        if update is not None:
            c.execute(*update)
        return results, jobs

    def _apply_plans_at_once(
        self, plans: list[tuple[ScheduleRow, FirePlan]], now: int
    ) -> list[JobRow] | None:
        """The common case, with a few statements for a whole batch: every run is new (or
        starts a buffered tick). None when some tick had a run already (nothing written:
        the caller rolls back to its savepoint and goes run by run)."""
        runs: list[tuple[Any, ...]] = []
        jobs: list[JobRow] = []
        updates: dict[str, list[tuple[Any, ...]]] = {}
        for s, plan in plans:
            for run in plan.runs:
                job_id = run.job.id if run.job is not None else None
                runs.append((s.id, run.tick, run.kind, run.outcome, job_id, run.detail, now))
                if run.job is not None:
                    jobs.append(self._scheduled_job(s, run, now))
            update = self._update_schedule(s, plan, self._last_after(s, plan), now)
            if update is not None:
                updates.setdefault(update[0], []).append(update[1])
        c = self.conn
        if c.executemany(self._UPSERT_RUN, runs).rowcount != len(runs):
            return None
        c.executemany(self._INSERT_SCHEDULED_JOB, [self._job_params(j) for j in jobs])
        for sql, params in updates.items():
            c.executemany(sql, params)
        return jobs

    async def fire_due_schedules(self, now: int, limit: int, plan: PlanFn) -> tuple[int, int]:
        c = self.conn
        with self._write():
            rows = [
                ScheduleRow(*r)
                for r in c.execute(
                    self._schedule_query(
                        "s.paused = 0 AND (s.next_tick <= ? OR s.buffered_tick IS NOT NULL)"
                    )
                    + " ORDER BY s.next_tick LIMIT ?",
                    (now, limit),
                )
            ]
            plans = []
            for s in rows:
                decided = plan(s, s.last_status is not None and s.last_status not in TERMINAL)
                if decided is not None:
                    plans.append((s, decided))
            c.execute("SAVEPOINT fire")
            created = self._apply_plans_at_once(plans, now)
            if created is None:
                c.execute("ROLLBACK TO fire")
                created = []
                for s, decided in plans:
                    created.extend(self._apply_plan(s, decided, now)[1])
            c.execute("RELEASE fire")
        self._announce("INSERT", created, now)
        return len(rows), len(created)

    async def run_schedule(
        self, schedule_id: str, plan: Callable[[ScheduleRow], FirePlan]
    ) -> list[tuple[str, int, str | None]]:
        now = now_us()
        with self._write():
            found = self.conn.execute(self._schedule_query("s.id = ?"), (schedule_id,)).fetchone()
            if found is None:
                return []
            results, jobs = self._apply_plan(ScheduleRow(*found), plan(ScheduleRow(*found)), now)
        self._announce("INSERT", jobs, now)
        return results

    async def next_schedule_tick(self) -> int | None:
        row = self.conn.execute("SELECT MIN(next_tick) FROM schedules WHERE paused = 0").fetchone()
        return None if row[0] is None else int(row[0])

    async def sweep_history(
        self, completed_before: int, failed_before: int, limit: int = SWEEP_BATCH
    ) -> int:
        c = self.conn
        with self._write():
            runs = c.execute(
                "DELETE FROM schedule_runs WHERE rowid IN (SELECT rowid FROM schedule_runs"
                " WHERE recorded_at < ? LIMIT ?)",
                (completed_before, limit),
            ).rowcount
            ids = [
                r[0] for r in c.execute(*sweep_events_query(completed_before, failed_before, limit))
            ]
            if ids:
                marks = _placeholders(len(ids))
                c.execute(f"DELETE FROM event_jobs WHERE event_id IN ({marks})", ids)
                c.execute(f"DELETE FROM events WHERE id IN ({marks})", ids)
        return runs + len(ids)

    async def record_events(self, events: list[EventRow]) -> None:
        if not events:
            return
        with self._write():
            self._insert_events(events)

    def _insert_events(self, events: list[EventRow]) -> None:
        self.conn.executemany(
            f"INSERT INTO events ({EVENT_SELECT}) VALUES ({_placeholders(len(EVENT_COLUMNS))})",
            [e.values() for e in events],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO event_jobs (event_id, job_id) VALUES (?, ?)",
            [(e.id, job_id) for e in events for job_id in e.job_ids],
        )

    @staticmethod
    def _with_jobs(conn: sqlite3.Connection, events: list[EventRow]) -> list[EventRow]:
        if not events:
            return events
        by_id = {e.id: e for e in events}
        for event_id, job_id in conn.execute(
            f"SELECT event_id, job_id FROM event_jobs WHERE event_id IN"
            f" ({_placeholders(len(by_id))}) ORDER BY rowid",
            list(by_id),
        ):
            by_id[event_id].job_ids.append(job_id)
        return events

    async def get_event(self, event_id: str, user_id: str | None) -> EventRow | None:
        sql, args = f"SELECT {EVENT_SELECT} FROM events WHERE id = ?", [event_id]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)

        def read(conn: sqlite3.Connection) -> EventRow | None:
            row = conn.execute(sql, args).fetchone()
            return self._with_jobs(conn, [EventRow(*row)])[0] if row else None

        return await self._read(read)

    async def list_events(
        self,
        user_id: str | None,
        name: str | None,
        since_us: int | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[EventRow], str | None]:
        where: list[str] = []
        args: list[Any] = []
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if name:
            where.append("name = ?")
            args.append(name)
        if since_us is not None:
            where.append("received_at >= ?")
            args.append(since_us)
        if cursor:
            at, last_id = decode_cursor(cursor)
            where.append("(received_at < ? OR (received_at = ? AND id < ?))")
            args.extend([at, at, last_id])
        sql = f"SELECT {EVENT_SELECT} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY received_at DESC, id DESC LIMIT ?"

        def read(conn: sqlite3.Connection) -> tuple[list[EventRow], str | None]:
            rows = [EventRow(*r) for r in conn.execute(sql, [*args, limit + 1])]
            next_cursor = None
            if len(rows) > limit:
                rows = rows[:limit]
                next_cursor = encode_cursor(rows[-1].received_at, rows[-1].id)
            return self._with_jobs(conn, rows), next_cursor

        return await self._read(read)

    async def events_for_job(self, job_id: str) -> list[EventRow]:
        sql = (
            f"SELECT {', '.join('e.' + c for c in EVENT_COLUMNS)} FROM event_jobs ej"
            " JOIN events e ON e.id = ej.event_id WHERE ej.job_id = ? ORDER BY e.received_at"
        )
        return await self._read(
            lambda conn: self._with_jobs(conn, [EventRow(*r) for r in conn.execute(sql, (job_id,))])
        )


RENEW_BATCH = 500  # leases renewed per transaction
_RENEW = "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND lease_token = ?"
_SAVE_STEP = f"INSERT OR REPLACE INTO steps ({STEP_SELECT}) VALUES ({_placeholders(10)})"


def _step_values(step: StepRow) -> tuple[Any, ...]:
    return (step.job_id, step.step_id, step.name, step.position, step.status, step.attempt,
            step.output, step.error, step.started_at, step.completed_at)  # fmt: skip


def _active_counts(conn: sqlite3.Connection, user_id: str | None) -> list[tuple[str, str, int]]:
    """(type, status, n) of the pending and running jobs: stats_queries' "active", as a
    COUNT(*) over each (status, type) range of jobs_active, found by seeking from one type
    to the next. SQLite steps through an index range for a bare count several times
    faster than it groups the same entries (which reads and compares each one's key):
    this costs a few seeks per type plus a count, with a queue of any depth."""
    out: list[tuple[str, str, int]] = []
    by_user = "" if user_id is None else " AND user_id = ?"
    for status in ("pending", "running"):
        after = ""
        while True:
            row = conn.execute(
                "SELECT type FROM jobs INDEXED BY jobs_active WHERE status IN ('pending', 'running')"
                " AND status = ? AND type > ?"
                " ORDER BY type LIMIT 1",
                (status, after),
            ).fetchone()
            if row is None:
                break
            after = row[0]
            args = [status, after] if user_id is None else [status, after, user_id]
            (n,) = conn.execute(
                f"SELECT COUNT(*) FROM jobs INDEXED BY jobs_active WHERE status IN ('pending', 'running')"
                f" AND status = ?"
                f" AND type = ?{by_user}",
                args,
            ).fetchone()
            if n:
                out.append((after, status, int(n)))
    return out


_INSERT_JOB = (
    "INSERT INTO jobs (id, type, status, progress, input, attempt, max_attempts,"
    " user_id, concurrency_key, idempotency_key, created_at, updated_at, run_at)"
    " VALUES (?, ?, 'pending', 0, ?, 1, ?, ?, ?, ?, ?, ?, ?)"
)


def _insert_args(new: NewJob, now: int) -> tuple[Any, ...]:
    return (new.id, new.type, new.input, new.max_attempts, new.user_id, new.concurrency_key,
            new.idempotency_key, now, now, now)  # fmt: skip


def _fresh_row(new: NewJob, now: int) -> JobRow:
    """The row _INSERT_JOB writes, as the store would read it back."""
    return JobRow(
        new.id, new.type, PENDING, 0, None, new.input, None, None, 1, new.max_attempts,
        new.user_id, new.concurrency_key, new.idempotency_key, now, now, None, None, None,
        None, now, None, None,
    )  # fmt: skip


def _full(count: int, limit: int | None) -> bool:
    return limit is not None and count >= limit


class _Txn:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (ApiError included).

    A full disk or an I/O error can end the transaction inside SQLite already (it rolls
    back by itself), or fail the COMMIT: the rollback is then only tried, so that the
    error reported is the one that happened.
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.conn = store.conn

    def __enter__(self) -> None:
        cell = _may_start_over.get()
        backoff = _BusyBackoff()
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if cell is not None and cell[0]:
                    raise _WriterBusy from None  # the async caller awaits, then starts over
                pause = backoff.next_pause()  # begun already, or a sync caller: wait here
                if pause is None:
                    raise
                time.sleep(pause)
        if cell is not None:
            cell[0] = False

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self.store._committed()
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")


guard_storage(SQLiteStore, is_storage_error, "sqlite")

# The Store methods that take the writer (the others read, most on reader threads): each
# waits first for a checkpoint that must copy the whole WAL (_before_write) and retries a
# BEGIN that found another process's lock (_writes_keep_the_loop_free). A new Store
# method goes in one of the two (tests/server/test_sqlite_checkpoints.py checks).
WRITES = frozenset({
    "append_logs", "cancel_job", "claim_jobs", "create_job", "create_jobs", "create_schedule",
    "delete_schedule", "fail_jobs", "finish_job", "finish_jobs_many", "fire_due_schedules",
    "record_events", "renew_leases", "requeue_orphans", "retry_job", "run_schedule",
    "save_step", "save_steps_many", "set_progress", "set_progress_many",
    "set_schedule_paused", "suspend_job", "sweep", "sweep_history",
})  # fmt: skip
READS = frozenset({
    "active_jobs_older_than", "count_running", "events_for_job", "get_event", "get_job",
    "get_schedule", "last_log_seq", "list_events", "list_jobs", "list_logs",
    "list_schedule_runs", "list_schedules", "load_steps", "next_run_at",
    "next_schedule_tick", "stats",
})  # fmt: skip


def _writes_keep_the_loop_free(cls: type[SQLiteStore]) -> None:
    """Wrap each of WRITES: it awaits a checkpoint that must copy the whole WAL, and
    starts over after an await when its first BEGIN finds another process's lock."""
    for name in sorted(WRITES):
        fn = getattr(cls, name)

        @functools.wraps(fn)
        async def write(
            self: SQLiteStore, *args: Any, _fn: Callable[..., Any] = fn, **kwargs: Any
        ) -> Any:
            while self._writer_lent is not None:  # to a sweep batch, in its thread
                await asyncio.shield(self._writer_lent)
            if self._writes_wait is not None:
                await self._before_write()
            if _may_start_over.get() is not None:  # inside another write call of this task
                return await _fn(self, *args, **kwargs)
            backoff = _BusyBackoff()
            while True:
                token = _may_start_over.set([True])
                try:
                    return await _fn(self, *args, **kwargs)
                except _WriterBusy:
                    pass
                finally:
                    _may_start_over.reset(token)
                pause = backoff.next_pause()
                if pause is None:
                    raise StorageUnavailable("sqlite: database is locked")
                await asyncio.sleep(pause)

        setattr(cls, name, write)


_writes_keep_the_loop_free(SQLiteStore)

__all__ = ["ApiError", "DatabaseLocked", "SQLiteStore"]
