"""10,000 every-minute schedules on one server: how late ticks fire, and idle CPU.

    python bench/schedules.py                     # 10,000 schedules, 2 minute ticks (~3 min)
    python bench/schedules.py --schedules 1000 --ticks 1

A real `jobctl server run` (SQLite, in a temporary data dir) with N schedules
`* * * * *` whose job is a `demo` job of 0 steps. The schedules are written to the
store before the server starts (N API calls would only measure creation). Lateness
of a tick = the job's created_at (stamped in the transaction that fires the tick)
- its nominal tick; every tick of every schedule must fire once. Idle CPU is the
server process's user+system time (/proc/PID/stat) over a window between ticks,
after the minute's jobs have run, next to the same server with no schedules (the
floor, measured in the same run). Bounded: at most --ticks (<= 5) minutes plus
start-up, and every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

US = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


async def seed(db: Path, n: int) -> None:
    from jobctl.server.schedule_records import ScheduleRow
    from jobctl.server.schedules import validate_spec
    from jobctl.server.store.sqlite import SQLiteStore

    store = SQLiteStore(str(db))
    await store.open()
    spec = validate_spec("* * * * *", "UTC", None)
    now = time.time_ns() // 1000
    first = spec.next_after(now)
    for i in range(n):
        await store.create_schedule(
            ScheduleRow(
                id=str(uuid.uuid4()),
                user_id="local",
                name=f"bench-{i:05d}",
                type="demo",
                cron=spec.cron,
                tz="UTC",
                every_us=None,
                input='{"steps":0}',
                overlap="allow",
                catchup_us=60 * US,
                catchup_policy="each",
                jitter_us=0,
                paused=0,
                note=None,
                next_tick=first,
                buffered_tick=None,
                last_tick=None,
                last_job_id=None,
                created_at=now,
                updated_at=now,
            )
        )
    await store.close()


class Server:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name
        self.db = self.root / "data" / "jobctl.db"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "JOBCTL_CONFIG_DIR": str(self.root / "config"),
            "JOBCTL_DATA_DIR": str(self.root / "data"),
        }

    def start(self) -> int:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "server", "run", "--port", "0", "--db", str(self.db)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        state = self.root / "data" / "server.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit((self.root / "server.log").read_text())
            if state.exists() and json.loads(state.read_text())["pid"] == self.proc.pid:
                return self.proc.pid
            time.sleep(0.05)
        self.stop()
        raise SystemExit("the server did not start within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def idle_cpu(pid: int, seconds: float) -> float:
    """Percent of one core the process used over `seconds`."""
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - t0)


def rows(db: Path, sql: str) -> list[tuple[int, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=2, help="minute ticks to measure (1-5)")
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    args = parser.parse_args()
    ticks = max(1, min(args.ticks, 5))
    root = Path(tempfile.mkdtemp(prefix="jobctl-bench-schedules-"))

    floor = Server(root, "floor")
    pid = floor.start()
    try:
        time.sleep(2)
        floor_cpu = idle_cpu(pid, args.idle_seconds)
    finally:
        floor.stop()

    server = Server(root, "scheduled")
    (server.root / "data").mkdir(parents=True)
    t0 = time.monotonic()
    asyncio.run(seed(server.db, args.schedules))
    print(
        f"seeded {args.schedules} schedules '* * * * *' in {time.monotonic() - t0:.1f}s", flush=True
    )
    pid = server.start()
    busy_cpu: list[float] = []
    idle: list[float] = []
    try:
        for _ in range(ticks):
            # wait for the next minute's tick and its jobs, then measure between ticks
            now = time.time()
            boundary = (int(now) // 60 + 1) * 60
            start_cpu = cpu_seconds(pid)
            time.sleep(max(0.0, boundary - now) + 1.0)
            deadline = time.time() + 50
            want = args.schedules
            while time.time() < deadline:
                done = rows(
                    server.db,
                    "SELECT COUNT(*) FROM jobs WHERE schedule_tick ="
                    f" {boundary * US} AND status = 'completed'",
                )[0][0]
                if done >= want:
                    break
                time.sleep(0.5)
            busy_cpu.append(cpu_seconds(pid) - start_cpu)
            left = (boundary + 60) - time.time() - 2
            if left > 3:
                idle.append(idle_cpu(pid, min(args.idle_seconds, left)))
        time.sleep(1)
    finally:
        server.stop()

    late = rows(
        server.db,
        "SELECT schedule_tick, created_at - schedule_tick FROM jobs"
        " WHERE schedule_tick IS NOT NULL",
    )
    by_tick: dict[int, list[float]] = {}
    for tick, lateness in late:
        by_tick.setdefault(tick, []).append(lateness / 1000)
    dupes = rows(
        server.db,
        "SELECT COUNT(*) - COUNT(DISTINCT schedule_id || ':' ||"
        " schedule_tick) FROM jobs WHERE schedule_tick IS NOT NULL",
    )[0][0]
    print(f"{args.schedules} schedules every minute, one server (SQLite), demo jobs of 0 steps")
    print(f"{'tick (UTC)':<20} {'jobs':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    all_late: list[float] = []
    for tick in sorted(by_tick):
        values = by_tick[tick]
        all_late += values
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(tick / US))
        print(
            f"{stamp:<20} {len(values):>6} {pct(values, 50):8.1f} {pct(values, 99):8.1f}"
            f" {max(values):8.1f}"
        )
    complete = all(len(v) == args.schedules for v in by_tick.values()) and len(by_tick) >= ticks
    print(
        f"every tick fired once for every schedule: {'yes' if complete else 'NO'}"
        f" (duplicates: {dupes})"
    )
    for i, cpu in enumerate(busy_cpu):
        print(f"tick {i + 1}: server CPU for firing and running its jobs: {cpu:.1f} s")
    idle_text = ", ".join(f"{c:.1f}%" for c in idle) or "not measured"
    print(
        f"server CPU while idle between ticks: {idle_text} of one core"
        f" (the same server with no schedules: {floor_cpu:.1f}%)"
    )
    p99 = pct(all_late, 99)
    verdict = "PASS" if p99 < 1000 and complete and not dupes else "FAIL"
    print(f"ticks fired late, p99: {p99:.1f} ms (bar < 1000 ms): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
