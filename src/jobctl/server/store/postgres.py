"""PostgreSQL store: several server processes, on one or many machines, share one database.

The database is the only coordination between servers:

- Claims take pending rows with `FOR UPDATE SKIP LOCKED` through a partial index on
  pending jobs (`jobs_pending`, migration 0002). It holds only pending rows and gives
  the claim's `ORDER BY run_at, id` directly, so the plan does not depend on fresh
  statistics (the peer benchmark's pitfall: a stale "100% pending" made the planner
  walk every claimed row on each claim). When concurrency limits are set, claims also
  take a transaction-scoped advisory lock, so that the running counts they check cannot
  change under them: limits hold across servers.
- Every statement that changes job rows (or adds log lines) calls `pg_notify` in the
  same transaction, one notification per row, carrying the row itself when it fits in
  NOTIFY's 8000-byte payload (otherwise the row without its large text fields, which
  the listener reads back). PostgreSQL delivers notifications after commit and in
  commit order, so each server's listener publishes every committed change, its own
  included, exactly once and in order on `store.changes`: the engine wakes and
  notices cancels through it, and Realtime subscribers of any server hear about
  changes made by every server. Methods therefore return before their change has
  been published (SQLite publishes before returning); nothing relies on that order.

Statements that write run in autocommit mode as one statement (one round trip) where
they can; the rest use explicit transactions. Connections come from two small pools
(a request waits at most POOL_TIMEOUT for one; _Pool says why not psycopg_pool): durable commits for what
must survive a crash of PostgreSQL (new jobs, completed steps, cancel, retry, expiry),
and relaxed ones (`synchronous_commit=off`) for the workers' bookkeeping; see
PostgresStore.__init__ for why that is safe. Producers outside a server (an app, a
script) use `PostgresStore(url, listen=False)` and `create_job_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from typing import Any

import psycopg
import psycopg.sql
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import ConnStatus, TransactionStatus

from jobctl.server.changes import ChangeBus
from jobctl.server.joberrors import JobConflict, JobNotFound
from jobctl.server.records import (
    CANCELLED,
    FAILED,
    JOB_COLUMNS,
    JOB_SELECT,
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
from jobctl.server.store.published import (
    PublishedTable,
    PublishSpec,
    describe,
    install_trigger,
    read_row,
    scan_rows,
)

log = logging.getLogger("jobctl.store")

CHANNEL = "jobctl_changes"
PAYLOAD_MAX = 7900  # NOTIFY payloads must stay under 8000 bytes
CLAIM_LOCK = 0x6A6F6263746C01  # advisory lock keys (any bigint; ours are "jobctl" + n)
MIGRATE_LOCK = 0x6A6F6263746C02
# A server stopped (SIGSTOP, a VM paused, a GC pause) inside a transaction keeps its row
# locks, and a statement of another server that touches those rows would wait for it for
# good: the re-queue of its expired leases first of all. PostgreSQL ends such a session
# after this long idle in its transaction (ours last milliseconds), which releases them;
# the stalled server, resumed, finds its connection gone and its leases taken.
IDLE_IN_TRANSACTION_MS = 5000
LINGER, LINGER_AFTER = 0.002, 0.004  # seconds (see _read_notifications)
CLOSE_WAIT = 5.0  # seconds close() waits for the change listener to stop
BIG_JOB_FIELDS = ("message", "input", "output", "error")
N_JOB = len(JOB_COLUMNS)

# Kinds in a notification's first element: full row, row without large text, id only.
INSERT, UPDATE = "INSERT", "UPDATE"
_KINDS = {"I": INSERT, "U": UPDATE}


def _notify_jobs(kind: str) -> str:
    """`pg_notify(...)` for every row of the CTE `c` (a job row), plus its lateral `n`."""
    full = f"json_build_array('{kind}', {', '.join('c.' + col for col in JOB_COLUMNS)})::text"
    slim_cols = ", ".join("NULL" if col in BIG_JOB_FIELDS else "c." + col for col in JOB_COLUMNS)
    slim = f"json_build_array('{kind}s', {slim_cols})::text"  # built only for big rows
    tiny = f"json_build_array('{kind}x', c.id)::text"
    return (
        f"pg_notify('{CHANNEL}', CASE WHEN octet_length(n.full_) <= {PAYLOAD_MAX} THEN n.full_"
        f" WHEN octet_length({slim}) <= {PAYLOAD_MAX} THEN {slim} ELSE {tiny} END)"
        f" FROM c CROSS JOIN LATERAL (SELECT {full} AS full_) n"
    )


@functools.cache
def _announcing(kind: str, dml: str) -> str:
    """Wrap a DML statement that returns job rows so that it also notifies each row."""
    cols = ", ".join("c." + col for col in JOB_COLUMNS)
    return f"WITH c AS ({dml} RETURNING {JOB_SELECT}) SELECT {cols}, {_notify_jobs(kind)}"


def _pg(sql: str) -> str:
    """A statement written with `?` placeholders (shared with SQLite), for psycopg."""
    return sql.replace("%", "%%").replace("?", "%s")


def _rows(raw: Iterable[Sequence[Any]]) -> list[JobRow]:
    return [JobRow(*r[:N_JOB]) for r in raw]


_INSERT_JOB = _announcing(
    "I",
    "INSERT INTO jobs (id, type, status, progress, input, attempt, max_attempts, user_id,"
    " concurrency_key, idempotency_key, created_at, updated_at, run_at)"
    " VALUES (%s, %s, 'pending', 0, %s, 1, %s, %s, %s, %s, %s, %s, %s)",
)

_FINISH = _announcing(
    "U",
    "UPDATE jobs SET status = %(status)s, output = %(output)s,"
    " error = %(error)s, message = COALESCE(%(message)s, message, %(status)s),"
    " progress = CASE WHEN %(status)s = 'completed' THEN 100 ELSE progress END,"
    " completed_at = %(now)s, updated_at = %(now)s, lease_owner = NULL,"
    " lease_expires_at = NULL WHERE id = %(id)s AND status = 'running'"
    " AND lease_owner = %(owner)s AND lease_token = %(token)s",
)


def _finish_args(job_id: str, lease: Lease, status: str, output: str | None, error: str | None,
                 message: str | None, now: int) -> dict[str, Any]:  # fmt: skip
    return {"status": status, "output": output, "error": error, "message": message,
            "now": now, "id": job_id, "owner": lease.owner, "token": lease.token}  # fmt: skip


_PROGRESS = _announcing(
    "U",
    "UPDATE jobs SET progress = COALESCE(%s, progress), message = %s,"
    " updated_at = %s WHERE id = %s AND status = 'running'"
    " AND lease_owner = %s AND lease_token = %s",
)

# A schedule's tick job (migration 0005): with its schedule, tick and a run_at (jitter).
_INSERT_SCHEDULED_JOB = _announcing(
    "I",
    "INSERT INTO jobs (id, type, status, progress, input, attempt, max_attempts, user_id,"
    " concurrency_key, idempotency_key, created_at, updated_at, run_at, schedule_id,"
    " schedule_tick) VALUES (%s, %s, 'pending', 0, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
)

# A tick's run; an existing row changes only from buffered to started (else: a duplicate).
_UPSERT_RUN = (
    f"INSERT INTO schedule_runs ({RUN_SELECT}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (schedule_id, tick) DO UPDATE SET outcome = excluded.outcome,"
    " job_id = excluded.job_id, recorded_at = excluded.recorded_at, detail = excluded.detail"
    " WHERE schedule_runs.outcome = 'buffered' AND excluded.outcome = 'started'"
)


class _SomeTickRanAlready(Exception):
    pass


_CLAIM_FREE = _announcing(
    "U",
    "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, %(now)s),"
    " lease_owner = %(owner)s, lease_expires_at = %(lease)s, updated_at = %(now)s,"
    " lease_token = lease_token + 1"
    # ARRAY(...) runs the locking sub-select once (an IN (...) can be re-planned as a join
    # that takes more rows than LIMIT).
    " WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE status = 'pending' AND run_at <= %(now)s"
    " AND (lease_expires_at IS NULL OR lease_expires_at < %(now)s)"
    " ORDER BY run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
    " AND status = 'pending'",
)

_CLAIM_IDS = _announcing(
    "U",
    "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, %(now)s),"
    " lease_owner = %(owner)s, lease_expires_at = %(lease)s, updated_at = %(now)s,"
    " lease_token = lease_token + 1"
    " WHERE id = ANY(%(ids)s) AND status = 'pending'",
)

# A worker's writes hold the job's row (FOR SHARE) while they check its lease: a re-queue
# or claim by another server waits for them to commit, so whatever that server reads next
# (the steps it replays on) includes them, and a write that comes after it is refused.
_HELD = (
    "SELECT 1 FROM jobs WHERE id = %(fence_id)s AND lease_token = %(fence_token)s"
    " AND lease_owner = %(fence_owner)s FOR SHARE"
)
# Log lines are also taken from a worker that has just let go of the job (its last
# lines, an on_failure hook's), but not once someone else holds it.
_HELD_OR_RELEASED = (
    "SELECT 1 FROM jobs WHERE id = %(fence_id)s AND lease_token = %(fence_token)s"
    " AND (lease_owner = %(fence_owner)s OR lease_owner IS NULL) FOR SHARE"
)

_LOG_NOTIFY = (
    # One notification per line, in the order of the lines: the user id comes from a
    # scalar sub-select (a join could hand the rows out in another order).
    "WITH {fence} c AS (INSERT INTO job_logs (job_id, seq, ts, level, step, message)"
    " SELECT * FROM unnest(%(job_id)s::text[], %(seq)s::int[], %(ts)s::bigint[],"
    " %(level)s::text[], %(step)s::text[], %(message)s::text[]) {where}"
    " RETURNING job_id, seq, ts, level, step, message)"
    f" SELECT pg_notify('{CHANNEL}', CASE WHEN octet_length(n.full_) <= {PAYLOAD_MAX}"
    " THEN n.full_ ELSE json_build_array('Ls', c.job_id, c.seq, c.ts, c.level, NULL, NULL,"
    " n.user_id)::text END) FROM c CROSS JOIN LATERAL (SELECT u.user_id,"
    " json_build_array('L', c.job_id, c.seq, c.ts, c.level, c.step, c.message,"
    " u.user_id)::text AS full_ FROM (SELECT (SELECT user_id FROM jobs WHERE id = c.job_id)"
    " AS user_id) u) n"
)
_LOG_FREE = _LOG_NOTIFY.format(fence="", where="")
_LOG_FENCED = _LOG_NOTIFY.format(
    fence=f"f AS ({_HELD_OR_RELEASED}),", where="WHERE EXISTS (SELECT 1 FROM f)"
)

_STEP_COLUMNS_SET = (
    " ON CONFLICT (job_id, step_id) DO UPDATE SET name = excluded.name,"
    " position = excluded.position, status = excluded.status,"
    " attempt = excluded.attempt, output = excluded.output, error = excluded.error,"
    " started_at = excluded.started_at, completed_at = excluded.completed_at"
)
_STEP_VALUES = (
    "%(job_id)s, %(step_id)s, %(name)s, %(position)s, %(status)s, %(attempt)s, %(output)s,"
    " %(error)s, %(started_at)s, %(completed_at)s"
)
_SAVE_STEP_FREE = f"INSERT INTO steps ({STEP_SELECT}) VALUES ({_STEP_VALUES}){_STEP_COLUMNS_SET}"
_SAVE_STEP_FENCED = (
    f"WITH f AS ({_HELD}) INSERT INTO steps ({STEP_SELECT}) SELECT {_STEP_VALUES}"
    f" WHERE EXISTS (SELECT 1 FROM f){_STEP_COLUMNS_SET}"
)


def is_storage_error(exc: BaseException) -> bool:
    """Connection trouble (refused, dropped, the server shutting down), a full disk, a
    read-only or recovering server, a statement cancelled by a timeout, a session ended
    after standing idle in its transaction (a stalled server): not the query's fault, so
    the API answers 503 and the engine tries again."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if isinstance(
        exc, psycopg.errors.ReadOnlySqlTransaction | psycopg.errors.IdleInTransactionSessionTimeout
    ):
        return True
    return isinstance(exc, OSError | TimeoutError)


