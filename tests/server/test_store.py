"""Store conformance: the same behaviour from SQLite and PostgreSQL, through the Store interface.

Changes are announced after commit on `store.changes`; SQLite publishes before the
method returns, PostgreSQL through LISTEN/NOTIFY a moment later, so tests that look at
the bus wait (bounded) for what they expect.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from jobctl.server.records import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    Change,
    JobRow,
    Limits,
    LogRow,
    NewJob,
    StepRow,
    now_us,
)
from jobctl.server.stats import bucket_of
from jobctl.server.store import open_store
from jobctl.server.store.base import (
    MINUTE_US,
    FinishWrite,
    Lease,
    LeaseLost,
    ListQuery,
    ProgressWrite,
    StatsWindow,
    StepWrite,
    Store,
)
from tests.pgfixtures import _stores

US = 1_000_000
NO_LIMITS = Limits(None, (), None)
# An hour ahead: a claim may stamp the later of `now` and the store's clock (PostgreSQL
# does, after waiting for the claim lock), and these tests want their own times kept.
T0 = (now_us() // US + 3600) * US


@pytest.fixture(params=_stores())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        db = str(tmp_path / "jobs.db")
    else:
        db = request.getfixturevalue("pg_url")
    s = open_store(db)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def new_job(user: str = "alice", **kw: Any) -> NewJob:
    fields: dict[str, object] = {"id": str(uuid.uuid4()), "type": "demo", "input": '{"steps":1}',
                                 "user_id": user, "max_attempts": 3}  # fmt: skip
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


async def make(store: Store, n: int = 1, now: int = T0, **kw: Any) -> list[JobRow]:
    rows = []
    for i in range(n):
        row, created = await store.create_job(new_job(**kw), now + i, 3600 * US)
        assert created
        rows.append(row)
    return rows


async def held(store: Store, job_id: str) -> Lease:
    """The lease the job's row says its worker holds now."""
    row = await store.get_job(job_id, None)
    assert row is not None
    return Lease.of(row)


async def next_changes(
    queue: asyncio.Queue[Change | None], n: int, timeout: float = 5.0
) -> list[Change]:
    out: list[Change] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            change = await queue.get()
            assert change is not None, "subscriber overflowed"
            out.append(change)
    return out


async def assert_quiet(queue: asyncio.Queue[Change | None], seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)
    assert queue.empty(), f"unexpected change: {queue.get_nowait()}"


# jobs: create, read, list ------------------------------------------------------


async def test_create_and_get_scoped_to_user(store: Store) -> None:
    (row,) = await make(store, input='{"text":"héllo"}', concurrency_key="org:acme")
    assert row.status == PENDING and row.attempt == 1 and row.max_attempts == 3
    got = await store.get_job(row.id, "alice")
    assert got == row
    assert got is not None and got.input_obj() == {"text": "héllo"}
    assert await store.get_job(row.id, "bob") is None
    assert await store.get_job(row.id, None) == row  # service role
    assert await store.get_job(str(uuid.uuid4()), None) is None


async def test_idempotency_key_gives_one_job_until_it_expires(store: Store) -> None:
    first, created = await store.create_job(new_job(idempotency_key="k1"), T0, 10 * US)
    assert created
    again, created = await store.create_job(new_job(idempotency_key="k1"), T0 + US, 10 * US)
    assert not created and again.id == first.id
    other_user, created = await store.create_job(
        new_job("bob", idempotency_key="k1"), T0 + US, 10 * US
    )
    assert created and other_user.id != first.id
    later, created = await store.create_job(new_job(idempotency_key="k1"), T0 + 11 * US, 10 * US)
    assert created and later.id != first.id


