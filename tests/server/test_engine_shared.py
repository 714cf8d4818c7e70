"""The engine on a shared store: woken by other servers' changes, and not fooled by late ones."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobctl.server.context import JobContext
from jobctl.server.engine import Engine, EngineSettings
from jobctl.server.records import CANCELLED, RUNNING, Change, Limits, NewJob, now_us
from jobctl.server.registry import Registry
from jobctl.server.store import open_store
from jobctl.server.store.base import Store

started: dict[str, asyncio.Event] = {}


def registry() -> Registry:
    reg = Registry()

    @reg.job("wait", retries=0)
    async def wait(ctx: JobContext) -> Any:
        started.setdefault(ctx.job_id, asyncio.Event()).set()
        await ctx.step.run("nap", ctx.sleep_or_cancel, 20.0)
        await ctx.step.run("after", lambda: 1)  # raises JobCancelled first if cancelled
        return "woke"

    return reg


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    store: Store = open_store(store_url)
    await store.open()
    settings = EngineSettings(
        slots=4, limits=Limits(None, (), None), single_process="://" not in store_url
    )
    eng = Engine(store, registry(), settings)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop(grace=0.1)
        await store.close()


async def submit(store: Store) -> str:
    row, _ = await store.create_job(
        NewJob(str(uuid.uuid4()), "wait", "{}", "alice", 1), now_us(), 10**9
    )
    return row.id


async def test_a_change_from_before_the_claim_does_not_cancel_the_job(engine: Engine) -> None:
    store = engine.store
    row, _ = await store.create_job(
        NewJob(str(uuid.uuid4()), "wait", "{}", "alice", 1), now_us(), 10**9
    )
    engine.wake()
    event = started.setdefault(row.id, asyncio.Event())
    await asyncio.wait_for(event.wait(), 10)
    job = engine.running[row.id]
    # The job's insert (pending, no lease), delivered late as a shared store may do.
    bus = store.changes
    bus.publish(Change(bus.next_seq(), "jobs", "INSERT", row, {"id": row.id}, 0, "alice"))
    await asyncio.sleep(0.2)
    assert not job.cancel_event.is_set()
    assert job.row.status == RUNNING
    # A real cancel does reach the job.
    await store.cancel_job(row.id, None, now_us())
    async with asyncio.timeout(10):
        while row.id in engine.running:
            await asyncio.sleep(0.01)
    final = await store.get_job(row.id, None)
    assert final is not None and final.status == CANCELLED
    assert [s.name for s in await store.load_steps(row.id)] == ["nap"]  # no later step ran


@pytest.mark.postgres
async def test_jobs_inserted_by_another_server_start_at_once(pg_url: str) -> None:
    """No API call wakes this engine: the LISTEN/NOTIFY feed does, in milliseconds
    (the fallback look-up runs once a second)."""
    store = open_store(pg_url)
    other = open_store(pg_url)  # another server's store
    await store.open()
    await other.open()
    engine = Engine(store, registry(), EngineSettings(slots=30, limits=Limits(None, (), None),
                                                      single_process=False))  # fmt: skip
    await engine.start()
    try:
        await asyncio.sleep(0.3)  # idle: nothing pending
        delays = []
        for _ in range(15):
            t = time.monotonic()
            job_id = await submit(other)
            event = started.setdefault(job_id, asyncio.Event())
            await asyncio.wait_for(event.wait(), 10)
            delays.append(time.monotonic() - t)
            await asyncio.sleep(0.05)
        assert statistics.median(delays) < 0.2, delays
    finally:
        await engine.stop(grace=0.1)
        await store.close()
        await other.close()


@pytest.mark.postgres
async def test_servers_on_one_database_do_not_all_claim_each_new_job(pg_url: str) -> None:
    """Three engines, idle, on one PostgreSQL: once they know each other (from each other's
    claims), a new job is claimed by the one its rendezvous hash ranks first, not by all."""
    reg = Registry()

    @reg.job("quick", retries=0)
    async def quick(ctx: JobContext) -> Any:
        return 1

    stores = [open_store(pg_url) for _ in range(3)]
    engines: list[Engine] = []
    claims = [0]
    for store in stores:
        await store.open()
        claim = store.claim_jobs

        async def counted(*args: Any, _claim: Any = claim) -> Any:
            claims[0] += 1
            return await _claim(*args)

        store.claim_jobs = counted  # type: ignore[method-assign]
        engine = Engine(store, reg, EngineSettings(slots=2, limits=Limits(None, (), None),
                                                   single_process=False))  # fmt: skip
        engines.append(engine)
        await engine.start()
    try:

        async def run(n: int) -> list[str]:
            ids = []
            for _ in range(n):
                row, _ = await stores[0].create_job(
                    NewJob(str(uuid.uuid4()), "quick", "{}", "alice", 1), now_us(), 10**9
                )
                ids.append(row.id)
                await asyncio.sleep(0.02)
            async with asyncio.timeout(10):
                while True:
                    rows = [await stores[0].get_job(i, None) for i in ids]
                    if all(r is not None and r.status == "completed" for r in rows):
                        return [r.lease_owner or "" for r in rows if r is not None]
                    await asyncio.sleep(0.02)

        warmup = 0
        while warmup < 100 and not all(len(e._peers) == 2 for e in engines):
            warmup += len(await run(10))  # they learn of each other from their claims
        assert all(len(e._peers) == 2 for e in engines), [e._peers for e in engines]
        claims[0] = 0
        await run(30)
        # Each job once, plus a second look when a claim is slower than a rank's step, and
        # the once-a-second look-ups; before, every idle server claimed every job (3 per job).
        assert claims[0] < 30 * 2, claims[0]
        assert sum(e.jobs_started for e in engines) == warmup + 30
        assert all(e.jobs_started > 0 for e in engines)  # the hash spreads them
    finally:
        for engine in engines:
            await engine.stop(grace=0.1)
        for store in stores:
            await store.close()
