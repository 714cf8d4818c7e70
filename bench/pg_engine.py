"""jobctl on PostgreSQL, with 1 and 3 server processes, beside Procrastinate in the same run.

    python bench/pg_engine.py                       # everything, 3 repetitions
    python bench/pg_engine.py --reps 1 --servers 1 --skip-procrastinate
    python bench/pg_engine.py --db postgresql://user:pass@host/scratch   # an existing database
    python bench/engine.py --db postgresql://...                          # the same

Methodology and code are the peer harness's (../shared/bench/peers/common.py, imported
as is; see peer-bench.md): 5,000 no-op jobs enqueued as fast as one producer can while
the workers consume (rate = N / (start of last job - first enqueue)); latency = task
start - enqueue over 500 jobs sent at a steady 50/s after 50 warm-up jobs; each measured
`--reps` times on emptied tables with restarted workers; medians printed. The task body
is the same one-line `record()` for every system (bench/noop_jobs.py for jobctl).

The script starts its own throwaway PostgreSQL 15 cluster (durable: fsync and
synchronous_commit on, Debian's defaults otherwise; unix socket, as the peers used),
with one database for jobctl and one for Procrastinate, and stops it at the end.
With `--db postgresql://...` it runs on that database instead, in two schemas of its
own (jobctl_bench, procrastinate_bench) that it drops at the end. Use a scratch
database: notification channels are per database, so a jobctl server already running
on it would hear the benchmark's changes.

Rounds are interleaved (every configuration once, then again, `--reps` times), so a
slow spell of the machine falls on all of them alike; each round's 3-server/1-server
ratio is printed, and the medians.

jobctl runs as K processes of `jobctl server run --slots 2` on the same database, with no
concurrency limits (Procrastinate has none; with limits, claims take an advisory lock).
Two ways in:
  store  the producer inserts the job with jobctl's store API from synchronous code
         (`PostgresStore.create_job_sync`: INSERT + NOTIFY, one round trip), as
         Procrastinate's `defer` does: the like-for-like comparison;
  http   the producer POSTs /api/jobs, round-robin over the K servers (what apps do).
Procrastinate: the peer script bench_procrastinate.py, in a throwaway venv with
Procrastinate from PyPI (never committed), `worker --concurrency=2`.
"""

from __future__ import annotations

import argparse
import asyncio
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
NO_LIMITS = ["--limit", "user=0", "--limit", "key=0", "--limit", "org=0", "--limit", "decision=0"]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--lat-m", type=int, default=500)
    ap.add_argument("--lat-warmup", type=int, default=50)
    ap.add_argument("--lat-rate", type=float, default=50.0)
    ap.add_argument("--servers", default="1,3", help="server process counts to measure")
    ap.add_argument("--modes", default="store,http", help="jobctl enqueue paths: store,http")
    ap.add_argument("--limits", action="store_true", help="keep the default limits (3/user)")
    ap.add_argument(
        "--peers-dir", type=Path, default=Path(os.environ.get("PEERS_DIR", DEFAULT_PEERS_DIR))
    )
    ap.add_argument("--skip-procrastinate", action="store_true")
    ap.add_argument(
        "--bare-listeners",
        type=int,
        default=0,
        metavar="N",
        help="also measure 1 server beside N processes that only LISTEN (bare_listener.py)",
    )
    ap.add_argument(
        "--db",
        help="a scratch PostgreSQL database (postgresql://...) instead of a throwaway cluster",
    )
    ap.add_argument(
        "--work", type=Path, default=HERE / ".peers", help="scratch folder (venvs, results)"
    )
    return ap.parse_args()


def procrastinate_python(work: Path) -> Path:
    """A throwaway venv with Procrastinate from PyPI (never committed)."""
    venv = work / "venv-procr"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "procrastinate", "psycopg[binary]"], check=True
        )
    return py


def run_procrastinate(args: argparse.Namespace, dsn: str, reps: int) -> dict[str, Any]:
    py = procrastinate_python(args.work)
    env = dict(os.environ, PEERS=str(args.work), PYTHONDONTWRITEBYTECODE="1",
               PROCR_BENCH_DSN=dsn)  # fmt: skip
    cmd = [str(py), "bench_procrastinate.py", "--reps", str(reps), "-n", str(args.n),
           "--lat-m", str(args.lat_m), "--lat-warmup", str(args.lat_warmup),
           "--lat-rate", str(args.lat_rate), "--only", "throughput,latency"]  # fmt: skip
    subprocess.run(cmd, cwd=args.peers_dir, env=env, check=True, timeout=1800)
    return json.loads((args.work / "results" / "procrastinate.json").read_text())  # type: ignore[no-any-return]