async def test_list_filters_order_and_cursor(store: Store) -> None:
    rows = await make(store, 7)
    await make(store, 2, user="bob")
    (other,) = await make(store, type="journal_extraction", now=T0 + 100)
    page, cursor = await store.list_jobs(ListQuery("alice", limit=3))
    assert [r.id for r in page] == [other.id, rows[6].id, rows[5].id]
    seen = [r.id for r in page]
    while cursor:
        page, cursor = await store.list_jobs(ListQuery("alice", limit=3, cursor=cursor))
        seen += [r.id for r in page]
    assert seen == [other.id] + [r.id for r in reversed(rows)]
    typed, _ = await store.list_jobs(ListQuery("alice", type="journal_extraction"))
    assert [r.id for r in typed] == [other.id]
    since, _ = await store.list_jobs(ListQuery("alice", since_us=T0 + 5))
    assert {r.id for r in since} == {rows[5].id, rows[6].id, other.id}
    everyone, _ = await store.list_jobs(ListQuery(None, limit=100))
    assert len(everyone) == 10
    prefix, _ = await store.list_jobs(ListQuery(None, id_prefix=rows[3].id[:8]))
    assert rows[3].id in {r.id for r in prefix}
    assert all(r.id.startswith(rows[3].id[:8]) for r in prefix)
    await store.cancel_job(rows[0].id, "alice", T0 + 200)
    by_status, _ = await store.list_jobs(ListQuery("alice", statuses=[CANCELLED, RUNNING]))
    assert [r.id for r in by_status] == [rows[0].id]


async def test_list_cursor_breaks_ties_on_id(store: Store) -> None:
    rows = [(await store.create_job(new_job(), T0, US))[0] for _ in range(5)]  # same created_at
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = await store.list_jobs(ListQuery("alice", limit=2, cursor=cursor))
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == sorted((r.id for r in rows), reverse=True)


# claims, leases, limits ------------------------------------------------------------


async def test_claim_takes_due_jobs_in_order_once(store: Store) -> None:
    rows = await make(store, 5)
    await make(store, 1, now=T0 + 10 * US)  # not due yet
    got = await store.claim_jobs("w1", 3, T0 + US, 30 * US, NO_LIMITS)
    assert [r.id for r in got] == [r.id for r in rows[:3]]
    for r in got:
        assert (r.status, r.lease_owner, r.lease_expires_at) == (RUNNING, "w1", T0 + 31 * US)
        assert r.started_at == T0 + US
    more = await store.claim_jobs("w2", 10, T0 + US, 30 * US, NO_LIMITS)
    assert [r.id for r in more] == [r.id for r in rows[3:]]
    assert await store.claim_jobs("w3", 10, T0 + US, 30 * US, NO_LIMITS) == []
    assert await store.next_run_at() == T0 + 10 * US
    stored = await store.get_job(rows[0].id, None)
    assert stored is not None and stored.status == RUNNING and stored.lease_owner == "w1"


async def test_claim_respects_user_and_key_limits(store: Store) -> None:
    limits = Limits(per_user=2, per_key=(("org", 1),), default_key=3)
    a = await make(store, 4)
    b = await make(store, 2, user="bob", concurrency_key="org:x", now=T0 + 10)
    c = await make(store, 4, user="carol", concurrency_key="plain", now=T0 + 20)
    got = await store.claim_jobs("w", 20, T0 + US, 30 * US, limits)
    ids = {r.id for r in got}
    assert ids == {a[0].id, a[1].id, b[0].id, c[0].id, c[1].id}
    assert await store.claim_jobs("w", 20, T0 + US, 30 * US, limits) == []
    assert await store.count_running("alice", None) == (2, 0)
    assert await store.count_running("bob", "org:x") == (1, 1)
    lease = await held(store, a[0].id)
    done = await store.finish_job(a[0].id, lease, COMPLETED, "{}", None, "Completed", T0 + 2 * US)
    assert done is not None and done.status == COMPLETED and done.progress == 100
    assert [r.id for r in await store.claim_jobs("w", 20, T0 + 3 * US, 30 * US, limits)] == [
        a[2].id
    ]


async def test_finish_jobs_many_gives_each_its_own_result(store: Store) -> None:
    """Each end in its place: the row, None for a job cancelled meanwhile (its lease let
    go all the same), LeaseLost for a lease that is no longer ours (nothing written)."""
    await store.create_jobs([new_job() for _ in range(3)], T0 - 10, 3600 * US)
    ok, cancelled, lost = await store.claim_jobs("w1", 3, T0, 10 * US, NO_LIMITS)
    await store.cancel_job(cancelled.id, None, T0 + 1)
    stale = Lease(lost.lease_owner or "", lost.lease_token - 1)
    writes = [
        FinishWrite(ok.id, Lease.of(ok), COMPLETED, '{"n":1}', None, None),
        FinishWrite(cancelled.id, Lease.of(cancelled), COMPLETED, "{}", None, None),
        FinishWrite(lost.id, stale, COMPLETED, "{}", None, None),
    ]
    done, none, refused = await store.finish_jobs_many(writes, T0 + 2)
    assert isinstance(done, JobRow) and done.status == COMPLETED and done.output == '{"n":1}'
    assert none is None
    assert isinstance(refused, LeaseLost)
    row = await store.get_job(cancelled.id, None)
    assert row is not None and row.status == CANCELLED and row.lease_owner is None
    row = await store.get_job(lost.id, None)
    assert row is not None and row.status == RUNNING and row.lease_owner == "w1"


