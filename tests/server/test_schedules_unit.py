"""Tick computation and the scheduler's rules, with a fake clock (no real time passes).

DST: cronsim follows Debian cron. A fixed-time job whose local time does not exist
(spring forward) runs at the first minute after the gap; one whose local time happens
twice (fall back) runs once; an expression with `*` in the minute or hour field runs in
real time, so both copies of a repeated hour.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jobctl.server.engine import EngineSettings
from jobctl.server.records import NewJob
from jobctl.server.registry import Registry
from jobctl.server.schedule_records import ScheduleRow
from jobctl.server.schedules import (
    GRACE_US,
    InvalidSchedule,
    Scheduler,
    Spec,
    plan_due,
    validate_spec,
)
from jobctl.server.store import open_store
from jobctl.server.store.base import ListQuery

US = 1_000_000
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * US  # type: ignore[misc]


def local(tz: str, *args: int, fold: int = 0) -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).timestamp()) * US  # type: ignore[misc]


def ticks(spec: Spec, start: int, n: int) -> list[int]:
    out, t = [], start
    for _ in range(n):
        nxt = spec.next_after(t)
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


# cron across DST ---------------------------------------------------------------------
def test_berlin_spring_forward_runs_a_missing_time_right_after_the_gap() -> None:
    # 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist that night.
    spec = validate_spec("30 2 * * *", BERLIN, None)
    got = ticks(spec, utc(2026, 3, 27, 12), 4)
    assert got == [
        local(BERLIN, 2026, 3, 28, 2, 30),  # 01:30 UTC (CET)
        local(BERLIN, 2026, 3, 29, 3, 0),  # the first minute after the gap: 01:00 UTC
        local(BERLIN, 2026, 3, 30, 2, 30),  # 00:30 UTC (CEST)
        local(BERLIN, 2026, 3, 31, 2, 30),
    ]
    assert got[1] == utc(2026, 3, 29, 1, 0)
    assert got[2] == utc(2026, 3, 30, 0, 30)


def test_berlin_fall_back_runs_a_repeated_time_once() -> None:
    # 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    spec = validate_spec("30 2 * * *", BERLIN, None)
    got = ticks(spec, utc(2026, 10, 24, 12), 3)
    assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]


def test_berlin_fall_back_every_half_hour_runs_in_real_time() -> None:
    spec = validate_spec("*/30 * * * *", BERLIN, None)
    got = ticks(spec, utc(2026, 10, 24, 23, 45), 6)
    # 01:00 02:00 02:30 CEST, then 02:00 02:30 03:00 CET: every 30 real minutes.
    assert got == [utc(2026, 10, 25, 0, 0) + i * 1800 * US for i in range(6)]


def test_new_york_spring_forward_and_fall_back() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    daily = validate_spec("0 2 * * *", NEW_YORK, None)
    assert ticks(daily, utc(2026, 3, 7, 12), 3) == [
        utc(2026, 3, 8, 7, 0),  # 03:00 EDT: right after the gap
        utc(2026, 3, 9, 6, 0),  # 02:00 EDT
        utc(2026, 3, 10, 6, 0),
    ]
    once = validate_spec("30 1 * * *", NEW_YORK, None)
    assert ticks(once, utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; not again at 01:30 EST
        utc(2026, 11, 2, 6, 30),  # 01:30 EST
    ]
    hourly = validate_spec("@hourly", NEW_YORK, None)
    got = ticks(hourly, utc(2026, 11, 1, 3, 30), 4)
    assert got == [utc(2026, 11, 1, 4 + i) for i in range(4)]  # 00:00 01:00 EDT 01:00 02:00 EST


def test_nicknames_and_utc_default() -> None:
    assert validate_spec("@daily", None, None) == Spec("0 0 * * *", "UTC", None)
    assert validate_spec("@HOURLY", "Europe/Berlin", None).cron == "0 * * * *"
    assert validate_spec("@weekly", None, None).next_after(utc(2026, 12, 1)) == utc(2026, 12, 6)


def test_every_ticks_are_multiples_of_the_period() -> None:
    spec = validate_spec(None, None, "1s")
    assert spec.next_after(1_500_000) == 2 * US
    assert spec.next_after(2 * US) == 3 * US
    spec = validate_spec(None, None, "15m")
    assert spec.next_after(utc(2026, 12, 1, 10, 7)) == utc(2026, 12, 1, 10, 15)


@pytest.mark.parametrize(
    ("cron", "tz", "every", "message"),
    [
        ("61 * * * *", None, None, "cron: invalid expression"),
        ("* * * *", None, None, "expected 5 fields"),
        ("@reboot", None, None, "unknown nickname"),
        ("0 * * * *", "Mars/Olympus", None, "unknown time zone"),
        (None, None, "0", "at least 1s"),
        (None, None, "0s", "at least 1s"),
        (None, None, "1.5s", "whole seconds"),
        (None, None, "soon", "not a duration"),
        (None, None, None, "one"),
        ("0 * * * *", None, "1m", "one"),
        (None, "Europe/Berlin", "1m", "--tz goes with --cron"),
    ],
)
def test_bad_specs_are_one_clear_line(
    cron: str | None, tz: str | None, every: str | None, message: str
) -> None:
    with pytest.raises(InvalidSchedule) as err:
        validate_spec(cron, tz, every)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# the plan for a due schedule -----------------------------------------------------------
def schedule(**fields: Any) -> ScheduleRow:
    base: dict[str, Any] = dict(
        id="s1",
        user_id="u",
        name="n",
        type="demo",
        cron=None,
        tz="UTC",
        every_us=US,
        input="{}",
        overlap="allow",
        catchup_us=60 * US,
        catchup_policy="each",
        jitter_us=0,
        paused=0,
        note=None,
        next_tick=100 * US,
        buffered_tick=None,
        last_tick=None,
        last_job_id=None,
        created_at=0,
        updated_at=0,
    )
    base.update(fields)
    return ScheduleRow(**base)


def make_job(s: ScheduleRow, tick: int) -> NewJob:
    return NewJob(f"job-{tick}", s.type, s.input, s.user_id, 1, None, f"schedule:{s.id}:{tick}")


def outcomes(plan: Any) -> list[tuple[int, str]]:
    return [(r.tick // US, r.outcome) for r in plan.runs]


def test_on_time_tick_starts_one_job_and_advances() -> None:
    plan = plan_due(schedule(), False, 100 * US + 3000, make_job)
    assert plan is not None
    assert outcomes(plan) == [(100, "started")]
    assert plan.next_tick == 101 * US
    assert plan_due(schedule(next_tick=101 * US), False, 100 * US + 3000, make_job) is None


def test_catchup_each_runs_missed_ticks_inside_the_window_and_records_older_ones() -> None:
    s = schedule(catchup_us=10 * US)
    plan = plan_due(s, False, 120 * US, make_job)  # down from 100 s to 120 s
    assert plan is not None
    got = outcomes(plan)
    assert [t for t, o in got if o == "skipped_missed"] == list(range(100, 110))
    assert [t for t, o in got if o == "started"] == list(range(110, 121))
    assert plan.next_tick == 121 * US


def test_catchup_once_runs_the_latest_and_coalesces_the_rest() -> None:
    s = schedule(catchup_us=10 * US, catchup_policy="once")
    plan = plan_due(s, False, 120 * US, make_job)
    assert plan is not None
    got = outcomes(plan)
    assert [t for t, o in got if o == "started"] == [120]
    assert [t for t, o in got if o == "coalesced"] == list(range(110, 120))
    assert len(got) == 21


def test_the_grace_keeps_a_slightly_late_tick_on_time_with_no_catchup() -> None:
    s = schedule(catchup_us=0)
    plan = plan_due(s, False, 100 * US + GRACE_US - 1, make_job)
    assert plan is not None and outcomes(plan)[0] == (100, "started")


def test_a_long_downtime_is_summarized_not_walked_tick_by_tick() -> None:
    s = schedule(catchup_us=0, next_tick=US)
    now = 10 * 86_400 * US  # ten days of 1 s ticks
    plan = plan_due(s, False, now, make_job)
    assert plan is not None
    assert len(plan.runs) < 300
    assert plan.runs[0].outcome == "skipped_missed" and "earlier ticks" in (
        plan.runs[0].detail or ""
    )
    assert plan.next_tick == now + US


def test_overlap_skip_buffer_one_and_allow() -> None:
    now = 102 * US
    skip = plan_due(schedule(overlap="skip"), True, now, make_job)
    assert skip is not None and outcomes(skip) == [
        (100, "skipped_overlap"),
        (101, "skipped_overlap"),
        (102, "skipped_overlap"),
    ]
    buffer = plan_due(schedule(overlap="buffer-one"), True, now, make_job)
    assert buffer is not None
    assert outcomes(buffer) == [
        (100, "buffered"),
        (101, "skipped_overlap"),
        (102, "skipped_overlap"),
    ]
    assert buffer.buffered_tick == 100 * US
    allow = plan_due(schedule(overlap="allow"), True, now, make_job)
    assert allow is not None and [o for _, o in outcomes(allow)] == ["started"] * 3
    # not active: the first starts, and the job it made is active for the next ones
    first = plan_due(schedule(overlap="skip"), False, now, make_job)
    assert first is not None and [o for _, o in outcomes(first)] == [
        "started",
        "skipped_overlap",
        "skipped_overlap",
    ]


def test_a_buffered_tick_starts_when_the_last_job_has_ended() -> None:
    s = schedule(overlap="buffer-one", buffered_tick=100 * US, next_tick=105 * US)
    assert plan_due(s, True, 103 * US, make_job) is None  # still running: nothing to write
    plan = plan_due(s, False, 103 * US, make_job)
    assert plan is not None and outcomes(plan) == [(100, "started")]
    assert plan.buffered_tick is None and plan.next_tick == 105 * US


# the scheduler with a real store and a fake clock ------------------------------------------
class FakeClock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


async def _store_with(tmp_path: Path, row: ScheduleRow, db: str | None = None) -> Any:
    store = open_store(db or str(tmp_path / "jobctl.db"))
    await store.open()
    await store.create_schedule(row)
    return store


@pytest.mark.parametrize(
    ("tz", "cron", "start", "end", "expected"),
    [
        (
            BERLIN,
            "30 2 * * *",
            utc(2026, 3, 27, 12),
            utc(2026, 3, 31, 12),
            [
                utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 30, 0, 30),
                utc(2026, 3, 31, 0, 30),
            ],
        ),
        (
            BERLIN,
            "30 2 * * *",
            utc(2026, 10, 24, 12),
            utc(2026, 10, 27, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)],
        ),
        (
            NEW_YORK,
            "30 1 * * *",
            utc(2026, 10, 31, 12),
            utc(2026, 11, 2, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        (
            NEW_YORK,
            "0 2 * * *",
            utc(2026, 3, 7, 12),
            utc(2026, 3, 9, 12),
            [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 0)],
        ),
    ],
)
async def test_scheduler_fires_each_dst_tick_once_on_a_fake_clock(
    tmp_path: Path, tz: str, cron: str, start: int, end: int, expected: list[int]
) -> None:
    spec = validate_spec(cron, tz, None)
    # a catch-up window longer than the fake loop's period: a tick is at most 7 min late
    row = schedule(
        cron=spec.cron,
        tz=tz,
        every_us=None,
        next_tick=spec.next_after(start),
        catchup_us=10 * 60 * US,
    )
    store = await _store_with(tmp_path, row)
    clock = FakeClock(start)
    engine = SimpleNamespace(
        store=store, registry=Registry(), settings=EngineSettings(), wake=lambda: None
    )
    scheduler = Scheduler(engine, clock=clock)  # type: ignore[arg-type]
    try:
        while clock.now < end:  # the loop looks every 7 minutes of fake time
            await scheduler.fire_once()
            clock.now += 7 * 60 * US
        rows = store.conn.execute(
            "SELECT schedule_tick, created_at, idempotency_key FROM jobs ORDER BY schedule_tick"
        ).fetchall()
        assert [r[0] for r in rows] == expected
        for tick, created, key in rows:
            assert 0 <= created - tick < 7 * 60 * US  # fired at the first look after its tick
            assert key == f"schedule:s1:{tick}"
        runs = await store.list_schedule_runs("s1", 100)
        assert sorted(r.tick for r in runs) == expected
        assert {r.outcome for r in runs} == {"started"}
    finally:
        await store.close()


async def test_fired_ticks_never_fire_again(tmp_path: Path, store_url: str) -> None:
    store = await _store_with(tmp_path, schedule(next_tick=100 * US), store_url)
    engine = SimpleNamespace(
        store=store, registry=Registry(), settings=EngineSettings(), wake=lambda: None
    )
    clock = FakeClock(102 * US)
    scheduler = Scheduler(engine, clock=clock)  # type: ignore[arg-type]
    try:
        assert await scheduler.fire_once() == 3
        # Someone puts the schedule back in time (a bug, a restored backup): the run rows
        # still keep each tick to one job.
        await rewind(store, 100 * US)
        assert await scheduler.fire_once() == 0
        jobs, _ = await store.list_jobs(ListQuery(user_id=None))
        assert sorted(j.schedule_tick for j in jobs) == [100 * US, 101 * US, 102 * US]
        runs = await store.list_schedule_runs("s1", 10)
        assert [r.tick for r in runs] == [102 * US, 101 * US, 100 * US]
    finally:
        await store.close()


async def rewind(store: Any, tick: int) -> None:
    if hasattr(store, "conn"):
        store.conn.execute("UPDATE schedules SET next_tick = ?", (tick,))
    else:
        import psycopg

        async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
            await conn.execute("UPDATE schedules SET next_tick = %s", (tick,))


async def test_history_follows_job_retention(tmp_path: Path, store_url: str) -> None:
    from jobctl.server.events import new_event

    store = await _store_with(tmp_path, schedule(next_tick=100 * US), store_url)
    try:
        job, _ = await store.create_job(NewJob("j1", "demo", "{}", "u", 1), 1_000, 10**12)
        day = 86_400 * US
        kept = new_event(
            user_id="u", name="demo", data={}, source="api", job_ids=[job.id], received_at=10 * day
        )
        orphan = new_event(
            user_id="u", name="demo", data={}, source="api", job_ids=["gone"], received_at=10 * day
        )
        old = new_event(
            user_id="u", name="demo", data={}, source="api", job_ids=[job.id], received_at=day
        )
        await store.record_events([kept, orphan, old])
        # completed retention ends at day 5, failed retention at day 20
        assert await store.sweep_history(5 * day, 20 * day) == 2
        left, _ = await store.list_events(None, None, None, 10, None)
        assert [e.id for e in left] == [kept.id]
        assert left[0].job_ids == [job.id]
        assert [e.id for e in await store.events_for_job(job.id)] == [kept.id]
    finally:
        await store.close()
