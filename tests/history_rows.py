"""A jobs table with a long history, built in SQL (seconds for 100,000 rows), for the
scale tests and bench/history.py, on SQLite and on PostgreSQL.

Row i is a pure function of i and `now`, so a test reads the rows back and computes the
stats naively. Times keep clear of every window edge that stats uses (the last hour,
the last 7 days, 5 and 10 minutes for stuck jobs), so that a figure does not depend on
the second the test reads it:

- 78% completed, 15% failed (a quarter of them never started), 5% cancelled (never
  started), 1.8% pending (run_at a day ahead), 0.2% running; types hist_a/b/c (no
  server registers them), users local (the server token's) and u1;
- finished jobs: 2% in the last 4-55 minutes, the rest 66 minutes to 8 days ago (never
  from 3 minutes under 7 days to 63 minutes over: the week starts on a whole hour);
  durations 1 ms to 3 s, every 50th 30x longer;
- pending: created 0-4 or 6-20 minutes ago, never started; running: started 0-8 or
  12-28 minutes ago.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from jobctl.server.store.base import migrations, split_sql

MIN = 60_000_000
DAY = 24 * 60 * MIN
COLUMNS = ("id", "type", "status", "progress", "input", "user_id", "created_at",
           "updated_at", "started_at", "completed_at", "run_at")  # fmt: skip


def _select(dialect: str, now: int) -> str:
    """`SELECT <columns> FROM s` over a series s(i) (a CTE or generate_series)."""
    if dialect == "sqlite":
        hexid = "printf('%08x', (i * 2654435761) % 4294967296)"
        tail = "printf('%012d', i)"
    else:
        hexid = "lpad(to_hex((i * 2654435761) % 4294967296), 8, '0')"
        tail = "lpad(i::text, 12, '0')"
    k = "(i % 1000)"
    status = (f"CASE WHEN {k} < 780 THEN 'completed' WHEN {k} < 930 THEN 'failed'"
              f" WHEN {k} < 980 THEN 'cancelled' WHEN {k} < 998 THEN 'pending' ELSE 'running' END")  # fmt: skip
    finished = f"{k} < 980"
    never_started = f"(({k} >= 780 AND {k} < 930 AND i % 4 = 0) OR ({k} >= 930 AND {k} < 980))"
    # the age of completed_at, for finished jobs
    recent = f"({4 * MIN} + (i * 7919) % {51 * MIN})"
    old = f"({66 * MIN} + (i * 104729) % {8 * DAY - 66 * MIN})"
    # clear of "the last 7 days"'s start: from the start of the hour 7 days ago
    old_safe = (f"(CASE WHEN {old} > {7 * DAY - 3 * MIN} AND {old} < {7 * DAY + 63 * MIN}"
                f" THEN {old} + {70 * MIN} ELSE {old} END)")  # fmt: skip
    age = f"(CASE WHEN (i * 31) % 50 = 0 THEN {recent} ELSE {old_safe} END)"
    dur = "((1000 + (i * 40503) % 3000000) * (CASE WHEN i % 50 = 0 THEN 30 ELSE 1 END))"
    completed = f"({now} - {age})"
    started_f = f"({completed} - {dur})"
    pending_age = (
        f"(CASE WHEN i % 2 = 0 THEN (i % 240) * 1000000 ELSE {6 * MIN} + (i % 840) * 1000000 END)"
    )
    running_age = (
        f"(CASE WHEN i % 2 = 0 THEN (i % 500) * 1000000 ELSE {12 * MIN} + (i % 960) * 1000000 END)"
    )
    started = (f"CASE WHEN {finished} THEN (CASE WHEN {never_started} THEN NULL ELSE {started_f} END)"
               f" WHEN {k} >= 998 THEN {now} - {running_age} ELSE NULL END")  # fmt: skip
    created = (f"CASE WHEN {finished} THEN (CASE WHEN {never_started} THEN {completed} - 5000000"
               f" ELSE {started_f} - 1000000 END) WHEN {k} >= 998 THEN {now} - {running_age} - 1000000"
               f" ELSE {now} - {pending_age} END")  # fmt: skip
    # pending jobs wait for a run_at a day ahead: a server on this table does not claim them
    run_at = f"CASE WHEN {k} >= 980 AND {k} < 998 THEN {now + DAY} ELSE {created} END"
    completed_col = f"CASE WHEN {finished} THEN {completed} ELSE NULL END"
    # types no server registers: its expiry leaves them alone
    types = "CASE (i / 7) % 3 WHEN 0 THEN 'hist_a' WHEN 1 THEN 'hist_b' ELSE 'hist_c' END"
    user = "CASE (i / 3) % 2 WHEN 0 THEN 'local' ELSE 'u1' END"  # local: the server token's
    sid = f"{hexid} || '-0000-4000-8000-' || {tail}"
    return (
        f"SELECT {sid}, {types}, {status}, 0, '{{}}', {user}, {created},"
        f" COALESCE({completed_col}, {created}), {started}, {completed_col}, {run_at} FROM s"
    )


def insert_sql(dialect: str, first: int, count: int, now: int) -> str:
    """One INSERT of rows first .. first + count - 1."""
    cols = ", ".join(COLUMNS)
    last = first + count - 1
    if dialect == "sqlite":
        series = f"WITH RECURSIVE s(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM s WHERE i < {last})"
        return f"{series} INSERT INTO jobs ({cols}) {_select(dialect, now)}"
    body = _select(dialect, now).replace(
        " FROM s", f" FROM generate_series({first}::bigint, {last}::bigint) AS s(i)"
    )
    return f"INSERT INTO jobs ({cols}) {body}"


ROLLUP_MIGRATIONS = ("0006_stats_rollups.sql", "0008_stats_tiers.sql")
ROLLUP_TABLES = ("job_totals", "job_finish_minutes", "job_finish_hours", "job_finish_tens",
                 "job_finish_days")  # fmt: skip


def rollup_rebuild(dialect: str) -> tuple[list[str], list[str], list[str]]:
    """Migrations 0006's and 0008's statements to (drop their triggers, empty and backfill
    the rollups, create the triggers again): a bulk load without the per-row trigger cost."""
    every = dict(migrations(dialect))
    stmts = [s for name in ROLLUP_MIGRATIONS for s in split_sql(every[name])]
    create = [s for s in stmts if s.upper().startswith("CREATE TRIGGER")]
    on = " ON jobs" if dialect == "postgres" else ""
    drop = [f"DROP TRIGGER IF EXISTS {s.split()[2 if dialect == 'postgres' else 5]}{on}"
            for s in create]  # fmt: skip
    backfill = [f"DELETE FROM {t}" for t in ROLLUP_TABLES]
    backfill += [s for s in stmts if s.upper().startswith("INSERT INTO JOB_")]
    return drop, backfill, create


def fill_sqlite(
    path: str,
    rows: int,
    now: int,
    *,
    batch: int = 200_000,
    first: int = 0,
    bulk: bool = False,
    analyze: bool = True,
    timings: dict[str, float] | None = None,
    expired: int = 0,
) -> None:
    """Add `rows` jobs to a migrated SQLite database (no server may hold it). `bulk`:
    without the triggers, then rebuild the rollups (an empty table's backfill)."""
    conn = sqlite3.connect(path, isolation_level=None)
    drop, backfill, create = rollup_rebuild("sqlite")
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: the primary key's random inserts
        conn.execute("PRAGMA threads=2")  # CREATE INDEX's sorter
        indexes: list[tuple[str, str]] = []
        if bulk:
            # the secondary indexes dropped, built again after: a sort each, instead of
            # a random insert into a dozen B-trees per row (10x faster at a million rows)
            indexes = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'jobs' AND sql IS NOT NULL"
            ).fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            for stmt in drop:
                conn.execute(stmt)
        t = time.monotonic()
        for lo, count, at in _segments(first, rows, now, expired):
            for start in range(lo, lo + count, batch):
                conn.execute("BEGIN")
                conn.execute(insert_sql("sqlite", start, min(batch, lo + count - start), at))
                conn.execute("COMMIT")
        t = _took(timings, "insert", t)
        if bulk:
            for _, sql in indexes:
                conn.execute(sql)
            t = _took(timings, f"{len(indexes)} indexes", t)
            conn.execute("BEGIN")
            for stmt in backfill + create:
                conn.execute(stmt)
            conn.execute("COMMIT")
            t = _took(timings, "rollups", t)
        if analyze:
            conn.execute("ANALYZE")
            _took(timings, "analyze", t)
    finally:
        conn.close()


