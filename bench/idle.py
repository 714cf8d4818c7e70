"""What an idle server costs: CPU of `jobctl server run` with no jobs and no sockets.

    python bench/idle.py                     # SQLite, 30 s
    python bench/idle.py --seconds 10
    python bench/idle.py --db postgresql     # a throwaway PostgreSQL cluster of its own
    python bench/idle.py --db postgresql://user@host/scratch

The server is started on a fresh data dir, left to settle (`--settle` seconds, after its
start-up), then its utime+stime (/proc/<pid>/stat) is read at the start and the end of
the window. Printed: the share of one core it used, against the bar (0.5%).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BAR = 0.5  # percent of one core
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_server(db: str, scratch: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    state = scratch / "server.json"
    env = dict(
        os.environ,
        JOBCTL_CONFIG_DIR=str(scratch / "config"),
        JOBCTL_DATA_DIR=str(scratch / "data"),
    )
    argv = [sys.executable, "-m", "jobctl", "server", "run", "--port", "0", "--db", db,
            "--state-file", str(state), *extra]  # fmt: skip
    log = open(scratch / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while not state.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"the server did not start; see {scratch / 'server.log'}")
        time.sleep(0.05)
    return proc, json.loads(state.read_text())["url"]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def measure(proc: subprocess.Popen[bytes], seconds: float) -> float:
    """Percent of one core over `seconds` of wall time."""
    t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_seconds(proc.pid)
    return 100.0 * (c1 - c0) / (t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=30.0, help="measuring window")
    ap.add_argument("--settle", type=float, default=3.0, help="wait after start-up")
    ap.add_argument("--db", default="sqlite", help="sqlite, postgresql (own cluster), or a URL")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="jobctl-idle-"))
    cluster = None
    if args.db == "sqlite":
        db = str(scratch / "idle.db")
    elif args.db == "postgresql":
        sys.path.insert(0, str(ROOT))
        from tests.pgcluster import PgCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("no PostgreSQL binaries found (/usr/lib/postgresql/*/bin)", file=sys.stderr)
            return 2
        cluster = PgCluster(bindir).start()
        db = cluster.url()
    else:
        db = args.db
    try:
        proc, url = start_server(db, scratch, [])
        try:
            time.sleep(args.settle)
            share = measure(proc, args.seconds)
        finally:
            stop(proc)
    finally:
        if cluster is not None:
            cluster.stop()
    kind = "sqlite" if args.db == "sqlite" else "postgresql"
    verdict = "PASS" if share < BAR else "FAIL"
    print(f"idle server ({kind}, {url}): {share:.2f}% of a core over {args.seconds:g} s"
          f" (bar < {BAR}%): {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
