"""Reads on a long history (issue #15): a real `jobctl server run` on a jobs table of N rows.

    python bench/history.py                                  # 10k and 100k rows, SQLite
    python bench/history.py --rows 10000,1000000,10000000    # the issue's sizes (long)
    python bench/history.py --rows 200000 --db postgresql://postgres@127.0.0.1:5432/postgres
    python bench/history.py --rows 200000 --db cluster      # a throwaway PostgreSQL cluster

For each size: builds the table in SQL (tests/history_rows.py: 78% completed, 15% failed,
5% cancelled, 2% pending/running, over 8 days; plus `--sweep` rows past retention, 5% of
the table by default, at most 1,000,000), starts the server on it and

1. measures the retention sweep the server starts with (the failed jobs older than 7
   days, and with --sweep-in-build the rows past retention): its time and the worst
   /api/health latency and loop stall during it;
2. then each read `--repeat` times from one client: p50/p99 ms, the server process's
   CPU per request (all its threads, less what the health probe costs it; not
   PostgreSQL's own), and the worst /api/health latency seen during it (a second client asks for /api/health every
   10 ms all along, on its own connection).

Reads: /api/jobs first page (all users, service role; one user, the server token), each
filter (status, type, since, id prefix), a deep cursor page (the middle of the history),
show, stats (all users and one user), and /rest/v1/jobs filters.

Stalls: the worst /api/health latency, and the worst lag of the server's own event loop
less the time its thread waited for a CPU ("loop stall": bench/_loopwatch.py runs the
server and watches its loop). On a machine loaded by other work the first is mostly
the run queue; the second is what the server does to its own loop, and it is what the
bar below is judged on (both are printed).

Bar (printed, judged at 10M rows): every read p99 < 50 ms, stats < 100 ms, no loop
stall > 20 ms (reads and sweep). `--db postgresql://...`: a new database per size on
that server (dropped after, unless --keep). Figures on a loaded machine are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import jwt  # noqa: E402
from tests.history_rows import DAY, fill  # noqa: E402

from jobctl.server.records import now_us  # noqa: E402
from jobctl.server.store.base import encode_cursor  # noqa: E402

READ_BAR_MS, STATS_BAR_MS, STALL_BAR_MS = 50.0, 100.0, 20.0
SECRET = "bench-history-secret-0123456789abcdef"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def row_id(i: int) -> str:
    """The id tests/history_rows.py gives row i."""
    return f"{(i * 2654435761) % 4294967296:08x}-0000-4000-8000-{i:012d}"


# -- the database ---------------------------------------------------------------------
def new_db(base: str | None, folder: Path, rows: int) -> str:
    if base is None:
        return str(folder / f"history-{rows}.db")
    import psycopg

    name = f"jobctl_history_{rows}_{os.getpid()}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return base.rsplit("/", 1)[0] + "/" + name


def drop_db(base: str | None, db: str) -> None:
    if base is None:
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(db + suffix).unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db.rsplit('/', 1)[1]} WITH (FORCE)")  # type: ignore[arg-type]


async def migrate(db: str) -> None:
    from jobctl.server.store import open_store

    store = open_store(db)
    await store.open()
    await store.close()


def scalar(db: str, sql: str) -> Any:
    if db.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db) as conn:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
    else:
        import sqlite3

        conn = sqlite3.connect(db)
        try:
            row = conn.execute(sql).fetchone()
        finally:
            conn.close()
    return None if row is None else row[0]


# -- the server -----------------------------------------------------------------------
class Server:
    def __init__(self, db: str, folder: Path) -> None:
        self.folder = folder
        env = dict(os.environ)
        env.update({"JOBCTL_CONFIG_DIR": str(folder / "config"), "JOBCTL_DATA_DIR": str(folder / "data"),
                    "JOBCTL_JWT_SECRET": SECRET, "JOBCTL_NO_AUTOSTART": "1"})  # fmt: skip
        env.pop("JOBCTL_DB", None)
        state = folder / "server.json"
        self.log = open(folder / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.loop_file = folder / "loop.jsonl"  # bench/_loopwatch.py's notes
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "_loopwatch.py"), str(self.loop_file),
             "-m", "jobctl", "server", "run", "--port", "0", "--db", db,
             "--state-file", str(state)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 600  # a migration of 10M rows takes a while
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {folder / 'server.log'}")
            if state.exists():
                self.url = json.loads(state.read_text())["url"]
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("server did not start")
        self.local_token = (folder / "config" / "server-token").read_text().strip()
        claims = {"role": "service_role", "exp": int(time.time() + 86_400)}
        self.service_token = jwt.encode(claims, SECRET, algorithm="HS256")

    def cpu(self) -> float:
        """CPU seconds the server process has used (every thread; not PostgreSQL's)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def loop_notes(self) -> list[tuple[float, float]]:
        """(monotonic time it ended, ms) of each lag of the server's own loop over 2 ms,
        less the time its threads waited for a CPU (bench/_loopwatch.py)."""
        time.sleep(1.5)  # its notes are flushed every second
        if not self.loop_file.exists():
            return []
        notes = [json.loads(line) for line in self.loop_file.read_text().splitlines()]
        # when the stall ended (the watch woke): what held the loop ran just before
        return [(t + 0.005 + lag / 1000, own) for t, lag, own, _cpu in notes]

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                            timeout=120)  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