async def test_many_leases_renew_in_batches_and_lost_ones_are_told(store: Store) -> None:
    """More leases than one renewal batch (SQLite: RENEW_BATCH), a few of them lost."""
    news = [new_job() for _ in range(1200)]
    await store.create_jobs(news, T0 - 10, 3600 * US)
    claimed = await store.claim_jobs("w1", 1200, T0, 10 * US, NO_LIMITS)
    assert len(claimed) == 1200
    tokens = {r.id: r.lease_token for r in claimed}
    lost = {claimed[3].id, claimed[700].id, claimed[1199].id}
    for job_id in lost:
        tokens[job_id] += 1  # a later claim's token: not ours
    kept = await store.renew_leases("w1", tokens, T0 + 100 * US)
    assert kept == set(tokens) - lost
    back = {r.id for r in await store.requeue_orphans(T0 + 50 * US, "w2")}
    assert back == lost  # only the leases not renewed ran out


async def test_leases_renew_and_expired_ones_are_requeued(store: Store) -> None:
    rows = await make(store, 2, now=T0 - 10)
    claimed = await store.claim_jobs("w1", 2, T0, 10 * US, NO_LIMITS)
    assert len(claimed) == 2
    first, second = (Lease.of(r) for r in claimed)
    assert await store.renew_leases("w1", {rows[0].id: first.token}, T0 + 100 * US) == {rows[0].id}
    # not its lease, or not its token: no effect
    assert await store.renew_leases("other", {rows[1].id: second.token}, T0 + 100 * US) == set()
    assert await store.renew_leases("w1", {rows[1].id: second.token + 1}, T0 + 100 * US) == set()
    back = await store.requeue_orphans(T0 + 50 * US, "w2")
    assert [r.id for r in back] == [rows[1].id]
    assert back[0].status == PENDING and back[0].lease_owner is None
    assert back[0].message == "Resuming after a lost worker"
    assert back[0].lease_token > second.token  # the old worker is fenced off already
    again = await store.claim_jobs("w2", 5, T0 + 50 * US, 10 * US, NO_LIMITS)
    assert [r.id for r in again] == [rows[1].id]
    assert again[0].started_at == T0  # the first start is kept
    assert again[0].lease_token > back[0].lease_token
    # the dead worker can no longer write, and learns so from the write
    step = StepRow(rows[1].id, "s", "s", 0, COMPLETED, 1, "1", None, T0, T0 + 1)
    with pytest.raises(LeaseLost):
        await store.set_progress(rows[1].id, second, 50, "x", T0 + 51 * US)
    with pytest.raises(LeaseLost):
        await store.finish_job(rows[1].id, second, COMPLETED, None, None, None, T0)
    with pytest.raises(LeaseLost):
        await store.save_step(step, second)
    with pytest.raises(LeaseLost):
        await store.append_logs([LogRow(rows[1].id, 1, T0, "info", None, "late")], second)
    with pytest.raises(LeaseLost):
        await store.suspend_job(rows[1].id, second, T0 + 60 * US, "Sleeping", T0 + 51 * US)
    # even with the same owner id: a token from an earlier claim is refused
    with pytest.raises(LeaseLost):
        await store.set_progress(rows[1].id, Lease("w2", second.token), 50, "x", T0 + 51 * US)
    assert await store.load_steps(rows[1].id) == []
    assert await store.list_logs(rows[1].id, 0, 10) == []
    mine = await store.set_progress(rows[1].id, Lease.of(again[0]), 50, "half", T0 + 51 * US)
    assert mine is not None and (mine.progress, mine.message) == (50, "half")
    await store.save_step(step, Lease.of(again[0]))
    assert [s.step_id for s in await store.load_steps(rows[1].id)] == ["s"]


