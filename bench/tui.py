"""Dashboard benchmark, headless, through the app's real path (feed on its thread ->
batches -> the feed worker, one pass per frame -> table), with the figures a person
would feel.

Three runs:
  (default)    10,000 jobs loaded, then 1,000 progress updates a second for 10 s to the
               200 running ones (in-process fake client; a stand-in feed run by the real
               FeedThread, so the hand-over between threads is measured: it measures the UI)
  --burst N    10,000 jobs loaded, the N newest running; N of them end within a second,
               notifications on, while keys are pressed; five times (--bursts), the same
               jobs started again between bursts, so memory must stay flat
  --real       the same burst against a real `jobctl server run` on loopback, through the
               real client and the real feed (Realtime, realtime-py's parsing included) in
               its own process, as `jobctl tui` runs it (N demo jobs timed to end together);
               --feed thread: the feed on a thread of the app's process instead

Prints, per run:
  first render     from starting the app to the first job row drawn
  key to frame     from a key press (j/k) to the frame drawing the cursor's new row
  update to frame  from a snapshot leaving the feed (--real, in its process: the first of
                   the batch it travels in) to a frame drawing its row with it
                   (or a newer one); updates to rows off screen are applied, not drawn
  end to frame     (--real) from the server's completed_at to the frame showing it ended:
                   the commit, the WebSocket and realtime-py's parsing included
  loop lag         how late a 10 ms sleep wakes up on the app's event loop
  toasts           notifications raised during the bursts
  RSS              resident memory after loading and after each burst

The bar (--burst 2000 at 10,000 jobs): key-to-frame p99 and update-to-frame p99 under
50 ms, RSS flat within 10% across the five bursts (--real: once the 2,000 jobs each burst
adds are allowed for, at what a job cost when loading). The default run keeps its old
bar: first render < 1 s, update-to-frame p99 < 100 ms, RSS < 250 MB and not growing.

  .venv/bin/python bench/tui.py [--jobs 10000] [--rate 1000] [--seconds 10]
  .venv/bin/python bench/tui.py --burst 2000 [--bursts 5]
  .venv/bin/python bench/tui.py --real [--burst 2000] [--jobs 10000] [--bursts 5] [--feed thread]
  (any of them with --profile FILE: cProfile of the app's main thread, in CPU time)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Unpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from jobctl.backends.feed import FeedEvent, FeedMode, JobChanged, JobFeed
from jobctl.backends.feedproc import FeedProcess, server_feed
from jobctl.backends.feedthread import FeedBatch, FeedThread
from jobctl.backends.jobapi import ListParams, LogPage
from jobctl.models import Job, JobPage, JobStatus, Step
from jobctl.tui.app import JobctlApp, make_app
from jobctl.tui.settings import TuiSettings
from jobctl.tui.widgets.jobs_table import JobsTable

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SIZE = (120, 40)
BAR_MS = 50.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process's threads, by name: the app's
    main thread, the feed's thread (when it has one), the others; and the feed's child
    process (when it has one, jobctl-feed-proc). Figures that resist load: a loaded
    machine delays the work, it does not make it cost more."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    cpu: dict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tid = int(task.name)
        name = "app" if tid == main else names.get(tid, "other")
        name = name if name in ("app", "jobctl-feed") else "other"
        cpu[name] += (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    for child in FEED_CHILDREN:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu["jobctl-feed-proc"] += (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    return dict(cpu)


FEED_CHILDREN: list[int] = []  # the feed's child process, when it has one (by pid)
FRAMES = [0, 0]  # screen updates so far: all, and those that laid out the whole screen


def count_frames() -> None:
    """Count the screen's updates (Textual's update timer), and the full layouts among
    them: with the app's CPU, the cost of a frame."""
    from textual.screen import Screen

    update = Screen._on_timer_update

    def counted(screen: Screen[Any]) -> None:
        FRAMES[0] += 1
        FRAMES[1] += bool(screen._layout_required)
        update(screen)

    Screen._on_timer_update = counted  # type: ignore[method-assign,assignment]


