"""The server on a long history (issue #15), on SQLite and PostgreSQL: stats equal the
figures computed naively from the rows, the stats and sweep statements read index
ranges (never a scan of jobs), and a stats request does not hold up the server.

Tables are built in SQL (tests/history_rows.py); bench/history.py measures the same
reads at up to 10 million rows.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobctl.server.records import STATUSES, now_us
from jobctl.server.stats import (
    HOUR,
    STUCK_AFTER_US,
    UNSTARTED_AFTER_US,
    WEEK,
    compute_stats,
    percentile,
)
from jobctl.server.store import open_store
from jobctl.server.store.base import (
    MINUTE_US,
    SWEEP_BATCH,
    StatsWindow,
    expiry_queries,
    stats_queries,
    sweep_events_query,
    sweep_queries,
)
from tests.history_rows import fill, read_rows, rollup_rebuild
from tests.pgfixtures import _stores, new_database

US = 1_000_000
DAY = 86_400 * US


def _new_db(kind: str, folder: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return str(folder / "history.db")
    return new_database(request.getfixturevalue("pg_cluster"))


async def _migrated(db: str) -> None:
    store = open_store(db)
    await store.open()
    await store.close()


# naive figures ------------------------------------------------------------------------
def naive_stats(rows: Sequence[Sequence[Any]], now: int, user: str | None) -> dict[str, Any]:
    """What /api/stats should say, from every row, the plain way."""
    mine = [r for r in rows if user is None or r[2] == user]
    hour_from = (now - HOUR) // MINUTE_US * MINUTE_US
    week_from = (now - WEEK) // HOUR * HOUR  # whole hours
    counts = Counter(r[1] for r in mine)
    by_type: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    recent: dict[str, list[float]] = defaultdict(list)
    for job_type, status, _user, _created, started, completed in mine:
        by_type[job_type][status] += 1
        if status == "completed" and started is not None and completed >= week_from:
            durations[job_type].append((completed - started) / US)
            if completed >= hour_from:
                recent[job_type].append((completed - started) / US)
    finished = [r for r in mine if r[5] is not None and r[5] >= hour_from]
    stuck = [r for r in mine if r[1] == "running" and r[4] < now - STUCK_AFTER_US]
    stuck += [r for r in mine if r[1] == "pending" and r[4] is None
              and r[3] < now - UNSTARTED_AFTER_US]  # fmt: skip
    return {
        "counts": {s: counts.get(s, 0) for s in STATUSES},
        "by_type": {t: {s: c.get(s, 0) for s in STATUSES} for t, c in sorted(by_type.items())},
        "created_last_hour": sum(1 for r in mine if r[3] >= now - HOUR),
        "finished_last_hour": sum(1 for r in finished if r[1] in ("completed", "failed")),
        "failed_last_hour": sum(1 for r in finished if r[1] == "failed"),
        "stuck_jobs": len(stuck),
        "durations": durations,
        "recent": recent,
    }


def close_to(estimate: float | None, exact: float | None) -> bool:
    """A bucketed percentile: within one bucket (~10%) of the exact one."""
    if exact is None or estimate is None:
        return estimate is exact
    return abs(estimate - exact) <= 0.1 * exact + 1e-4


@pytest.mark.parametrize("kind", _stores())
async def test_stats_on_100k_finished_jobs_equal_the_naive_figures(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = _new_db(kind, tmp_path, request)
    await _migrated(db)
    # SQLite: through the triggers, as jobs finishing would; PostgreSQL: bulk, then the
    # migration's backfill (its row triggers take ~0.3 ms a row on a loaded machine; the
    # next test checks that triggers and backfill build the same rollups)
    fill(db, 100_000, now_us(), bulk=kind == "postgres")
    rows = read_rows(db)
    assert sum(1 for r in rows if r[5] is not None) > 95_000  # finished: no cap anywhere
    store = open_store(db)
    await store.open()
    try:
        for user in (None, "local"):
            now = now_us()
            got = await compute_stats(store, user)
            want = naive_stats(rows, now, user)
            for key in ("counts", "by_type", "created_last_hour", "finished_last_hour",
                        "failed_last_hour", "stuck_jobs"):  # fmt: skip
                assert got[key] == want[key], key
            assert got["queue_depth"] == want["counts"]["pending"]
            assert got["failure_rate"] == pytest.approx(
                want["failed_last_hour"] / want["finished_last_hour"]
            )
            assert sorted(got["duration_by_type"]) == sorted(want["durations"])
            for job_type, values in want["durations"].items():
                figures = got["duration_by_type"][job_type]
                assert figures["estimate"] is True
                assert figures["count"] == len(values)
                assert figures["avg_seconds"] == pytest.approx(sum(values) / len(values))
                assert close_to(figures["p50_seconds"], percentile(values, 50))
                assert close_to(figures["p95_seconds"], percentile(values, 95))
                last_hour = want["recent"][job_type]
                assert figures["last_hour_count"] == len(last_hour)
                assert close_to(figures["last_hour_p95_seconds"], percentile(last_hour, 95))
            assert "estimates" in got and got["windows"]["week_since_us"] <= now - WEEK
    finally:
        await store.close()


@pytest.mark.parametrize("kind", _stores())
async def test_the_backfill_builds_the_rollups_the_triggers_keep(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Migrations 0006 and 0008 on a table that has jobs already: the same rollups (and
    tiers) as triggers kept through every insert, retry and sweep."""
    db = _new_db(kind, tmp_path, request)
    await _migrated(db)
    now = now_us()
    fill(db, 5_000, now)
    store = open_store(db)
    await store.open()
    try:
        failed = [r for r in (await _all_jobs(store)) if r.status == "failed"][:40]
        for row in failed:
            await store.retry_job(row.id, None, False, now)
        await store.sweep(now - 7 * DAY, now - 7 * DAY, 300)
    finally:
        await store.close()
    kept = _rollups(db)
    assert sum(n for _, n in kept["job_totals"]) == sum(
        1 for r in read_rows(db) if r[1] in ("completed", "failed", "cancelled")
    )
    _, backfill, _ = rollup_rebuild("postgres" if db.startswith("postgresql") else "sqlite")
    _execute(db, backfill)
    assert _rollups(db) == kept


