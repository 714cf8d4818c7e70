"""SQLite checkpoints run in the store's own thread, not in the commit that fills the WAL
(#15: on the event loop, each one stalled the whole server while it synced the file)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from jobctl.server.records import Limits, NewJob, StepRow, now_us
from jobctl.server.store import sqlite as sqlite_store
from jobctl.server.store.base import Lease, ProgressWrite, StepWrite
from jobctl.server.store.sqlite import SQLiteStore

DAY = 86_400 * 1_000_000
NO_LIMITS = Limits(None, (), None)


async def _busy(store: SQLiteStore, rounds: int) -> list[str]:
    """Jobs in flight writing progress and steps, a batch per commit, as the engine does."""
    news = [NewJob(str(uuid.uuid4()), "t", "{}", f"u{i % 7}", 1) for i in range(64)]
    await store.create_jobs(news, now_us(), DAY)
    rows = await store.claim_jobs("w", 64, now_us(), 60_000_000, NO_LIMITS)
    for r in range(rounds):
        await store.set_progress_many(
            [ProgressWrite(row.id, Lease.of(row), r % 100, f"round {r}") for row in rows],
            now_us(),
        )
        steps = [
            StepWrite(StepRow(row.id, f"s{r}", f"s{r}", r, "completed", 1, "1", None, 1, 2),
                      Lease.of(row))
            for row in rows
        ]  # fmt: skip
        await store.save_steps_many(steps)
        await asyncio.sleep(0.002)
    return [row.id for row in rows]


async def test_checkpoints_run_off_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_PAUSE", 0.0)
    threads: set[str] = set()
    real = SQLiteStore._checkpoint

    def spy(self: SQLiteStore) -> None:
        threads.add(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(SQLiteStore, "_checkpoint", spy)
    store = SQLiteStore(str(tmp_path / "c.db"))
    await store.open()
    try:
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        ids = await _busy(store, 60)
        async with asyncio.timeout(10):
            while store.checkpoints < 2 or store._checkpointing is not None:
                await asyncio.sleep(0.01)
        assert threads and all(t.startswith("jobctl-sqlite-checkpoint") for t in threads)
    finally:
        await store.close()
    # Everything written is there, read back by a fresh connection.
    conn = sqlite3.connect(str(tmp_path / "c.db"))
    try:
        got = conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        assert got == 60 * len(ids)
        marks = {r[0] for r in conn.execute("SELECT message FROM jobs")}
        assert marks == {"round 59"}
    finally:
        conn.close()


def test_every_store_method_is_filed_as_a_read_or_a_write() -> None:
    """The writes wait for a checkpoint that must copy the whole WAL (instead of a
    TRUNCATE holding the writer lock, which stalled the loop 56-71 ms): a new Store
    method must be filed, or a write could slip past the wait."""
    from jobctl.server.store.base import Store

    methods = Store.__abstractmethods__ - {"open", "close"}
    assert methods == sqlite_store.WRITES | sqlite_store.READS
    assert not sqlite_store.WRITES & sqlite_store.READS


async def test_past_the_limit_writes_wait_for_the_checkpoint_and_the_wal_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No TRUNCATE checkpoint (it holds the writer lock the loop's next write waits on):
    past WAL_RESTART_BYTES a write awaits the passive checkpoint, and the WAL starts over
    (its file trimmed back to the limit)."""
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_PAUSE", 0.0)
    monkeypatch.setattr(sqlite_store, "WAL_RESTART_BYTES", 256 * 1024)
    modes: list[str] = []
    real_connect = sqlite3.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)  # type: ignore[call-overload]
        conn.set_trace_callback(lambda sql: modes.append(sql) if "wal_checkpoint" in sql else None)
        return conn  # type: ignore[no-any-return]

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", connect)
    waited = 0
    real_wait = SQLiteStore._before_write

    async def before_write(self: SQLiteStore) -> None:
        nonlocal waited
        waited += 1
        await real_wait(self)

    monkeypatch.setattr(SQLiteStore, "_before_write", before_write)
    real_checkpoint = SQLiteStore._checkpoint

    def slow_checkpoint(self: SQLiteStore) -> None:  # so that writes land during each one
        time.sleep(0.01)
        real_checkpoint(self)

    monkeypatch.setattr(SQLiteStore, "_checkpoint", slow_checkpoint)
    store = SQLiteStore(str(tmp_path / "w.db"))
    await store.open()
    wal = str(tmp_path / "w.db") + "-wal"
    started_over = trimmed = 0
    try:
        news = [NewJob(str(uuid.uuid4()), "t", "{}", "u", 1) for _ in range(64)]
        await store.create_jobs(news, now_us(), DAY)
        rows = await store.claim_jobs("w", 64, now_us(), 60_000_000, NO_LIMITS)
        last = 0
        for r in range(400):
            await store.set_progress_many(
                [ProgressWrite(row.id, Lease.of(row), r % 100, None) for row in rows], now_us()
            )
            # the WAL's header counts its restarts (checkpoint sequence, bytes 12-16)
            with open(wal, "rb") as f:
                seq = int.from_bytes(f.read(16)[12:16], "big")
            started_over = max(started_over, seq)
            size = os.path.getsize(wal)
            trimmed += size < last  # journal_size_limit, as it started over
            last = size
            await asyncio.sleep(0.001)
    finally:
        await store.close()
    assert waited >= 1
    assert started_over >= 1
    assert trimmed >= 1
    assert modes and all("PASSIVE" in m for m in modes)


def _wal_header(path: str) -> tuple[int, int]:
    """(restarts so far: the header's checkpoint sequence, bytes 12-16; the file's size)"""
    with open(path, "rb") as f:
        return int.from_bytes(f.read(16)[12:16], "big"), os.path.getsize(path)


async def test_the_checkpoint_thread_starts_the_wal_over_not_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the WAL over syncs its new header and trims the file (an ftruncate that
    took 30-50 ms on a busy disk with the `discard` mount option): the first write after
    a checkpoint that copied all of the WAL does it. The checkpoint thread makes that
    write itself, so the loop's next write finds the WAL begun again (#15)."""
    monkeypatch.setattr(sqlite_store, "WAL_RESTART_BYTES", 256 * 1024)
    store = SQLiteStore(str(tmp_path / "r.db"))
    await store.open()
    wal = str(tmp_path / "r.db") + "-wal"
    try:
        big = '{"text": "' + "x" * 2000 + '"}'
        news = [NewJob(str(uuid.uuid4()), "t", big, "u", 1) for _ in range(500)]
        await store.create_jobs(news, now_us(), DAY)
        restarts, size = _wal_header(wal)
        assert size > 1024 * 1024
        await asyncio.to_thread(store._checkpoint)  # as _committed starts it
        assert store.wal_restarts == 1
        assert _wal_header(wal)[0] == restarts + 1  # started over, by that thread
        assert os.path.getsize(wal) <= 256 * 1024  # and trimmed to journal_size_limit
        await store.create_jobs([NewJob(str(uuid.uuid4()), "t", "{}", "u", 1)], now_us(), DAY)
        assert _wal_header(wal)[0] == restarts + 1  # the loop's write: no restart of its own
        assert await store.get_job(news[0].id, None) is not None
    finally:
        await store.close()
