"""Engine and store pieces at unit level: in-process, a real SQLite file, no HTTP."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobctl.server import engine as engine_module
from jobctl.server.engine import Engine, EngineSettings, format_seconds
from jobctl.server.jobcontext import JobContext, hash_step_id
from jobctl.server.records import Limits, LogRow, NewJob, StepRow, dumps, now_us
from jobctl.server.registry import Registry
from jobctl.server.store.sqlite import DatabaseLocked, SQLiteStore

DAY = 86_400 * 1_000_000
MINUTE = 60 * 1_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "unit.db"))
    await s.open()
    yield s
    await s.close()


class LoopPasses:
    """Counts the passes of the running loop (a task that yields once a pass)."""

    def __init__(self) -> None:
        self.n = 0
        self._task = asyncio.get_running_loop().create_task(self._count())

    async def _count(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.n += 1

    def stop(self) -> None:
        self._task.cancel()


def new_job(job_type: str = "t", user: str = "u") -> NewJob:
    return NewJob(str(uuid.uuid4()), job_type, dumps({}), user, 3)


async def age(store: SQLiteStore, job_id: str, **fields: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in fields)
    store.conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])


def test_step_ids_follow_inngest() -> None:
    assert hash_step_id("my-step-id") == "e7d8a2f140845095749d60246ff1110c9d01d76a"


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (1, 59.6, 60, 90, 600, 3600, 5400)] == [
        "1s", "1m", "1m", "1m30s", "10m", "1h", "1h30m"
    ]  # fmt: skip


def test_second_server_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    first = SQLiteStore(str(tmp_path / "x.db"))
    first.open_sync()
    try:
        with pytest.raises(DatabaseLocked, match="another jobctl server"):
            SQLiteStore(str(tmp_path / "x.db")).open_sync()
    finally:
        first.close_sync()


async def test_retention_sweep(store: SQLiteStore) -> None:
    now = now_us()
    rows = {}
    for name, status, days in [
        ("old_done", "completed", 31), ("new_done", "completed", 29),
        ("old_failed", "failed", 8), ("new_failed", "failed", 6),
        ("old_cancelled", "cancelled", 8), ("running", "running", 60),
    ]:  # fmt: skip
        job = new_job()
        await store.create_job(job, now, DAY)
        await age(store, job.id, status=status, completed_at=now - days * DAY)
        await store.save_step(
            StepRow(job.id, "s", "s", 0, "completed", 1, "1", None, now, now), None
        )
        await store.append_logs([LogRow(job.id, 1, now, "info", None, "hi")], None)
        rows[name] = job.id
    deleted = await store.sweep(now - 30 * DAY, now - 7 * DAY)
    assert deleted == 3
    left = {r[0] for r in store.conn.execute("SELECT id FROM jobs")}
    assert left == {rows["new_done"], rows["new_failed"], rows["running"]}
    assert {r[0] for r in store.conn.execute("SELECT job_id FROM steps")} == left
    assert {r[0] for r in store.conn.execute("SELECT job_id FROM job_logs")} == left


async def test_retention_sweeps_a_long_backlog_in_batches(store: SQLiteStore) -> None:
    """1,234 jobs past retention (more than any one batch) all go, the rest stays, and
    the rollups that stats read come back to what is left."""
    now = now_us()
    c = store.conn
    c.execute("BEGIN")
    c.executemany(
        "INSERT INTO jobs (id, type, status, input, user_id, created_at, updated_at, run_at,"
        " started_at, completed_at) VALUES (?, 't', ?, '{}', 'u', ?, ?, ?, ?, ?)",
        [(str(uuid.uuid4()), "completed" if i % 3 else "failed", t - DAY, t, t - DAY, t - 5, t)
         for i in range(1_300) for t in [now - (31 * DAY if i < 1_234 else DAY)]],
    )  # fmt: skip
    c.execute("COMMIT")
    engine = Engine(store, Registry(), EngineSettings())
    assert await engine.sweep_retention(pause=0) == 1_234
    assert c.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 66
    assert c.execute("SELECT SUM(n) FROM job_totals").fetchone()[0] == 66
    assert c.execute("SELECT SUM(n) FROM job_finish_minutes").fetchone()[0] == 66


def _completed_long_ago(store: SQLiteStore, now: int, n: int) -> None:
    """`n` jobs completed 31 days before `now`: past retention."""
    c = store.conn
    c.execute("BEGIN")
    c.executemany(
        "INSERT INTO jobs (id, type, status, input, user_id, created_at, updated_at, run_at,"
        " started_at, completed_at) VALUES (?, 't', 'completed', '{}', 'u', ?, ?, ?, ?, ?)",
        [(str(uuid.uuid4()), t - DAY, t, t - DAY, t - 5, t) for t in [now - 31 * DAY]
         for _ in range(n)],
    )  # fmt: skip
    c.execute("COMMIT")


async def test_a_sweep_batch_leaves_the_loop_free_and_writes_wait_for_its_commit(
    store: SQLiteStore,
) -> None:
    """A batch runs in the sweep thread (on the loop, batches of 10 rows stalled the
    server up to 171 ms at 10M rows, #15): the loop goes on meanwhile, and a write
    submitted during the batch waits for its commit instead of meeting a locked database."""
    now = now_us()
    c = store.conn
    _completed_long_ago(store, now, 5_000)
    passes = LoopPasses()
    await asyncio.sleep(0)
    sweep = asyncio.create_task(store.sweep(now - 30 * DAY, now - 7 * DAY, 5_000))
    await asyncio.sleep(0)  # the sweep starts its batch (5,000 rows: tens of ms)
    assert not sweep.done(), "the batch ran on the loop"
    before, job = passes.n, new_job()
    write = asyncio.create_task(store.create_job(job, now, DAY))
    assert await sweep == 5_000
    assert passes.n > before, "the loop stood still while the batch ran"
    row, created = await write
    passes.stop()
    assert created and row.id == job.id
    assert c.execute("SELECT id FROM jobs").fetchall() == [(job.id,)]


async def test_the_sweeps_own_commits_set_off_no_claims(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch commits on the sweep's own connection, which the dispatcher's
    data_version sees as another's: a claim per batch walked the running jobs on the loop
    (#15). The sweep's own commits count as seen; other connections' still wake it."""
    monkeypatch.setattr(engine_module, "SWEEP_BATCH", 20)  # 5,000 rows: 250 batches
    now = now_us()
    c = store.conn
    _completed_long_ago(store, now, 5_000)
    registry = Registry()
    ran: list[str] = []

    @registry.job("t")
    async def t(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    claims = 0
    claim = store.claim_jobs

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_jobs", counted)
    engine = Engine(store, registry, EngineSettings(poll_interval=0.002))
    await engine.start()
    started = time.monotonic()
    try:
        for _ in range(500):
            if c.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0:
                break
            await asyncio.sleep(0.02)
        assert c.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
        during, took = claims, time.monotonic() - started
        # another process's job is still noticed through data_version
        outside = sqlite3.connect(store.path, isolation_level=None)
        job_id = str(uuid.uuid4())
        outside.execute(
            "INSERT INTO jobs (id, type, status, input, user_id, created_at, updated_at, run_at)"
            " VALUES (?, 't', 'pending', '{}', 'u', ?, ?, ?)",
            (job_id, now_us(), now_us(), now_us()),
        )
        outside.close()
        for _ in range(250):
            if ran:
                break
            await asyncio.sleep(0.02)
    finally:
        await engine.stop()
    # one at the start, then a look a second at most (255 claims in 3 s before); and one
    # for each WAL restart, the checkpoint thread's own write (one per checkpoint at most)
    restarts = store.wal_restarts
    assert during <= 3 + 2 * took + restarts, (
        f"{during} claims in a {took:.1f} s sweep of 250 batches, {restarts} WAL restarts"
    )
    assert ran == [job_id]


async def test_expiry_of_stuck_pending_and_running_jobs(store: SQLiteStore) -> None:
    registry = Registry()

    @registry.job("t", timeout=600, pending_timeout=300)
    async def t(ctx: JobContext) -> None:
        return None

    now = now_us()
    engine = Engine(store, registry, EngineSettings(), up_since=now - DAY)
    waiting, fresh, orphan, sleeping = new_job(), new_job(), new_job(), new_job()
    for job in (waiting, fresh, orphan, sleeping):
        await store.create_job(job, now, DAY)
    await age(store, waiting.id, created_at=now - 6 * MINUTE)
    await age(store, fresh.id, created_at=now - 4 * MINUTE)
    await age(store, orphan.id, status="running", started_at=now - 11 * MINUTE)
    # a job back in the queue after a long step.sleep started long ago: not "never started"
    await age(store, sleeping.id, created_at=now - 60 * MINUTE, started_at=now - 59 * MINUTE)
    assert await engine.expire_once() == 2
    jobs = {j: await store.get_job(j, None) for j in (waiting.id, fresh.id, orphan.id, sleeping.id)}
    assert jobs[waiting.id].status == "failed"  # type: ignore[union-attr]
    assert jobs[waiting.id].error == "expired: not started within 5m (the limit for t)"  # type: ignore[union-attr]
    assert jobs[orphan.id].error == "timed out: running longer than 10m (the limit for t)"  # type: ignore[union-attr]
    assert jobs[fresh.id].status == "pending" and jobs[sleeping.id].status == "pending"  # type: ignore[union-attr]


async def test_repeated_step_names_are_separate_steps_and_replay(store: SQLiteStore) -> None:
    registry = Registry()
    calls: list[int] = []

    @registry.job("loop", retries=0)
    async def loop(ctx: JobContext) -> list[int]:
        def work(i: int) -> int:
            calls.append(i)
            return i * 10

        return [await ctx.step.run("item", work, i) for i in range(3)]

    engine = Engine(store, registry, EngineSettings(slots=1, poll_interval=0.01))
    job = NewJob(str(uuid.uuid4()), "loop", dumps({}), "u", 1)
    await store.create_job(job, now_us(), DAY)
    await engine.start()
    try:
        for _ in range(200):
            row = await store.get_job(job.id, None)
            if row is not None and row.status == "completed":
                break
            await asyncio.sleep(0.02)
    finally:
        await engine.stop()
    assert row is not None and row.output == "[0,10,20]"
    steps = await store.load_steps(job.id)
    assert [s.step_id for s in steps] == [
        hash_step_id("item"), hash_step_id("item:1"), hash_step_id("item:2")
    ]  # fmt: skip
    assert calls == [0, 1, 2]


async def test_graceful_stop_puts_running_jobs_back(store: SQLiteStore) -> None:
    registry = Registry()
    started = asyncio.Event()

    @registry.job("long", retries=0)
    async def long(ctx: JobContext) -> None:
        await ctx.step.run("quick", lambda: 1)
        started.set()
        await ctx.step.run("slow", lambda: asyncio.sleep(30))

    engine = Engine(store, registry, EngineSettings(slots=1, poll_interval=0.01))
    job = NewJob(str(uuid.uuid4()), "long", dumps({}), "u", 1)
    await store.create_job(job, now_us(), DAY)
    await engine.start()
    await asyncio.wait_for(started.wait(), 10)
    await engine.stop(grace=0.1)
    row = await store.get_job(job.id, None)
    assert row is not None and row.status == "pending" and row.lease_owner is None
    assert row.message == "Interrupted by a server shutdown"
    steps = {s.name: s.status for s in await store.load_steps(job.id)}
    assert steps["quick"] == "completed"


async def test_idle_dispatcher_backs_off_its_poll_and_still_sees_every_writer(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """Idle, the look for outside writers (data_version) backs off to poll_idle; a job
    created through this store (the API's path) wakes the dispatcher at once, one written
    by another connection is seen at the next (backed-off) look."""
    registry = Registry()
    ran: list[str] = []

    @registry.job("t", retries=0)
    async def t(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    looks = 0
    real = store.data_version

    def counted() -> int:
        nonlocal looks
        looks += 1
        return real()

    store.data_version = counted  # type: ignore[method-assign]
    settings = EngineSettings(slots=2, poll_interval=0.001, poll_hot=0.0, poll_idle=60.0)
    engine = Engine(store, registry, settings)
    await engine.start()
    try:
        await asyncio.sleep(0.5)
        # Without the back-off: one look a millisecond, hundreds here; with it, a dozen
        # doublings from 1 ms reach far past the half second (a slow machine looks less).
        assert 1 <= looks < 30
        own = new_job()
        await store.create_job(own, now_us(), DAY)  # announced on the change bus: at once
        for _ in range(500):  # the next look would be a minute or more away
            if own.id in ran:
                break
            await asyncio.sleep(0.01)
        assert own.id in ran
    finally:
        await engine.stop()

    settings = EngineSettings(slots=2, poll_interval=0.001, poll_hot=0.0, poll_idle=0.05)
    engine = Engine(store, registry, settings)
    await engine.start()
    other = SQLiteStore(store.path)
    other.open_sync(lock=False)
    try:
        await asyncio.sleep(0.3)  # backed off to poll_idle by now
        outside = new_job()
        other.create_job_sync(outside, now_us(), DAY)  # no announcement reaches the engine
        for _ in range(500):
            if outside.id in ran:
                break
            await asyncio.sleep(0.01)
        assert outside.id in ran
    finally:
        other.close_sync()
        await engine.stop()


async def test_jobs_that_end_together_are_finished_in_one_transaction(
    store: SQLiteStore,
) -> None:
    """Eight jobs released by one event end in the same pass of the loop: their ends
    are one finish_jobs_many call (one SQLite transaction), each with its own result and
    its own lease checked: one job's lease taken over is that job's LeaseLost alone."""
    registry = Registry()
    gate = asyncio.Event()
    started: list[str] = []

    @registry.job("gated", retries=0)
    async def gated(ctx: JobContext) -> str:
        started.append(ctx.job_id)
        await gate.wait()
        return ctx.job_id

    calls: list[int] = []
    many = store.finish_jobs_many

    async def counted(writes: Any, now: int) -> Any:
        calls.append(len(writes))
        return await many(writes, now)

    store.finish_jobs_many = counted  # type: ignore[method-assign]
    settings = EngineSettings(slots=8, poll_interval=0.01, limits=Limits(None, (), None))
    engine = Engine(store, registry, settings)
    jobs = [NewJob(str(uuid.uuid4()), "gated", dumps({}), "u", 1) for _ in range(8)]
    for job in jobs:
        await store.create_job(job, now_us(), DAY)
    await engine.start()
    try:
        for _ in range(500):
            if len(started) == 8:
                break
            await asyncio.sleep(0.01)
        assert len(started) == 8
        # Another worker's lease on one of them (as after a stall): its end is refused.
        stolen = started[0]
        store.conn.execute(
            "UPDATE jobs SET lease_owner = 'other', lease_token = lease_token + 1 WHERE id = ?",
            (stolen,),
        )
        gate.set()
        for _ in range(500):
            rows = [await store.get_job(j.id, None) for j in jobs]
            if sum(r is not None and r.status == "completed" for r in rows) == 7:
                break
            await asyncio.sleep(0.01)
    finally:
        await engine.stop(grace=0.1)
    assert calls == [8]
    for job in jobs:
        row = await store.get_job(job.id, None)
        assert row is not None
        if job.id == stolen:
            assert row.status == "running" and row.lease_owner == "other"
        else:
            assert row.status == "completed" and row.output == dumps(job.id)
    assert engine.leases_lost == 1


async def test_jobs_of_unknown_types_are_failed_one_per_pass_of_the_loop(
    store: SQLiteStore,
) -> None:
    """A claim's worth of jobs of a type this server lacks was failed in one pass of the
    loop (a task each): 8 ends at 2-3 ms each on a 10M-row table, a 20 ms stall (#15).
    Now one per pass; they hold their slots until failed, so claims do not outrun it."""
    at_tick: list[int] = []
    finish = store.finish_job

    async def counted(*args: Any) -> Any:
        at_tick.append(passes.n)
        return await finish(*args)

    store.finish_job = counted  # type: ignore[method-assign]
    jobs = [new_job("gone") for _ in range(30)]
    await store.create_jobs(jobs, now_us(), DAY)
    engine = Engine(store, Registry(), EngineSettings(slots=8, poll_interval=0.01))
    passes = LoopPasses()
    await engine.start()
    try:
        for _ in range(500):
            rows = [await store.get_job(j.id, None) for j in jobs]
            if all(r is not None and r.status == "failed" for r in rows):
                break
            await asyncio.sleep(0.01)
    finally:
        await engine.stop(grace=0.1)
        passes.stop()
    for row in rows:
        assert row is not None and row.status == "failed"
        assert "'gone' is not registered on this server" in (row.error or ""), row.error
    assert len(at_tick) == 30 and len(set(at_tick)) == 30, at_tick  # never two in one pass
