"""The engine and the SQLite store alone, in one process (no HTTP, no sockets): N jobs
in flight, each `calls` steps of `seconds` (an asyncio sleep) with a progress report
after each, as bench/inflight.py's waiter. Prints the process's CPU per job-call, how
long the writer's COMMITs held the event loop, and the loop's lag (a 10 ms sleep's
overshoot). Run it against another tree with PYTHONPATH=that/src.

    python bench/inflight_engine.py --jobs 2000 --calls 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
import uuid
from typing import Any

from jobctl.server.engine import Engine, EngineSettings
from jobctl.server.jobcontext import JobContext
from jobctl.server.records import COMPLETED, Change, Limits, NewJob, now_us
from jobctl.server.registry import Registry
from jobctl.server.store.sqlite import SQLiteStore


class TimedCommits:
    """The writer connection, with each COMMIT timed (the rest passed through)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.commits: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, *args: Any) -> Any:
        if sql != "COMMIT":
            return self._conn.execute(sql, *args)
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, *args)
        finally:
            self.commits.append(time.perf_counter() - started)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


async def run(args: argparse.Namespace) -> None:
    registry = Registry()

    @registry.job("waiter", retries=0, timeout=3600)
    async def waiter(ctx: JobContext) -> int:
        async def call(i: int) -> int:
            await asyncio.sleep(args.seconds)
            return i

        for i in range(args.calls):
            await ctx.step.run(f"call-{i}", call, i)
            await ctx.progress(100 * (i + 1) / args.calls, f"call {i + 1}/{args.calls}")
        return args.calls

    store = SQLiteStore(os.path.join(tempfile.mkdtemp(prefix="jobctl-engine-"), "e.db"))
    await store.open()
    timed = TimedCommits(store.conn)
    store._conn = timed  # type: ignore[assignment]
    done = asyncio.Event()
    counts = {"changes": 0, "completed": 0}

    def listener(change: Change) -> None:
        counts["changes"] += 1
        if change.table == "jobs" and getattr(change.row, "status", None) == COMPLETED:
            counts["completed"] += 1
            if counts["completed"] >= args.jobs:
                done.set()

    store.changes.add_listener(listener)
    engine = Engine(store, registry, EngineSettings(slots=args.jobs, limits=Limits(None, (), None)))
    await engine.start()
    lags: list[float] = []

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)

    prober = asyncio.create_task(probe())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(0, args.jobs, 100):
        news = [NewJob(str(uuid.uuid4()), "waiter", "{}", f"user-{j % 100:03d}", 1)
                for j in range(i, min(args.jobs, i + 100))]  # fmt: skip
        await store.create_jobs(news, now_us(), 86_400_000_000)
        engine.wake()
        await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), args.timeout)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await prober
    await engine.stop(1)
    await store.close()
    commits = timed.commits
    slow = [c for c in commits if c > 0.005]
    print(f"{args.jobs} jobs x {args.calls} calls of {args.seconds:g} s: wall {wall:.1f} s, CPU "
          f"{cpu:.2f} s = {cpu / (args.jobs * args.calls) * 1e6:.0f} us per job-call "
          f"({counts['changes']} changes)")  # fmt: skip
    print(f"commits {len(commits)} holding the loop {sum(commits):.2f} s: p50 "
          f"{pct(commits, 50) * 1e3:.2f} ms, p99 {pct(commits, 99) * 1e3:.1f} ms, max "
          f"{max(commits, default=0) * 1e3:.0f} ms; {len(slow)} over 5 ms ({sum(slow):.2f} s)")  # fmt: skip
    print(f"loop lag p50 {pct(lags, 50) * 1e3:.1f} ms, p99 {pct(lags, 99) * 1e3:.1f} ms, max "
          f"{max(lags, default=0) * 1e3:.0f} ms; load average {os.getloadavg()[0]:.1f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=600.0)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