class HealthProbe(threading.Thread):
    """GET /api/health every 10 ms on its own connection: (start, latency s) samples."""

    def __init__(self, server: Server, limit_s: float) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, float]] = []
        self.stop_at = time.monotonic() + limit_s
        self.halt = threading.Event()

    def run(self) -> None:
        with self.server.client(self.server.local_token) as client:
            while not self.halt.is_set() and time.monotonic() < self.stop_at:
                t = time.monotonic()
                client.get("/api/health").raise_for_status()
                self.samples.append((t, time.monotonic() - t))
                time.sleep(0.01)

    def worst(self, start: float, end: float) -> float:
        """The worst latency of a probe that overlapped [start, end], in ms."""
        seen = [lat for t, lat in self.samples if t <= end and t + lat >= start]
        return max(seen, default=float("nan")) * 1000


def worst_own(notes: list[tuple[float, float]], start: float, end: float) -> float:
    """The worst of the loop's own lags (ms) that ended in [start, end]; 0: none over 2 ms."""
    return max((own for t, own in notes if start <= t <= end), default=0.0)


# -- one size -------------------------------------------------------------------------
def run_size(rows: int, args: argparse.Namespace, folder: Path) -> bool:
    db = new_db(args.db, folder, rows)
    try:
        asyncio.run(migrate(db))
        now = now_us()
        t = time.monotonic()
        took: dict[str, float] = {}
        expired = expired_rows(rows, args) if args.sweep_in_build else 0
        fill(db, rows, now, bulk=True, timings=took, expired=expired)
        parts = ", ".join(f"{what} {s:.0f} s" for what, s in took.items())
        print(f"\n== {rows:,} rows on {db.split('@')[-1]}: built in {time.monotonic() - t:.1f} s"
              f" ({parts}; load average {os.getloadavg()[0]:.1f})")  # fmt: skip
        return measure(db, rows, now, args, folder)
    finally:
        if not args.keep:
            drop_db(args.db, db)


