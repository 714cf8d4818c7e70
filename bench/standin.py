"""The stand-in for an app's Supabase project: how long an app's UPDATE takes to reach a Realtime
subscriber through `--publish`, and what `/auth/v1` sign-in and refresh cost.

    python bench/standin.py                       # 300 updates at 30/s, 20 sign-ins and refreshes
    python bench/standin.py --updates 1000 --rate 100

Starts a throwaway PostgreSQL cluster (tests/pgcluster.py), a database with an app's `jobs`
table, and `jobctl server run --publish public.jobs` on 127.0.0.1. One realtime-py subscriber
follows one row (`filter: id=eq.<id>`); the "app" UPDATEs that row from its own connection,
each UPDATE stamping `updated_at = clock_timestamp()` just before its commit, at a steady
`--rate`. Latency = the subscriber's callback (wall clock) - that `updated_at`: trigger, NOTIFY,
the server's listener, the hub, the socket, the client's parsing. Same machine, same clock.
Sign-in: `POST /auth/v1/token?grant_type=password` (scrypt n=2^14 in a worker thread);
refresh: `?grant_type=refresh_token` (a locked JSON read-modify-write). Bounded in count and
time; everything it starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TABLE = """CREATE TABLE public.jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'pending', result_summary jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(name: str, values: list[float]) -> None:
    print(f"{name:34} n={len(values):4}  p50 {statistics.median(values):7.2f} ms"
          f"  p95 {pct(values, 0.95):7.2f}  p99 {pct(values, 0.99):7.2f}"
          f"  max {max(values):7.2f}")  # fmt: skip


async def realtime_latency(url: str, db: str, token: str, user: str, n: int, rate: float) -> None:
    import psycopg
    from realtime import AsyncRealtimeClient

    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute("INSERT INTO jobs (user_id) VALUES (%s) RETURNING id", (user,))
        job_id = str(row.fetchone()[0])  # type: ignore[index]
    arrivals: list[tuple[float, str]] = []
    got = asyncio.Event()

    def on_change(payload: dict[str, object]) -> None:
        record = payload["data"]["record"]  # type: ignore[index]
        arrivals.append((time.time(), record["updated_at"]))  # type: ignore[index]
        got.set()

    client = AsyncRealtimeClient(url.replace("http://", "ws://") + "/realtime/v1", token)
    subscribed = asyncio.Event()
    channel = client.channel("bench")
    channel.on_postgres_changes("UPDATE", callback=on_change, table="jobs", schema="public",
                                filter=f"id=eq.{job_id}")  # fmt: skip
    await channel.subscribe(lambda state, err: subscribed.set())
    await asyncio.wait_for(subscribed.wait(), 30)
    conn = await psycopg.AsyncConnection.connect(db, autocommit=True)
    started = time.monotonic()
    deadline = started + n / rate + 60
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await conn.execute(
            "UPDATE jobs SET status = %s, updated_at = clock_timestamp() WHERE id = %s",
            (f"step-{i}", job_id),
        )
    while len(arrivals) < n and time.monotonic() < deadline:
        got.clear()
        try:
            await asyncio.wait_for(got.wait(), 5)
        except TimeoutError:
            break
    await conn.close()
    await client.close()
    lat = [(at - datetime.fromisoformat(stamp).timestamp()) * 1000 for at, stamp in arrivals]
    print(f"delivered {len(arrivals)} of {n} updates at {rate:g}/s")
    if lat:
        show("app UPDATE -> realtime-py callback", lat)


def auth_costs(url: str, email: str, password: str, n: int) -> None:
    import httpx

    sign_in: list[float] = []
    refresh: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            answer = http.post("/auth/v1/token", params={"grant_type": "password"},
                               json={"email": email, "password": password})  # fmt: skip
            sign_in.append((time.perf_counter() - t0) * 1000)
            answer.raise_for_status()
            token = answer.json()["refresh_token"]
            t0 = time.perf_counter()
            again = http.post("/auth/v1/token", params={"grant_type": "refresh_token"},
                              json={"refresh_token": token})  # fmt: skip
            refresh.append((time.perf_counter() - t0) * 1000)
            again.raise_for_status()
    show("/auth/v1 password sign-in", sign_in)
    show("/auth/v1 refresh", refresh)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--sign-ins", type=int, default=20)
    args = parser.parse_args()
    if not (1 <= args.updates <= 100_000 and 0 < args.rate <= 2000 and 1 <= args.sign_ins <= 1000):
        print("--updates 1..100000, --rate up to 2000, --sign-ins 1..1000", file=sys.stderr)
        return 2
    import psycopg
    from tests.pgcluster import PgCluster, find_bindir

    from jobctl.server.auth import Authenticator

    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL binaries not found (apt-get install postgresql)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="jobctl-standin-"))
    cluster = PgCluster(bindir).start()
    server = None
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        db = cluster.url("app")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(TABLE)
        secret = "bench-" + uuid.uuid4().hex
        env = {**os.environ, "JOBCTL_JWT_SECRET": secret, "JOBCTL_CONFIG_DIR": str(work / "cfg"),
               "JOBCTL_DATA_DIR": str(work / "data")}  # fmt: skip
        password = "bench password"
        added = subprocess.run([sys.executable, "-m", "jobctl", "server", "user", "add",
                                "bench@example.com"], input=password + "\n", env=env,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        user = added.stdout.strip()
        state = work / "server.json"
        with open(work / "server.log", "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "jobctl", "server", "run", "--port", "0", "--db", db,
                 "--publish", "public.jobs", "--state-file", str(state)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not state.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                print((work / "server.log").read_text(), file=sys.stderr)
                return 1
            time.sleep(0.02)
        url = json.loads(state.read_text())["url"]
        token = Authenticator("unused", secret).make_jwt(user)
        print(
            f"jobctl stand-in at {url}, PostgreSQL {bindir}, load average {os.getloadavg()[0]:.1f}"
        )
        asyncio.run(realtime_latency(url, db, token, user, args.updates, args.rate))
        auth_costs(url, "bench@example.com", password, args.sign_ins)
    finally:
        if server is not None and server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(20)
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
