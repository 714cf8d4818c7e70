"""Dashboard benchmark, headless: 10,000 jobs loaded, then 1,000 progress updates a
second for 10 seconds, through the app's real message path (feed -> worker ->
JobUpdated -> table), with the tests' in-process fake client and feed (tests/tui/fakes.py,
held to jobctl.tui.ports by mypy): it measures the UI.

Prints:
  first render   from starting the app to the first job row drawn
  all loaded     until the table holds all 10,000 jobs
  apply delay    from an update leaving the feed to the table having it (every update)
  render delay   from an update leaving the feed to a frame drawing its row with it
                 (or a newer snapshot of it); updates to rows off screen are applied,
                 not drawn, and are counted apart
  RSS            resident memory at the start, after loading, each second, and at the end

The bar: first render < 1 s, p99 render delay < 100 ms, RSS < 250 MB and not growing.

  .venv/bin/python bench/tui.py [--jobs 10000] [--rate 1000] [--seconds 10] [--active 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import defaultdict, deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' fakes
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from tests.tui.fakes import FakeClient, FakeFeed

from jobctl.backends.feed import FeedMode, JobChanged
from jobctl.models import Job, JobStatus
from jobctl.tui.app import make_app
from jobctl.tui.settings import TuiSettings
from jobctl.tui.widgets.jobs_table import JobsTable

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SIZE = (120, 40)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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
            )
        )
    return jobs


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rss_start = rss_mb()
    jobs = make_jobs(args.jobs, args.active)
    active = [j for j in jobs if j.status == JobStatus.RUNNING]
    client, feed = FakeClient({j.id: j for j in jobs}), FakeFeed(FeedMode.REALTIME)
    settings = TuiSettings(target="bench", stats_interval=5.0, tick_interval=1.0)
    app = make_app(client, feed, settings)

    sent: dict[str, deque[tuple[float, float]]] = defaultdict(deque)  # id -> (stamp, t_sent)
    render_delays: list[float] = []
    apply_delays: list[float] = []
    first_render: list[float] = []
    t_start = time.perf_counter()

    def on_rendered(job: Job) -> None:
        now = time.perf_counter()
        if not first_render:
            first_render.append(now - t_start)
        pending = sent.get(job.id)
        if not pending or job.updated_at is None:
            return
        stamp = job.updated_at.timestamp()
        while pending and pending[0][0] <= stamp:
            render_delays.append(now - pending.popleft()[1])

    JobsTable.rendered = staticmethod(on_rendered)  # type: ignore[assignment]
    async with app.run_test(headless=True, size=SIZE) as pilot:
        table = app.main_screen.table
        original_upsert = table.upsert
        sent_at: dict[tuple[str, float], float] = {}

        def timed_upsert(job: Job) -> None:
            original_upsert(job)
            if job.updated_at is not None:
                t = sent_at.pop((job.id, job.updated_at.timestamp()), None)
                if t is not None:
                    apply_delays.append(time.perf_counter() - t)

        table.upsert = timed_upsert  # type: ignore[method-assign]
        deadline = time.perf_counter() + 30
        while (not first_render or len(table.jobs) < args.jobs) and time.perf_counter() < deadline:
            await pilot.pause(0.005)
        all_loaded = time.perf_counter() - t_start
        await pilot.pause(0.5)
        rss_loaded = rss_mb()

        # 1,000 updates a second in 10 ms ticks, to the running jobs, round-robin.
        latest = {j.id: j for j in active}
        ids = [j.id for j in active]
        tick, per_tick = 0.01, max(1, args.rate // 100)
        total = args.rate * args.seconds
        stamp = T0 + timedelta(days=1)
        rss_samples: list[float] = []
        begin = time.perf_counter()
        for i in range(0, total, per_tick):
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
                now = time.perf_counter()
                sent[job_id].append((stamp.timestamp(), now))
                sent_at[(job_id, stamp.timestamp())] = now
                feed.queue.put_nowait(JobChanged(job, "realtime"))
            due = begin + (i // per_tick + 1) * tick
            if int(due - begin) > len(rss_samples):
                rss_samples.append(rss_mb())
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        late = time.perf_counter() - begin - args.seconds
        await pilot.pause(0.5)  # let the last frame be drawn
        rss_end = rss_mb()
        visible_rows = table.size.height - 1
        undrawn = sum(len(q) for q in sent.values())

    return {
        "first_render": first_render[0] if first_render else float("nan"),
        "all_loaded": all_loaded,
        "updates": total,
        "driver_late": late,
        "apply": apply_delays,
        "render": render_delays,
        "undrawn": undrawn,
        "visible_rows": visible_rows,
        "rss": (rss_start, rss_loaded, rss_samples, rss_end),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--active", type=int, default=200, help="running jobs that get updates")
    args = parser.parse_args()
    random.seed(7)
    r = asyncio.run(run(args))
    ms = 1000.0
    rss_start, rss_loaded, samples, rss_end = r["rss"]
    print(
        f"jobs loaded          {args.jobs:,} ({args.active} running, {SIZE[0]}x{SIZE[1]} terminal)"
    )
    print(f"first render         {r['first_render'] * ms:.0f} ms")
    print(f"all loaded           {r['all_loaded'] * ms:.0f} ms")
    print(
        f"updates sent         {r['updates']:,} over {args.seconds} s (driver late by {r['driver_late'] * ms:.0f} ms)"
    )
    print(
        f"apply delay          mean {statistics.fmean(r['apply']) * ms:.1f} ms, "
        f"p99 {pct(r['apply'], 99) * ms:.1f} ms, max {max(r['apply']) * ms:.1f} ms "
        f"({len(r['apply']):,} of {r['updates']:,} reached the table; the rest were collapsed into newer ones)"
    )
    print(
        f"render delay         mean {statistics.fmean(r['render']) * ms:.1f} ms, "
        f"p99 {pct(r['render'], 99) * ms:.1f} ms, max {max(r['render']) * ms:.1f} ms "
        f"({len(r['render']):,} updates drawn on the {r['visible_rows']} visible rows; "
        f"{r['undrawn']:,} were to rows off screen)"
    )
    print(
        f"RSS                  start {rss_start:.0f} MB, loaded {rss_loaded:.0f} MB, "
        f"end {rss_end:.0f} MB; per second: {' '.join(f'{x:.0f}' for x in samples)}"
    )
    growth = rss_end - rss_loaded
    ok = (
        r["first_render"] < 1.0
        and pct(r["render"], 99) < 0.1
        and rss_end < 250
        and growth < 0.1 * rss_loaded
    )
    print(
        f"bar                  {'met' if ok else 'NOT met'}: first render < 1 s, p99 < 100 ms, "
        f"RSS < 250 MB, growth {growth:+.0f} MB over the run"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
