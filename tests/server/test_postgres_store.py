"""PostgreSQL-only behaviour: several stores (as several servers) on one database."""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from jobctl.server.records import COMPLETED, RUNNING, Change, JobRow, Limits, NewJob, now_us
from jobctl.server.store.base import Lease, migrations
from jobctl.server.store.postgres import _CLAIM_FREE, PostgresStore
from tests.pgcluster import PgCluster
from tests.pgfixtures import new_database

pytestmark = pytest.mark.postgres

US = 1_000_000
# An hour ahead: a claim may stamp the later of `now` and the store's clock (PostgreSQL
# does, after waiting for the claim lock), and these tests want their own times kept.
T0 = (now_us() // US + 3600) * US
NO_LIMITS = Limits(None, (), None)


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Three stores on one database, as three servers would have."""
    opened = [PostgresStore(pg_url) for _ in range(3)]
    for s in opened:
        await s.open()
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()


def new_job(user: str = "alice", key: str | None = None) -> NewJob:
    return NewJob(str(uuid.uuid4()), "demo", "{}", user, 3, concurrency_key=key)


async def create(store: PostgresStore, n: int, user: str = "alice", now: int = T0) -> list[str]:
    return [(await store.create_job(new_job(user), now, US))[0].id for _ in range(n)]


async def test_concurrent_claims_take_each_job_once(stores: list[PostgresStore]) -> None:
    ids = await create(stores[0], 600)

    async def claimer(store: PostgresStore, name: str) -> list[str]:
        got: list[str] = []
        for _ in range(1000):  # bounded; ends when the queue is empty
            rows = await store.claim_jobs(name, 7, T0 + US, 30 * US, NO_LIMITS)
            if not rows:
                return got
            got += [r.id for r in rows]
        raise AssertionError("claims did not drain the queue")

    results = await asyncio.gather(
        *(claimer(s, f"w{i}{j}") for i, s in enumerate(stores) for j in range(2))
    )
    claimed = [job_id for part in results for job_id in part]
    assert sorted(claimed) == sorted(ids)  # every job once: none twice, none missed
    assert all(part for part in results), "every claimer should have got some work"


async def test_limits_hold_across_servers_claiming_at_once(stores: list[PostgresStore]) -> None:
    """Without the advisory lock, concurrent claimers each see 0 running and overshoot."""
    limits = Limits(per_user=3, per_key=(("org", 2),), default_key=None)
    await create(stores[0], 40)
    for _ in range(12):
        await stores[1].create_job(new_job("bob", "org:acme"), T0, US)
    for round_ in range(5):
        now = T0 + (round_ + 1) * US
        batches = await asyncio.gather(
            *(s.claim_jobs(f"w{i}", 10, now, 30 * US, limits) for i, s in enumerate(stores * 3))
        )
        running = [r for batch in batches for r in batch]
        alice = await stores[0].count_running("alice", None)
        bob = await stores[0].count_running("bob", "org:acme")
        assert alice[0] == 3 and bob == (2, 2), (alice, bob)
        # finish everything claimed this round, so the next round claims again
        for r in running:
            done = await stores[0].finish_job(r.id, Lease.of(r), COMPLETED, "{}", None,
                                              None, now)  # fmt: skip
            assert done is not None
        assert len(running) == 5


async def test_claim_plan_does_not_depend_on_statistics(pg_url: str) -> None:
    """The peer benchmark's pitfall: stale statistics must not turn claims into scans."""
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await create(store, 2000)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("ANALYZE jobs")  # statistics now say: every row is pending
            conn.execute("UPDATE jobs SET status = 'completed'")
            plans = [_plan(conn)]
            conn.execute("ANALYZE jobs")  # and now: no row is pending
        await create(store, 2000, now=T0 + 1)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            plans.append(_plan(conn))
            conn.execute("SET enable_indexscan = off")  # even then: a bitmap scan of it
            plans.append(_plan(conn))
        for plan in plans:
            # The planner may reach the pending rows through jobs_pending or through
            # jobs_queue (status, run_at); either way only pending rows are read.
            assert "Seq Scan" not in plan, plan
            assert "jobs_pending" in plan or "Index Cond: ((status = 'pending'" in plan, plan
        got = await store.claim_jobs("w", 5, T0 + US, 30 * US, NO_LIMITS)
        assert len(got) == 5 and all(r.created_at == T0 + 1 for r in got)
    finally:
        await store.close()


def _plan(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    params = {"now": T0 + US, "owner": "w", "lease": T0 + 2 * US, "limit": 5}
    rows = conn.execute(f"EXPLAIN {_CLAIM_FREE}", params).fetchall()  # type: ignore[call-overload]
    return "\n".join(str(r[0]) for r in rows)


async def test_servers_starting_together_migrate_once(pg_cluster: PgCluster) -> None:
    url = new_database(pg_cluster, migrated=False)
    many = [PostgresStore(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in many))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
            indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
        assert sorted(names) == [name for name, _ in migrations("postgres")]  # each once
        assert {"jobs_pending", "jobs_queue"} <= indexes
    finally:
        for s in many:
            await s.close()


async def test_every_servers_changes_reach_every_bus_once_in_commit_order(
    stores: list[PostgresStore],
) -> None:
    a, b, c = stores
    queues = [s.changes.subscribe() for s in stores]

    async def writer(store: PostgresStore, user: str) -> list[str]:
        ids = []
        for i in range(30):
            row, _ = await store.create_job(new_job(user), T0 + i, US)
            ids.append(row.id)
            if i % 3 == 0:
                await store.cancel_job(row.id, None, T0 + i)
        return ids

    # claims by a third server interleave with the writers' inserts and cancels
    async def claimer() -> int:
        claimed = 0
        for _ in range(40):
            claimed += len(await c.claim_jobs("c", 2, T0 + 100 * US, 30 * US, NO_LIMITS))
            await asyncio.sleep(0.001)
        return claimed

    ids_a, ids_b, claimed = await asyncio.gather(writer(a, "alice"), writer(b, "bob"), claimer())
    assert claimed > 0
    with psycopg.connect(a.url, autocommit=True) as conn:
        final: dict[str, str] = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
    received = []
    for queue in queues:
        got: list[Change] = []
        async with asyncio.timeout(10):
            # every job's last change is its final state; wait until each bus has all
            while {c.job_id: c.row.status for c in got if isinstance(c.row, JobRow)} != final:
                change = await queue.get()
                assert change is not None
                got.append(change)
        await asyncio.sleep(0.2)
        assert queue.empty(), "a change was delivered twice"
        received.append(
            [
                (ch.job_id, ch.type, ch.row.status, ch.row.updated_at, ch.row.lease_owner)
                for ch in got
                if isinstance(ch.row, JobRow)
            ]
        )
    # all three buses saw the same changes in the same (commit) order
    assert received[0] == received[1] == received[2]
    per_job = collections.defaultdict(list)
    for job_id, kind, status, _, _ in received[0]:
        per_job[job_id].append((kind, status))
    assert set(per_job) == set(ids_a) | set(ids_b)
    # one change per committed write: 60 inserts, 20 cancels, and the claims
    assert len(received[0]) == 60 + 20 + claimed
    ins, run, cancel = ("INSERT", "pending"), ("UPDATE", RUNNING), ("UPDATE", "cancelled")
    allowed = [[ins], [ins, run], [ins, cancel], [ins, run, cancel]]
    for changes in per_job.values():
        assert changes in allowed, changes  # in commit order: never a claim after a cancel


async def test_listener_reconnects_after_losing_its_connection(
    stores: list[PostgresStore],
) -> None:
    a, b, _ = stores
    queue = a.changes.subscribe()
    await create(b, 1)
    assert (await asyncio.wait_for(queue.get(), 5)) is not None
    with psycopg.connect(a.url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
        ).fetchall()
    assert len(killed) == 3  # one listener per store
    for _ in range(100):  # bounded: until a's listener is back (it retries within ~0.2 s)
        job_id = (await create(b, 1))[0]
        try:
            change = await asyncio.wait_for(queue.get(), 0.3)
        except TimeoutError:
            continue
        assert change is not None
        if change.job_id == job_id:
            break
    else:
        raise AssertionError("the listener did not come back")
    # and the pooled connections that were not listening still work
    assert len(await a.claim_jobs("w", 100, T0 + US, 30 * US, NO_LIMITS)) >= 2


async def test_notification_payload_stays_under_the_limit(stores: list[PostgresStore]) -> None:
    """Rows of every size commit (NOTIFY raises on 8000 bytes or more, failing the write)."""
    a = stores[0]
    queue = a.changes.subscribe()
    for size in (7000, 7890, 7900, 7910, 8000, 20_000):
        text = json.dumps({"t": "é" * (size // 2)})
        row, _ = await a.create_job(
            NewJob(str(uuid.uuid4()), "demo", text, "u" * 200, 3, idempotency_key=f"{size:k<255}",
                   concurrency_key="c" * 255),
            T0, US,
        )  # fmt: skip
        change = await asyncio.wait_for(queue.get(), 5)
        assert change is not None and isinstance(change.row, JobRow)
        assert change.row.input == text and change.row.id == row.id


async def test_producers_in_sync_code_create_jobs_too(stores: list[PostgresStore]) -> None:
    a, producer = stores[0], PostgresStore(stores[0].url, listen=False)
    queue = a.changes.subscribe()
    try:
        row, created = producer.create_job_sync(new_job(), T0, US)
        assert created and (await a.get_job(row.id, None)) == row
        keyed = NewJob(str(uuid.uuid4()), "demo", "{}", "alice", 3, idempotency_key="k")
        first, created = producer.create_job_sync(keyed, T0, 10 * US)
        assert created
        again = NewJob(str(uuid.uuid4()), "demo", "{}", "alice", 3, idempotency_key="k")
        same, created = producer.create_job_sync(again, T0 + US, 10 * US)
        assert not created and same.id == first.id
        later, created = producer.create_job_sync(again, T0 + 11 * US, 10 * US)
        assert created and later.id == again.id
        got = [await asyncio.wait_for(queue.get(), 5) for _ in range(3)]
        assert [c.job_id for c in got if c is not None] == [row.id, first.id, later.id]
    finally:
        producer.close_sync()


async def test_only_worker_bookkeeping_skips_the_wal_flush(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the test cluster runs with off
        conn.execute("ALTER DATABASE " + pg_url.rsplit("/", 1)[1] + " SET synchronous_commit = on")
    store = PostgresStore(pg_url)
    await store.open()
    try:
        async with store._pool.connection() as conn:  # new jobs, steps, cancel, retry
            assert await (await conn.execute("SHOW synchronous_commit")).fetchone() == ("on",)
        async with store._relaxed.connection() as conn:  # claims, progress, logs, finish
            assert await (await conn.execute("SHOW synchronous_commit")).fetchone() == ("off",)
    finally:
        await store.close()


async def test_a_server_stalled_inside_a_transaction_blocks_no_requeue(
    stores: list[PostgresStore], pg_url: str
) -> None:
    """A server stopped (SIGSTOP) between two statements of a transaction still holds its
    row locks: the other servers' re-queue of expired leases skips those rows rather than
    wait for them, and PostgreSQL ends the stalled session after a bound, so they follow."""
    a, b = stores[0], stores[1]
    ids = await create(a, 3, now=T0)
    claimed = await a.claim_jobs("a", 3, T0 + US, US, NO_LIMITS)  # a 1 s lease
    assert {r.id for r in claimed} == set(ids)
    stalled = claimed[0]
    async with a._relaxed.connection() as conn:
        timeout = await (await conn.execute("SHOW idle_in_transaction_session_timeout")).fetchone()
    assert timeout == ("5s",)
    # The stalled server: a transaction of its own session settings, left open mid-way.
    held = psycopg.connect(a._conninfo, autocommit=True)
    try:
        held.execute("BEGIN")
        held.execute("UPDATE jobs SET progress = 50 WHERE id = %s", (stalled.id,))
        later = T0 + 10 * US
        requeued = await asyncio.wait_for(b.requeue_orphans(later, "b"), timeout=3)
        assert {r.id for r in requeued} == set(ids) - {stalled.id}
        # PostgreSQL ends the idle transaction; then its row is re-queued too.
        pid = held.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as watch:
            for _ in range(200):  # bounded: up to 20 s
                if not watch.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchall():
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the idle transaction was never ended")
        rows = await asyncio.wait_for(b.requeue_orphans(later, "b"), timeout=3)
        # The stalled server, resumed, finds its session gone.
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            held.execute("COMMIT")
    finally:
        held.close()
    assert [r.id for r in rows] == [stalled.id]
    job = await b.get_job(stalled.id, None)
    assert job is not None and job.status == "pending"