async def test_cancel_retry_suspend_fail(store: Store) -> None:
    rows = await make(store, 4, now=T0 - 10)
    leases = {r.id: Lease.of(r) for r in await store.claim_jobs("w", 4, T0, 30 * US, NO_LIMITS)}
    assert len(leases) == 4
    cancelled = await store.cancel_job(rows[0].id, "alice", T0 + 1)
    assert cancelled.status == CANCELLED and cancelled.completed_at == T0 + 1
    from jobctl.server.joberrors import JobConflict, JobNotFound

    with pytest.raises(JobConflict):
        await store.cancel_job(rows[0].id, "alice", T0 + 2)
    with pytest.raises(JobNotFound):
        await store.cancel_job(rows[1].id, "bob", T0 + 2)
    with pytest.raises(JobConflict):
        await store.retry_job(rows[1].id, "alice", False, T0 + 2)
    # the worker of a cancelled job still holds it: its step in flight is recorded, its
    # progress is not (None: stop), its finish changes nothing but lets go of the lease
    lease = leases[rows[0].id]
    step = StepRow(rows[0].id, "s1", "one", 0, COMPLETED, 1, "1", None, T0, T0 + 1)
    await store.save_step(step, lease)
    assert await store.set_progress(rows[0].id, lease, 50, "x", T0 + 2) is None
    assert await store.finish_job(rows[0].id, lease, COMPLETED, "{}", None, None, T0 + 3) is None
    after = await store.get_job(rows[0].id, None)
    assert after is not None and after.status == CANCELLED and after.lease_owner is None
    # a finish repeated (its answer lost) is not a lost lease; its last log lines are kept
    assert await store.finish_job(rows[0].id, lease, COMPLETED, "{}", None, None, T0 + 3) is None
    await store.append_logs([LogRow(rows[0].id, 1, T0 + 3, "info", None, "bye")], lease)

    await store.save_step(
        StepRow(rows[0].id, "s2", "two", 1, FAILED, 2, None, "x", T0, T0 + 2), None
    )
    retried = await store.retry_job(rows[0].id, "alice", False, T0 + 5)
    assert retried.lease_token > lease.token
    with pytest.raises(LeaseLost):  # the retry is a new run: the old worker is fenced off
        await store.append_logs([LogRow(rows[0].id, 2, T0 + 5, "info", None, "late")], lease)
    assert (retried.status, retried.attempt, retried.started_at) == (PENDING, 2, None)
    assert retried.max_attempts == 3
    assert [s.step_id for s in await store.load_steps(rows[0].id)] == ["s1"]
    fresh = await store.claim_jobs("w", 1, T0 + 6, 30 * US, NO_LIMITS)
    assert [r.id for r in fresh] == [rows[0].id]
    await store.finish_job(rows[0].id, Lease.of(fresh[0]), FAILED, None, "boom", "Failed", T0 + 7)
    again = await store.retry_job(rows[0].id, None, True, T0 + 8)
    assert again.attempt == 3 and await store.load_steps(rows[0].id) == []

    slept = await store.suspend_job(
        rows[1].id, leases[rows[1].id], T0 + 60 * US, "Sleeping (nap)", T0 + 9
    )
    assert slept is not None and (slept.status, slept.run_at) == (PENDING, T0 + 60 * US)
    assert slept.started_at == T0
    awake = await store.claim_jobs("w", 5, T0 + 10, 30 * US, NO_LIMITS)
    assert [r.id for r in awake] == [rows[0].id]  # the retried one; rows[1] is asleep
    woken = await store.claim_jobs("w", 5, T0 + 60 * US, 30 * US, NO_LIMITS)
    assert [r.id for r in woken] == [rows[1].id]
    failed = await store.fail_jobs([rows[2].id, rows[1].id, str(uuid.uuid4())], "expired", T0)
    assert {r.id for r in failed} == {rows[1].id, rows[2].id}
    assert all(r.status == FAILED and r.error == "expired" for r in failed)


