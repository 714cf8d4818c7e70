"""Another process holding SQLite's write lock does not stop the server's event loop
(#15: `bench/history.py` filling the table beside a running server stalled its loop
1.4-3.5 s at a time, each write of the scheduler and the dispatcher blocked in
BEGIN IMMEDIATE for SQLite's busy_timeout). The write awaits and starts over instead."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jobctl.server.records import NewJob, now_us
from jobctl.server.store import sqlite as sqlite_store
from jobctl.server.store.base import StorageUnavailable
from jobctl.server.store.sqlite import SQLiteStore

DAY = 86_400 * 1_000_000

# A script of the user's: takes the write lock, says so, holds it `argv[2]` seconds.
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS theirs (x)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@contextlib.contextmanager
def _held(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the write lock for `seconds` (killed if still there)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "o.db"))
    await store.open()
    yield store
    await store.close()


def _job() -> NewJob:
    return NewJob(str(uuid.uuid4()), "t", "{}", "u1", 1)


def _count(db: Path, job_id: str) -> int:
    conn = sqlite3.connect(str(db))
    try:
        return int(conn.execute("SELECT COUNT(*) FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])
    finally:
        conn.close()


async def test_a_write_waits_for_an_outside_lock_with_the_loop_free(store: SQLiteStore) -> None:
    db = Path(store.path)
    with _held(db, 1.0) as holder:
        job = _job()
        write = asyncio.create_task(store.create_jobs([job], now_us(), DAY))
        worst, last, started = 0.0, time.monotonic(), time.monotonic()
        while time.monotonic() - started < 0.6:  # the lock is held all along
            await asyncio.sleep(0.005)
            now = time.monotonic()
            worst, last = max(worst, now - last), now
        assert not write.done(), "the write went through while another process held the lock"
        assert worst < 0.3, f"the loop stood still {worst * 1000:.0f} ms"
        async with asyncio.timeout(10):
            ((row, created),) = await write
        assert created and row.id == job.id
        assert holder.wait(10) == 0
    assert _count(db, job.id) == 1


async def test_a_lock_held_past_the_wait_is_a_storage_error_and_writes_nothing(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_WAIT_MAX", 0.3)
    db = Path(store.path)
    job = _job()
    with _held(db, 3.0) as holder:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="database is locked"):
            await store.create_jobs([job], now_us(), DAY)
        assert 0.25 < time.monotonic() - started < 2.5
        assert holder.wait(10) == 0
    assert _count(db, job.id) == 0
    # and once the lock is free, writes go through again
    ((_row, created),) = await store.create_jobs([job], now_us(), DAY)
    assert created and _count(db, job.id) == 1


def test_a_sync_caller_waits_in_place(tmp_path: Path) -> None:
    """No loop to await on (the in-process producer, scripts): BEGIN waits, as before."""
    db = tmp_path / "o.db"
    store = SQLiteStore(str(db))
    store.open_sync()
    try:
        with _held(db, 0.4):
            job = _job()
            started = time.monotonic()
            ((_row, created),) = store.create_jobs_sync([job], now_us(), DAY)
            assert created and time.monotonic() - started > 0.2
        assert _count(db, job.id) == 1
    finally:
        store.close_sync()