def _by_job(job_ids: Iterable[str]) -> list[int]:
    """The positions of a batch of fenced writes in job-id order: each batch takes its
    rows' locks in that order, so that two batches in flight never wait on each other
    in a cycle (a deadlock, which PostgreSQL would break by failing one)."""
    ids = list(job_ids)
    return sorted(range(len(ids)), key=ids.__getitem__)


def _step_args(step: StepRow) -> dict[str, Any]:
    return {"job_id": step.job_id, "step_id": step.step_id, "name": step.name,
            "position": step.position, "status": step.status, "attempt": step.attempt,
            "output": step.output, "error": step.error, "started_at": step.started_at,
            "completed_at": step.completed_at}  # fmt: skip


def _fence(job_id: str, lease: Lease) -> dict[str, Any]:
    return {"fence_id": job_id, "fence_token": lease.token, "fence_owner": lease.owner}


def _insert_args(new: NewJob, now: int) -> tuple[Any, ...]:
    return (new.id, new.type, new.input, new.max_attempts, new.user_id, new.concurrency_key,
            new.idempotency_key, now, now, now)  # fmt: skip


_Steps = Generator[tuple[str, Sequence[Any]], list[Any], "tuple[JobRow, bool] | None"]


def _idempotent_create(new: NewJob, now: int, ttl_us: int) -> _Steps:
    """The statements of a create with an idempotency key, in one transaction, written
    once for the async and the sync connection: yields (sql, args), receives the rows.
    Returns (row, created), or None when another server took the key meanwhile (the
    caller runs it again in a new transaction)."""
    key = (new.user_id, new.idempotency_key)
    hit = yield (
        "SELECT job_id, expires_at FROM idempotency_keys WHERE user_id = %s AND key = %s"
        " FOR UPDATE",
        key,
    )
    if hit:
        job_id, expires_at = hit[0]
        existing = yield (f"SELECT {JOB_SELECT} FROM jobs WHERE id = %s AND user_id = %s",
                          (job_id, new.user_id))  # fmt: skip
        if existing and expires_at > now:
            return JobRow(*existing[0]), False
        yield ("DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s", key)
    taken = yield (
        "INSERT INTO idempotency_keys (user_id, key, job_id, expires_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING job_id",
        (*key, new.id, now + ttl_us),
    )
    if not taken:
        return None
    inserted = yield (_INSERT_JOB, _insert_args(new, now))
    return _rows(inserted)[0], True


POOL_TIMEOUT = 30.0  # seconds a request waits for a free connection


class _KeyRace(Exception):
    """Another server took an idempotency key between our look and our insert."""


class PoolTimeout(psycopg.OperationalError):
    """Every connection stayed busy for POOL_TIMEOUT: a storage fault (503), not a hang."""


def _store_conninfo(url: str, schema: str | None) -> str:
    """The store's connection string: the caller's, plus its session settings (the
    search_path of its own schema, the idle-in-transaction bound) after any options the
    caller's URL gives."""
    opts = [str(conninfo_to_dict(url).get("options") or "")]
    if schema:
        opts.append(f"-c search_path={schema}")
    opts.append(f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}")
    return make_conninfo(url, options=" ".join(o for o in opts if o))


