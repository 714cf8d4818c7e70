"""Thousands of jobs in flight: one server, `--slots 5000`, 5,000 jobs that wait on the
network and report progress once a second, with 100 Realtime subscribers.

    python bench/inflight.py                         # 5,000 jobs x 10 calls of 1 s
    python bench/inflight.py --jobs 1000 --calls 5   # a quicker look
    python bench/inflight.py --plain                 # the waits not as steps
    python bench/inflight.py --db pg                 # on PostgreSQL (a throwaway cluster)
    python bench/inflight.py --profile server.prof   # the server under a CPU-timed cProfile

100 users (JWTs signed with the server's secret) own 50 jobs each, submitted over HTTP
in one list per user; each user's subscriber is a bare WebSocket (no client library)
joined to postgres_changes on `jobs` with `user_id=eq.<user>`, so every change goes to
one socket (the fan-out a real deployment has: people watch their own jobs). The
subscribers run in `--procs` processes beside the server. Latency = arrival - the row's
`updated_at` (stamped just before the commit), over every change of every socket;
server CPU from /proc/<pid>/stat over the run. Checked: every job's final state
(completed) reached its subscriber. Bar: commit-to-callback p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NO_LIMITS = ["--limit", "user=0", "--limit", "key=0", "--limit", "org=0", "--limit", "decision=0"]
BAR_P99_MS = 100.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- subscriber process -------------------------------------------------------------
async def subscriber_main(args: argparse.Namespace) -> None:
    from datetime import datetime

    import websockets

    tokens: dict[str, str] = json.loads(Path(args.tokens).read_text())
    ws_url = args.url.replace("http://", "ws://") + "/realtime/v1/websocket?vsn=1.0.0"
    lags: list[float] = []
    kinds: list[str] = []  # each lag's change: the row's status, "progress" for a running one's
    final: dict[str, str] = {}  # job id -> last status seen
    joined = 0
    stop = asyncio.Event()

    async def one(user: str, token: str) -> None:
        nonlocal joined
        async with websockets.connect(f"{ws_url}&apikey={token}", max_size=2**22) as ws:
            binding = {"event": "*", "schema": "public", "table": "jobs",
                       "filter": f"user_id=eq.{user}"}  # fmt: skip
            await ws.send(json.dumps({
                "topic": f"realtime:{user}", "event": "phx_join", "ref": "1", "join_ref": "1",
                "payload": {"config": {"postgres_changes": [binding]}, "access_token": token},
            }))  # fmt: skip
            beat = time.monotonic()
            ref = 1
            while not stop.is_set():
                if time.monotonic() - beat > 15:  # the protocol's heartbeat, or be closed
                    ref += 1
                    beat = time.monotonic()
                    await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat",
                                              "payload": {}, "ref": str(ref)}))  # fmt: skip
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.time()
                frame = json.loads(text)
                if frame["event"] == "phx_reply" and frame["ref"] == "1":
                    joined += 1
                elif frame["event"] == "postgres_changes":
                    record = frame["payload"]["data"]["record"]
                    lags.append(now - datetime.fromisoformat(record["updated_at"]).timestamp())
                    status = record["status"]
                    first_run = status == "running" and final.get(record["id"]) != "running"
                    kinds.append("progress" if status == "running" and not first_run else status)
                    final[record["id"]] = status

    tasks = [asyncio.create_task(one(u, t)) for u, t in tokens.items()]
    deadline = time.monotonic() + 60
    while joined < len(tokens) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    Path(args.ready).write_text(str(joined))
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not Path(args.done).exists():
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # the last frames
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    Path(args.out).write_text(json.dumps({"lags": lags, "kinds": kinds, "final": final}))


# -- driver ---------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--users", type=int, default=100, help="one subscriber each")
    ap.add_argument("--calls", type=int, default=10, help="network calls (1 s) per job")
    ap.add_argument("--plain", action="store_true", help="the waits are not steps")
    ap.add_argument("--procs", type=int, default=2, help="subscriber processes")
    ap.add_argument("--timeout", type=float, default=300.0, help="give up after this long")
    ap.add_argument("--db", metavar="URL",
                    help="a PostgreSQL database (postgresql://...) instead of SQLite;"
                    " 'pg' starts a throwaway cluster (tests/pgcluster.py)")  # fmt: skip
    ap.add_argument("--profile", metavar="FILE",
                    help="run the server under cProfile timed by CPU, its stats written to FILE"
                    " at the end (read with: python -m pstats FILE)")  # fmt: skip
    ap.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    for name in ("url", "tokens", "ready", "done", "out"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.subscriber:
        asyncio.run(subscriber_main(args))
        return 0
    return drive(args)


def drive(args: argparse.Namespace) -> int:
    if args.db != "pg":
        return run(args, args.db or None)
    sys.path.insert(0, str(HERE.parent))
    from tests.pgcluster import PgCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL found (/usr/lib/postgresql/*/bin)", file=sys.stderr)
        return 1
    cluster = PgCluster(bindir, durable=True).start()
    try:
        print(f"PostgreSQL {bindir.parent.name}, a throwaway cluster (durable commits)")
        return run(args, cluster.url())
    finally:
        cluster.stop()


def run(args: argparse.Namespace, db_url: str | None) -> int:
    import httpx
    import jwt

    scratch = Path(tempfile.mkdtemp(prefix="jobctl-inflight-"))
    state = scratch / "server.json"
    env = dict(os.environ, JOBCTL_CONFIG_DIR=str(scratch / "config"),
               JOBCTL_DATA_DIR=str(scratch / "data"),
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    if args.profile:  # CPU-timed cProfile of the server (bench/_profiled.py)
        start = [sys.executable, str(HERE / "_profiled.py"), str(Path(args.profile).resolve())]
    else:
        start = [sys.executable, "-m", "jobctl"]
    argv = [*start, "server", "run", "--port", "0",
            "--slots", str(args.jobs), "--db", db_url or str(scratch / "inflight.db"),
            "--functions", "inflight_jobs", "--state-file", str(state), *NO_LIMITS]  # fmt: skip
    log = open(scratch / "server.log", "wb")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
    subs: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                print(f"the server did not start; see {scratch / 'server.log'}", file=sys.stderr)
                return 1
            time.sleep(0.05)
        url = json.loads(state.read_text())["url"]
        secret = (scratch / "config" / "jwt-secret").read_text().strip()
        users = [f"user-{i:03d}" for i in range(args.users)]
        claims = {"role": "authenticated", "exp": int(time.time()) + 7200}
        tokens = {u: jwt.encode({**claims, "sub": u}, secret, "HS256") for u in users}
        per_proc = -(-len(users) // args.procs)
        for p in range(args.procs):
            part = dict(list(tokens.items())[p * per_proc : (p + 1) * per_proc])
            if not part:
                continue
            (scratch / f"tokens-{p}.json").write_text(json.dumps(part))
            subs.append(subprocess.Popen([
                sys.executable, __file__, "--subscriber", "--url", url,
                "--tokens", str(scratch / f"tokens-{p}.json"), "--ready", str(scratch / f"ready-{p}"),
                "--done", str(scratch / "done"), "--out", str(scratch / f"out-{p}.json"),
                "--seconds", str(args.timeout),
            ]))  # fmt: skip
        deadline = time.monotonic() + 90
        while not all((scratch / f"ready-{p}").exists() for p in range(len(subs))):
            if time.monotonic() > deadline:
                print("the subscribers did not join in time", file=sys.stderr)
                return 1
            time.sleep(0.1)
        joined = sum(int((scratch / f"ready-{p}").read_text()) for p in range(len(subs)))
        print(
            f"{joined} subscribers joined; submitting {args.jobs} jobs "
            f"({args.calls} calls of 1 s each, {'plain waits' if args.plain else 'as steps'})"
        )
        t0, c0 = time.monotonic(), cpu_seconds(server.pid)
        per_user = -(-args.jobs // len(users))
        ids: dict[str, str] = {}  # job id -> user
        with httpx.Client(base_url=url, timeout=60) as client:
            for n, user in enumerate(users):
                count = min(per_user, args.jobs - n * per_user)
                if count <= 0:
                    break
                body = [
                    {"type": "waiter", "input": {"calls": args.calls, "steps": not args.plain}}
                ] * count
                r = client.post("/api/jobs", json=body,
                                headers={"Authorization": f"Bearer {tokens[user]}"})  # fmt: skip
                r.raise_for_status()
                for item in r.json()["results"]:
                    ids[item["job"]["id"]] = user
            submitted = time.monotonic() - t0
            peak = 0
            finished = False
            local = (scratch / "config" / "server-token").read_text().strip()
            while time.monotonic() - t0 < args.timeout:
                health = client.get("/api/health").json()
                peak = max(peak, health["workers"]["running"])
                stats = client.get("/api/stats", headers={"Authorization": f"Bearer {local}"})
                if health["workers"]["running"] == 0 and time.monotonic() - t0 > args.calls:
                    finished = stats.status_code == 200
                    break
                time.sleep(1.0)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(server.pid) - c0
        (scratch / "done").write_text("1")
        for proc in subs:
            proc.wait(60)
        lags: list[float] = []
        kinds: list[str] = []
        final: dict[str, str] = {}
        for p in range(len(subs)):
            out = json.loads((scratch / f"out-{p}.json").read_text())
            lags.extend(out["lags"])
            kinds.extend(out["kinds"])
            final.update(out["final"])
    finally:
        for proc in subs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        log.close()
    ms = [lag * 1000 for lag in lags]
    completed = sum(1 for j in ids if final.get(j) == "completed")
    p99 = pct(ms, 99)
    print(
        f"submitted in {submitted:.1f} s; peak in flight {peak}; all ended: {finished}; "
        f"wall {wall:.1f} s"
    )
    print(
        f"changes delivered: {len(ms)} ({len(ms) / wall:.0f}/s); commit-to-callback "
        f"p50 {pct(ms, 50):.1f} ms, p99 {p99:.1f} ms, max {max(ms, default=0):.0f} ms "
        f"(bar p99 < {BAR_P99_MS:g} ms): {'PASS' if p99 < BAR_P99_MS else 'FAIL'}"
    )
    by_kind: dict[str, list[float]] = {}
    for lag, kind in zip(ms, kinds, strict=True):
        by_kind.setdefault(kind, []).append(lag)
    print("  by change: " + "; ".join(
        f"{kind} {len(v)} p50 {pct(v, 50):.1f} p99 {pct(v, 99):.1f} max {max(v):.0f} ms"
        for kind, v in sorted(by_kind.items())))  # fmt: skip
    print(
        f"server CPU: {cpu:.1f} s over {wall:.1f} s = {100 * cpu / wall:.0f}% of a core "
        f"({cpu / max(1, len(ms)) * 1e6:.0f} us per change delivered)"
    )
    ok = completed == len(ids) == args.jobs
    print(
        f"final states delivered: {completed} of {len(ids)} jobs seen completed by their "
        f"subscriber: {'PASS' if ok else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
