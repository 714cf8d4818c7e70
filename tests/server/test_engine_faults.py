"""The engine and API under store faults, in-process on a real SQLite file.

- A lost lease: the worker learns it from its next write, drops the job, runs no
  further step and writes nothing (issue 10, item 2; the two-server test is in
  test_fencing.py).
- The store unavailable: the API answers 503 storage_unavailable with Retry-After,
  never 500; a job whose writes fail waits (its timeout not running down) and goes on
  when the store is back; pending time while the store was unavailable does not count
  towards expiry (item 3; the full-disk test is in test_storage_faults.py).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobctl.server.app import create_app
from jobctl.server.auth import Authenticator
from jobctl.server.engine import Engine, EngineSettings
from jobctl.server.jobcontext import JobContext
from jobctl.server.records import JobRow, Limits, NewJob, dumps, now_us
from jobctl.server.registry import Registry
from jobctl.server.store.base import StorageUnavailable
from jobctl.server.store.sqlite import SQLiteStore

DAY = 86_400 * 1_000_000
NO_LIMITS = Limits(None, (), None)


class FlakyStore(SQLiteStore):
    """SQLite whose chosen methods fail as a full disk would, while `down` holds them."""

    down: frozenset[str] = frozenset()

    def _check(self, name: str) -> None:
        if name in self.down:
            raise StorageUnavailable("sqlite: database or disk is full")

    async def create_job(self, *args: Any) -> tuple[JobRow, bool]:
        self._check("create_job")
        return await super().create_job(*args)

    async def create_jobs(self, *args: Any) -> list[tuple[JobRow, bool]]:  # the API's path
        self._check("create_job")
        return await super().create_jobs(*args)

    async def list_jobs(self, *args: Any) -> Any:
        self._check("list_jobs")
        return await super().list_jobs(*args)

    async def claim_jobs(self, *args: Any) -> list[JobRow]:
        self._check("claim_jobs")
        return await super().claim_jobs(*args)

    async def save_step(self, *args: Any) -> None:
        self._check("save_step")
        await super().save_step(*args)

    async def save_steps_many(self, *args: Any) -> list[Any]:  # the engine's path
        self._check("save_step")
        return await super().save_steps_many(*args)

    async def set_progress(self, *args: Any) -> JobRow | None:
        self._check("set_progress")
        return await super().set_progress(*args)

    async def set_progress_many(self, *args: Any) -> list[Any]:  # the engine's path
        self._check("set_progress")
        return await super().set_progress_many(*args)

    async def finish_job(self, *args: Any) -> JobRow | None:
        self._check("finish_job")
        return await super().finish_job(*args)

    async def finish_jobs_many(self, *args: Any) -> list[Any]:  # the engine's path
        self._check("finish_job")
        return await super().finish_jobs_many(*args)

    async def fail_jobs(self, *args: Any) -> list[JobRow]:
        self._check("fail_jobs")
        return await super().fail_jobs(*args)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    s = FlakyStore(str(tmp_path / "faults.db"))
    await s.open()
    yield s
    await s.close()


async def submit(store: SQLiteStore, job_type: str, created_at: int | None = None) -> str:
    job = NewJob(str(uuid.uuid4()), job_type, dumps({}), "u", 1)
    await store.create_job(job, created_at or now_us(), DAY)
    return job.id


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.01)


async def status_of(store: SQLiteStore, job_id: str) -> str:
    row = await store.get_job(job_id, None)
    assert row is not None
    return row.status


async def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(
    store: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()
    gate = asyncio.Event()
    ran: list[int] = []

    @registry.job("three", retries=0)
    async def three(ctx: JobContext) -> str:
        for i in (1, 2, 3):

            async def work(i: int = i) -> int:
                ran.append(i)
                if i == 2:
                    await gate.wait()
                return i

            await ctx.step.run(f"step-{i}", work)
        return "done"

    engine = Engine(store, registry, EngineSettings(slots=1, limits=NO_LIMITS))
    job_id = await submit(store, "three")
    await engine.start()
    try:
        await until(lambda: asyncio.sleep(0, ran == [1, 2]))
        # Another worker takes the job over (as a re-queue and claim would), behind the
        # engine's back: no change is announced, so the engine learns it from its write.
        store.conn.execute(
            "UPDATE jobs SET lease_owner = 'thief', lease_token = lease_token + 2,"
            " message = 'taken' WHERE id = ?",
            (job_id,),
        )
        with caplog.at_level(logging.WARNING, "jobctl.engine"):
            gate.set()
            await until(lambda: asyncio.sleep(0, job_id not in engine.running))
    finally:
        await engine.stop(grace=0.1)
    assert ran == [1, 2], "no step may start once the lease is gone"
    row = await store.get_job(job_id, None)
    assert row is not None
    assert (row.status, row.lease_owner, row.message) == ("running", "thief", "taken")
    steps = {s.name: (s.status, s.attempt) for s in await store.load_steps(job_id)}
    assert steps == {"step-1": ("completed", 1), "step-2": ("running", 1)}
    assert engine.leases_lost == 1
    assert f"job {job_id}: lost its lease while saving a step" in caplog.text


def _app(store: SQLiteStore) -> tuple[httpx.AsyncClient, str]:
    registry = Registry()

    @registry.job("noop", retries=0)
    async def noop(ctx: JobContext) -> None:
        return None

    auth = Authenticator("jctl_test_token", "s" * 40)
    engine = Engine(store, registry, EngineSettings())
    app = create_app(store, registry, engine, auth)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")
    return client, "jctl_test_token"


async def test_the_api_answers_503_storage_unavailable_never_500(store: FlakyStore) -> None:
    client, token = _app(store)
    headers = {"Authorization": f"Bearer {token}"}
    async with client:
        store.down = frozenset({"create_job", "list_jobs"})
        for answer in (
            await client.post("/api/jobs", json={"type": "noop"}, headers=headers),
            await client.get("/api/jobs", headers=headers),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "2"
            assert answer.json()["error"]["code"] == "storage_unavailable"
        store.down = frozenset()
        assert (
            await client.post("/api/jobs", json={"type": "noop"}, headers=headers)
        ).status_code == 201
        assert (await client.get("/api/jobs", headers=headers)).status_code == 200


async def test_real_sqlite_faults_read_only_and_locked_are_storage_unavailable(
    tmp_path: Path,
) -> None:
    """What SQLite raises for a database that cannot be written is mapped, in the store."""
    path = tmp_path / "ro.db"
    writer = SQLiteStore(str(path))
    await writer.open()
    await writer.close()
    reader = SQLiteStore(str(path))
    reader.open_sync(lock=False)
    try:
        reader.conn.execute("PRAGMA query_only = ON")  # every write now fails: READONLY
        with pytest.raises(StorageUnavailable, match="sqlite: attempt to write a readonly"):
            await reader.create_job(NewJob(str(uuid.uuid4()), "t", "{}", "u", 1), now_us(), DAY)
    finally:
        reader.close_sync()

    # Locked by another connection for longer than the busy timeout: BUSY, unavailable.
    store = SQLiteStore(str(path))
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        store.conn.execute("PRAGMA busy_timeout = 50")  # 10 s in the server
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageUnavailable, match="sqlite: database is locked"):
            await store.create_job(NewJob(str(uuid.uuid4()), "t", "{}", "u", 1), now_us(), DAY)
        other.execute("ROLLBACK")
        _, created = await store.create_job(
            NewJob(str(uuid.uuid4()), "t", "{}", "u", 1), now_us(), DAY
        )
        assert created
    finally:
        other.close()
        await store.close()


async def test_a_job_waits_out_a_store_outage_and_its_timeout_does_not_run_down(
    store: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()
    ran: list[int] = []

    @registry.job("short", retries=0, timeout=1.0)
    async def short(ctx: JobContext) -> str:
        for i in (1, 2, 3):
            await ctx.step.run(f"step-{i}", lambda i=i: ran.append(i))
            await ctx.progress(i * 33, f"step {i}")
            ctx.log(f"step {i} done")
        return "done"

    engine = Engine(store, registry, EngineSettings(slots=1, limits=NO_LIMITS))
    with caplog.at_level(logging.INFO, "jobctl.engine"):
        store.down = frozenset({"save_step"})  # the first step cannot even be started
        job_id = await submit(store, "short")
        await engine.start()
        try:
            await asyncio.sleep(1.5)  # longer than the job's whole timeout
            assert not engine.store_available and ran == []
            assert await status_of(store, job_id) == "running"
            store.down = frozenset({"set_progress", "finish_job"})
            await asyncio.sleep(0.5)
            assert ran == [1]  # step 1 ran once, its progress is held back
            store.down = frozenset()
            await until(lambda: _is(store, job_id, "completed"))
        finally:
            await engine.stop(grace=0.1)
    assert ran == [1, 2, 3], "each step ran once: what could not be written was kept"
    row = await store.get_job(job_id, None)
    assert row is not None and row.output == '"done"' and row.error is None
    assert [ln.message for ln in await store.list_logs(job_id, 0, 10)] == [
        "step 1 done", "step 2 done", "step 3 done"
    ]  # fmt: skip
    assert "the store is unavailable" in caplog.text
    assert "the store is available again" in caplog.text


async def _is(store: SQLiteStore, job_id: str, status: str) -> bool:
    return await status_of(store, job_id) == status


async def test_pending_time_while_the_store_is_unavailable_does_not_count(
    store: FlakyStore,
) -> None:
    registry = Registry()

    @registry.job("prompt", retries=0, pending_timeout=1.0)
    async def prompt(ctx: JobContext) -> str:
        return "ran"

    engine = Engine(store, registry, EngineSettings(slots=1, limits=NO_LIMITS))
    store.down = frozenset({"claim_jobs"})  # nothing can start
    job_id = await submit(store, "prompt")
    await engine.start()
    try:
        await asyncio.sleep(1.5)  # past the pending timeout, all of it unavailable
        assert not engine.store_available
        assert await engine.expire_once() == 0
        store.down = frozenset()
        await until(lambda: _is(store, job_id, "completed"))
    finally:
        await engine.stop(grace=0.1)
    # Of the last 3 s, at most the time since the outage ended counts as waiting.
    assert engine.available_us(now_us() - 3_000_000, now_us()) < 1_500_000
    row = await store.get_job(job_id, None)
    assert row is not None and row.output == '"ran"'


async def test_a_fresh_engine_does_not_expire_jobs_that_waited_while_no_server_ran(
    store: FlakyStore,
) -> None:
    registry = Registry()

    @registry.job("prompt", retries=0, pending_timeout=60.0)
    async def prompt(ctx: JobContext) -> str:
        return "ran"

    waited = await submit(store, "prompt", created_at=now_us() - 3600 * 1_000_000)
    engine = Engine(store, registry, EngineSettings(slots=1, limits=NO_LIMITS))
    assert await engine.expire_once() == 0
    assert await status_of(store, waited) == "pending"
    up_long = Engine(store, registry, EngineSettings(), up_since=now_us() - 7200 * 1_000_000)
    assert await up_long.expire_once() == 1


async def test_a_job_left_running_without_a_worker_is_requeued_and_completes(
    store: FlakyStore,
) -> None:
    """The safety net on a store of our own: a row that says `running` under this engine
    whose lease is no longer renewed (its task ended without a finish) goes back to the
    queue when the lease runs out, and runs."""
    registry = Registry()

    @registry.job("quick", retries=0)
    async def quick(ctx: JobContext) -> str:
        return "ran"

    engine = Engine(store, registry, EngineSettings(slots=1, limits=NO_LIMITS))
    await engine.recover()  # the start-up re-queue is behind us: the row appears later
    job_id = await submit(store, "quick")
    store.conn.execute(
        "UPDATE jobs SET status = 'running', lease_owner = ?, lease_expires_at = ?,"
        " started_at = ? WHERE id = ?",
        (engine.owner, now_us() - 1, now_us() - 1, job_id),
    )
    await engine.start()
    try:
        await asyncio.sleep(0.1)
        assert job_id not in engine.running and await _is(store, job_id, "running")
        await engine.lease_tick()
        await until(lambda: _is(store, job_id, "completed"))
    finally:
        await engine.stop(grace=0.1)
    row = await store.get_job(job_id, None)
    assert row is not None and row.output == '"ran"'
