"""What listings cost on a big SQLite history, and what migration 0007's indexes cost writes.

    .venv/bin/python bench/listing.py [--rows 200000] [--submits 5000]

Builds a jobs table of --rows rows (as tests/server/test_list_plans.py does), then prints
per listing (each filter, per user and for the service role, first page and a deep cursor
page) the median and worst ms over a few runs, and the page's size as the API sends it
(summary, and with fields=input). Then the in-process submit rate (Store.create_job)
with 0007's indexes and with them dropped (the write cost of the indexes). Figures on
a loaded machine are indicative; the tests check plans and counted costs, not time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' history

from jobctl.jobshape import SUMMARY_FIELDS
from jobctl.server.records import NewJob
from jobctl.server.store.base import ListQuery, encode_cursor
from jobctl.server.store.sqlite import SQLiteStore

T0 = 1_700_000_000_000_000
STEP_US = 1000
INDEXES_0007 = (
    "jobs_status_created",
    "jobs_user_status_created",
    "jobs_type_status_created",
    "jobs_user_type_status_created",
)


def fill(path: Path, rows: int) -> None:
    from tests.server.test_list_plans import ROWS, SQLITE_FILL

    store = SQLiteStore(str(path))
    store.open_sync()
    store.close_sync()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size=-262144")
    sql = SQLITE_FILL.replace(str(ROWS - 1), str(rows - 1)).replace(
        str(ROWS - 300), str(rows - 300)
    )
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute(sql)
    conn.execute("COMMIT")
    print(f"built {rows:,} rows in {time.perf_counter() - started:.1f} s")
    conn.close()


def time_listings(path: Path, rows: int) -> None:
    store = SQLiteStore(str(path))
    store.open_sync(lock=False)
    middle = encode_cursor(T0 + rows // 2 * STEP_US, "~")
    filters = {
        "newest": {},
        "status=running": {"statuses": ["running"]},
        "pending,running": {"statuses": ["pending", "running"]},
        "type": {"type": "type3"},
        "type+status": {"type": "type3", "statuses": ["failed"]},
        "since 2s": {"since_us": T0 + (rows - 2000) * STEP_US},
        "id prefix": {"id_prefix": "abcd"},
    }
    print(f"{'listing':<38}{'p50 ms':>8}{'max ms':>8}{'summary B':>11}{'+input B':>10}")
    for who, user in (("service", None), ("local", "local")):
        for name, kw in filters.items():
            for page in ("first", "deep"):
                query = ListQuery(user, limit=50, **kw)  # type: ignore[arg-type]
                if page == "deep":
                    if "since_us" in kw or "id_prefix" in kw:
                        continue
                    query = replace(query, cursor=middle)
                times = []
                for _ in range(7):
                    started = time.perf_counter()
                    found, _ = asyncio.run(store.list_jobs(replace(query, read_input=False)))
                    times.append((time.perf_counter() - started) * 1000)
                summary = len(json.dumps([r.to_api_fields(SUMMARY_FIELDS) for r in found]))
                full, _ = asyncio.run(store.list_jobs(query))
                with_input = len(json.dumps([r.to_api_fields(("id", "input")) for r in full]))
                label = f"{name} ({who}, {page})"
                print(
                    f"{label:<38}{statistics.median(times):>8.2f}{max(times):>8.2f}"
                    f"{summary:>11,}{with_input:>10,}"
                )
    store.close_sync()


def submit_rate(path: Path, n: int) -> float:
    store = SQLiteStore(str(path))
    store.open_sync(lock=False)
    started = time.perf_counter()
    for i in range(n):
        new = NewJob(str(uuid.uuid4()), f"type{i % 5}", '{"steps":1}', "local", 1)
        store.create_job_sync(new, T0 + i, 10**9)
    rate = n / (time.perf_counter() - started)
    store.close_sync()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--submits", type=int, default=5000)
    parser.add_argument("--skip-listings", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        if not args.skip_listings:
            fill(path, args.rows)
            time_listings(path, args.rows)
        # Alternating rounds, best of each: the machine's load drifts meanwhile.
        rates: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(3):
            for keep in (True, False):
                db = Path(tmp) / f"submit-{round_}-{keep}.db"
                if not keep:
                    store = SQLiteStore(str(db))
                    store.open_sync()
                    for name in INDEXES_0007:
                        store.conn.execute(f"DROP INDEX {name}")
                    store.close_sync()
                rates[keep].append(submit_rate(db, args.submits))
        best_with, best_without = max(rates[True]), max(rates[False])
        print(
            f"submits (in-process create_job, best of 3): {best_with:,.0f}/s with 0007's"
            f" indexes, {best_without:,.0f}/s without ({best_with / best_without:.2f}x)"
        )


if __name__ == "__main__":
    main()
