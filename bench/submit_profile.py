"""Where a `POST /api/jobs` spends the server's CPU: the real server under cProfile.

    python bench/submit_profile.py                      # 2,000 single submits, SQLite
    python bench/submit_profile.py -n 500 --batch 100   # lists of 100 instead
    python bench/submit_profile.py --db postgresql://... --top 40
    python bench/submit_profile.py --no-profile         # only the CPU per job, unprofiled

Starts `jobctl server run` (the `noop` type of bench/noop_jobs.py, 2 slots) in its own
process, under cProfile (timed by the CPU clock of the
event loop's thread, not the wall clock) unless --no-profile, and sends `-n` jobs from one
keep-alive httpx client (one request each, or lists of `--batch`), after 200 warm-up
submits. Prints the server's CPU per job from /proc (utime + stime: a figure that holds
up on a shared machine better than a rate) while submitting and until every job has run
(submitting and running, end to end), then, after a clean SIGTERM (the profile is
written at exit), the top functions by own time and by cumulative time. The server
also runs the jobs it is given (as in bench/engine.py's submit mode), so the profile
includes the engine's claims and finishes: what one accepted job costs in all.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
# ../shared beside the project, or two levels up from a worktree (/work/wt/<name>)
PEERS = next(
    (p for p in (HERE.parent.parent / "shared" / "bench" / "peers",
                 HERE.parent.parent.parent / "shared" / "bench" / "peers") if p.exists()),
    HERE.parent.parent / "shared" / "bench" / "peers",
)  # fmt: skip


PROFILED = """
import cProfile, runpy, sys, time
out = sys.argv.pop(1)
sys.argv[0] = "jobctl"
prof = cProfile.Profile(time.thread_time)
try:
    prof.runcall(runpy.run_module, "jobctl", run_name="__main__")
except SystemExit:
    pass
finally:
    prof.dump_stats(out)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rec_lines(path: Path) -> int:
    """Jobs run: the peer harness's `record` writes one 51-byte line per job."""
    try:
        return path.stat().st_size // 51
    except FileNotFoundError:
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=2000, help="jobs to submit (at most 100,000)")
    ap.add_argument("--batch", type=int, default=1, help="jobs per request (1: single)")
    ap.add_argument("--db", default="", help="a PostgreSQL URL (default: a fresh SQLite file)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--peers-dir", type=Path, default=Path(os.environ.get("PEERS_DIR", PEERS)))
    args = ap.parse_args()
    n = min(args.n, 100_000)
    scratch = Path(tempfile.mkdtemp(prefix="jobctl-prof-"))
    state, prof = scratch / "server.json", scratch / "server.prof"
    env = dict(
        os.environ,
        JOBCTL_CONFIG_DIR=str(scratch / "config"),
        JOBCTL_DATA_DIR=str(scratch / "data"),
        PYTHONPATH=os.pathsep.join(
            [str(HERE), str(args.peers_dir), os.environ.get("PYTHONPATH", "")]
        ),
        BENCH_REC=str(scratch / "jobs.rec"),
        PEERS=str(scratch),
    )
    # cProfile's default clock is the wall clock, which on a shared machine counts the
    # time the server was not even running; this counts the CPU time of the loop's thread.
    runner = ["-m", "jobctl"] if args.no_profile else ["-c", PROFILED, str(prof)]
    argv = [sys.executable, *runner, "server", "run", "--port", "0",
            "--slots", "2", "--db", args.db or str(scratch / "bench.db"),
            "--functions", "noop_jobs", "--state-file", str(state)]  # fmt: skip
    log = open(scratch / "server.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                print((scratch / "server.log").read_text(), file=sys.stderr)
                return 1
            time.sleep(0.02)
        url = json.loads(state.read_text())["url"]
        token = (scratch / "config" / "server-token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:

            def job(seq: int) -> dict[str, object]:
                return {"type": "noop", "input": {"seq": seq, "enq_ts": time.monotonic()}}

            for i in range(200):
                c.post("/api/jobs", json=job(-1 - i)).raise_for_status()
            t0, c0, k0 = time.perf_counter(), cpu_seconds(proc.pid), time.process_time()
            for i in range(0, n, args.batch):
                if args.batch == 1:
                    c.post("/api/jobs", json=job(i)).raise_for_status()
                else:
                    items = [job(j) for j in range(i, min(i + args.batch, n))]
                    c.post("/api/jobs", json=items).raise_for_status()
            wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
            client = time.process_time() - k0
            deadline = time.monotonic() + 120  # the server runs them too: wait for the last
            done = 0
            while time.monotonic() < deadline:
                done = rec_lines(scratch / "jobs.rec")
                if done >= n + 200:
                    break
                time.sleep(0.05)
            total = cpu_seconds(proc.pid) - c0
        what = "single submits" if args.batch == 1 else f"lists of {args.batch}"
        print(f"{n} jobs as {what}{'' if args.no_profile else ' (profiled)'}: "
              f"{n / wall:.0f} jobs/s, {cpu / n * 1e6:.0f} us server CPU per job"
              f" while submitting, {total / n * 1e6:.0f} us per job submitted and run"
              f" ({done - 200} run); the client (httpx) {client / n * 1e6:.0f} us per job")  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
    if not args.no_profile and prof.exists():
        stats = pstats.Stats(str(prof))
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(f"profile: {prof}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