async def test_finish_without_a_message_keeps_the_last_one(store: Store) -> None:
    rows = await make(store, 2, now=T0 - 10)
    a, b = (Lease.of(r) for r in await store.claim_jobs("w", 2, T0, 30 * US, NO_LIMITS))
    await store.set_progress(rows[0].id, a, 90, "5 events found", T0 + 1)
    kept = await store.finish_job(rows[0].id, a, COMPLETED, "{}", None, None, T0 + 2)
    assert kept is not None and kept.message == "5 events found"
    plain = await store.finish_job(rows[1].id, b, COMPLETED, "{}", None, None, T0 + 2)
    assert plain is not None and plain.message == COMPLETED


async def test_expiry_candidates_and_sweep(store: Store) -> None:
    old = await make(store, 2, now=T0)
    new = await make(store, 1, now=T0 + 100 * US)
    (claimed,) = await store.claim_jobs("w", 1, T0 + US, 30 * US, NO_LIMITS)
    found = await store.active_jobs_older_than(T0 + 50 * US, T0 + 50 * US)
    assert {r.id for r in found} == {old[0].id, old[1].id}
    assert await store.active_jobs_older_than(T0 + 50 * US, T0 + 50 * US, types=["other"]) == []
    found = await store.active_jobs_older_than(T0 + 50 * US, T0 + 50 * US, types=["other", "demo"])
    assert {r.id for r in found} == {old[0].id, old[1].id}
    await store.finish_job(old[0].id, Lease.of(claimed), COMPLETED, "{}", None, None, T0 + 2 * US)
    await store.fail_jobs([old[1].id], "x", T0 + 2 * US)
    await store.append_logs([LogRow(old[0].id, 1, T0, "info", None, "hi")], None)
    await store.save_step(StepRow(old[0].id, "s", "s", 0, COMPLETED, 1, "1", None, T0, T0), None)
    assert await store.sweep(T0 + 3 * US, T0 + US) == 1  # completed past retention only
    assert await store.get_job(old[0].id, None) is None
    assert await store.list_logs(old[0].id, 0, 10) == []
    assert await store.load_steps(old[0].id) == []
    assert await store.sweep(T0 + 3 * US, T0 + 3 * US) == 1
    assert [r.id for r in (await store.list_jobs(ListQuery(None)))[0]] == [new[0].id]


# steps, logs, stats --------------------------------------------------------------


async def test_steps_upsert_and_logs(store: Store) -> None:
    (row,) = await make(store)
    s = StepRow(row.id, "a", "first", 0, RUNNING, 1, None, None, T0, None)
    await store.save_step(s, None)
    await store.save_step(StepRow(row.id, "b", "second", 1, RUNNING, 1, None, None, T0, None), None)
    await store.save_step(
        StepRow(row.id, "a", "first", 0, COMPLETED, 2, '{"x":1}', None, T0, T0), None
    )
    steps = await store.load_steps(row.id)
    assert [(st.step_id, st.status, st.attempt, st.output) for st in steps] == [
        ("a", COMPLETED, 2, '{"x":1}'),
        ("b", RUNNING, 1, None),
    ]
    assert await store.last_log_seq(row.id) == 0
    lines = [LogRow(row.id, i, T0 + i, "info", "first", f"line {i} ✓") for i in range(1, 6)]
    await store.append_logs(lines, None)
    assert await store.last_log_seq(row.id) == 5
    assert await store.list_logs(row.id, 2, 2) == lines[2:4]