def expired_rows(rows: int, args: argparse.Namespace) -> int:
    return args.sweep if args.sweep is not None else min(rows // 20, 1_000_000)


def expired_sql(now: int) -> str:
    """Rows past the server's retention (completed 30 days, failed and cancelled 7)."""
    return (f"SELECT COUNT(*) FROM jobs WHERE (status = 'completed' AND completed_at < {now - 30 * DAY})"
            f" OR (status IN ('failed', 'cancelled') AND completed_at < {now - 7 * DAY})")  # fmt: skip


def expired_exists_sql(now: int) -> str:
    """Whether any row is past retention: one index look-up, where the count reads
    every expired row's index entry (100 ms of a core for 1M rows, on the server's
    two cores)."""
    return (f"SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'completed' AND completed_at < {now - 30 * DAY})"
            f" OR EXISTS (SELECT 1 FROM jobs WHERE status IN ('failed', 'cancelled')"
            f" AND completed_at < {now - 7 * DAY})")  # fmt: skip


def wait_swept(db: str, probe: HealthProbe, what: str, limit_s: float, settle: float = 0) -> bool:
    """Until no row is past retention; prints the time and the worst health latency.

    Counting the rows left every 0.1 s cost the machine a core while a million were left
    (and the server's loop stalls came at that cadence): the count is taken once a second
    until the sweep has begun, then only whether any is left, every 0.1 s. The window
    judged begins at the last count that found none gone."""
    start = time.monotonic()
    before = int(scalar(db, expired_sql(now_us())))
    first_gone = None
    not_yet = start  # when a count last found every row still there
    left = before
    while time.monotonic() - start < limit_s and before:
        if first_gone is None:
            looked = time.monotonic()
            left = int(scalar(db, expired_sql(now_us())))
            if left < before:
                first_gone = not_yet
            else:
                not_yet = looked
            pause = 1.0
        else:
            left = int(scalar(db, expired_exists_sql(now_us())))
            pause = 0.1
        if not left:
            break
        time.sleep(pause)
    end = time.monotonic()
    if left:
        left = int(scalar(db, expired_sql(now_us())))
    time.sleep(settle)
    if not before:
        print(f"{what}: nothing past retention left (swept before the first look)")
        return True
    began = first_gone or start
    stall = probe.worst(began - 0.2, end)
    own = worst_own(probe.server.loop_notes(), began - 0.2, end)
    passed = own <= STALL_BAR_MS and not left
    print(
        f"{what}: {before - left:,} rows deleted in {end - began:.1f} s, worst health"
        f" {stall:.1f} ms, worst loop stall {own:.1f} ms {'ok' if passed else 'FAIL'}"
        + (f" ({left:,} left)" if left else "")
    )
    return passed


def measure(db: str, rows: int, now: int, args: argparse.Namespace, folder: Path) -> bool:
    server = Server(db, Path(tempfile.mkdtemp(dir=folder)))
    probe = HealthProbe(server, limit_s=4 * args.max_seconds)
    ok = True
    try:
        probe.start()
        # the sweep the server starts with: failed jobs 7-8 days old
        ok &= wait_swept(db, probe, "start-up sweep", args.max_seconds, settle=2)
        idle_from, idle_cpu = time.monotonic(), server.cpu()
        time.sleep(3)
        # the CPU the health probe alone costs, taken off each read's CPU figure
        args.idle_cpu_rate = (server.cpu() - idle_cpu) / (time.monotonic() - idle_from)
        idle = [lat * 1000 for t, lat in probe.samples if t >= idle_from]
        own = worst_own(server.loop_notes(), idle_from, idle_from + 3)
        print(f"idle server: /api/health p50 {pct(idle, 50):.1f} ms, max {max(idle, default=0):.1f} ms"
              f" (the machine's own noise floor for the health figures), loop stall {own:.1f} ms;"
              f" load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        ok &= run_reads(db, server, probe, rows, args)
        sweep_rows = 0 if args.sweep_in_build else expired_rows(rows, args)
        if sweep_rows:
            # the same shapes 32+ days ago, added beside the running server (10,000 per
            # transaction); its next retention pass (every 60 s) deletes them
            t = time.monotonic()
            for first in range(rows, rows + sweep_rows, 10_000):
                fill(db, min(10_000, rows + sweep_rows - first), now - 32 * DAY, first=first,
                     batch=10_000, analyze=False)  # fmt: skip
            print(f"added {sweep_rows:,} rows past retention in {time.monotonic() - t:.1f} s")
            ok &= wait_swept(db, probe, "retention sweep", args.max_seconds + 60)
    finally:
        probe.halt.set()
        server.stop()
    return ok


def run_reads(
    db: str, server: Server, probe: HealthProbe, rows: int, args: argparse.Namespace
) -> bool:
    middle = rows // 2 - (rows // 2) % 1000 + 1  # a completed job (i % 1000 == 1), mid-history
    created = int(scalar(db, f"SELECT created_at FROM jobs WHERE id = '{row_id(middle)}'"))
    deep = encode_cursor(created, row_id(middle))
    prefix = row_id(middle)[:4]
    reads: list[tuple[str, str, str]] = [
        ("list first page", "svc", "/api/jobs?limit=50"),
        ("list user (token's)", "local", "/api/jobs?limit=50"),
        ("list status=running", "svc", "/api/jobs?status=running&limit=50"),
        ("list status=failed", "svc", "/api/jobs?status=failed&limit=50"),
        ("list status=pending,running", "svc", "/api/jobs?status=pending&status=running&limit=50"),
        ("list type=hist_b", "svc", "/api/jobs?type=hist_b&limit=50"),
        ("list since=1h", "svc", "/api/jobs?since=1h&limit=50"),
        ("list user+status=failed", "local", "/api/jobs?status=failed&limit=50"),
        ("list id prefix", "svc", f"/api/jobs?id_prefix={prefix}&limit=50"),
        ("list deep cursor", "svc", f"/api/jobs?limit=50&cursor={deep}"),
        ("show", "svc", f"/api/jobs/{row_id(middle)}"),
        ("stats (all users)", "svc", "/api/stats"),
        ("stats (one user)", "local", "/api/stats"),
        ("rest status=eq.running", "svc", "/rest/v1/jobs?select=*&status=eq.running&order=created_at.desc&limit=50"),
        ("rest type=eq.hist_b", "svc", "/rest/v1/jobs?select=*&type=eq.hist_b&limit=50"),
        ("rest id=eq.<id>", "svc", f"/rest/v1/jobs?select=*&id=eq.{row_id(middle)}"),
    ]  # fmt: skip
    print(f"{'read':32} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>7} {'health max':>11}"
          f" {'loop stall':>11}  bar")  # fmt: skip
    ok = True
    spans: list[tuple[str, list[float], float, float]] = []
    cpu_ms: dict[str, float] = {}
    with server.client(server.service_token) as svc, server.client(server.local_token) as local:
        clients = {"svc": svc, "local": local}
        for name, who, path in reads:
            times = []
            start, cpu0 = time.monotonic(), server.cpu()
            for _ in range(args.repeat):
                t = time.perf_counter()
                answer = clients[who].get(path)
                times.append((time.perf_counter() - t) * 1000)
                if answer.status_code != 200:
                    print(f"  {name}: HTTP {answer.status_code} {answer.text[:200]}")
                    break
                if time.monotonic() - start > args.max_seconds:
                    break
            end = time.monotonic()
            busy = server.cpu() - cpu0 - args.idle_cpu_rate * (end - start)
            cpu_ms[name] = max(busy, 0.0) * 1000 / max(len(times), 1)
            spans.append((name, times, start, end))
    notes = server.loop_notes()
    (server.folder / "spans.json").write_text(json.dumps(spans))  # with the loop's notes
    for name, times, start, end in spans:
        stall = probe.worst(start, end)
        own = worst_own(notes, start, end)
        bar = STATS_BAR_MS if name.startswith("stats") else READ_BAR_MS
        passed = pct(times, 99) < bar and own <= STALL_BAR_MS
        ok &= passed
        print(f"{name:32} {pct(times, 50):8.1f} {pct(times, 99):8.1f} {cpu_ms[name]:7.1f}"
              f" {stall:9.1f}ms {own:9.1f}ms  {'ok' if passed else 'FAIL'}")  # fmt: skip
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="10000,100000", help="comma-separated table sizes")
    parser.add_argument("--db", default=None,
                        help="postgresql://... , or 'cluster' for a throwaway PostgreSQL"
                        " cluster (tests/pgcluster.py); default: SQLite files")  # fmt: skip
    parser.add_argument("--sweep", type=int, default=None,
                        help="rows past retention (default: 5%% of the table, at most 1M)")  # fmt: skip
    parser.add_argument("--sweep-in-build", action="store_true",
                        help="build the rows past retention with the table (in bulk, fast),"
                        " so that the server's start-up sweep deletes them before the reads;"
                        " default: added beside the running server after the reads"
                        " (10,000 a transaction)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=30, help="requests per read")
    parser.add_argument("--max-seconds", type=float, default=600, help="bound per phase")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--dir", default=None, help="where SQLite files go (default: a temp dir)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sizes = [int(s.replace("_", "")) for s in args.rows.split(",") if s.strip()]
    folder = Path(args.dir or tempfile.mkdtemp(prefix="jobctl-history-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    cluster = None
    if args.db == "cluster":
        from tests.pgcluster import PgCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("no PostgreSQL binaries (apt-get install postgresql)", file=sys.stderr)
            return 2
        # a server's settings for a history of GBs, not initdb's 128 MB of buffers
        cluster = PgCluster(bindir, settings={"shared_buffers": "1GB", "max_wal_size": "4GB",
                                              "maintenance_work_mem": "512MB"})  # fmt: skip
        cluster.start()
        args.db = cluster.url()
    try:
        for rows in sizes:
            results[rows] = run_size(rows, args, folder)
    finally:
        if cluster is not None:
            cluster.stop()
        if args.dir is None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print()
    for rows, passed in results.items():
        judged = " (the issue's bar is judged at 10M rows)" if rows < 10_000_000 else ""
        print(f"{rows:>12,} rows: {'PASS' if passed else 'FAIL'}{judged}")
    return 0 if all(results.values()) or max(sizes) < 10_000_000 else 1


if __name__ == "__main__":
    sys.exit(main())
