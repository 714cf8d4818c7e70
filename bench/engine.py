"""Engine throughput and enqueue-to-start latency, beside Huey (SQLite) in the same run.

    python bench/engine.py                 # jobctl (store + HTTP enqueue) and Huey
    python bench/engine.py --reps 1 -n 2000 --skip-huey
    python bench/engine.py --db postgresql://...   # PostgreSQL, 1 and 3 servers, beside
                                                   # Procrastinate: runs bench/pg_engine.py

Methodology and code are the peer harness's (../shared/bench/peers/common.py,
imported as is): 5,000 no-op jobs enqueued as fast as one producer can while the
workers consume (rate = N / (start of last job - first enqueue)); latency = task
start - enqueue over 500 jobs sent at a steady 50/s after 50 warm-up jobs; each
measured `--reps` times on a wiped store with restarted workers; medians printed.
The task body is the same one-line `record()` for every system.

jobctl runs as `jobctl server run --slots 2` (at most 2 jobs at once, as the peers'
2 workers). Two ways in:
  store  the producer writes the job row with jobctl's store API in its own process,
         as Huey's producer writes to its SQLite file (the like-for-like comparison);
  http   the producer POSTs /api/jobs with a keep-alive httpx client (what apps do).

And the submit rate over HTTP alone (`--modes submit`, in the default set): `-n` jobs
one request each (bar 1,500 jobs/s), then `-n` jobs in lists of `--batch` (100; bar
10,000 jobs/s), while the server runs them, from three clients in turn: one keep-alive
httpx client sending one request at a time (httpx's own CPU, 600-800 us a request,
caps it below 1,500/s whatever the server does), then bench/_rawhttp.py's light client
on one connection, and on `--connections` (16) with a request in flight on each (an
app's API with that many handlers submitting at once; the bars are for this one).
Each phase starts when the jobs before it have run. Printed with the server's and the
client's CPU per job (utime+stime from /proc) and a GET /api/health rate as a measure
of how fast the machine is at the time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _report import figures, print_table  # bench/, the script's folder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_PEERS_DIR = ROOT.parent / "shared" / "bench" / "peers"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--lat-m", type=int, default=500)
    ap.add_argument("--lat-warmup", type=int, default=50)
    ap.add_argument("--lat-rate", type=float, default=50.0)
    ap.add_argument("--modes", default="store,http,submit", help="store,http,submit")
    ap.add_argument("--batch", type=int, default=100, help="jobs per list in submit mode")
    ap.add_argument(
        "--connections", type=int, default=16, help="the light client's sockets in submit mode"
    )
    ap.add_argument(
        "--peers-dir", type=Path, default=Path(os.environ.get("PEERS_DIR", DEFAULT_PEERS_DIR))
    )
    ap.add_argument(
        "--huey-variant", default="fastpoll", help="fastpoll (5 ms poll) or default (100 ms)"
    )
    ap.add_argument("--skip-huey", action="store_true")
    ap.add_argument(
        "--work", type=Path, default=HERE / ".peers", help="scratch folder (venvs, results)"
    )
    return ap.parse_args()


def huey_python(work: Path) -> Path:
    """A throwaway venv with Huey from PyPI (never committed)."""
    venv = work / "venv-huey"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "huey"], check=True)
    return py


def run_huey(args: argparse.Namespace) -> dict[str, object]:
    py = huey_python(args.work)
    env = dict(os.environ, PEERS=str(args.work), PYTHONDONTWRITEBYTECODE="1")
    cmd = [str(py), "bench_huey.py", "--variant", args.huey_variant, "--reps", str(args.reps),
           "-n", str(args.n), "--lat-m", str(args.lat_m), "--lat-warmup", str(args.lat_warmup),
           "--lat-rate", str(args.lat_rate), "--only", "throughput,latency"]  # fmt: skip
    subprocess.run(cmd, cwd=args.peers_dir, env=env, check=True, timeout=1800)
    name = "huey" if args.huey_variant == "default" else f"huey-{args.huey_variant}"
    return json.loads((args.work / "results" / f"{name}.json").read_text())  # type: ignore[no-any-return]


def run_jobctl(args: argparse.Namespace, mode: str) -> dict[str, object]:
    import common  # the peer harness (PEERS must be set before this import)
    import httpx
    from _workers import Workers

    from jobctl.server.records import NewJob, dumps, now_us
    from jobctl.server.store.sqlite import SQLiteStore

    scratch = Path(tempfile.mkdtemp(prefix="jobctl-bench-", dir=args.work))
    db = scratch / "bench.db"
    state = scratch / "server.json"
    env_extra = {
        "JOBCTL_CONFIG_DIR": str(scratch / "config"),
        "JOBCTL_DATA_DIR": str(scratch / "data"),
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(args.peers_dir), os.environ.get("PYTHONPATH", "")]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [sys.executable, "-m", "jobctl", "server", "run", "--port", "0", "--slots", "2",
            "--db", str(db), "--functions", "noop_jobs", "--state-file", str(state)]  # fmt: skip

    def reset() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)

    def start_workers(rec: str) -> common.Workers:
        state.unlink(missing_ok=True)
        workers = Workers(argv, {**env_extra, "BENCH_REC": rec}, f"jobctl-{mode}.log")
        deadline = time.monotonic() + 30
        while not state.exists():
            if workers.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("jobctl server did not start; see " + common.LOG_DIR)
            time.sleep(0.01)
        return workers

    def make_enqueuer():  # type: ignore[no-untyped-def]
        if mode == "store":
            store = SQLiteStore(str(db))
            store.open_sync(lock=False)

            def enq(seq: int, ts: float) -> None:
                new = NewJob(
                    str(uuid.uuid4()), "noop", dumps({"seq": seq, "enq_ts": ts}), "local", 1
                )
                store.create_job_sync(new, now_us(), 0)

            return enq, store.close_sync
        url = json.loads(state.read_text())["url"]
        token = (scratch / "config" / "server-token").read_text().strip()
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})

        def post(seq: int, ts: float) -> None:
            r = client.post("/api/jobs", json={"type": "noop", "input": {"seq": seq, "enq_ts": ts}})
            r.raise_for_status()

        return post, client.close

    only = ["throughput", "latency"] if mode == "http" else ["enqueue", "throughput", "latency"]
    return common.run_suite(  # type: ignore[no-any-return]
        f"jobctl-{mode}", make_enqueuer, reset, start_workers, reps=args.reps, n=args.n,
        lat_m=args.lat_m, lat_warmup=args.lat_warmup, lat_rate=args.lat_rate, only=only,
        extra={"worker": "jobctl server run --slots 2"},
    )  # fmt: skip


SINGLE_BAR, BATCH_BAR = 1500.0, 10000.0


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_submit(args: argparse.Namespace) -> dict[str, float]:
    """Submit rates over HTTP: single submits, then lists, from each client in turn."""
    import httpx
    from _rawhttp import RawClient
    from _workers import Workers

    scratch = Path(tempfile.mkdtemp(prefix="jobctl-bench-", dir=args.work))
    state = scratch / "server.json"
    env_extra = {
        "JOBCTL_CONFIG_DIR": str(scratch / "config"),
        "JOBCTL_DATA_DIR": str(scratch / "data"),
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(args.peers_dir), os.environ.get("PYTHONPATH", "")]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
        "BENCH_REC": str(scratch / "rec"),
    }
    argv = [sys.executable, "-m", "jobctl", "server", "run", "--port", "0", "--slots", "2",
            "--db", str(scratch / "bench.db"), "--functions", "noop_jobs",
            "--state-file", str(state)]  # fmt: skip
    workers = Workers(argv, env_extra, "jobctl-submit.log")
    out: dict[str, float] = {}
    seq = 0

    def job() -> dict[str, object]:
        nonlocal seq
        seq += 1
        return {"type": "noop", "input": {"seq": seq, "enq_ts": time.monotonic()}}

    def timed(label: str, n: int, send: Any, *send_args: Any) -> None:
        drained = time.monotonic() + 60  # each phase starts with no jobs left to run
        while time.monotonic() < drained:
            left = httpx.get(f"{url}/api/jobs", params={"status": "pending,running", "limit": 1},
                             headers={"Authorization": f"Bearer {token}"}).json()["jobs"]  # fmt: skip
            if not left:
                break
            time.sleep(0.05)
        t0, c0, k0 = time.perf_counter(), _cpu(pid), time.process_time()
        send(*send_args)
        out[f"{label} jobs/s"] = n / (time.perf_counter() - t0)
        out[f"{label} server us/job"] = (_cpu(pid) - c0) / n * 1e6
        out[f"{label} client us/job"] = (time.process_time() - k0) / n * 1e6

    try:
        deadline = time.monotonic() + 30
        while not state.exists():
            if workers.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("jobctl server did not start")
            time.sleep(0.01)
        pid = workers.proc.pid
        url = json.loads(state.read_text())["url"]
        token = (scratch / "config" / "server-token").read_text().strip()
        n, batch = args.n, args.batch
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            for _ in range(200):  # warm-up
                c.post("/api/jobs", json=job()).raise_for_status()
            checks = min(n, 2000)
            timed("health", checks, lambda: [c.get("/api/health").raise_for_status()
                                              for _ in range(checks)])  # fmt: skip
            timed("httpx single", n, lambda: [c.post("/api/jobs", json=job()).raise_for_status()
                                              for _ in range(n)])  # fmt: skip

            def httpx_lists() -> None:
                for i in range(0, n, batch):
                    items = [job() for _ in range(min(batch, n - i))]
                    r = c.post("/api/jobs", json=items)
                    r.raise_for_status()
                    assert r.json()["created"] == len(items), r.text

            timed("httpx batch", n, httpx_lists)

        def created(count: int) -> Any:
            def check(status: int, body: bytes) -> None:
                if count == 1:
                    assert status == 201, body[:300]
                else:
                    assert json.loads(body)["created"] == count, body[:300]

            return check

        for conns in (1, args.connections):
            raw = RawClient(url, token, conns)
            try:
                singles = (raw.request_bytes("POST", "/api/jobs", job()) for _ in range(n))
                timed(f"raw{conns} single", n, raw.run, singles, created(1))
                lists = (raw.request_bytes("POST", "/api/jobs", [job() for _ in range(batch)])
                         for _ in range(n // batch))  # fmt: skip
                timed(f"raw{conns} batch", n // batch * batch, raw.run, lists, created(batch))
            finally:
                raw.close()
    finally:
        workers.stop()
    out["connections"] = args.connections
    return out


def print_submit(out: dict[str, float], batch: int) -> None:
    # A client that sends one request at a time is capped by its own CPU per request
    # (building it, parsing the answer) whatever the server does: 1e6 / client us.
    conns = int(out["connections"])
    print(
        f"\nsubmit over HTTP (machine: GET /api/health from httpx {out['health jobs/s']:.0f}/s,"
        f" {out['health server us/job']:.0f} us server CPU and"
        f" {out['health client us/job']:.0f} us client CPU each)"
    )
    for client, label in (("httpx", "one httpx client, one request at a time"),
                          ("raw1", "the light client (bench/_rawhttp.py), one connection"),
                          (f"raw{conns}", f"the light client, {conns} connections,"
                                          " one request in flight on each")):  # fmt: skip
        print(f"  {label}:")
        for what, bar in (("single", SINGLE_BAR), ("batch", BATCH_BAR)):
            key = f"{client} {what}"
            rate = out[f"{key} jobs/s"]
            name = "single submits" if what == "single" else f"lists of {batch}"
            verdict = (
                f" bar {bar:,.0f}: {'PASS' if rate >= bar else 'FAIL'}" if client != "httpx" else ""
            )
            print(
                f"    {name:16} {rate:8.0f} jobs/s ({out[f'{key} server us/job']:.0f} us server"
                f" CPU, {out[f'{key} client us/job']:.0f} us client CPU per job){verdict}"
            )


def main() -> int:
    if any(a == "--db" or a.startswith("--db=") for a in sys.argv[1:]):
        # The PostgreSQL benchmark has its own options (servers, Procrastinate); it takes
        # --db URL for a database to run on (without it, a throwaway cluster of its own).
        sys.path.insert(0, str(HERE))
        import pg_engine

        return pg_engine.main()
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.peers_dir / "common.py").exists():
        print(f"peer harness not found in {args.peers_dir} (set --peers-dir)", file=sys.stderr)
        return 2
    os.environ["PEERS"] = str(args.work)
    sys.path.insert(0, str(args.peers_dir))
    sys.path.insert(0, str(HERE))
    results: dict[str, dict[str, object]] = {}
    modes = [m for m in args.modes.split(",") if m]
    submit = run_submit(args) if "submit" in modes else None
    for mode in [m for m in modes if m != "submit"]:
        results[f"jobctl ({mode} enqueue)"] = run_jobctl(args, mode)
    if not args.skip_huey:
        results[f"Huey SQLite ({args.huey_variant})"] = run_huey(args)

    print(
        f"\n{args.n} no-op jobs, 2 slots; latency at {args.lat_rate:g} jobs/s; median of {args.reps}"
    )
    if results:
        print_table(results, 32)
    if submit is not None:
        print_submit(submit, args.batch)
    huey = next((r for n, r in results.items() if n.startswith("Huey")), None)
    ours = results.get("jobctl (store enqueue)")
    if huey and ours:
        h_rate, _, h_p99 = figures(huey)
        rate, _, p99 = figures(ours)
        print(f"\nthroughput: {rate / h_rate:.2f}x Huey (bar 1x, goal 2x): "
              f"{'PASS' if rate >= h_rate else 'FAIL'}")  # fmt: skip
        print(
            f"p99 latency: {p99:.2f} ms vs Huey {h_p99:.2f} ms: {'PASS' if p99 <= h_p99 else 'FAIL'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
