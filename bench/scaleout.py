"""Scale-out as separate machines would see it: 1, 2 and 4 servers on one PostgreSQL,
each in its own cgroup v1 `cpu` group capped at `--cap` of a core (a small machine),
running jobs whose step burns `--ms` of CPU, with the submits spread round-robin over
the servers (as a load balancer in front of them would); then the same uncapped.

    python bench/scaleout.py                      # cap 0.25 core, 10 ms jobs, 1,2,4
    python bench/scaleout.py --cap 0.3 --per-server 300 --servers 1,4
    python bench/scaleout.py --uncapped-only      # no cgroups (or none to be had)

A throwaway PostgreSQL cluster (tests/pgcluster.py; PostgreSQL itself is not capped),
a fresh database per run. The producer POSTs lists of `--batch` jobs (`-n` = servers x
`--per-server` in all), each list to the next server, from `--clients` threads, while
the servers run them. Throughput = jobs / (last completed_at - first created_at), read
from the database. Groups are made under /sys/fs/cgroup/cpu/ (root only) and removed
at the end; without cgroup v1 `cpu`, the script says so and prints uncapped figures only.
Bar: 4 capped servers at least 3.2x one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
NO_LIMITS = ["--limit", "user=0", "--limit", "key=0", "--limit", "org=0", "--limit", "decision=0"]
BAR = 3.2


def cgroups_available() -> bool:
    return (CGROUP / "cpu.cfs_quota_us").exists() and os.access(CGROUP, os.W_OK)


class CpuGroup:
    """/sys/fs/cgroup/cpu/<name> with a quota of `cap` cores; removed by `remove()`."""

    def __init__(self, name: str, cap: float) -> None:
        self.path = CGROUP / name
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text(str(int(cap * PERIOD_US)))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:  # processes still leaving
                time.sleep(0.1)
        print(f"could not remove the cgroup {self.path}", file=sys.stderr)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_servers(
    k: int, db: str, scratch: Path, cap: float | None, slots: int
) -> tuple[list[subprocess.Popen[bytes]], list[str], list[CpuGroup], str]:
    env = dict(os.environ, JOBCTL_CONFIG_DIR=str(scratch / "config"),
               JOBCTL_DATA_DIR=str(scratch / "data"),
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    groups: list[CpuGroup] = []
    urls: list[str] = []
    for i in range(k):
        state = scratch / f"server-{i}.json"
        group = CpuGroup(f"jobctl-scaleout-{os.getpid()}-{i}", cap) if cap else None
        log = open(scratch / f"server-{i}.log", "wb")  # noqa: SIM115 - the child holds it
        argv = [sys.executable, "-m", "jobctl", "server", "run", "--port", "0",
                "--slots", str(slots), "--db", db, "--functions", "scaleout_jobs",
                "--state-file", str(state), *NO_LIMITS]  # fmt: skip
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        if group is not None:
            group.add(proc.pid)  # before it starts its threads: they inherit the group
            groups.append(group)
        procs.append(proc)
    deadline = time.monotonic() + 120
    for i, proc in enumerate(procs):
        state = scratch / f"server-{i}.json"
        while not state.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {i} did not start; see {scratch}/server-{i}.log")
            time.sleep(0.05)
        urls.append(json.loads(state.read_text())["url"])
    token = (scratch / "config" / "server-token").read_text().strip()
    return procs, urls, groups, token


def stop_servers(procs: list[subprocess.Popen[bytes]], groups: list[CpuGroup]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    for group in groups:
        group.remove()


def run_once(args: argparse.Namespace, cluster: object, k: int, cap: float | None) -> float:
    import httpx
    import psycopg

    name = f"scale_{k}_{'capped' if cap else 'free'}_{int(time.time() * 1000) % 10**8}"
    admin = cluster.url()  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    db = cluster.url(name)  # type: ignore[attr-defined]
    scratch = Path(tempfile.mkdtemp(prefix="jobctl-scaleout-"))
    n = k * args.per_server
    procs, urls, groups, token = start_servers(k, db, scratch, cap, args.slots)
    errors: list[str] = []
    try:
        # One schema-warming look per server, then the clock starts with the first submit.
        for url in urls:
            httpx.get(url + "/api/health", timeout=30).raise_for_status()
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        lists = [min(args.batch, n - i) for i in range(0, n, args.batch)]
        next_list = iter(enumerate(lists))
        lock = threading.Lock()

        def producer() -> None:
            clients = [httpx.Client(base_url=u, timeout=60,
                                    headers={"Authorization": f"Bearer {token}"}) for u in urls]  # fmt: skip
            try:
                while True:
                    with lock:
                        item = next(next_list, None)
                    if item is None:
                        return
                    index, size = item
                    body = [{"type": "burn", "input": {"ms": args.ms}}] * size
                    r = clients[index % len(clients)].post("/api/jobs", json=body)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
            finally:
                for c in clients:
                    c.close()

        threads = [threading.Thread(target=producer) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + args.timeout
        with psycopg.connect(db, autocommit=True) as conn:
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT count(*) FROM jobs WHERE status IN ('completed', 'failed')"
                ).fetchone()[0]  # type: ignore[index]
                if done >= n:
                    break
                time.sleep(0.2)
            first, last, completed = conn.execute(
                "SELECT min(created_at), max(completed_at),"
                " count(*) FILTER (WHERE status = 'completed') FROM jobs"
            ).fetchone()  # type: ignore[misc]
        used = sum(cpu_seconds(p.pid) for p in procs) - cpu0
    finally:
        stop_servers(procs, groups)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]
    if errors:
        print(f"  {len(errors)} submit(s) refused, first: {errors[0]}", file=sys.stderr)
    if completed < n:
        print(f"  only {completed} of {n} jobs completed in time", file=sys.stderr)
    rate = completed / ((last - first) / 1e6) if completed and last else 0.0
    label = f"{cap:g} core each" if cap else "uncapped"
    cpu = f"; server CPU per job {used / max(1, completed) * 1000:.1f} ms (all servers)"
    print(f"  {k} server(s), {label}: {completed} jobs at {rate:.1f} jobs/s{cpu}", flush=True)
    return rate


def report(title: str, rates: dict[int, float], bar: float | None) -> None:
    one = rates.get(1)
    print(title)
    for k, rate in rates.items():
        ratio = f" = {rate / one:.2f}x one" if one else ""
        print(f"  {k} server(s): {rate:7.1f} jobs/s{ratio}")
    if bar is not None and one and 4 in rates:
        ratio = rates[4] / one
        print(f"  4 servers / 1: {ratio:.2f}x (bar {bar}x): {'PASS' if ratio >= bar else 'FAIL'}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--servers", default="1,2,4")
    ap.add_argument("--cap", type=float, default=0.25, help="cores per server (cgroup quota)")
    ap.add_argument("--ms", type=float, default=10.0, help="CPU milliseconds per job's step")
    ap.add_argument("--per-server", type=int, default=150, help="jobs per server in a run")
    ap.add_argument("--batch", type=int, default=10, help="jobs per POST /api/jobs list")
    ap.add_argument("--clients", type=int, default=4, help="producer threads")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300.0, help="per run")
    ap.add_argument("--uncapped-only", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.pgcluster import PgCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL binaries found (/usr/lib/postgresql/*/bin)", file=sys.stderr)
        return 2
    counts = [int(k) for k in args.servers.split(",") if k]
    capped = not args.uncapped_only
    if capped and not cgroups_available():
        print(f"cgroup v1 cpu controller not available at {CGROUP} (or not root): "
              "printing uncapped figures only")  # fmt: skip
        capped = False
    cluster = PgCluster(bindir, settings={"max_connections": "300"}).start()
    try:
        results: dict[str, dict[int, float]] = {}
        modes = ([args.cap] if capped else []) + [None]
        for cap in modes:
            key = f"capped at {cap:g} core each" if cap else "uncapped"
            print(f"{key}:", flush=True)
            results[key] = {k: run_once(args, cluster, k, cap) for k in counts}
    finally:
        cluster.stop()
    print(f"\njobs of one {args.ms:g} ms CPU step, submits in lists of {args.batch} "
          f"round-robin over the servers, {args.per_server} jobs per server")  # fmt: skip
    for key, rates in results.items():
        report(key, rates, BAR if key.startswith("capped") else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