async def _all_jobs(store: Any) -> list[Any]:
    from jobctl.server.store.base import ListQuery

    rows, cursor = await store.list_jobs(ListQuery(None, limit=1000))
    while cursor:
        more, cursor = await store.list_jobs(ListQuery(None, limit=1000, cursor=cursor))
        rows += more
    return list(rows)


def _execute(db: str, statements: list[str]) -> list[list[Any]]:
    out: list[list[Any]] = []
    if db.startswith("postgresql"):
        with psycopg.connect(db, autocommit=True) as conn:
            for stmt in statements:
                cur = conn.execute(stmt)  # type: ignore[arg-type]
                out.append(list(cur.fetchall()) if cur.description else [])
        return out
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for stmt in statements:
            out.append(list(conn.execute(stmt).fetchall()))
    finally:
        conn.close()
    return out


def _rollups(db: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = {
        "job_totals": "SELECT user_id || type || status, n FROM job_totals ORDER BY 1",
        "job_finish_minutes": "SELECT minute, user_id, type, status, bucket, n, total_us"
        " FROM job_finish_minutes WHERE n <> 0 ORDER BY 1, 2, 3, 4, 5",
        "job_finish_hours": "SELECT hour, user_id, type, status, bucket, n, total_us"
        " FROM job_finish_hours WHERE n <> 0 ORDER BY 1, 2, 3, 4, 5",
        "job_finish_tens": "SELECT ten, user_id, type, status, bucket, n, total_us"
        " FROM job_finish_tens WHERE n <> 0 ORDER BY 1, 2, 3, 4, 5",
        "job_finish_days": "SELECT day, user_id, type, status, bucket, n, total_us"
        " FROM job_finish_days WHERE n <> 0 ORDER BY 1, 2, 3, 4, 5",
    }
    results = _execute(db, list(tables.values()))
    return {name: [tuple(r) for r in rows] for name, rows in zip(tables, results, strict=True)}


# 200,000 rows ---------------------------------------------------------------------------
@pytest.fixture(scope="module", params=_stores())
def history_200k(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """A migrated database with 200,000 jobs, bulk-loaded (the rollups rebuilt after)."""
    import asyncio

    db = _new_db(request.param, tmp_path_factory.mktemp("history"), request)
    asyncio.run(_migrated(db))
    now = now_us()
    fill(db, 200_000, now, bulk=True)
    yield db, now


def _statements(now: int, *, pin: bool = False) -> list[tuple[str, str, list[Any]]]:
    """(name, sql with ? placeholders, args) of every stats, expiry and sweep read (`pin`:
    SQLite's stats, which name their partial indexes)."""
    out: list[tuple[str, str, list[Any]]] = []
    for user in (None, "local"):
        window = StatsWindow(user, (now - HOUR) // MINUTE_US, (now - WEEK) // HOUR * 60,
                             now - HOUR, now - STUCK_AFTER_US, now - UNSTARTED_AFTER_US)  # fmt: skip
        for name, (sql, args) in stats_queries(window, pin=pin).items():
            out.append((f"stats {name} user={user}", sql, args))
    for i, (sql, args) in enumerate(expiry_queries(now - 600 * US, now - 300 * US, 500)):
        out.append((f"expiry {i}", sql, args))
    of_types = expiry_queries(now - 600 * US, now - 300 * US, 500, ["hist_a", "hist_c"])
    for i, (sql, args) in enumerate(of_types):  # a server's: of the types it runs
        out.append((f"expiry of types {i}", sql, args))
    for i, (sql, args) in enumerate(sweep_queries(now - 7 * DAY, now - 30 * DAY)):
        out.append((f"sweep {i}", sql, [*args, SWEEP_BATCH]))
    sql, args = sweep_events_query(now - 7 * DAY, now - 30 * DAY, SWEEP_BATCH)
    out.append(("sweep events", sql, args))
    return out


# Partial indexes that hold only pending/running rows: reading all of one is reading the
# work in hand, not the history.
ACTIVE_ONLY = {"jobs_active", "jobs_running_started", "jobs_unstarted", "jobs_pending"}


def test_stats_expiry_and_sweeps_read_index_ranges(history_200k: tuple[str, int]) -> None:
    db, now = history_200k
    bad = []
    if db.startswith("postgresql"):
        with psycopg.connect(db, autocommit=True) as conn:
            for name, sql, args in _statements(now):
                pg_sql = sql.replace("%", "%%").replace("?", "%s")
                plan = "\n".join(str(r[0]) for r in conn.execute("EXPLAIN " + pg_sql, args))  # type: ignore[arg-type]
                if re.search(r"Seq Scan on jobs\b", plan):
                    bad.append(f"{name}:\n{plan}")
    else:
        import sqlite3

        conn = sqlite3.connect(db)
        try:
            for name, sql, args in _statements(now, pin=True):
                details = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
                for d in details:
                    m = re.match(r"SCAN (\w+)(?: AS \w+)?(?: USING (?:COVERING )?INDEX (\w+))?", d)
                    if m and m.group(1) in ("jobs", "j") and m.group(2) not in ACTIVE_ONLY:
                        bad.append(f"{name}: {details}")
        finally:
            conn.close()
    assert not bad, "\n".join(bad)


def test_stats_do_not_hold_up_health(history_200k: tuple[str, int], make_server: Any) -> None:
    """While /api/stats runs again and again on 200,000 rows, /api/health answers as it
    does on an idle server (within 100 ms more, generous for a loaded CI machine)."""
    db, _ = history_200k
    server = make_server("--db", db)
    with server.client() as client:
        idle = []
        for _ in range(20):
            t = time.perf_counter()
            client.get("/api/health").raise_for_status()
            idle.append(time.perf_counter() - t)
        stats_times: list[float] = []
        stop = threading.Event()

        def hammer() -> None:
            with server.client() as other:
                while not stop.is_set() and len(stats_times) < 40:
                    t = time.perf_counter()
                    answer = other.get("/api/stats")
                    answer.raise_for_status()
                    assert answer.json()["counts"]["completed"] > 50_000  # the token's user's
                    stats_times.append(time.perf_counter() - t)

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        during = []
        deadline = time.monotonic() + 60
        while thread.is_alive() and time.monotonic() < deadline and len(during) < 400:
            t = time.perf_counter()
            client.get("/api/health").raise_for_status()
            during.append(time.perf_counter() - t)
            time.sleep(0.005)
        stop.set()
        thread.join(30)
    assert len(stats_times) >= 5 and len(during) >= 5
    worst, usual = max(during), max(idle)
    assert worst < usual + 0.1, (
        f"health took {worst * 1000:.0f} ms while stats ran (idle: {usual * 1000:.0f} ms;"
        f" stats {sorted(stats_times)[len(stats_times) // 2] * 1000:.0f} ms median)"
    )