async def test_stats_queries(store: Store) -> None:
    rows = await make(store, 3)
    await make(store, 1, user="bob", type="journal_extraction", now=T0 + 100)
    await store.claim_jobs("w", 2, T0 + US, 30 * US, NO_LIMITS)
    lease = await held(store, rows[0].id)
    await store.finish_job(rows[0].id, lease, COMPLETED, "{}", None, None, T0 + 2 * US)
    day = 24 * 3600 * US
    w = StatsWindow("alice", hour_minute=T0 // MINUTE_US, week_minute=(T0 - 7 * day) // MINUTE_US,
                    created_since=T0 + 1, stuck_started_before=T0 + 2 * US,
                    stuck_created_before=T0 + 50)  # fmt: skip
    got = await store.stats(w)
    assert sorted(got.counts) == [
        ("demo", COMPLETED, 1),
        ("demo", PENDING, 1),
        ("demo", RUNNING, 1),
    ]
    assert got.last_hour == [("demo", COMPLETED, bucket_of(US), 1, US)]
    assert got.week == [("demo", bucket_of(US), 1, US)]
    assert got.created == 2
    assert (got.stuck, got.stuck_ids) == (2, [rows[1].id, rows[2].id])  # running first
    everyone = await store.stats(replace(w, user_id=None, created_since=0))
    assert len(everyone.counts) == 4 and everyone.created == 4 and everyone.stuck == 2
    # a cancel enters the rollups, its retry leaves them, the sweep takes the rest out
    await store.cancel_job(rows[2].id, None, T0 + 3 * US)
    got = await store.stats(w)
    assert ("demo", CANCELLED, 1) in got.counts
    assert ("demo", CANCELLED, -1, 1, 0) in got.last_hour  # never started: bucket -1
    await store.retry_job(rows[2].id, None, False, T0 + 4 * US)
    got = await store.stats(w)
    assert sorted(got.counts) == [
        ("demo", COMPLETED, 1),
        ("demo", PENDING, 1),
        ("demo", RUNNING, 1),
    ]
    assert [r[1] for r in got.last_hour] == [COMPLETED]
    assert await store.sweep(T0 + 3 * US, T0) == 1
    got = await store.stats(w)
    assert (got.last_hour, got.week) == ([], [])
    assert sorted(got.counts) == [("demo", PENDING, 1), ("demo", RUNNING, 1)]


# changes ---------------------------------------------------------------------------


async def test_every_write_is_announced_once_in_order(store: Store) -> None:
    queue = store.changes.subscribe()
    rows = await make(store, 2)
    claimed = await store.claim_jobs("w", 1, T0 + 1, 30 * US, NO_LIMITS)
    lease = Lease.of(claimed[0])
    await store.set_progress(rows[0].id, lease, 40, "Step 1/2", T0 + 2)
    await store.append_logs([LogRow(rows[0].id, 1, T0 + 3, "info", "s", "hello")], lease)
    await store.finish_job(rows[0].id, lease, COMPLETED, '{"ok":true}', None, "Completed", T0 + 4)
    await store.cancel_job(rows[1].id, None, T0 + 5)
    await store.retry_job(rows[1].id, None, False, T0 + 6)
    got = await next_changes(queue, 8)
    assert [(c.table, c.type, c.job_id) for c in got] == [
        ("jobs", "INSERT", rows[0].id),
        ("jobs", "INSERT", rows[1].id),
        ("jobs", "UPDATE", claimed[0].id),
        ("jobs", "UPDATE", rows[0].id),
        ("job_logs", "INSERT", rows[0].id),
        ("jobs", "UPDATE", rows[0].id),
        ("jobs", "UPDATE", rows[1].id),
        ("jobs", "UPDATE", rows[1].id),
    ]
    statuses = [c.record["status"] for c in got if c.table == "jobs" and c.record]
    assert statuses == [PENDING, PENDING, RUNNING, RUNNING, COMPLETED, CANCELLED, PENDING]
    assert got[3].record is not None and got[3].record["progress"] == 40
    assert got[5].record is not None and got[5].record["output"] == {"ok": True}
    assert got[4].record is not None and got[4].record["message"] == "hello"
    assert all(c.user_id == "alice" for c in got)
    assert [c.seq for c in got] == sorted(c.seq for c in got)
    await assert_quiet(queue)


async def test_large_rows_are_announced_whole(store: Store) -> None:
    """NOTIFY payloads stop at 8000 bytes; a bigger row still reaches subscribers whole."""
    queue = store.changes.subscribe()
    text = 'x\u00e9"\n' * 5000  # escapes and multi-byte characters: ~30 kB as JSON
    (row,) = await make(store, input=json.dumps({"text": text}, ensure_ascii=False))
    (claimed,) = await store.claim_jobs("w", 1, T0 + 1, 30 * US, NO_LIMITS)
    lease = Lease.of(claimed)
    await store.finish_job(row.id, lease, COMPLETED, '{"big": "' + "y" * 9000 + '"}', None, None, 5)
    await store.append_logs([LogRow(row.id, 1, T0, "info", None, "z" * 9000)], lease)
    got = await next_changes(queue, 4)
    assert got[0].record is not None and got[0].record["input"] == row.input_obj()
    assert got[2].record is not None and got[2].record["output"] == {"big": "y" * 9000}
    assert got[3].record is not None and got[3].record["message"] == "z" * 9000
    await assert_quiet(queue)


