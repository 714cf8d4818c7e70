"""Schedules: when ticks fall (cron in a time zone, or a fixed period), what each due tick
becomes (a job, or a run recorded as skipped), and the loop that fires them.

Tick times are integer microseconds since the epoch (UTC), like every time in the store.
Cron expressions are evaluated by cronsim, which follows Debian cron across DST
changes: a fixed-time job whose local time does not exist (spring forward) runs at the
first minute after the gap, one whose local time happens twice (fall back) runs once;
expressions with `*` in the minute or hour field run in real time (so both halves of
a repeated hour). `--every` ticks are multiples of the period since the epoch, so every
server computes the same ticks and a tick is a stable key.

Exactly once per tick: the store inserts `schedule_runs (schedule_id, tick)` (primary
key) in the transaction that creates the tick's job, and a server handles a schedule
only while it holds the schedule's row (PostgreSQL: `FOR UPDATE SKIP LOCKED`), so any
number of servers on one database make one job per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobctl.server.records import TERMINAL, NewJob, new_id, now_us
from jobctl.server.schedule_records import (
    BACKFILL,
    BUFFERED,
    COALESCED,
    SKIPPED_MISSED,
    SKIPPED_OVERLAP,
    STARTED,
    TICK,
    TRIGGER,
    FirePlan,
    PlannedRun,
    ScheduleRow,
)
from jobctl.server.store.base import StorageUnavailable

if TYPE_CHECKING:
    from jobctl.server.engine import Engine

log = logging.getLogger("jobctl.schedules")

US = 1_000_000
GRACE_US = 2 * US  # a tick up to this late is on time (a busy server), never "missed"
MIN_EVERY_US = US
MAX_EVERY_US = 366 * 86_400 * US
KEEP_SKIPPED = 100  # skipped ticks recorded one by one after a long downtime; then a summary
SCAN_MAX = 100_000  # ticks walked at most to get past a long downtime
BATCH = 500  # schedules fired per store transaction (one transaction holds the loop)
MAX_BACKFILL = 1000
OVERLAPS = ("skip", "buffer-one", "allow")
CATCHUP_POLICIES = ("each", "once")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class InvalidSchedule(ValueError):
    """A spec that cannot be a schedule; the message is one line for the user."""


def parse_duration(text: str, what: str) -> int:
    """'90s', '5m', '1.5h', '2d', '250ms' (a bare number is seconds) -> microseconds."""
    m = DURATION_RE.match(text) if len(text) <= 40 else None
    if not m:
        raise InvalidSchedule(f"{what}: not a duration: {text[:40]!r} (like 30s, 5m, 1h, 2d)")
    value = round(float(m[1]) * UNITS[m[2] or "s"] * US)
    if value > MAX_EVERY_US:
        raise InvalidSchedule(f"{what}: at most 366d")
    return value


def normalize_cron(expr: str) -> str:
    """A 5-field expression (an @hourly-style nickname becomes its 5 fields), checked."""
    from cronsim import CronSim, CronSimError

    text = " ".join(expr.split())
    if text.lower() in NICKNAMES:
        return NICKNAMES[text.lower()]
    if text.startswith("@"):
        raise InvalidSchedule(
            f"cron: unknown nickname {text[:40]!r} (one of {', '.join(NICKNAMES)})"
        )
    if len(text.split()) != 5:
        raise InvalidSchedule(
            f"cron: expected 5 fields (minute hour day month weekday), got {len(text.split())}"
            f" in {text[:60]!r}"
        )
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise InvalidSchedule(f"cron: invalid expression {text[:60]!r}: {exc}") from None
    except Exception:  # anything else cronsim trips on is still a bad expression
        raise InvalidSchedule(f"cron: invalid expression {text[:60]!r}") from None
    return text


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise InvalidSchedule(
            f"unknown time zone {name[:60]!r} (an IANA name, like Europe/Berlin)"
        ) from None


@dataclass(frozen=True)
class Spec:
    """When a schedule's ticks fall: a cron expression in a zone, or a fixed period."""

    cron: str | None
    tz: str
    every_us: int | None

    @classmethod
    def of(cls, row: ScheduleRow) -> Spec:
        return cls(row.cron, row.tz, row.every_us)

    def next_after(self, after_us: int) -> int | None:
        """The first tick strictly after `after_us`; None when there is none (ever)."""
        if self.every_us is not None:
            return (after_us // self.every_us + 1) * self.every_us
        assert self.cron is not None
        return _cron_next(self.cron, self.tz, after_us)

    def ticks(self, start_us: int, end_us: int, limit: int) -> list[int]:
        """Ticks in [start, end], at most `limit`."""
        out: list[int] = []
        t = self.next_after(start_us - 1)
        while t is not None and t <= end_us and len(out) < limit:
            out.append(t)
            t = self.next_after(t)
        return out


@functools.lru_cache(maxsize=4096)
def _cron_next(cron: str, tz: str, after_us: int) -> int | None:
    # Cached: thousands of schedules with the same expression due at the same tick ask the
    # same question (cronsim walks fields; ~50 us each).
    from cronsim import CronSim

    start = datetime.fromtimestamp(after_us / US, ZoneInfo(tz))
    try:
        found = next(CronSim(cron, start))
    except StopIteration:
        return None
    # Strictly after the start's whole second, so after `after_us` too.
    return int(found.timestamp()) * US


def validate_spec(cron: str | None, tz: str | None, every: str | None) -> Spec:
    """Exactly one of cron and every; a zone only with cron. Raises InvalidSchedule."""
    if (cron is None) == (every is None):
        raise InvalidSchedule("give a cron expression or an interval (--cron or --every), one")
    if every is not None:
        if tz not in (None, "", "UTC"):
            raise InvalidSchedule("--tz goes with --cron (an interval is the same in every zone)")
        every_us = parse_duration(every, "every")
        if every_us < MIN_EVERY_US:
            raise InvalidSchedule(f"every: must be at least 1s, got {every[:40]!r}")
        if every_us > MAX_EVERY_US:
            raise InvalidSchedule("every: at most 366d")
        if every_us % US:
            raise InvalidSchedule("every: whole seconds only")
        return Spec(None, "UTC", every_us)
    assert cron is not None
    tz = tz or "UTC"
    zone(tz)
    return Spec(normalize_cron(cron), tz, None)


def jitter_of(schedule_id: str, tick: int, jitter_us: int) -> int:
    """A delay in [0, jitter) that every server computes alike for this tick."""
    if jitter_us <= 0:
        return 0
    digest = hashlib.blake2b(f"{schedule_id}:{tick}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % jitter_us


JobFactory = Callable[[ScheduleRow, int], NewJob]


def _started(s: ScheduleRow, tick: int, kind: str, make_job: JobFactory) -> PlannedRun:
    return PlannedRun(
        tick, kind, STARTED, make_job(s, tick), tick + jitter_of(s.id, tick, s.jitter_us)
    )


def plan_due(s: ScheduleRow, last_active: bool, now: int, make_job: JobFactory) -> FirePlan | None:
    """What the due ticks of `s` become at `now`. None: nothing to write.

    Ticks older than the catch-up window (at least GRACE_US, 2 s) are recorded as
    skipped_missed; the rest are due: each, or (policy `once`) only the latest, the
    others recorded as coalesced. The overlap policy then decides for each due tick
    while the schedule's last job (or one started in this plan) is still active:
    skip records it skipped_overlap, buffer-one keeps one to start when that job ends
    (later ones are skipped), allow starts it anyway.
    """
    spec = Spec.of(s)
    plan = FirePlan(next_tick=s.next_tick, buffered_tick=s.buffered_tick)
    active = last_active
    wrote = False
    if s.buffered_tick is not None and not active:
        plan.runs.append(_started(s, s.buffered_tick, TICK, make_job))
        plan.buffered_tick = None
        active = True
        wrote = True
    t = s.next_tick
    if t is None or t > now:
        return plan if wrote else None
    window_start = now - max(s.catchup_us, GRACE_US)
    missed: list[int] = []
    n_missed = 0
    due: list[int] = []
    walked = 0
    while t is not None and t <= now:
        if t < window_start:
            n_missed += 1
            missed.append(t)
            if len(missed) > KEEP_SKIPPED:
                missed.pop(0)
            walked += 1
            if walked >= SCAN_MAX:  # a very long downtime: jump to the window
                t = spec.next_after(window_start - 1)
                n_missed += 1  # at least one more, uncounted
                continue
        else:
            due.append(t)
        t = spec.next_after(t)
    plan.next_tick = t
    if n_missed > len(missed):
        first_kept = missed[0]
        plan.runs.append(
            PlannedRun(
                first_kept - 1,
                TICK,
                SKIPPED_MISSED,
                detail=f"{n_missed - len(missed)} earlier ticks missed while no server ran",
            )
        )
    plan.runs.extend(PlannedRun(m, TICK, SKIPPED_MISSED, detail="missed") for m in missed)
    if s.catchup_policy == "once" and len(due) > 1:
        plan.runs.extend(PlannedRun(d, TICK, COALESCED, detail="caught up once") for d in due[:-1])
        due = due[-1:]
    for tick in due:
        if not active or s.overlap == "allow":
            plan.runs.append(_started(s, tick, TICK, make_job))
            active = True
        elif s.overlap == "buffer-one" and plan.buffered_tick is None:
            plan.runs.append(PlannedRun(tick, TICK, BUFFERED, detail="waiting for the last run"))
            plan.buffered_tick = tick
        else:
            plan.runs.append(
                PlannedRun(tick, TICK, SKIPPED_OVERLAP, detail="the last run was still active")
            )
    return plan


def plan_manual(s: ScheduleRow, ticks: list[int], kind: str, make_job: JobFactory) -> FirePlan:
    """Trigger (run now) and backfill: start every tick given, whatever the overlap."""
    plan = FirePlan(advance=False)
    plan.runs = [_started(s, t, kind, make_job) for t in ticks]
    return plan


class Scheduler:
    """Fires due ticks, on every server: the store decides who handles each schedule."""

    def __init__(self, engine: Engine, clock: Callable[[], int] = now_us) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self.fired = 0  # jobs started by ticks in this process (the benchmark reads it)

    def make_job(self, s: ScheduleRow, tick: int) -> NewJob:
        job_type = self.engine.registry.get(s.type)
        retries = job_type.retries if job_type is not None else 0
        return NewJob(
            id=new_id(),
            type=s.type,
            input=s.input,
            user_id=s.user_id,
            max_attempts=retries + 1,
            idempotency_key=f"schedule:{s.id}:{tick}",
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._loop(), name="jobctl-scheduler")
        self._sweep_task = loop.create_task(self._sweep_loop(), name="jobctl-history-sweep")

    async def stop(self) -> None:
        for task in (self._task, self._sweep_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def wake(self) -> None:
        """A schedule changed on this server (created, resumed): look now."""
        self._wake.set()

    async def fire_once(self) -> int:
        """Fire what is due now; the number of jobs started."""
        started = 0
        for _ in range(1000):  # bounded: 500,000 schedules due at once
            now = self.clock()

            def plan(s: ScheduleRow, active: bool, now: int = now) -> FirePlan | None:
                return plan_due(s, active, now, self.make_job)

            batch, jobs = await self.store.fire_due_schedules(now, BATCH, plan)
            started += jobs
            if batch < BATCH:
                break
            await asyncio.sleep(0)  # let requests in between two batches
        if started:
            self.fired += started
            self.engine.wake()
        return started

    async def _loop(self) -> None:
        waiting = False  # for the store: said once per outage, not once a second
        while True:
            try:
                await self.fire_once()
                nxt = await self.store.next_schedule_tick()
                if waiting:
                    log.warning("schedules: the store is back; missed ticks follow the catch-up")
                waiting = False
            except StorageUnavailable as exc:
                if not waiting:
                    log.warning("schedules wait for the store: %s", exc)
                waiting, nxt = True, None
            except Exception:
                log.exception("firing schedules failed; trying again shortly")
                nxt = None
            # Sleep until the next tick, or a second at most: other servers (and other
            # processes) create and resume schedules too, and buffered ticks wait for
            # jobs to end.
            now = self.clock()
            timeout = 1.0 if nxt is None else min(1.0, max(0.0, (nxt - now) / US))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _sweep_loop(self) -> None:
        settings = self.engine.settings
        day = 86_400 * US
        while True:
            await asyncio.sleep(settings.retention_interval)
            try:
                now = self.clock()
                # a bounded batch per transaction, yielding between batches
                for _ in range(10_000):
                    if not await self.store.sweep_history(
                        now - int(settings.completed_retention_days * day),
                        now - int(settings.failed_retention_days * day),
                    ):
                        break
                    await asyncio.sleep(0.005)
            except StorageUnavailable as exc:
                log.warning("sweeping schedule runs and events waits for the store: %s", exc)
            except Exception:
                log.exception("sweeping schedule runs and events failed")


def is_active(status: str | None) -> bool:
    return status is not None and status not in TERMINAL


def describe_spec(row: ScheduleRow | dict[str, Any]) -> str:
    if isinstance(row, ScheduleRow):
        cron, tz, every = row.cron, row.tz, row.every_us
    else:
        cron, tz, every = row["cron"], row["tz"], row["every_us"]
    if cron is not None:
        return f"{cron} ({tz})"
    return f"every {(every or 0) // US}s"


__all__ = [
    "BACKFILL",
    "CATCHUP_POLICIES",
    "MAX_BACKFILL",
    "OVERLAPS",
    "TRIGGER",
    "InvalidSchedule",
    "Scheduler",
    "Spec",
    "parse_duration",
    "plan_due",
    "plan_manual",
    "validate_spec",
]