def fill_postgres(
    url: str,
    rows: int,
    now: int,
    *,
    batch: int = 200_000,
    first: int = 0,
    bulk: bool = False,
    analyze: bool = True,
    timings: dict[str, float] | None = None,
    expired: int = 0,
) -> None:
    import psycopg

    drop, backfill, create = rollup_rebuild("postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes: list[tuple[str, str]] = []
        if bulk:
            # the indexes (and the primary key) dropped, built again after: a sort each
            indexes = list(conn.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'jobs'"
                " AND i.schemaname = current_schema() AND NOT EXISTS (SELECT 1 FROM"
                " pg_constraint c WHERE c.conname = i.indexname)"
            ).fetchall())  # fmt: skip
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')  # type: ignore[arg-type]
            conn.execute("ALTER TABLE jobs DROP CONSTRAINT jobs_pkey")
            for stmt in drop:
                conn.execute(stmt)  # type: ignore[arg-type]
        t = time.monotonic()
        for lo, count, at in _segments(first, rows, now, expired):
            for start in range(lo, lo + count, batch):
                conn.execute(insert_sql("postgres", start, min(batch, lo + count - start), at))  # type: ignore[arg-type]
        t = _took(timings, "insert", t)
        if bulk:
            conn.execute("ALTER TABLE jobs ADD CONSTRAINT jobs_pkey PRIMARY KEY (id)")
            for _, sql in indexes:
                conn.execute(sql)  # type: ignore[arg-type]
            t = _took(timings, f"{len(indexes) + 1} indexes", t)
            with conn.transaction():
                for stmt in backfill + create:
                    conn.execute(stmt)  # type: ignore[arg-type]
            t = _took(timings, "rollups", t)
        if analyze:
            conn.execute("VACUUM ANALYZE")
            _took(timings, "vacuum analyze", t)


def _segments(first: int, rows: int, now: int, expired: int) -> list[tuple[int, int, int]]:
    """(first row, count, now) to insert: the rows, then `expired` more with the same
    shapes 32 days earlier (past every retention: what a sweep deletes)."""
    return [(first, rows, now), (first + rows, expired, now - 32 * DAY)]


def _took(timings: dict[str, float] | None, what: str, since: float) -> float:
    """Note the seconds since `since` under `what`; returns now."""
    now = time.monotonic()
    if timings is not None:
        timings[what] = now - since
    return now


def fill(db: str, rows: int, now: int, **kw: Any) -> None:
    if db.startswith(("postgresql://", "postgres://")):
        fill_postgres(db, rows, now, **kw)
    else:
        fill_sqlite(db, rows, now, **kw)


def read_rows(db: str) -> list[Sequence[Any]]:
    """(type, status, user_id, created_at, started_at, completed_at) of every job."""
    sql = "SELECT type, status, user_id, created_at, started_at, completed_at FROM jobs"
    if db.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(db) as conn:
            return list(conn.execute(sql).fetchall())
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()