class _Pool:
    """At most `size` autocommit connections, each made on first use and again after it
    broke. A connection given back mid-transaction (a cancelled task) or broken is
    closed, not reused; a request waits at most POOL_TIMEOUT for a free one.

    Not psycopg_pool: its getconn() never reports a refused or failed connection; it
    waits out its timeout while a background worker retries (logging a warning each
    time), so a PostgreSQL outage would hold every request for the whole timeout before
    its 503, where here the first request to try learns of it from the connect itself
    (bounded by connect_timeout) and the engine and clients retry on their own terms.
    A checkout here is also cheaper (7-15 us against 18-41 us, measured with the pools
    side by side when this was chosen)."""

    def __init__(self, url: str, size: int, setup: str | None = None) -> None:
        self.url = url
        self._setup = setup  # a SET statement for every new connection
        self._idle: asyncio.Queue[AsyncConnection[Any] | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)
        self._all: set[AsyncConnection[Any]] = set()

    async def _connect(self) -> AsyncConnection[Any]:
        # A bounded wait: an unreachable server is an error to report and retry, not a hang.
        conn = await AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10)
        if self._setup:
            await conn.execute(self._setup)  # type: ignore[arg-type]
        self._all.add(conn)
        return conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        try:
            conn = await asyncio.wait_for(self._idle.get(), POOL_TIMEOUT)
        except TimeoutError:
            raise PoolTimeout(f"no free connection within {POOL_TIMEOUT:g} s") from None
        try:
            if conn is None or conn.closed:
                conn = None
                conn = await self._connect()
            yield conn
        except BaseException:
            if conn is not None and (
                conn.closed or conn.info.transaction_status != TransactionStatus.IDLE
            ):
                self._all.discard(conn)
                with contextlib.suppress(Exception):
                    await conn.close()
                conn = None
            raise
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in list(self._all):
            with contextlib.suppress(Exception):
                await conn.close()
        self._all.clear()


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 6,
        listen: bool = True,
        schema: str | None = None,
        publish: Sequence[PublishSpec] = (),
    ) -> None:
        """`listen=False`: a store that only writes (a producer enqueueing jobs) and does
        not publish changes, so it does not read every notification of the database.

        `schema`: the schema of the store's own tables (its connections' search_path);
        None is the database's default (public). `publish`: tables of an app's whose changes
        go out with the store's own (store/published.py); needs `schema` (the trigger's
        function lives there)."""
        self.url = url
        self._listen = listen
        self.schema = schema
        self._publish = tuple(publish)
        if self._publish and not schema:
            raise ValueError("publishing tables needs the store's own schema")
        self.published: dict[str, PublishedTable] = {}  # "schema.name" -> its shape
        self.description = "postgresql:" + _redact(url)
        self.changes = ChangeBus()
        # The store's own connections find its tables by search_path (the SQL names them bare).
        self._conninfo = _store_conninfo(url, schema)
        self._pool = _Pool(self._conninfo, pool_size)
        # Relaxed writes commit without waiting for the WAL flush: claims, progress, logs,
        # finishing, suspending and re-queueing jobs. Only a crash of PostgreSQL itself
        # can lose them, and that is safe: WAL is replayed in order, so what survives is
        # a prefix, and every durable commit (a new job, a completed step, a cancel or
        # retry) flushes the WAL up to itself. A lost claim leaves the job pending; a lost
        # finish leaves it running until its lease runs out, and then the job replays on
        # its durable steps to the same result (Inngest's model: only steps are
        # exactly-once). Why it matters: a commit that notifies holds a cluster-wide lock
        # until it is flushed, so durable notifying commits run one at a time.
        self._relaxed = _Pool(self._conninfo, 3, "SET synchronous_commit = off")
        self._listener: asyncio.Task[None] | None = None
        self._listen_conn: AsyncConnection[Any] | None = None
        self._listening = asyncio.Event()
        self._closed = False
        self._sync_conn: psycopg.Connection[Any] | None = None
        self._last_commit_us = 0

    # lifecycle ------------------------------------------------------------
    async def open(self) -> None:
        try:
            async with self._pool.connection() as conn:
                await self._migrate(conn)
        except psycopg.OperationalError as exc:
            msg = f"cannot connect to PostgreSQL at {_redact(self.url)}: {exc}"
            raise RuntimeError(msg) from exc
        self._closed = False
        if not self._listen:
            return
        self._listener = asyncio.get_running_loop().create_task(
            self._listen_loop(), name="jobctl-pg-listen"
        )
        # Subscribe before returning, so that the caller hears every later change.
        waiter = asyncio.ensure_future(self._listening.wait())
        done, _ = await asyncio.wait(
            {waiter, self._listener}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            await self.close()
            raise RuntimeError("could not LISTEN for changes on PostgreSQL")

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            # Bounded: a cancelled listener may be stuck in psycopg's rollback on a connection
            # PostgreSQL no longer answers (seen once in CI, 300 s). Its socket is then closed
            # under it, which ends the task.
            _, stuck = await asyncio.wait({self._listener}, timeout=CLOSE_WAIT)
            if stuck:
                log.warning(
                    "the change listener did not stop in %s s; closing its socket", CLOSE_WAIT
                )
                if self._listen_conn is not None:
                    self._listen_conn.pgconn.finish()
                await asyncio.wait(stuck, timeout=CLOSE_WAIT)
            self._listener = None
        await self._pool.close()
        await self._relaxed.close()
        self.close_sync()

    async def _migrate(self, conn: AsyncConnection[Any]) -> None:
        # Several servers may start at once: one migrates, the others wait and then see it done.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            if self.schema:
                await conn.execute(
                    psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        psycopg.sql.Identifier(self.schema)
                    )
                )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)"
            )
            cur = await conn.execute("SELECT name FROM schema_migrations")
            done = {r[0] for r in await cur.fetchall()}
            for name, sql in migrations("postgres"):
                if name in done:
                    continue
                for stmt in split_sql(sql, "postgresql"):
                    await conn.execute(stmt)  # type: ignore[arg-type]
                await conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
            for spec in self._publish:
                table = await describe(conn, spec)
                assert self.schema is not None
                await install_trigger(conn, table, self.schema)
                self.published[table.qualified] = table

    # change fan-out ----------------------------------------------------------
    async def _listen_loop(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                conn = await AsyncConnection.connect(self.url, autocommit=True)
                self._listen_conn = conn
                async with conn:
                    await self._listen_on(conn, again=delay > 0.1)
                    delay = 0.1
                    await self._read_notifications(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closed:
                    return
                reason = " ".join(str(exc).split())
                log.warning("change listener lost its connection (%s); reconnecting", reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _listen_on(self, conn: AsyncConnection[Any], *, again: bool) -> None:
        early: list[str] = []  # any that psycopg reads along with LISTEN's answer
        conn.add_notify_handler(lambda note: early.append(note.payload))
        await conn.execute(f"LISTEN {CHANNEL}")
        if again:
            log.warning("listening for changes again; changes meanwhile were missed")
        self._listening.set()
        for payload in early:
            await self._deliver_logged(payload)

    async def _read_notifications(self, conn: AsyncConnection[Any]) -> None:
        """Publish notifications as they arrive, until the connection fails.

        psycopg's `conn.notifies()` adds and removes its reader and makes a future for
        every batch, which costs twice what publishing the change does (about 57 against
        27 us of CPU a notification, measured; every server reads every change); a reader
        kept on the socket for the connection's life wakes this loop instead.
        """
        loop = asyncio.get_running_loop()
        pgconn = conn.pgconn
        encoding = conn.info.encoding
        fd = pgconn.socket
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        last = 0.0
        try:
            while True:
                await readable.wait()
                readable.clear()
                pgconn.consume_input()  # raises OperationalError on a lost connection
                if pgconn.status != ConnStatus.OK:
                    raise psycopg.OperationalError("the listening connection went bad")
                note = pgconn.notifies()
                if note is None:
                    continue
                while note is not None:
                    await self._deliver_logged(note.extra.decode(encoding))
                    note = pgconn.notifies()
                now = time.monotonic()
                if now - last < LINGER_AFTER:
                    # Changes are coming fast: let the next few gather and read them at
                    # once, rather than waking for each (at most LINGER late, under load;
                    # a linger that gathers nothing ends it).
                    loop.remove_reader(fd)
                    await asyncio.sleep(LINGER)
                    loop.add_reader(fd, readable.set)
                    readable.set()
                last = now
        finally:
            loop.remove_reader(fd)

    async def _deliver_logged(self, payload: str) -> None:
        try:
            await self._deliver(payload)
        except Exception:
            log.exception("could not publish a change: %.200s", payload)

    async def _deliver(self, payload: str) -> None:
        data = json.loads(payload)
        tag: str = data[0]
        bus = self.changes
        if tag[0] == "P":
            await self._deliver_published(tag, data)
            return
        if tag[0] == "L":
            job_id, seq, ts, level, step, message, user_id = data[1:8]
            if tag == "Ls":
                async with self._pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT step, message FROM job_logs WHERE job_id = %s AND seq = %s",
                        (job_id, seq),
                    )
                    found = await cur.fetchone()
                if found is None:
                    return
                step, message = found
            line = LogRow(job_id, seq, ts, level, step, message)
            commit_us = self._commit_time(ts)
            bus.publish(
                Change(bus.next_seq(), "job_logs", INSERT, line, None, commit_us, user_id or "")
            )
            return
        kind = _KINDS[tag[0]]
        if len(tag) == 1:
            row = JobRow(*data[1:])
        else:
            row_or_none = await self._reread(tag[1], data)
            if row_or_none is None:
                return  # deleted since; nothing left to announce
            row = row_or_none
        commit_us = self._commit_time(row.updated_at)
        bus.publish(Change(bus.next_seq(), "jobs", kind, row, {"id": row.id}, commit_us,
                           row.user_id))  # fmt: skip

    async def _deliver_published(self, tag: str, data: list[Any]) -> None:
        """A change to a published table (its trigger's notification; store/published.py)."""
        source, kind, record, key, owner, stamped = data[1:7]
        table = self.published.get(source)
        if table is None:
            return  # a table another server publishes, not this one
        if tag == "Px" and kind != "DELETE":
            async with self._pool.connection() as conn:
                record = await read_row(conn, table, key)
            if record is None:
                return  # deleted since; its DELETE follows
        commit_us = self._commit_time(int(stamped))
        bus = self.changes
        bus.publish(Change(bus.next_seq(), source, kind, None, key, commit_us, owner or "",
                           record))  # fmt: skip

    async def scan_published(
        self, source: str, owner: str | None, after: tuple[str, ...] | None, limit: int
    ) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
        """A page of a published table's rows (one owner's, or all for None), by primary key."""
        table = self.published[source]
        try:
            async with self._pool.connection() as conn:
                return await scan_rows(conn, table, owner, after, limit)
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            message = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise StorageUnavailable(f"postgresql: {message}") from exc

    def _commit_time(self, stamped: int) -> int:
        """A change's commit time that never goes backwards in commit order. Rows carry the
        time their writer took before the commit, and writers (tasks, servers) interleave."""
        self._last_commit_us = max(self._last_commit_us, stamped)
        return self._last_commit_us

    async def _reread(self, how: str, data: list[Any]) -> JobRow | None:
        """A row too large for a notification: read back what was left out.

        The fields read back are the current ones, which can be newer than the change
        (a race only for jobs whose text fields exceed about 7.9 kB).
        """
        async with self._pool.connection() as conn:
            if how == "x":
                cur = await conn.execute(f"SELECT {JOB_SELECT} FROM jobs WHERE id = %s", (data[1],))
                found = await cur.fetchone()
                return None if found is None else JobRow(*found)
            cur = await conn.execute(
                f"SELECT {', '.join(BIG_JOB_FIELDS)} FROM jobs WHERE id = %s", (data[1],)
            )
            big = await cur.fetchone()
        if big is None:
            return None
        row = JobRow(*data[1:])
        for name, value in zip(BIG_JOB_FIELDS, big, strict=True):
            setattr(row, name, value)
        return row

    async def wait_listening(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._listening.wait(), timeout)

    # helpers --------------------------------------------------------------
    async def _fetch_jobs(
        self, sql: str, args: Sequence[Any] | dict[str, Any], *, relaxed: bool = False
    ) -> list[JobRow]:
        async with (self._relaxed if relaxed else self._pool).connection() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return _rows(await cur.fetchall())

    async def _select_job(
        self, conn: AsyncConnection[Any], job_id: str, user_id: str | None, lock: bool = False
    ) -> JobRow | None:
        sql = f"SELECT {JOB_SELECT} FROM jobs WHERE id = %s"
        args: list[Any] = [job_id]
        if user_id is not None:
            sql += " AND user_id = %s"
            args.append(user_id)
        if lock:
            sql += " FOR UPDATE"
        cur = await conn.execute(sql, args)  # type: ignore[arg-type]
        row = await cur.fetchone()
        return JobRow(*row) if row else None

    # jobs -----------------------------------------------------------------
    async def create_job(
        self, new: NewJob, now: int, idempotency_ttl_us: int
    ) -> tuple[JobRow, bool]:
        if new.idempotency_key is None:
            return (await self._fetch_jobs(_INSERT_JOB, _insert_args(new, now)))[0], True
        for _ in range(5):  # another server racing on the same key: look again
            async with self._pool.connection() as conn, conn.transaction():
                steps = _idempotent_create(new, now, idempotency_ttl_us)
                rows: list[Any] | None = None  # a generator starts on None
                try:
                    while True:
                        sql, args = steps.send(rows)  # type: ignore[arg-type]
                        cur = await conn.execute(sql, args)  # type: ignore[arg-type]
                        rows = await cur.fetchall() if cur.description else []
                except StopIteration as done:
                    if done.value is not None:
                        return done.value  # type: ignore[no-any-return]
        raise RuntimeError("idempotency key kept changing under us; try again")

    async def create_jobs(
        self,
        news: list[NewJob],
        now: int,
        idempotency_ttl_us: int,
        history: HistoryFn | None = None,
    ) -> list[tuple[JobRow, bool]]:
        for _ in range(5):  # another server took one of the keys meanwhile: all again
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    results: list[tuple[JobRow, bool]] = []
                    at = 0
                    while at < len(news):
                        if news[at].idempotency_key is not None:
                            done = await self._create_in(conn, news[at], now, idempotency_ttl_us)
                            if done is None:
                                raise _KeyRace
                            results.append(done)
                            at += 1
                            continue
                        end = at + 1  # a run of jobs without keys: one pipeline, not a
                        while end < len(news) and news[end].idempotency_key is None:
                            end += 1  # round trip per job
                        results.extend((row, True) for row in await self._insert_many(
                            conn, news[at:end], now))  # fmt: skip
                        at = end
                    events = history(results) if history is not None else []
                    if events:
                        await self._insert_events(conn, events)
                return results
            except _KeyRace:
                continue
        raise RuntimeError("idempotency key kept changing under us; try again")

    async def _insert_many(
        self, conn: AsyncConnection[Any], news: list[NewJob], now: int
    ) -> list[JobRow]:
        if len(news) == 1:
            cur = await conn.execute(_INSERT_JOB, _insert_args(news[0], now))
            return _rows(await cur.fetchall())
        rows: list[JobRow] = []
        async with conn.cursor() as cur:
            await cur.executemany(
                _INSERT_JOB, [_insert_args(new, now) for new in news], returning=True
            )
            async for _ in cur.results():
                rows.extend(_rows(await cur.fetchall()))
        return rows

    async def _create_in(
        self, conn: AsyncConnection[Any], new: NewJob, now: int, ttl_us: int
    ) -> tuple[JobRow, bool] | None:
        if new.idempotency_key is None:
            cur = await conn.execute(_INSERT_JOB, _insert_args(new, now))
            return _rows(await cur.fetchall())[0], True
        steps = _idempotent_create(new, now, ttl_us)
        rows: list[Any] | None = None  # a generator starts on None
        try:
            while True:
                sql, args = steps.send(rows)  # type: ignore[arg-type]
                cur = await conn.execute(sql, args)  # type: ignore[arg-type]
                rows = await cur.fetchall() if cur.description else []
        except StopIteration as stopped:
            return stopped.value  # type: ignore[no-any-return]

    def create_job_sync(
        self, new: NewJob, now: int, idempotency_ttl_us: int
    ) -> tuple[JobRow, bool]:
        """`create_job` for producers in synchronous code (a request handler, a script):
        the same statements over a plain connection, opened on first use (`close_sync`)."""
        if self._sync_conn is None or self._sync_conn.closed:
            self._sync_conn = psycopg.connect(self._conninfo, autocommit=True)
        conn = self._sync_conn
        if new.idempotency_key is None:
            return _rows(conn.execute(_INSERT_JOB, _insert_args(new, now)).fetchall())[0], True
        for _ in range(5):
            with conn.transaction():
                steps = _idempotent_create(new, now, idempotency_ttl_us)
                rows: list[Any] | None = None
                try:
                    while True:
                        sql, args = steps.send(rows)  # type: ignore[arg-type]
                        cur = conn.execute(sql, args)  # type: ignore[arg-type]
                        rows = cur.fetchall() if cur.description else []
                except StopIteration as done:
                    if done.value is not None:
                        return done.value  # type: ignore[no-any-return]
        raise RuntimeError("idempotency key kept changing under us; try again")

    def close_sync(self) -> None:
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None

    async def get_job(self, job_id: str, user_id: str | None) -> JobRow | None:
        async with self._pool.connection() as conn:
            return await self._select_job(conn, job_id, user_id)

    async def list_jobs(self, query: ListQuery) -> tuple[list[JobRow], str | None]:
        sql, args = listing.list_sql(listing.POSTGRES, query)
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            rows = [JobRow(*r) for r in await cur.fetchall()]
        return listing.page_of(rows, query)

    async def count_running(self, user_id: str, concurrency_key: str | None) -> tuple[int, int]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT COUNT(*) FILTER (WHERE user_id = %s),"
                " COUNT(*) FILTER (WHERE concurrency_key = %s)"
                " FROM jobs WHERE status = 'running'",
                (user_id, concurrency_key),
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def claim_jobs(
        self, owner: str, limit: int, now: int, lease_us: int, limits: Limits
    ) -> list[JobRow]:
        params = {"now": now, "owner": owner, "lease": now + lease_us, "limit": limit}
        if not limits.active:
            async with self._relaxed.connection() as conn:
                cur = await conn.execute(_CLAIM_FREE, params)
                rows = _rows(await cur.fetchall())
        else:
            rows = await self._claim_limited(params, limits)
        rows.sort(key=lambda r: (r.run_at, r.id))
        return rows

    async def _claim_limited(self, params: dict[str, Any], limits: Limits) -> list[JobRow]:
        """Claims under the advisory lock: the running counts cannot change while we pick."""
        now, limit = params["now"], params["limit"]
        async with self._relaxed.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
            cur = await conn.execute(
                "SELECT user_id, concurrency_key, COUNT(*) FROM jobs WHERE status = 'running'"
                " GROUP BY user_id, concurrency_key"
            )
            users: dict[str, int] = {}
            keys: dict[str, int] = {}
            for user_id, key, n in await cur.fetchall():
                users[user_id] = users.get(user_id, 0) + n
                if key is not None:
                    keys[key] = keys.get(key, 0) + n
            # Stamp the claim with a time after every finish that the counts above saw:
            # waiting for the lock took a while, and a start stamped before the finish
            # that freed its slot would look like a broken limit in the stored times.
            params = {**params, "now": max(now, now_us())}
            full_users = [u for u, n in users.items() if _full(n, limits.per_user)]
            full_keys = [k for k, n in keys.items() if _full(n, limits.key_limit(k))]
            cur = await conn.execute(
                "SELECT id, user_id, concurrency_key FROM jobs WHERE status = 'pending'"
                " AND run_at <= %s AND (lease_expires_at IS NULL OR lease_expires_at < %s)"
                " AND NOT (user_id = ANY(%s))"
                " AND (concurrency_key IS NULL OR NOT (concurrency_key = ANY(%s)))"
                " ORDER BY run_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
                (now, now, full_users, full_keys, limit * 4),
            )
            picked: list[str] = []
            for job_id, user_id, key in await cur.fetchall():
                if _full(users.get(user_id, 0), limits.per_user):
                    continue
                if key is not None and _full(keys.get(key, 0), limits.key_limit(key)):
                    continue
                users[user_id] = users.get(user_id, 0) + 1
                if key is not None:
                    keys[key] = keys.get(key, 0) + 1
                picked.append(job_id)
                if len(picked) >= limit:
                    break
            if not picked:
                return []
            cur = await conn.execute(_CLAIM_IDS, {**params, "ids": picked})
            return _rows(await cur.fetchall())

    async def next_run_at(self) -> int | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT run_at FROM jobs WHERE status = 'pending' ORDER BY run_at, id LIMIT 1"
            )
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def renew_leases(self, owner: str, held: dict[str, int], until: int) -> set[str]:
        if not held:
            return set()
        # The rows are locked in id order (COLLATE "C": byte order, as _by_job sorts the
        # batched writes), not in the join's: a renewal of thousands of leases in the
        # join's order deadlocked with the batched progress and step writes, which take
        # theirs in id order (bench/inflight.py --db pg: 1-3 a run, each a write held
        # for PostgreSQL's deadlock_timeout and retried, the 2 s maximum latency).
        async with self._relaxed.connection() as conn:
            cur = await conn.execute(
                "WITH l AS (SELECT j.id FROM jobs j"
                " JOIN unnest(%s::text[], %s::bigint[]) AS l(id, token)"
                " ON j.id = l.id AND j.lease_token = l.token"
                ' WHERE j.lease_owner = %s ORDER BY j.id COLLATE "C" FOR UPDATE OF j)'
                " UPDATE jobs SET lease_expires_at = %s FROM l WHERE jobs.id = l.id"
                " RETURNING jobs.id",
                (list(held), list(held.values()), owner, until),
            )
            return {r[0] for r in await cur.fetchall()}

    async def _check_lease(
        self, conn: AsyncConnection[Any], job_id: str, lease: Lease, *, released_ok: bool = False
    ) -> None:
        """After a fenced write changed nothing: LeaseLost unless `lease` still holds the
        job (then it only stopped running: cancelled or expired) or, with released_ok,
        held it last and let go of it."""
        cur = await conn.execute(
            "SELECT lease_owner, lease_token FROM jobs WHERE id = %s", (job_id,)
        )
        row = await cur.fetchone()
        if row is None or row[1] != lease.token:
            raise LeaseLost(job_id)
        if row[0] != lease.owner and not (released_ok and row[0] is None):
            raise LeaseLost(job_id)

    async def requeue_orphans(self, now: int, owner: str | None) -> list[JobRow]:
        if owner is None:
            # Only a store that is ours alone may treat every running job as orphaned.
            raise ValueError("PostgreSQL is shared between servers: requeue by lease only")
        return await self._fetch_jobs(
            _announcing(
                "U",
                "UPDATE jobs SET status = 'pending', lease_owner = NULL,"
                " lease_expires_at = NULL, updated_at = %s, run_at = %s,"
                " lease_token = lease_token + 1, message = 'Resuming after a lost worker'"
                " WHERE id IN (SELECT id FROM jobs WHERE status = 'running'"
                " AND lease_expires_at < %s FOR UPDATE SKIP LOCKED)",
            ),
            (now, now, now),
            relaxed=True,
        )

    async def set_progress(
        self, job_id: str, lease: Lease, progress: int | None, message: str | None, now: int
    ) -> JobRow | None:
        async with self._relaxed.connection() as conn:
            cur = await conn.execute(
                _PROGRESS, (progress, message, now, job_id, lease.owner, lease.token)
            )
            rows = _rows(await cur.fetchall())
            if not rows:
                await self._check_lease(conn, job_id, lease)
        return rows[0] if rows else None

    async def set_progress_many(
        self, writes: list[ProgressWrite], now: int
    ) -> list[JobRow | LeaseLost | None]:
        # One transaction, sent in one round trip (pipeline mode): with 5,000 jobs in
        # flight a round trip per write was what kept progress waiting (#15).
        done: dict[int, JobRow | LeaseLost | None] = {}
        order = _by_job(w.job_id for w in writes)
        async with self._relaxed.connection() as conn:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                cursors = [await conn.execute(_PROGRESS, (
                    writes[i].progress, writes[i].message, now, writes[i].job_id,
                    writes[i].lease.owner, writes[i].lease.token)) for i in order]  # fmt: skip
                await conn.execute("COMMIT")
            for i, cur in zip(order, cursors, strict=True):
                rows = _rows(await cur.fetchall())
                if rows:
                    done[i] = rows[0]
                    continue
                try:
                    await self._check_lease(conn, writes[i].job_id, writes[i].lease)
                except LeaseLost as exc:
                    done[i] = exc
                    continue
                done[i] = None
        return [done[i] for i in range(len(writes))]

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
        async with self._relaxed.connection() as conn:
            cur = await conn.execute(_FINISH, _finish_args(job_id, lease, status, output,
                                                           error, message, now))  # fmt: skip
            rows = _rows(await cur.fetchall())
            if not rows:
                await self._finish_missed(conn, job_id, lease)
        return rows[0] if rows else None

    async def _finish_missed(self, conn: AsyncConnection[Any], job_id: str, lease: Lease) -> None:
        """The finishing UPDATE found no running row of ours: cancelled or expired meanwhile.
        Let go of the lease all the same; LeaseLost if it was not ours."""
        cur = await conn.execute(
            "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = %s AND lease_owner = %s AND lease_token = %s RETURNING id",
            (job_id, lease.owner, lease.token),
        )
        if not await cur.fetchall():
            # Released already (a finish repeated after a lost answer), or lost.
            await self._check_lease(conn, job_id, lease, released_ok=True)

    finishes_together = True  # one round trip for the batch

    async def finish_jobs_many(
        self, writes: list[FinishWrite], now: int
    ) -> list[JobRow | LeaseLost | None]:
        """Each job's end in a transaction of its own, all sent in one round trip (pipeline
        mode, an explicit BEGIN ... COMMIT around each UPDATE).

        Not one transaction for the batch: a job's end upserts the stats rollup rows that
        every server's ends share (migration 0006), and several ends in one transaction
        would hold those rows while taking more, in no order two servers agree on
        (deadlocks, measured with three servers). Not one round trip each either: with
        5,000 jobs ending together, three relaxed connections took 1.3 s to end them one
        at a time (bench/inflight.py --db pg: the completed changes' p99 1,261 ms)."""
        if len(writes) == 1:
            w = writes[0]
            try:
                return [await self.finish_job(w.job_id, w.lease, w.status, w.output, w.error,
                                              w.message, now)]  # fmt: skip
            except LeaseLost as exc:
                return [exc]
        done: list[JobRow | LeaseLost | None] = []
        async with self._relaxed.connection() as conn:
            async with conn.pipeline():
                cursors = []
                for w in writes:
                    await conn.execute("BEGIN")
                    cursors.append(await conn.execute(_FINISH, _finish_args(
                        w.job_id, w.lease, w.status, w.output, w.error, w.message, now)))  # fmt: skip
                    await conn.execute("COMMIT")
            for w, cur in zip(writes, cursors, strict=True):
                rows = _rows(await cur.fetchall())
                if rows:
                    done.append(rows[0])
                    continue
                try:
                    await self._finish_missed(conn, w.job_id, w.lease)
                except LeaseLost as exc:
                    done.append(exc)
                    continue
                done.append(None)
        return done

    async def suspend_job(
        self, job_id: str, lease: Lease, run_at: int, message: str, now: int
    ) -> JobRow | None:
        async with self._relaxed.connection() as conn:
            cur = await conn.execute(
                _announcing(
                    "U",
                    "UPDATE jobs SET status = 'pending', run_at = %s, message = %s,"
                    " updated_at = %s, lease_owner = NULL, lease_expires_at = NULL"
                    " WHERE id = %s AND status = 'running' AND lease_owner = %s"
                    " AND lease_token = %s",
                ),
                (run_at, message, now, job_id, lease.owner, lease.token),
            )
            rows = _rows(await cur.fetchall())
            if not rows:
                await self._check_lease(conn, job_id, lease)
        return rows[0] if rows else None

    async def cancel_job(self, job_id: str, user_id: str | None, now: int) -> JobRow:
        sql = (
            "UPDATE jobs SET status = 'cancelled', message = 'Cancelled',"
            " error = 'cancelled by request', completed_at = %s, updated_at = %s"
            " WHERE id = %s AND status IN ('pending', 'running')"
        )
        args: list[Any] = [now, now, job_id]
        if user_id is not None:
            sql += " AND user_id = %s"
            args.append(user_id)
        async with self._pool.connection() as conn:
            cur = await conn.execute(_announcing("U", sql), args)  # type: ignore[arg-type]
            rows = _rows(await cur.fetchall())
            if rows:
                return rows[0]
            current = await self._select_job(conn, job_id, user_id)
        if current is None:
            raise JobNotFound(job_id)
        raise JobConflict(f"job {job_id} already {current.status}; nothing to cancel")

    async def retry_job(
        self,
        job_id: str,
        user_id: str | None,
        from_start: bool,
        now: int,
        input: str | None = None,
    ) -> JobRow:
        async with self._pool.connection() as conn, conn.transaction():
            current = await self._select_job(conn, job_id, user_id, lock=True)
            if current is None:
                raise JobNotFound(job_id)
            if current.status not in (FAILED, CANCELLED):
                raise JobConflict(
                    f"job {job_id} is {current.status};"
                    " only failed or cancelled jobs can be retried"
                )
            if from_start:
                await conn.execute("DELETE FROM steps WHERE job_id = %s", (job_id,))
            else:
                await conn.execute(
                    "DELETE FROM steps WHERE job_id = %s AND status != 'completed'", (job_id,)
                )
            cur = await conn.execute(
                _announcing(
                    "U",
                    "UPDATE jobs SET status = 'pending', attempt = attempt + 1,"
                    " max_attempts = GREATEST(max_attempts, attempt + 1), progress = 0,"
                    " message = %s, output = NULL, error = NULL, started_at = NULL,"
                    " completed_at = NULL, run_at = %s, updated_at = %s,"
                    " input = COALESCE(%s, input), lease_owner = NULL,"
                    " lease_expires_at = NULL, lease_token = lease_token + 1 WHERE id = %s",
                ),
                ("Retrying from the start" if from_start else "Retrying", now, now, input, job_id),
            )
            return _rows(await cur.fetchall())[0]

    async def fail_jobs(self, job_ids: list[str], error: str, now: int) -> list[JobRow]:
        if not job_ids:
            return []
        return await self._fetch_jobs(
            _announcing(
                "U",
                "UPDATE jobs SET status = 'failed', error = %s, message = %s, completed_at = %s,"
                " updated_at = %s WHERE status IN ('pending', 'running') AND id = ANY(%s)",
            ),
            (error, error, now, now, job_ids),
        )

    async def active_jobs_older_than(
        self,
        started_before: int,
        created_before: int,
        limit: int = 10_000,
        types: Sequence[str] | None = None,
    ) -> list[JobRow]:
        rows: list[JobRow] = []
        async with self._pool.connection() as conn:
            for sql, args in expiry_queries(started_before, created_before, limit, types):
                cur = await conn.execute(_pg(sql), args)  # type: ignore[arg-type]
                rows += _rows(await cur.fetchall())
        return rows

    async def sweep(
        self, completed_before: int, failed_before: int, limit: int = SWEEP_BATCH
    ) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            ids: list[str] = []
            for sql, args in sweep_queries(completed_before, failed_before):
                if len(ids) < limit:
                    cur = await conn.execute(
                        _pg(sql) + " FOR UPDATE SKIP LOCKED",  # type: ignore[arg-type]
                        [*args, limit - len(ids)],
                    )
                    ids += [r[0] for r in await cur.fetchall()]
            if ids:
                await conn.execute("DELETE FROM steps WHERE job_id = ANY(%s)", (ids,))
                await conn.execute("DELETE FROM job_logs WHERE job_id = ANY(%s)", (ids,))
                await conn.execute("DELETE FROM idempotency_keys WHERE job_id = ANY(%s)", (ids,))
                await conn.execute("DELETE FROM jobs WHERE id = ANY(%s)", (ids,))
        return len(ids)

    # steps ----------------------------------------------------------------
    async def load_steps(self, job_id: str) -> list[StepRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {STEP_SELECT} FROM steps WHERE job_id = %s ORDER BY position, started_at",
                (job_id,),
            )
            return [StepRow(*r) for r in await cur.fetchall()]

    async def save_step(self, step: StepRow, lease: Lease | None) -> None:
        args = _step_args(step)
        async with self._pool.connection() as conn:
            if lease is None:
                await conn.execute(_SAVE_STEP_FREE, args)
                return
            cur = await conn.execute(_SAVE_STEP_FENCED, {**args, **_fence(step.job_id, lease)})
            if cur.rowcount == 0:
                raise LeaseLost(step.job_id)

    async def save_steps_many(self, writes: list[StepWrite]) -> list[LeaseLost | None]:
        if not writes:
            return []
        # One commit for the batch (a commit waits for the WAL's flush: one per step was
        # two per step of every job in flight, #15).
        # And in one round trip (pipeline mode), not one per step.
        done: dict[int, LeaseLost | None] = {}
        order = _by_job(w.step.job_id for w in writes)
        async with self._pool.connection() as conn, conn.pipeline():
            await conn.execute("BEGIN")
            cursors = [await conn.execute(_SAVE_STEP_FENCED, {
                **_step_args(writes[i].step), **_fence(writes[i].step.job_id, writes[i].lease)
            }) for i in order]  # fmt: skip
            await conn.execute("COMMIT")
        for i, cur in zip(order, cursors, strict=True):
            done[i] = None if cur.rowcount else LeaseLost(writes[i].step.job_id)
        return [done[i] for i in range(len(writes))]

    # logs -----------------------------------------------------------------
    async def append_logs(self, lines: list[LogRow], lease: Lease | None) -> None:
        if not lines:
            return
        args: dict[str, Any] = {
            "job_id": [ln.job_id for ln in lines],
            "seq": [ln.seq for ln in lines],
            "ts": [ln.ts for ln in lines],
            "level": [ln.level for ln in lines],
            "step": [ln.step for ln in lines],
            "message": [ln.message for ln in lines],
        }
        async with self._relaxed.connection() as conn:
            if lease is None:
                await conn.execute(_LOG_FREE, args)
                return
            job_ids = set(args["job_id"])
            if len(job_ids) != 1:
                raise ValueError("a worker's log lines are those of its one job")
            cur = await conn.execute(_LOG_FENCED, {**args, **_fence(job_ids.pop(), lease)})
            if cur.rowcount == 0:
                raise LeaseLost(lines[0].job_id)

    async def last_log_seq(self, job_id: str) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id = %s", (job_id,)
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def list_logs(self, job_id: str, after: int, limit: int) -> list[LogRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT job_id, seq, ts, level, step, message FROM job_logs"
                " WHERE job_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (job_id, after, limit),
            )
            return [LogRow(*r) for r in await cur.fetchall()]

    # monitoring -----------------------------------------------------------
    async def stats(self, window: StatsWindow) -> StatsFigures:
        results: dict[str, list[Any]] = {}
        # One snapshot for every figure (REPEATABLE READ, READ ONLY: no locks taken), and
        # one round trip for all the statements (a pipeline): each is a few rows.
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursors = {
                name: await conn.execute(_pg(sql), args)  # type: ignore[arg-type]
                for name, (sql, args) in stats_queries(window).items()
            }
            for name, cur in cursors.items():
                results[name] = list(await cur.fetchall())
        return stats_figures(results, window)

    # schedules and the event history (migration 0005) -------------------------
    @staticmethod
    def _schedule_query(where: str) -> str:
        return (
            f"SELECT {', '.join('s.' + c for c in SCHEDULE_COLUMNS)}, j.status FROM schedules s"
            f" LEFT JOIN jobs j ON j.id = s.last_job_id WHERE {where}"
        )

    async def create_schedule(self, row: ScheduleRow) -> ScheduleRow:
        marks = ", ".join(["%s"] * len(SCHEDULE_COLUMNS))
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    f"INSERT INTO schedules ({SCHEDULE_SELECT}) VALUES ({marks})",  # type: ignore[arg-type]
                    row.values(),
                )
        except psycopg.errors.UniqueViolation:
            raise JobConflict(f"a schedule named {row.name!r} exists already") from None
        return row

    async def get_schedule(self, ref: str, user_id: str | None) -> ScheduleRow | None:
        where, args = "(s.id = %s OR s.name = %s)", [ref, ref]
        if user_id is not None:
            where += " AND s.user_id = %s"
            args.append(user_id)
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._schedule_query(where) + " LIMIT 2", args)  # type: ignore[arg-type]
            rows = await cur.fetchall()
        exact = [r for r in rows if r[0] == ref] or rows
        return ScheduleRow(*exact[0]) if len(exact) == 1 else None

    async def list_schedules(self, user_id: str | None, limit: int) -> list[ScheduleRow]:
        where, args = "TRUE", []
        if user_id is not None:
            where, args = "s.user_id = %s", [user_id]
        sql = self._schedule_query(where) + ' ORDER BY s.name COLLATE "C" LIMIT %s'
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, [*args, limit])  # type: ignore[arg-type]
            return [ScheduleRow(*r) for r in await cur.fetchall()]

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, note: str | None, next_tick: int | None, now: int
    ) -> ScheduleRow | None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE schedules SET paused = %(p)s, note = %(note)s, updated_at = %(now)s,"
                " next_tick = CASE WHEN %(p)s = 1 THEN next_tick ELSE %(next)s END,"
                " buffered_tick = CASE WHEN %(p)s = 1 THEN buffered_tick ELSE NULL END"
                " WHERE id = %(id)s",
                {"p": int(paused), "note": note, "now": now, "next": next_tick, "id": schedule_id},
            )
        return await self.get_schedule(schedule_id, None)

    async def delete_schedule(self, schedule_id: str) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("DELETE FROM schedules WHERE id = %s", (schedule_id,))
            await conn.execute("DELETE FROM schedule_runs WHERE schedule_id = %s", (schedule_id,))
            return cur.rowcount > 0

    async def list_schedule_runs(self, schedule_id: str, limit: int) -> list[RunRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)}, j.status FROM schedule_runs r"
                " LEFT JOIN jobs j ON j.id = r.job_id WHERE r.schedule_id = %s"
                " ORDER BY r.tick DESC LIMIT %s",
                (schedule_id, limit),
            )
            return [RunRow(*r) for r in await cur.fetchall()]

    async def _apply_plan(
        self, conn: AsyncConnection[Any], s: ScheduleRow, plan: FirePlan, now: int
    ) -> tuple[list[tuple[str, int, str | None]], int]:
        """Inside a transaction holding the schedule's row: the runs, their jobs (announced
        at commit), the schedule's new state."""
        results: list[tuple[str, int, str | None]] = []
        started = 0
        last_tick, last_job = s.last_tick, s.last_job_id
        for run in plan.runs:
            job_id = run.job.id if run.job is not None else None
            cur = await conn.execute(
                _UPSERT_RUN + " RETURNING tick",
                (s.id, run.tick, run.kind, run.outcome, job_id, run.detail, now),
            )
            if not await cur.fetchall():
                results.append(("duplicate", run.tick, None))
                continue
            results.append((run.outcome, run.tick, job_id))
            if run.job is None:
                continue
            new = run.job
            await conn.execute(
                _INSERT_SCHEDULED_JOB,
                (new.id, new.type, new.input, new.max_attempts, new.user_id,
                 new.concurrency_key, new.idempotency_key, now, now, run.run_at, s.id, run.tick),
            )  # fmt: skip
            started += 1
            if last_tick is None or run.tick >= last_tick:
                last_tick, last_job = run.tick, new.id
        if plan.advance:
            await conn.execute(
                "UPDATE schedules SET next_tick = %s, buffered_tick = %s, last_tick = %s,"
                " last_job_id = %s, updated_at = %s WHERE id = %s",
                (plan.next_tick, plan.buffered_tick, last_tick, last_job, now, s.id),
            )
        elif last_job != s.last_job_id:
            await conn.execute(
                "UPDATE schedules SET last_tick = %s, last_job_id = %s, updated_at = %s"
                " WHERE id = %s",
                (last_tick, last_job, now, s.id),
            )
        return results, started

    async def fire_due_schedules(self, now: int, limit: int, plan: PlanFn) -> tuple[int, int]:
        started = 0
        async with self._pool.connection() as conn, conn.transaction():
            # SKIP LOCKED: servers firing at the same moment split the due schedules
            # between them; a row is re-checked against the WHERE after its lock, so a
            # schedule another server just advanced is not due any more.
            cur = await conn.execute(
                self._schedule_query(
                    "s.paused = 0 AND (s.next_tick <= %s OR s.buffered_tick IS NOT NULL)"
                )
                + " ORDER BY s.next_tick LIMIT %s FOR UPDATE OF s SKIP LOCKED",
                (now, limit),
            )
            rows = [ScheduleRow(*r) for r in await cur.fetchall()]
            plans = []
            for s in rows:
                decided = plan(s, s.last_status is not None and s.last_status not in TERMINAL)
                if decided is not None:
                    plans.append((s, decided))
            try:
                async with conn.transaction():  # a savepoint
                    started = await self._apply_plans_at_once(conn, plans, now)
            except _SomeTickRanAlready:
                for s, decided in plans:
                    started += (await self._apply_plan(conn, s, decided, now))[1]
        return len(rows), started

    async def _apply_plans_at_once(
        self, conn: AsyncConnection[Any], plans: list[tuple[ScheduleRow, FirePlan]], now: int
    ) -> int:
        """The common case in a few pipelined statements for a whole batch: every run is
        new (or starts a buffered tick). Raises _SomeTickRanAlready otherwise (the caller's
        savepoint undoes it all, and it goes run by run)."""
        runs: list[tuple[Any, ...]] = []
        jobs: list[tuple[Any, ...]] = []
        advance: list[tuple[Any, ...]] = []
        relink: list[tuple[Any, ...]] = []
        for s, plan in plans:
            last_tick, last_job = s.last_tick, s.last_job_id
            for run in plan.runs:
                job_id = run.job.id if run.job is not None else None
                runs.append((s.id, run.tick, run.kind, run.outcome, job_id, run.detail, now))
                if run.job is None:
                    continue
                new = run.job
                jobs.append((new.id, new.type, new.input, new.max_attempts, new.user_id,
                             new.concurrency_key, new.idempotency_key, now, now, run.run_at,
                             s.id, run.tick))  # fmt: skip
                if last_tick is None or run.tick >= last_tick:
                    last_tick, last_job = run.tick, new.id
            if plan.advance:
                advance.append((plan.next_tick, plan.buffered_tick, last_tick, last_job, now,
                                s.id))  # fmt: skip
            elif last_job != s.last_job_id:
                relink.append((last_tick, last_job, now, s.id))
        async with conn.cursor() as cur:
            if runs:
                await cur.executemany(_UPSERT_RUN, runs)
                if cur.rowcount != len(runs):
                    raise _SomeTickRanAlready()
            if jobs:
                await cur.executemany(_INSERT_SCHEDULED_JOB, jobs)
            if advance:
                await cur.executemany(
                    "UPDATE schedules SET next_tick = %s, buffered_tick = %s, last_tick = %s,"
                    " last_job_id = %s, updated_at = %s WHERE id = %s",
                    advance,
                )
            if relink:
                await cur.executemany(
                    "UPDATE schedules SET last_tick = %s, last_job_id = %s, updated_at = %s"
                    " WHERE id = %s",
                    relink,
                )
        return len(jobs)

    async def run_schedule(
        self, schedule_id: str, plan: Callable[[ScheduleRow], FirePlan]
    ) -> list[tuple[str, int, str | None]]:
        now = now_us()
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                self._schedule_query("s.id = %s") + " FOR UPDATE OF s", (schedule_id,)
            )
            found = await cur.fetchone()
            if found is None:
                return []
            s = ScheduleRow(*found)
            return (await self._apply_plan(conn, s, plan(s), now))[0]

    async def next_schedule_tick(self) -> int | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT next_tick FROM schedules WHERE paused = 0 AND next_tick IS NOT NULL"
                " ORDER BY next_tick LIMIT 1"
            )
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def sweep_history(
        self, completed_before: int, failed_before: int, limit: int = SWEEP_BATCH
    ) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM schedule_runs WHERE ctid = ANY(ARRAY(SELECT ctid FROM schedule_runs"
                " WHERE recorded_at < %s LIMIT %s))",
                (completed_before, limit),
            )
            runs = cur.rowcount
            sql, args = sweep_events_query(completed_before, failed_before, limit)
            cur = await conn.execute(_pg(sql), args)  # type: ignore[arg-type]
            ids = [r[0] for r in await cur.fetchall()]
            if ids:
                await conn.execute("DELETE FROM event_jobs WHERE event_id = ANY(%s)", (ids,))
                await conn.execute("DELETE FROM events WHERE id = ANY(%s)", (ids,))
        return runs + len(ids)

    async def record_events(self, events: list[EventRow]) -> None:
        if not events:
            return
        # Relaxed: the history of what came in; the jobs it started are durable already.
        async with self._relaxed.connection() as conn, conn.transaction():
            await self._insert_events(conn, events)

    async def _insert_events(self, conn: AsyncConnection[Any], events: list[EventRow]) -> None:
        marks = ", ".join(["%s"] * len(EVENT_COLUMNS))
        links = [(e.id, job_id) for e in events for job_id in e.job_ids]
        async with conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO events ({EVENT_SELECT}) VALUES ({marks})",  # type: ignore[arg-type]
                [e.values() for e in events],
            )
            if links:
                await cur.executemany(
                    "INSERT INTO event_jobs (event_id, job_id) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING",
                    links,
                )

    async def _with_jobs(
        self, conn: AsyncConnection[Any], events: list[EventRow]
    ) -> list[EventRow]:
        if not events:
            return events
        by_id = {e.id: e for e in events}
        cur = await conn.execute(
            "SELECT event_id, job_id FROM event_jobs WHERE event_id = ANY(%s)", (list(by_id),)
        )
        for event_id, job_id in await cur.fetchall():
            by_id[event_id].job_ids.append(job_id)
        return events

    async def get_event(self, event_id: str, user_id: str | None) -> EventRow | None:
        sql, args = f"SELECT {EVENT_SELECT} FROM events WHERE id = %s", [event_id]
        if user_id is not None:
            sql += " AND user_id = %s"
            args.append(user_id)
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            row = await cur.fetchone()
            return (await self._with_jobs(conn, [EventRow(*row)]))[0] if row else None

    async def list_events(
        self, user_id: str | None, name: str | None, since_us: int | None, limit: int,
        cursor: str | None,
    ) -> tuple[list[EventRow], str | None]:  # fmt: skip
        where: list[str] = []
        args: list[Any] = []
        if user_id is not None:
            where.append("user_id = %s")
            args.append(user_id)
        if name:
            where.append("name = %s")
            args.append(name)
        if since_us is not None:
            where.append("received_at >= %s")
            args.append(since_us)
        if cursor:
            at, last_id = decode_cursor(cursor)
            where.append('(received_at < %s OR (received_at = %s AND id COLLATE "C" < %s))')
            args.extend([at, at, last_id])
        sql = f"SELECT {EVENT_SELECT} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += ' ORDER BY received_at DESC, id COLLATE "C" DESC LIMIT %s'
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, [*args, limit + 1])  # type: ignore[arg-type]
            rows = [EventRow(*r) for r in await cur.fetchall()]
            next_cursor = None
            if len(rows) > limit:
                rows = rows[:limit]
                next_cursor = encode_cursor(rows[-1].received_at, rows[-1].id)
            return await self._with_jobs(conn, rows), next_cursor

    async def events_for_job(self, job_id: str) -> list[EventRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {', '.join('e.' + c for c in EVENT_COLUMNS)} FROM event_jobs ej"
                " JOIN events e ON e.id = ej.event_id WHERE ej.job_id = %s"
                " ORDER BY e.received_at",
                (job_id,),
            )
            rows = [EventRow(*r) for r in await cur.fetchall()]
            return await self._with_jobs(conn, rows)


def _full(count: int, limit: int | None) -> bool:
    return limit is not None and count >= limit


def _redact(url: str) -> str:
    """The URL without its password."""
    if "://" in url and "@" in url.split("?", 1)[0]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


guard_storage(PostgresStore, is_storage_error, "postgresql")

__all__ = ["CHANNEL", "PostgresStore"]