def frames_line(before: list[int], spent: dict[str, float]) -> str:
    frames, layouts = FRAMES[0] - before[0], FRAMES[1] - before[1]
    per = spent.get("app", 0.0) / frames * 1000 if frames else float("nan")
    return f"{frames} frames ({layouts} full layouts), app CPU {per:.1f} ms a frame"


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def cpu_line(spent: dict[str, float]) -> str:
    order = ["app", "jobctl-feed", "jobctl-feed-proc", "other"]
    return ", ".join(f"{k} {spent[k]:.2f} s" for k in order if spent.get(k, 0.0) >= 0.005)


class MainProfile:
    """--profile: cProfile of the app's main thread over the bursts (the feed's thread or
    process is not in it), the top functions printed at the end."""

    def __init__(self, path: str | None) -> None:
        import cProfile

        self.path = path
        # The thread's CPU time, not the wall clock: time spent waiting for the GIL (the
        # feed's thread holding it) or for the machine (load) is not the app's work.
        self.profile = cProfile.Profile(time.thread_time) if path else None

    def on(self) -> None:
        if self.profile is not None:
            self.profile.enable()

    def off(self) -> None:
        if self.profile is not None:
            self.profile.disable()

    def report(self) -> None:
        if self.profile is None or self.path is None:
            return
        import pstats

        self.profile.dump_stats(self.path)
        print(f"profile              the app's main thread over the bursts: {self.path}")
        stats = pstats.Stats(self.profile, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(25)


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summary(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    ms = [v * 1000 for v in values]
    return (
        f"p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms "
        f"({len(ms):,} samples)"
    )


def make_jobs(count: int, active: int) -> list[Job]:
    jobs = []
    for n in range(count):
        created = T0 + timedelta(seconds=n)
        running = n >= count - active  # the newest are the ones still running
        jobs.append(
            Job(
                id=f"{n:08x}-0000-4000-8000-{n:012x}",
                type=random.choice(["journal_extraction", "demo", "competitor_analysis"]),
                status=JobStatus.RUNNING if running else JobStatus.COMPLETED,
                progress=0 if running else 100,
                message="Starting..." if running else "done",
                created_at=created,
                updated_at=created,
                started_at=created,
                completed_at=None if running else created + timedelta(seconds=3),
                max_attempts=3,
            )
        )
    return jobs


class BenchClient:
    def __init__(self, jobs: list[Job]) -> None:
        self.newest_first = sorted(jobs, key=lambda j: j.created_at or T0, reverse=True)

    async def list_jobs(self, **query: Unpack[ListParams]) -> JobPage:
        start, limit = int(query.get("cursor") or 0), query.get("limit", 50)
        more = start + limit < len(self.newest_first)
        return JobPage(
            self.newest_first[start : start + limit], str(start + limit) if more else None
        )

    async def stats(self) -> dict[str, Any]:
        return {"counts": {"running": 200, "completed": 9800}, "queue_depth": 0, "failure_rate": 0}

    async def types(self) -> list[dict[str, Any]]:
        return []

    async def get_job(self, job_id: str) -> Job:
        raise NotImplementedError

    async def get_steps(self, job_id: str) -> list[Step]:
        return []

    async def get_logs(self, job_id: str, after: int = 0, limit: int = 1000) -> LogPage:
        return LogPage([], after, "running")

    async def create_job(self, *args: Any, **kwargs: Any) -> Job:
        raise NotImplementedError

    async def cancel_job(self, job_id: str) -> Job:
        raise NotImplementedError

    async def retry_job(self, job_id: str, from_start: bool = False) -> Job:
        raise NotImplementedError


class BenchFeed:
    """A stand-in for JobFeed, run by the real FeedThread: the driver sends events from
    the app's loop and they cross to the feed's thread, where they are batched, as the
    Realtime client's are (its parsing is left out here: --real has it)."""

    def __init__(self, cost: float = 0.0) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue[FeedEvent] | None = None
        self.cost = cost  # seconds of CPU (holding the GIL) per event, as parsing costs
        self.pace: Callable[[], None] = lambda: None  # FeedThread sets it

    @property
    def mode(self) -> FeedMode:
        return FeedMode.REALTIME

    async def start(self) -> None:
        self.loop, self.queue = asyncio.get_running_loop(), asyncio.Queue()

    async def close(self) -> None:
        return None

    async def next_event(self, timeout: float | None = None) -> FeedEvent | None:
        assert self.queue is not None
        if timeout is not None and timeout <= 0:
            event = None if self.queue.empty() else self.queue.get_nowait()
        else:
            event = await self.queue.get()
        if event is not None and self.cost:
            end = time.perf_counter() + self.cost
            while time.perf_counter() < end:
                pass
            self.pace()
        return event

    def send(self, events: Sequence[FeedEvent]) -> None:
        """From the app's loop: these events, on the feed's thread."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._put_all, list(events))

    def _put_all(self, events: list[FeedEvent]) -> None:
        assert self.queue is not None
        for event in events:
            self.queue.put_nowait(event)

    def add_jobs(self, job_ids: Sequence[str]) -> None:
        pass

    def refresh(self) -> None:
        pass


class StampedFeed:
    """--real: the real JobFeed, its snapshots stamped as they leave it (on its thread)."""

    def __init__(self, feed: JobFeed, probes: Probes) -> None:
        self.feed, self.probes = feed, probes

    @property
    def pace(self) -> Callable[[], None]:
        return self.feed.pace

    @pace.setter
    def pace(self, pace: Callable[[], None]) -> None:
        self.feed.pace = pace

    @property
    def mode(self) -> FeedMode:
        return self.feed.mode

    async def start(self) -> None:
        await self.feed.start()

    async def close(self) -> None:
        await self.feed.close()

    async def next_event(self, timeout: float | None = None) -> FeedEvent | None:
        event = await self.feed.next_event(timeout)
        if isinstance(event, JobChanged):
            self.probes.sent_now(event.job)
        return event

    def add_jobs(self, job_ids: Sequence[str]) -> None:
        self.feed.add_jobs(job_ids)

    def refresh(self) -> None:
        self.feed.refresh()


@dataclass
class Probes:
    """What the frames drew, and when: fed by JobsTable.rendered and the senders."""

    t_start: float = field(default_factory=time.perf_counter)
    first_render: float | None = None
    sent: dict[str, deque[tuple[float, float]]] = field(default_factory=lambda: defaultdict(deque))
    drawn: list[float] = field(default_factory=list)
    keys: list[float] = field(default_factory=list)
    key_wait: tuple[str, float] | None = None  # (job id the cursor moves to, t pressed)
    lags: list[float] = field(default_factory=list)
    lag_on: bool = False
    table: JobsTable | None = None
    real: bool = False  # --real: also from the server's completed_at to the frame
    ends: list[float] = field(default_factory=list)
    real_ends: set[str] = field(default_factory=set)  # --real: jobs drawn ended
    off_screen: int = 0  # updates never drawn (rows off screen), of the bursts before

    def sent_now(self, job: Job) -> None:
        if job.updated_at is not None:
            self.sent[job.id].append((job.updated_at.timestamp(), time.perf_counter()))

    def on_rendered(self, job: Job) -> None:
        now = time.perf_counter()
        if self.first_render is None:
            self.first_render = now - self.t_start
        wait = self.key_wait
        table = self.table
        if wait is not None and table is not None and job.id == wait[0] == table.selected_id:
            self.keys.append(now - wait[1])
            self.key_wait = None
        if self.real and job.completed_at is not None and job.id not in self.real_ends:
            self.real_ends.add(job.id)  # the server's clock is this machine's
            self.ends.append(time.time() - job.completed_at.timestamp())
        pending = self.sent.get(job.id)
        if not pending or job.updated_at is None:
            return
        stamp = job.updated_at.timestamp()
        while pending and pending[0][0] <= stamp:
            self.drawn.append(now - pending.popleft()[1])

    async def lag_loop(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            if self.lag_on:
                self.lags.append(time.perf_counter() - start - 0.01)

    async def press_keys(
        self, app: JobctlApp, seconds: float, done: Callable[[], bool] = lambda: False
    ) -> None:
        """j and k in turn every 50 ms, for `seconds` or until `done()`; each press waits
        for its frame (or 1 s)."""
        table = self.table
        assert table is not None
        end = time.perf_counter() + seconds
        down = True
        while time.perf_counter() < end and not done():
            target = table.cursor + (1 if down else -1)
            if 0 <= target < len(table.order):
                self.key_wait = (table.order[target], time.perf_counter())
                app.simulate_key("j" if down else "k")
                deadline = time.perf_counter() + 1.0
                while self.key_wait is not None and time.perf_counter() < deadline:
                    await asyncio.sleep(0.002)
                if self.key_wait is not None:
                    self.keys.append(time.perf_counter() - self.key_wait[1])
                    self.key_wait = None
            down = not down
            await asyncio.sleep(0.05)

    def undrawn(self) -> int:
        return self.off_screen + sum(len(q) for q in list(self.sent.values()))

    def forget_undrawn(self) -> None:
        """Between bursts: what was never drawn is counted, then let go (the benchmark's own
        records must not grow the RSS it measures)."""
        self.off_screen = self.undrawn()
        self.sent.clear()


async def wait_loaded(app: JobctlApp, probes: Probes, count: int, pilot: Any) -> float:
    table = app.main_screen.table
    deadline = time.perf_counter() + 60
    while (probes.first_render is None or len(table.jobs) < count) and (
        time.perf_counter() < deadline
    ):
        await pilot.pause(0.005)
    return time.perf_counter() - probes.t_start


# the default run: progress updates ---------------------------------------------------
async def run_progress(args: argparse.Namespace) -> bool:
    rss_start = rss_mb()
    jobs = make_jobs(args.jobs, args.active)
    active = [j for j in jobs if j.status == JobStatus.RUNNING]
    client, feed = BenchClient(jobs), BenchFeed()
    settings = TuiSettings(target="bench", stats_interval=5.0, tick_interval=1.0)
    app = make_app(client, FeedThread(feed), settings)  # type: ignore[arg-type]
    probes = Probes()
    JobsTable.rendered = staticmethod(probes.on_rendered)  # type: ignore[assignment]
    async with app.run_test(headless=True, size=SIZE) as pilot:
        probes.table = app.main_screen.table
        all_loaded = await wait_loaded(app, probes, args.jobs, pilot)
        await pilot.pause(0.5)
        rss_loaded = rss_mb()
        latest = {j.id: j for j in active}
        ids = [j.id for j in active]
        tick, per_tick = 0.01, max(1, args.rate // 100)
        total = args.rate * args.seconds
        stamp = T0 + timedelta(days=1)
        rss_samples: list[float] = []
        begin = time.perf_counter()
        for i in range(0, total, per_tick):
            tick_events: list[FeedEvent] = []
            for k in range(i, min(total, i + per_tick)):
                job_id = ids[k % len(ids)]
                stamp += timedelta(microseconds=1)
                job = replace(
                    latest[job_id],
                    progress=(latest[job_id].progress + 1) % 100,
                    message=f"update {k}",
                    updated_at=stamp,
                )
                latest[job_id] = job
                probes.sent_now(job)
                tick_events.append(JobChanged(job, "realtime"))
            feed.send(tick_events)
            due = begin + (i // per_tick + 1) * tick
            if int(due - begin) > len(rss_samples):
                rss_samples.append(rss_mb())
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        late = time.perf_counter() - begin - args.seconds
        await pilot.pause(0.5)  # let the last frame be drawn
        rss_end = rss_mb()
        rows = app.main_screen.table.rows_on_screen
        flushes = app.flushes
    first = probes.first_render or float("nan")
    print(f"jobs loaded          {args.jobs:,} ({args.active} running, {SIZE[0]}x{SIZE[1]})")
    print(f"first render         {first * 1000:.0f} ms")
    print(f"all loaded           {all_loaded * 1000:.0f} ms")
    print(
        f"updates sent         {total:,} over {args.seconds} s (driver late {late * 1000:.0f} ms)"
    )
    print(f"frames applying them {flushes:,}")
    print(
        f"update to frame      {summary(probes.drawn)}: drawn on the {rows} visible rows; "
        f"{probes.undrawn():,} went to rows off screen"
    )
    print(
        f"RSS                  start {rss_start:.0f} MB, loaded {rss_loaded:.0f} MB, "
        f"end {rss_end:.0f} MB; per second: {' '.join(f'{x:.0f}' for x in rss_samples)}"
    )
    growth = rss_end - rss_loaded
    ok = first < 1.0 and pct(probes.drawn, 99) < 0.1 and rss_end < 250 and growth < 0.1 * rss_loaded
    print(
        f"bar                  {'met' if ok else 'NOT met'}: first render < 1 s, p99 < 100 ms, "
        f"RSS < 250 MB, growth {growth:+.0f} MB over the run"
    )
    return ok


# bursts -------------------------------------------------------------------------------
def burst_report(
    probes: Probes, rss: list[float], toasts: int, bursts: int, n: int, per_job_mb: float = 0.0
) -> bool:
    """Figures and the bar. `per_job_mb` (--real, where each burst adds N jobs): what a
    job cost when loading, to allow for the jobs each burst adds before judging RSS."""
    key99, draw99 = pct(probes.keys, 99) * 1000, pct(probes.drawn, 99) * 1000
    print(f"key to frame         {summary(probes.keys)}")
    print(f"update to frame      {summary(probes.drawn)} ({probes.undrawn():,} off screen)")
    if probes.real:
        print(f"end to frame         {summary(probes.ends)} (server's completed_at to the frame)")
    print(f"loop lag             {summary(probes.lags)}")
    print(f"toasts               {toasts} for {bursts} bursts of {n:,} endings")
    print(f"RSS after bursts     {' '.join(f'{x:.0f}' for x in rss)} MB")
    judged = [x - per_job_mb * n * i for i, x in enumerate(rss)]
    if per_job_mb:
        print(
            f"  less the jobs      {' '.join(f'{x:.0f}' for x in judged)} MB "
            f"({per_job_mb * 1024 * 1024 / 1000:.1f} KB a job, as measured when loading; "
            f"{n:,} jobs more each burst)"
        )
    low, high = min(judged), max(judged)
    flat = (high - low) <= 0.1 * low
    spread = (
        f"RSS {'flat' if flat else 'NOT flat'} ({(high - low) / low * 100:.1f}% between bursts)"
    )
    ok = key99 < BAR_MS and draw99 < BAR_MS and flat
    print(
        f"bar                  {'met' if ok else 'NOT met'}: key-to-frame p99 {key99:.1f} ms and "
        f"update-to-frame p99 {draw99:.1f} ms under {BAR_MS:.0f} ms; {spread}"
    )
    return ok


async def run_bursts(args: argparse.Namespace) -> bool:
    jobs = make_jobs(args.jobs, args.burst)
    running = {j.id: j for j in jobs if j.status == JobStatus.RUNNING}
    client, feed = BenchClient(jobs), BenchFeed(args.feed_cost / 1000)
    settings = TuiSettings(target="bench", stats_interval=5.0, tick_interval=1.0)
    app = make_app(client, FeedThread(feed), settings)  # type: ignore[arg-type]
    probes = Probes()
    JobsTable.rendered = staticmethod(probes.on_rendered)  # type: ignore[assignment]
    toasts = 0
    rss: list[float] = []
    profile = MainProfile(args.profile)
    async with app.run_test(headless=True, size=SIZE, notifications=True) as pilot:
        original_notify = app.notify

        def counting_notify(*a: Any, **kw: Any) -> None:
            nonlocal toasts
            toasts += 1
            original_notify(*a, **kw)

        app.notify = counting_notify  # type: ignore[method-assign]
        probes.table = app.main_screen.table
        loaded = await wait_loaded(app, probes, args.jobs, pilot)
        print(f"jobs loaded          {args.jobs:,} in {loaded * 1000:.0f} ms ({SIZE[0]}x{SIZE[1]})")
        lagger = asyncio.create_task(probes.lag_loop())
        stamp = T0 + timedelta(days=1)
        ids = list(running)
        for burst in range(args.bursts):
            if burst:  # the same jobs start again (retried), quietly, before the next burst
                restarted: list[FeedEvent] = []
                for job_id in ids:
                    stamp += timedelta(microseconds=1)
                    job = replace(
                        running[job_id],
                        status=JobStatus.RUNNING,
                        attempt=running[job_id].attempt + 1,
                        progress=10,
                        error=None,
                        completed_at=None,
                        updated_at=stamp,
                    )
                    running[job_id] = job
                    restarted.append(JobChanged(job, "realtime"))
                feed.send(restarted)
                await pilot.pause(1.0)
            probes.lag_on = True
            cpu_before, frames_before = thread_cpu(), list(FRAMES)
            profile.on()
            keys = asyncio.create_task(probes.press_keys(app, 2.0))
            per_tick = max(1, args.burst // 50)
            for i in range(0, len(ids), per_tick):  # N endings over one second, in 20 ms ticks
                ended: list[FeedEvent] = []
                for job_id in ids[i : i + per_tick]:
                    stamp += timedelta(microseconds=1)
                    failed = random.random() < 0.05
                    job = replace(
                        running[job_id],
                        status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
                        progress=100,
                        error="demo failure" if failed else None,
                        completed_at=stamp,
                        updated_at=stamp,
                    )
                    running[job_id] = job
                    probes.sent_now(job)
                    ended.append(JobChanged(job, "realtime"))
                feed.send(ended)
                await asyncio.sleep(0.02)
            await keys
            probes.lag_on = False
            await pilot.pause(4.0)  # the burst's last toast, and everything drawn
            profile.off()
            spent = cpu_delta(cpu_before, thread_cpu())
            shown = app.main_screen.table.jobs
            missed = sum(1 for j in ids if not shown[j].status.is_terminal)
            probes.forget_undrawn()
            gc.collect()
            rss.append(rss_mb())
            print(
                f"burst {burst + 1}              {args.burst:,} endings; {missed} not shown ended;"
                f" CPU {cpu_line(spent)}; {frames_line(frames_before, spent)}"
            )
        lagger.cancel()
    profile.report()
    return burst_report(probes, rss, toasts, args.bursts, args.burst)


# a real server -----------------------------------------------------------------------
class RealServer:
    def __init__(self, slots: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jobctl-bench-tui-"))
        self.env = {
            **os.environ,
            "JOBCTL_CONFIG_DIR": str(self.dir / "config"),
            "JOBCTL_DATA_DIR": str(self.dir / "data"),
            "JOBCTL_NO_AUTOSTART": "1",
            "PYTHONPATH": str(ROOT / "src"),
        }
        state = self.dir / "state.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "server", "run", "--port", "0",
             "--slots", str(slots), "--limit", "user=0", "--state-file", str(state)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not state.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the job server did not start")
            time.sleep(0.05)
        time.sleep(0.1)
        self.url = json.loads(state.read_text())["url"]
        self.token = (self.dir / "config" / "server-token").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


async def submit_many(url: str, token: str, bodies: list[dict[str, Any]]) -> list[str]:
    import httpx

    ids: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:

        async def worker(part: list[dict[str, Any]]) -> None:
            for body in part:
                answer = await http.post("/api/jobs", json=body)
                answer.raise_for_status()
                ids.append(answer.json()["id"])

        await asyncio.gather(*(worker(bodies[i::8]) for i in range(8)))
    return ids


async def submit_timed(url: str, token: str, count: int, end_at: float) -> list[str]:
    """`count` one-step demo jobs, each sleeping until `end_at` (time.time())."""
    import httpx

    ids: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:

        async def worker(n: int) -> None:
            for _ in range(n):
                wait = round(max(0.0, end_at - time.time()), 3)
                body = {"type": "demo", "input": {"steps": 1, "step_seconds": wait}}
                answer = await http.post("/api/jobs", json=body)
                answer.raise_for_status()
                ids.append(answer.json()["id"])

        await asyncio.gather(*(worker(count // 8 + (i < count % 8)) for i in range(8)))
    return ids


async def submit_timed_elsewhere(url: str, token: str, count: int, end_at: float) -> list[str]:
    """`submit_timed` in a child process: the load is not the dashboard's (its loop and
    its GIL are what is measured)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--submit-timed", url, str(count), repr(end_at),
        env={**os.environ, "JOBCTL_BENCH_TOKEN": token}, stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise SystemExit("submitting the burst failed")
    if time.time() > end_at:
        print("                     (submitting outlasted the lead: this burst is spread out)")
    return list(json.loads(out))


async def run_real(args: argparse.Namespace) -> bool:
    import httpx

    from jobctl.backends.feed import RealtimeConfig, Subscription
    from jobctl.backends.jobapi import AsyncJobClient

    server = RealServer(slots=args.burst + 50)
    try:
        history = [{"type": "demo", "input": {"steps": 0}} for _ in range(args.jobs)]
        begin = time.perf_counter()
        await submit_many(server.url, server.token, history)
        took = time.perf_counter() - begin
        rate = args.jobs / took
        print(f"history              {args.jobs:,} finished jobs in {took:.1f} s ({rate:.0f}/s)")
        client = AsyncJobClient(server.url, server.token, timeout=10, retries=1)
        probes = Probes(real=True)
        realtime = RealtimeConfig(f"{server.url}/realtime/v1", server.token)
        feed: FeedProcess | FeedThread
        if args.feed == "process":  # as `jobctl tui` runs it: the feed in its own process
            options = {"base_url": server.url, "token": server.token, "timeout": 10, "retries": 1}
            feed = FeedProcess(server_feed, options, realtime)

            def stamp(batch: FeedBatch, first_at: float) -> None:
                for job in batch.latest.values():
                    if job.updated_at is not None:
                        probes.sent[job.id].append((job.updated_at.timestamp(), first_at))

            feed.received = stamp
        else:  # the feed on a thread of this process, with a client of its own
            feed_client = AsyncJobClient(server.url, server.token, timeout=10, retries=1)
            live = JobFeed(feed_client, Subscription(), realtime=realtime)
            feed = FeedThread(StampedFeed(live, probes), on_close=feed_client.aclose)
        settings = TuiSettings(target="bench", stats_interval=5.0, tick_interval=1.0)
        app = make_app(client, feed, settings)
        JobsTable.rendered = staticmethod(probes.on_rendered)  # type: ignore[assignment]
        rss: list[float] = []
        toasts = 0
        profile = MainProfile(args.profile)

        async with app.run_test(headless=True, size=SIZE, notifications=True) as pilot:
            original_notify = app.notify

            def counting_notify(*a: Any, **kw: Any) -> None:
                nonlocal toasts
                toasts += 1
                original_notify(*a, **kw)

            app.notify = counting_notify  # type: ignore[method-assign]
            probes.table = app.main_screen.table
            table = app.main_screen.table
            while not table.jobs:
                await pilot.pause(0.005)
            first_page, rss_first = len(table.jobs), rss_mb()
            await wait_loaded(app, probes, args.jobs, pilot)
            await pilot.pause(0.5)
            gc.collect()
            per_job = (rss_mb() - rss_first) / max(1, args.jobs - first_page)
            while app.mode != FeedMode.REALTIME:
                await pilot.pause(0.1)
            if isinstance(feed, FeedProcess) and feed.pid is not None:
                FEED_CHILDREN.append(feed.pid)
            lagger = asyncio.create_task(probes.lag_loop())
            headers = {"Authorization": f"Bearer {server.token}"}
            for burst in range(args.bursts):
                # N demo jobs, each sleeping until one shared moment: they end within ~1 s
                # (the lead: the time submitting them takes at the history's rate, and more)
                lead = 3.0 + 2.0 * args.burst / rate
                end_at = time.time() + lead
                begin = time.perf_counter()
                cpu_before, frames_before = thread_cpu(), list(FRAMES)
                profile.on()
                ids = await submit_timed_elsewhere(server.url, server.token, args.burst, end_at)
                took = time.perf_counter() - begin
                await asyncio.sleep(max(0.0, end_at - time.time()))
                held = table.jobs

                def all_shown(
                    held: dict[str, Job] = held, ids: list[str] = ids, end_at: float = end_at
                ) -> bool:  # keys go on while the dashboard catches up
                    if time.time() < end_at + 3.0:
                        return False
                    return all(i in held and held[i].status.is_terminal for i in ids)

                probes.lag_on = True
                await probes.press_keys(app, 60.0, all_shown)
                profile.off()
                spent = cpu_delta(cpu_before, thread_cpu())
                probes.lag_on = False
                caught_up = time.time() - end_at
                async with httpx.AsyncClient(
                    base_url=server.url, headers=headers, timeout=60
                ) as http:
                    stats = (await http.get("/api/stats")).json()
                await pilot.pause(2.0)  # the dashboard's next figures
                shown = app.main_screen.strip.stats or {}
                seen_ended = sum(1 for i in ids if i in held and held[i].status.is_terminal)
                probes.forget_undrawn()
                gc.collect()
                rss.append(rss_mb())
                print(
                    f"burst {burst + 1}              {args.burst:,} submitted in {took:.1f} s; "
                    f"{seen_ended:,} shown ended ({caught_up:.1f} s after the burst's end); "
                    f"completed: server "
                    f"{stats['counts']['completed']:,}, dashboard "
                    f"{(shown.get('counts') or {}).get('completed', 0):,}; feed {app.mode.value}"
                    f" (mode changes so far: {app.mode_changes})\n"
                    f"                     CPU from the burst's submit to all shown: "
                    f"{cpu_line(spent)}; {frames_line(frames_before, spent)}\n"
                    f"                     objects the collector tracks {len(gc.get_objects()):,}"
                )
            lagger.cancel()
            profile.report()
        await client.aclose()
    finally:
        server.stop()
    return burst_report(probes, rss, toasts, args.bursts, args.burst, per_job)


def main() -> int:
    if sys.argv[1:2] == ["--submit-timed"]:  # the child of submit_timed_elsewhere
        url, count, end_at = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        token = os.environ["JOBCTL_BENCH_TOKEN"]
        print(json.dumps(asyncio.run(submit_timed(url, token, count, end_at))))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=None, help="jobs loaded (10,000)")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--active", type=int, default=200, help="running jobs that get updates")
    parser.add_argument("--burst", type=int, default=0, help="N jobs ending within a second")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--real", action="store_true", help="against a real server on loopback")
    parser.add_argument(
        "--feed",
        choices=["process", "thread"],
        default="process",
        help="--real: the feed in a process of its own (as `jobctl tui`) or on a thread",
    )
    parser.add_argument(
        "--feed-cost",
        type=float,
        default=0.0,
        help="--burst: ms of CPU the feed's thread spends per event (realtime-py: ~0.65)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        default=None,
        help="cProfile the app's main thread over the bursts into FILE (prints the top)",
    )
    parser.add_argument("--no-pace", action="store_true", help="the feed's thread never rests")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="the GIL switch interval FeedThread sets, ms (default 0.5; 5 is CPython's)",
    )
    args = parser.parse_args()
    random.seed(7)
    count_frames()
    if args.switch_interval is not None:
        import jobctl.backends.feedthread as feedthread

        feedthread.SWITCH_INTERVAL = args.switch_interval / 1000
    if args.no_pace:
        import jobctl.backends.feedthread as feedthread

        feedthread.WORK_SLICE = float("inf")
    run: Callable[[argparse.Namespace], Any]
    args.jobs = 10_000 if args.jobs is None else args.jobs
    if args.real:  # the bar's case by default: 10,000 jobs, five bursts of 2,000
        args.burst = args.burst or 2000
        run = run_real
    else:
        run = run_bursts if args.burst else run_progress
    print("machine              shared: figures are indicative; rerun quietly to compare")
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