class Servers:
    """K `jobctl server run` processes (each in its own process group, stopped by pgid)."""

    def __init__(self, workers: list[Any], urls: list[str]) -> None:
        self.workers = workers
        self.urls = urls

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


def run_jobctl(
    args: argparse.Namespace, url: str, mode: str, k: int, reps: int, listeners: int = 0
) -> dict[str, Any]:
    import common  # the peer harness (PEERS must be set before this import)
    import httpx
    import psycopg
    from _workers import Workers

    from jobctl.server.records import NewJob, dumps, now_us
    from jobctl.server.store.postgres import PostgresStore

    scratch = Path(tempfile.mkdtemp(prefix="jobctl-pgbench-", dir=args.work))
    env_extra = {
        "JOBCTL_CONFIG_DIR": str(scratch / "config"),
        "JOBCTL_DATA_DIR": str(scratch / "data"),
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(args.peers_dir), os.environ.get("PYTHONPATH", "")]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    limits = [] if args.limits else NO_LIMITS
    current: list[Servers] = []

    def reset() -> None:
        # TRUNCATE and no ANALYZE (as the peer scripts): the claim must not need statistics.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE jobs, steps, job_logs, idempotency_keys")

    def start_workers(rec: str) -> Servers:
        workers, urls = [], []
        for i in range(k):
            state = scratch / f"server-{i}.json"
            state.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "jobctl", "server", "run", "--port", "0", "--slots", "2",
                    "--db", url, "--functions", "noop_jobs", "--state-file", str(state), *limits]  # fmt: skip
            w = Workers(argv, {**env_extra, "BENCH_REC": rec}, f"jobctl-pg-{mode}-{k}.log")
            workers.append(w)
            deadline = time.monotonic() + 30
            while not state.exists():
                if w.proc.poll() is not None or time.monotonic() > deadline:
                    for started in workers:
                        started.stop()
                    raise RuntimeError("jobctl server did not start; see " + common.LOG_DIR)
                time.sleep(0.01)
            urls.append(json.loads(state.read_text())["url"])
        for i in range(listeners):
            ready = scratch / f"listener-{i}.ready"
            ready.unlink(missing_ok=True)
            argv = [sys.executable, str(HERE / "bare_listener.py"), url, str(ready)]
            workers.append(Workers(argv, env_extra, f"jobctl-pg-listener-{i}.log"))
            deadline = time.monotonic() + 30
            while not ready.exists():
                if workers[-1].proc.poll() is not None or time.monotonic() > deadline:
                    for started in workers:
                        started.stop()
                    raise RuntimeError("bare listener did not start; see " + common.LOG_DIR)
                time.sleep(0.01)
        current[:] = [Servers(workers, urls)]
        return current[0]

    def make_enqueuer():  # type: ignore[no-untyped-def]
        if mode == "store":
            store = PostgresStore(url, listen=False)

            def enq(seq: int, ts: float) -> None:
                new = NewJob(
                    str(uuid.uuid4()), "noop", dumps({"seq": seq, "enq_ts": ts}), "local", 1
                )
                store.create_job_sync(new, now_us(), 0)

            return enq, store.close_sync
        token = (scratch / "config" / "server-token").read_text().strip()
        clients = [
            httpx.Client(base_url=u, headers={"Authorization": f"Bearer {token}"})
            for u in current[0].urls
        ]
        turn = [0]

        def post(seq: int, ts: float) -> None:
            client = clients[turn[0] % len(clients)]
            turn[0] += 1
            r = client.post("/api/jobs", json={"type": "noop", "input": {"seq": seq, "enq_ts": ts}})
            r.raise_for_status()

        def close_all() -> None:
            for c in clients:
                c.close()

        return post, close_all

    tag = f"jobctl-pg-{mode}-{k}srv" + (f"-{listeners}listen" if listeners else "")
    return common.run_suite(  # type: ignore[no-any-return]
        tag, make_enqueuer, reset, start_workers, reps=reps,
        n=args.n, lat_m=args.lat_m, lat_warmup=args.lat_warmup, lat_rate=args.lat_rate,
        only=["throughput", "latency"],
        extra={"worker": f"{k} x jobctl server run --slots 2 {' '.join(limits)}"},
    )  # fmt: skip


def merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's rounds (each a run_suite result of one rep) as one result."""
    import common

    rates = [r["throughput"]["rate"]["median"] for r in rounds if r["throughput"]["rate"]]
    lat = [r["latency"] for r in rounds]
    return {
        "throughput": {"rate": common.summarize(rates) if rates else None},
        "latency": {
            key: common.summarize([x[key]["median"] for x in lat]) for key in ("p50_ms", "p99_ms")
        },
    }