async def test_log_lines_are_announced_in_their_order(store: Store) -> None:
    queue = store.changes.subscribe()
    jobs = await make(store, 2)
    await next_changes(queue, 2)
    lines = [LogRow(jobs[i % 2].id, i // 2 + 1, T0 + i, "info", None, f"l{i}") for i in range(40)]
    await store.append_logs(lines, None)
    got = await next_changes(queue, 40)
    assert [c.row for c in got] == lines
    assert [c.user_id for c in got] == ["alice"] * 40
    await assert_quiet(queue)


async def test_progress_of_many_jobs_in_one_transaction_is_fenced_job_by_job(
    store: Store,
) -> None:
    """set_progress_many: each write checks its own lease; a refused one is its own
    LeaseLost (nothing written for it), a job no longer running is None, the rest land."""
    rows = await make(store, 4)
    claimed = await store.claim_jobs("w1", 4, T0 + 10, 10 * US, NO_LIMITS)
    assert len(claimed) == 4
    leases = {r.id: Lease.of(r) for r in claimed}
    await store.cancel_job(rows[2].id, "alice", T0 + 11)  # no longer running, still w1's
    stale = Lease("w1", leases[rows[1].id].token - 1)  # an earlier claim's token
    writes = [
        ProgressWrite(rows[0].id, leases[rows[0].id], 30, "a"),
        ProgressWrite(rows[1].id, stale, 40, "b"),
        ProgressWrite(rows[2].id, leases[rows[2].id], 50, "c"),
        ProgressWrite(rows[3].id, Lease("w2", leases[rows[3].id].token), 60, "d"),
    ]
    results = await store.set_progress_many(writes, T0 + 12)
    assert isinstance(results[0], JobRow) and (results[0].progress, results[0].message) == (
        30, "a"
    )  # fmt: skip
    assert isinstance(results[1], LeaseLost) and results[1].job_id == rows[1].id
    assert results[2] is None
    assert isinstance(results[3], LeaseLost)
    after = {r.id: await store.get_job(r.id, None) for r in rows}
    assert [(after[r.id].progress, after[r.id].message) for r in rows[:2]] == [  # type: ignore[union-attr]
        (30, "a"), (0, None)
    ]  # fmt: skip
    assert after[rows[3].id].progress == 0  # type: ignore[union-attr]


async def test_steps_of_many_jobs_in_one_transaction_are_fenced_job_by_job(
    store: Store,
) -> None:
    """save_steps_many: each row checks its own job's lease; a refused one is its own
    LeaseLost (nothing written for it); a cancelled job's worker still holds its lease, so
    its step is recorded; two rows of one step (its start, then its result) both land."""
    rows = await make(store, 4)
    claimed = await store.claim_jobs("w1", 4, T0 + 10, 10 * US, NO_LIMITS)
    leases = {r.id: Lease.of(r) for r in claimed}
    await store.cancel_job(rows[2].id, "alice", T0 + 11)
    stale = Lease("w1", leases[rows[1].id].token - 1)

    def step(i: int, status: str = COMPLETED) -> StepRow:
        return StepRow(rows[i].id, f"s{i}", f"step {i}", 0, status, 1, f"{i}", None, T0, T0 + 1)

    results = await store.save_steps_many([
        StepWrite(step(0, RUNNING), leases[rows[0].id]),
        StepWrite(step(1), stale),
        StepWrite(step(2), leases[rows[2].id]),
        StepWrite(step(3), Lease("w2", leases[rows[3].id].token)),
    ])  # fmt: skip
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], LeaseLost) and results[1].job_id == rows[1].id
    assert isinstance(results[3], LeaseLost) and results[3].job_id == rows[3].id
    assert await store.save_steps_many([StepWrite(step(0), leases[rows[0].id])]) == [None]
    saved = {r.id: await store.load_steps(r.id) for r in rows}
    assert [(s.status, s.output) for s in saved[rows[0].id]] == [(COMPLETED, "0")]
    assert [s.name for s in saved[rows[2].id]] == ["step 2"]
    assert saved[rows[1].id] == [] and saved[rows[3].id] == []
    assert await store.save_steps_many([]) == []