def with_schema(url: str, schema: str) -> str:
    """The URL with `search_path` set to `schema` for every connection made with it."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def main() -> int:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.peers_dir / "common.py").exists():
        print(f"peer harness not found in {args.peers_dir} (set --peers-dir)", file=sys.stderr)
        return 2
    if args.db and not args.db.startswith(("postgresql://", "postgres://")):
        print("--db takes a postgresql:// URL", file=sys.stderr)
        return 2
    os.environ["PEERS"] = str(args.work)
    sys.path.insert(0, str(args.peers_dir))
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import psycopg
    from tests.pgcluster import PgCluster, find_bindir

    cluster = None
    schemas = ("jobctl_bench", "procrastinate_bench")
    if args.db:
        admin = args.db
        url, dsn = with_schema(args.db, schemas[0]), with_schema(args.db, schemas[1])
        try:
            psycopg.connect(admin, connect_timeout=10).close()
        except psycopg.Error as exc:
            print(f"cannot connect to --db: {exc}", file=sys.stderr)
            return 2
    else:
        bindir = find_bindir()
        if bindir is None:
            print("PostgreSQL binaries not found (apt-get install postgresql)", file=sys.stderr)
            return 2
        cluster = PgCluster(bindir, durable=True).start()
        admin = cluster.url(unix=True)
        url = cluster.url("bench", unix=True)
        dsn = f"host={cluster.sockdir} port={cluster.port} dbname=bench_procr user=postgres"
    configs = [
        (k, mode)
        for k in [int(x) for x in args.servers.split(",") if x]
        for mode in [m for m in args.modes.split(",") if m]
    ]
    rounds: dict[str, list[dict[str, Any]]] = {}
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            if cluster is not None:
                conn.execute("CREATE DATABASE bench")
                conn.execute("CREATE DATABASE bench_procr")
            else:
                for schema in schemas:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                    conn.execute(f"CREATE SCHEMA {schema}")
            version = conn.execute("SHOW server_version").fetchone()
        asyncio.run(_migrate(url))
        for _ in range(args.reps):
            for k, mode in configs:
                name = f"jobctl, {k} server{'s' if k > 1 else ''} ({mode} enqueue)"
                rounds.setdefault(name, []).append(run_jobctl(args, url, mode, k, 1))
            if args.bare_listeners:
                name = f"jobctl, 1 server + {args.bare_listeners} bare listeners (store)"
                rounds.setdefault(name, []).append(
                    run_jobctl(args, url, "store", 1, 1, args.bare_listeners)
                )
            if not args.skip_procrastinate:
                name = "Procrastinate (worker --concurrency=2)"
                rounds.setdefault(name, []).append(run_procrastinate(args, dsn, 1))
    finally:
        if cluster is not None:
            cluster.stop()
        else:
            with psycopg.connect(admin, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    results = {name: merge(runs) for name, runs in rounds.items()}

    print(
        f"\nPostgreSQL {version[0] if version else '?'}; {args.n} no-op jobs, 2 slots per server"
        f" process; latency at {args.lat_rate:g} jobs/s; median of {args.reps} interleaved rounds"
    )
    print_table(results, 48)
    procr = next((r for n, r in results.items() if n.startswith("Procrastinate")), None)
    one = results.get("jobctl, 1 server (store enqueue)")
    three = results.get("jobctl, 3 servers (store enqueue)")
    if procr and one:
        p_rate, _, p_p99 = figures(procr)
        rate, _, p99 = figures(one)
        print(f"\n1 server: {rate / p_rate:.2f}x Procrastinate's throughput (bar 2x): "
              f"{'PASS' if rate >= 2 * p_rate else 'FAIL'}")  # fmt: skip
        print(f"p99 latency: {p99:.2f} ms vs Procrastinate {p_p99:.2f} ms: "
              f"{'PASS' if p99 <= p_p99 else 'FAIL'}")  # fmt: skip
    if one and three:
        pairs = zip(
            rounds["jobctl, 1 server (store enqueue)"],
            rounds["jobctl, 3 servers (store enqueue)"],
            strict=True,
        )
        ratios = [figures(b)[0] / figures(a)[0] for a, b in pairs]
        ratio = figures(three)[0] / figures(one)[0]
        print(f"3 servers: {ratio:.2f}x one server's throughput (bar: not lower): "
              f"{'PASS' if ratio >= 1 else 'FAIL'}; by round: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}")  # fmt: skip
    return 0


async def _migrate(url: str) -> None:
    from jobctl.server.store.postgres import PostgresStore

    store = PostgresStore(url, listen=False)
    await store.open()
    await store.close()


if __name__ == "__main__":
    raise SystemExit(main())
