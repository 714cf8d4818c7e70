"""Time from a job's committed change to the client's callback: Realtime vs polling, and the
Realtime wire paths (postgres_changes and broadcast from the database, protocol 1.0.0 and 2.0.0).

    python bench/latency.py                  # 1 and 100 subscribers, both modes, ~2 min
    python bench/latency.py --subscribers 1,20 --seconds 5
    python bench/latency.py --cases wire --subscribers 1,100,1000   # the wire paths, ~5 min

`--cases wire`: every subscriber is a bare WebSocket (no client library) reading one job's
changes, as postgres_changes with `id=eq.<job>` (`pg-1.0.0`, `pg-2.0.0`: JSON objects / arrays)
or as broadcast from the database on the private topic `job:<id>` (`bcast-1.0.0`: JSON,
`bcast-2.0.0`: the binary user-broadcast frames realtime-js reads). Latency = arrival - the
row's `updated_at`, over every socket; "probe" is the first socket alone. The sockets are
split over `--procs` reader processes (4), each one epoll loop (bench/_wsread.py) that takes the
arrival time before decoding anything, so the readers' own cost stays out of the figures (the
table shows their CPU, and the server's CPU per change). `--profile FILE` runs the server
under cProfile; bench/fanout.py times the hub's pass for one change alone, in CPU time.

A `demo` job on a real `jobctl server run` reports progress `--rate` times a
second (5 by default: brisk for a job's progress; `--rate 20` for a stress run). Subscribers are `JobFeed`s (the client path `watch` and the dashboard
use), spread over several processes because the official realtime client spends
~160 us validating each frame and one Python process cannot serve 100 of them in
time. Latency = wall clock at the feed's JobChanged - the row's `updated_at`,
which the server stamps just before its commit (so commit time is included).
Polling uses the feed's defaults (2 s, jittered). A poll sees only the latest
state, so a change it never saw counts as delivered by the first poll that saw a
newer one: latency = that poll's callback - the change's commit. The commit times
of every change come from one Realtime reference subscriber run beside the
pollers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PER_PROCESS = 25
RAW_PER_PROCESS = 50


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _write_whole(path: str, text: str) -> None:
    """Write then rename, so the driver never reads a file half written."""
    tmp = Path(path + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# -- subscriber process ---------------------------------------------------------------
async def subscriber_main(args: argparse.Namespace) -> None:
    from jobctl.backends.feed import FeedMode, JobChanged, JobFeed, RealtimeConfig, Subscription
    from jobctl.backends.jobapi import AsyncJobClient

    client = AsyncJobClient(args.url, args.token)
    source = client  # AsyncJobClient is the feed's JobSource over the job API
    realtime = None
    if args.mode == "realtime":
        realtime = RealtimeConfig(url=f"{args.url}/realtime/v1", apikey=args.token)
    feeds = [
        JobFeed(source, Subscription(frozenset([args.job])), realtime=realtime)
        for _ in range(args.count)
    ]
    seen: list[list[tuple[float, float]]] = [[] for _ in feeds]  # (callback time, updated_at)
    ready = 0

    async def consume(i: int, feed: JobFeed) -> None:
        nonlocal ready
        counted = False
        async for event in feed.events():
            now = time.time()
            if not isinstance(event, JobChanged):
                continue
            if not counted and (realtime is None or feed.mode == FeedMode.REALTIME):
                counted = True
                ready += 1
            if event.source == "snapshot" or event.job.updated_at is None:
                continue
            seen[i].append((now, event.job.updated_at.timestamp()))

    for feed in feeds:
        await feed.start()
    tasks = [asyncio.create_task(consume(i, f)) for i, f in enumerate(feeds)]
    deadline = time.monotonic() + 60
    while ready < len(feeds) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    _write_whole(args.ready_file, str(ready))
    start_at = float(Path(args.go_file).read_text()) if await _wait_file(args.go_file) else 0
    await asyncio.sleep(max(0.0, start_at + args.seconds + 3 - time.time()))
    for task in tasks:
        task.cancel()
    for feed in feeds:
        await feed.close()
    await client.aclose()
    _write_whole(args.out, json.dumps(seen))


async def raw_subscriber_main(args: argparse.Namespace) -> None:
    """`count` bare WebSocket subscribers: join, then read frames (no client library),
    so that 100 sockets cost the server what 100 remote clients would, and this
    machine's two cores are left to the server and the probe feeds."""
    from datetime import datetime

    import websockets

    ws_url = args.url.replace("http://", "ws://") + "/realtime/v1/websocket"
    query = f"?apikey={args.token}&vsn=1.0.0"
    seen: list[list[tuple[float, float]]] = [[] for _ in range(args.count)]
    joined = 0
    stop = asyncio.Event()

    async def one(i: int) -> None:
        nonlocal joined
        async with websockets.connect(ws_url + query, max_size=2**20) as ws:
            binding = {
                "event": "*",
                "schema": "public",
                "table": "jobs",
                "filter": f"id=eq.{args.job}",
            }
            await ws.send(json.dumps({
                "topic": f"realtime:bench-{i}", "event": "phx_join", "ref": "1", "join_ref": "1",
                "payload": {"config": {"postgres_changes": [binding]}, "access_token": args.token},
            }))  # fmt: skip
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.time()
                frame = json.loads(text)
                if frame["event"] == "phx_reply" and frame["ref"] == "1":
                    joined += 1
                elif frame["event"] == "postgres_changes":
                    stamp = frame["payload"]["data"]["record"]["updated_at"]
                    seen[i].append((now, datetime.fromisoformat(stamp).timestamp()))

    tasks = [asyncio.create_task(one(i)) for i in range(args.count)]
    deadline = time.monotonic() + 60
    while joined < args.count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    _write_whole(args.ready_file, str(joined))
    start_at = float(Path(args.go_file).read_text()) if await _wait_file(args.go_file) else 0
    await asyncio.sleep(max(0.0, start_at + args.seconds + 3 - time.time()))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    _write_whole(args.out, json.dumps(seen))


def _wire_join(kind: str, i: int, job: str, token: str) -> tuple[str, str]:
    """(topic, join frame) for a wire-case subscriber."""
    path, vsn = kind.split("-")
    if path == "pg":
        topic = f"realtime:bench-{i}"
        config: dict[str, object] = {"postgres_changes": [
            {"event": "*", "schema": "public", "table": "jobs", "filter": f"id=eq.{job}"}]}  # fmt: skip
    else:
        topic = f"realtime:job:{job}"
        config = {"private": True, "broadcast": {"self": False, "ack": False}}
    payload = {"config": config, "access_token": token}
    if vsn == "1.0.0":
        frame = {
            "topic": topic,
            "event": "phx_join",
            "ref": "1",
            "join_ref": "1",
            "payload": payload,
        }
        return topic, json.dumps(frame)
    return topic, json.dumps(["1", "1", topic, "phx_join", payload])


def _wire_stamp(kind: str, frame: str | bytes) -> tuple[bool, str | None]:
    """(is the join reply, the record's updated_at if the frame carries a change)."""
    if isinstance(frame, bytes):  # 2.0.0 user broadcast, kind 4
        topic_n, event_n, meta_n = frame[1], frame[2], frame[3]
        body = json.loads(frame[5 + topic_n + event_n + meta_n :])
        return False, body["record"]["updated_at"]
    msg = json.loads(frame)
    if isinstance(msg, list):
        msg = {"ref": msg[1], "event": msg[3], "payload": msg[4]}
    if msg["event"] == "phx_reply":
        return msg["ref"] == "1" and msg["payload"]["status"] == "ok", None
    if msg["event"] == "postgres_changes":
        return False, msg["payload"]["data"]["record"]["updated_at"]
    if msg["event"] == "broadcast":
        return False, msg["payload"]["payload"]["record"]["updated_at"]
    return False, None


def wire_subscriber_main(args: argparse.Namespace) -> None:
    """`count` bare sockets of one wire kind (pg-1.0.0, pg-2.0.0, bcast-1.0.0, bcast-2.0.0), read
    by `_wsread`'s epoll loop: the arrival time is taken before any decoding."""
    from datetime import datetime

    sys.path.insert(0, str(HERE))
    import _wsread

    vsn = args.mode.split("-")[1]
    ws_url = args.url.replace("http://", "ws://") + "/realtime/v1/websocket"
    query = f"apikey={args.token}&vsn={vsn}"
    heartbeat = (
        json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "hb"})
        if vsn == "1.0.0"
        else json.dumps([None, "hb", "phoenix", "heartbeat", {}])
    )
    readers = []
    for i in range(args.count):
        reader = _wsread.connect(ws_url, query)
        reader.send_text(_wire_join(args.mode, args.first + i, args.job, args.token)[1])
        readers.append(reader)
    waiting = set(range(len(readers)))
    checked = [0] * len(readers)

    def check_joins() -> None:
        for i in list(waiting):
            frames = readers[i].frames
            for _, binary, payload in frames[checked[i] :]:
                if _wire_stamp(args.mode, payload if binary else payload.decode())[0]:
                    waiting.discard(i)
            checked[i] = len(frames)

    deadline = time.monotonic() + 90
    _wsread.serve(readers, lambda: not waiting or time.monotonic() > deadline, heartbeat,
                  check_joins)  # fmt: skip
    _write_whole(args.ready_file, str(len(readers) - len(waiting)))
    go = Path(args.go_file)
    wait_until = time.monotonic() + 120
    end_at = [0.0]
    last_look = [0.0]

    def finished() -> bool:
        if end_at[0]:
            return time.time() > end_at[0]
        now = time.monotonic()
        if now - last_look[0] > 0.05:
            last_look[0] = now
            if go.exists() and (text := go.read_text()):
                end_at[0] = float(text) + args.seconds + 3
        return now > wait_until

    _wsread.serve(readers, finished, heartbeat)
    seen: list[list[tuple[float, float]]] = []
    for reader in readers:
        events = []
        for arrival, binary, payload in reader.frames:
            stamp = _wire_stamp(args.mode, payload if binary else payload.decode())[1]
            if stamp is not None:
                events.append((arrival, datetime.fromisoformat(stamp).timestamp()))
        seen.append(events)
        reader.sock.close()
    _write_whole(args.out, json.dumps(seen))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class WireResult:
    every: list[float]  # latencies over all sockets, ms
    probe: list[float]  # the first socket's
    joined: int
    server_cpu: float  # share of one core over the measured window
    readers_cpu: float  # the reader processes', together
    procs: int
    load: float  # 1-minute load average when the case ended


def run_wire_case(
    url: str,
    token: str,
    kind: str,
    subscribers: int,
    seconds: float,
    rate: float,
    work: Path,
    server_pid: int,
    procs_wanted: int = 4,
) -> WireResult:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    steps = int((seconds + 40) * rate)
    job = httpx.post(f"{url}/api/jobs", headers=headers, timeout=10, json={
        "type": "demo", "input": {"steps": steps, "step_seconds": 1 / rate}}).json()["id"]  # fmt: skip
    case = work / f"wire-{kind}-{subscribers}"
    case.mkdir()
    go = case / "go"
    nprocs = max(1, min(procs_wanted, subscribers))
    counts = [subscribers // nprocs + (1 if i < subscribers % nprocs else 0) for i in range(nprocs)]
    firsts = [sum(counts[:i]) for i in range(nprocs)]
    procs = []
    for i, count in enumerate(counts):
        procs.append(subprocess.Popen([
            sys.executable, __file__, "--subscriber", "--url", url, "--token", token,
            "--mode", kind, "--job", job, "--count", str(count), "--first", str(firsts[i]),
            "--seconds", str(seconds), "--ready-file", str(case / f"ready-{i}"),
            "--go-file", str(go), "--out", str(case / f"out-{i}.json")]))  # fmt: skip
    deadline = time.monotonic() + 120
    while not all((case / f"ready-{i}").exists() for i in range(len(counts))):
        if time.monotonic() > deadline:
            raise SystemExit(f"{kind}: subscribers not ready in 120 s")
        time.sleep(0.05)
    joined = sum(int((case / f"ready-{i}").read_text()) for i in range(len(counts)))
    start = time.time() + 1.0
    _write_whole(str(go), str(start))
    time.sleep(1.0)
    pids = [server_pid] + [p.pid for p in procs]
    cpu_before = [cpu_seconds(pid) for pid in pids]
    time.sleep(seconds)
    used = [
        (cpu_seconds(pid) - before) / seconds for pid, before in zip(pids, cpu_before, strict=True)
    ]
    cpu, readers_cpu = used[0], sum(used[1:])
    per_socket: list[list[tuple[float, float]]] = []
    for i, proc in enumerate(procs):
        proc.wait(timeout=seconds + 90)
        per_socket += json.loads((case / f"out-{i}.json").read_text())
    httpx.post(f"{url}/api/jobs/{job}/cancel", headers=headers, timeout=10)
    window = (start, start + seconds)

    def latencies(events: list[tuple[float, float]]) -> list[float]:
        return [(r - u) * 1000 for r, u in events if window[0] <= u <= window[1]]

    every = [x for events in per_socket for x in latencies(events)]
    probe = latencies(per_socket[0]) if per_socket else []
    return WireResult(every, probe, joined, cpu, readers_cpu, nprocs, os.getloadavg()[0])


def wire_report(
    args: argparse.Namespace, url: str, token: str, work: Path, server_pid: int
) -> None:
    sizes = [int(x) for x in args.subscribers.split(",")]
    kinds = args.wire_kinds.split(",")
    results: dict[tuple[str, int], WireResult] = {}
    for n in sizes:
        for kind in kinds:
            results[(kind, n)] = run_wire_case(
                url, token, kind, n, args.seconds, args.rate, work, server_pid, args.procs
            )
    load = os.getloadavg()[0]
    print(f"\ncommitted change -> frame read, bare sockets on loopback, {args.rate:g} changes/s,"
          f" {args.seconds:g} s per case; load average at the end {load:.1f} on"
          f" {os.cpu_count()} cores")  # fmt: skip
    print(f"{'path':12} {'subscribers':>11} {'joined':>7} {'frames':>8} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'probe p50':>10} {'probe p99':>10} {'server CPU':>10} {'ms/change':>9}"
          f" {'readers CPU':>11} {'load':>5}")  # fmt: skip
    for (kind, n), r in results.items():
        every, probe = r.every, r.probe
        per_change = r.server_cpu / args.rate * 1000
        print(f"{kind:12} {n:11d} {r.joined:7d} {len(every):8d} {pct(every, 50):8.2f}"
              f" {pct(every, 99):8.2f} {pct(probe, 50):10.2f} {pct(probe, 99):10.2f}"
              f" {r.server_cpu:10.0%} {per_change:9.2f} {r.readers_cpu:8.0%}/{r.procs:<2d}"
              f" {r.load:5.1f}")  # fmt: skip
    print("ms/change: the server's CPU over the window / changes (its idle cost included);"
          " readers CPU: all reader processes together / how many")  # fmt: skip
    biggest = max(sizes)
    bcast = results.get(("bcast-2.0.0", biggest))
    pg100 = results.get(("pg-2.0.0", 100)) or results.get(("pg-1.0.0", 100))
    if bcast is not None:
        p99 = pct(bcast.every, 99)
        print(f"\nbroadcast-from-database p99 at {biggest} subscribers (2.0.0): {p99:.2f} ms"
              f" (bar < 20 ms): {'PASS' if p99 < 20 else 'FAIL'}")  # fmt: skip
        if pg100 is not None:
            ref = pct(pg100.every, 99)
            print(f"postgres_changes p99 at 100: {ref:.2f} ms; broadcast at {biggest} no worse:"
                  f" {'PASS' if p99 <= ref else 'FAIL'}")  # fmt: skip
    print("Supabase's published figures: broadcast p50 6 ms, p95 28 ms (k6, 32k users);"
          " postgres_changes p95 238 ms at 500 clients.")  # fmt: skip


async def _wait_file(path: str, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while not (Path(path).exists() and Path(path).read_text()):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# -- driver -----------------------------------------------------------------------
def start_server(work: Path, profile: str = "") -> tuple[subprocess.Popen[bytes], str, str]:
    env = dict(os.environ, JOBCTL_CONFIG_DIR=str(work / "c"), JOBCTL_DATA_DIR=str(work / "d"))
    env.setdefault("JOBCTL_REALTIME_MAX_SOCKETS_PER_USER", "5000")  # every socket is one user
    state = work / "server.json"
    log = open(work / "server.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
         "-m", "jobctl", "server", "run", "--port", "0", "--state-file", str(state)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not state.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("server did not start: " + (work / "server.log").read_text())
        time.sleep(0.02)
    url = json.loads(state.read_text())["url"]
    return proc, url, (work / "c" / "server-token").read_text().strip()


RAW_RESULTS: dict[int, list[float]] = {}


def run_case(
    url: str,
    token: str,
    mode: str,
    subscribers: int,
    seconds: float,
    rate: float,
    work: Path,
    full_clients: bool = False,
) -> list[float]:
    import bisect

    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    steps = int((seconds + 30) * rate)
    job = httpx.post(f"{url}/api/jobs", headers=headers, timeout=10, json={
        "type": "demo", "input": {"steps": steps, "step_seconds": 1 / rate}}).json()["id"]  # fmt: skip
    case = work / f"{mode}-{subscribers}"
    case.mkdir()
    go = case / "go"
    if mode == "realtime" and subscribers > 1 and not full_clients:
        # one feed (the probe) among bare sockets: what a client sees when 100 are connected
        groups = [("sub", "realtime", 1)] + [
            ("raw", "raw", min(RAW_PER_PROCESS, subscribers - 1 - i))
            for i in range(0, subscribers - 1, RAW_PER_PROCESS)
        ]
    else:
        groups = [
            ("sub", mode, min(PER_PROCESS, subscribers - i))
            for i in range(0, subscribers, PER_PROCESS)
        ]
    if mode == "polling":
        groups.append(("ref", "realtime", 1))  # sees every commit, for the pollers' misses
    procs = []
    for i, (_, group_mode, count) in enumerate(groups):
        procs.append(subprocess.Popen([
            sys.executable, __file__, "--subscriber", "--url", url, "--token", token,
            "--mode", group_mode, "--job", job, "--count", str(count), "--seconds", str(seconds),
            "--ready-file", str(case / f"ready-{i}"), "--go-file", str(go),
            "--out", str(case / f"out-{i}.json")]))  # fmt: skip
    deadline = time.monotonic() + 90
    while not all((case / f"ready-{i}").exists() for i in range(len(groups))):
        if time.monotonic() > deadline:
            raise SystemExit(f"{mode}: subscribers not ready in 90 s")
        time.sleep(0.05)
    start = time.time() + 1.0
    go.write_text(str(start))
    per_feed: dict[str, list[list[tuple[float, float]]]] = {"sub": [], "ref": [], "raw": []}
    for i, proc in enumerate(procs):
        proc.wait(timeout=seconds + 60)
        per_feed[groups[i][0]] += json.loads((case / f"out-{i}.json").read_text())
    httpx.post(f"{url}/api/jobs/{job}/cancel", headers=headers, timeout=10)

    window = (start, start + seconds)
    latencies: list[float] = []
    if mode == "realtime":
        for events in per_feed["sub"]:
            latencies += [(r - u) * 1000 for r, u in events if window[0] <= u <= window[1]]
        RAW_RESULTS[subscribers] = [
            (r - u) * 1000
            for events in per_feed["raw"]
            for r, u in events
            if window[0] <= u <= window[1]
        ]
        return latencies
    commits = sorted({u for events in per_feed["ref"] for _, u in events})
    commits = [c for c in commits if window[0] <= c <= window[1]]
    for events in per_feed["sub"]:
        events.sort(key=lambda e: e[1])
        updated = [u for _, u in events]
        for c in commits:
            k = bisect.bisect_left(updated, c)
            if k < len(events):
                latencies.append((events[k][0] - c) * 1000)
    return latencies


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url"), ap.add_argument("--token"), ap.add_argument("--job")
    ap.add_argument("--mode", default="realtime"), ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--ready-file"), ap.add_argument("--go-file"), ap.add_argument("--out")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--cases", default="feed", help="feed (JobFeed vs polling) or wire")
    ap.add_argument(
        "--wire-kinds",
        default="pg-1.0.0,pg-2.0.0,bcast-1.0.0,bcast-2.0.0",
        help="the wire paths for --cases wire",
    )
    ap.add_argument("--subscribers", default="1,100")
    ap.add_argument(
        "--procs", type=int, default=4, help="reader processes for --cases wire (sockets split)"
    )
    ap.add_argument(
        "--profile", default="", help="run the server under cProfile, its stats to this file"
    )
    ap.add_argument("--rate", type=float, default=5.0, help="changes per second")
    ap.add_argument(
        "--full-clients",
        action="store_true",
        help="every Realtime subscriber a JobFeed on this machine (client CPU bound)",
    )
    args = ap.parse_args()
    if args.subscriber:
        if args.mode == "raw":
            asyncio.run(raw_subscriber_main(args))
        elif "-" in args.mode:
            wire_subscriber_main(args)
        else:
            asyncio.run(subscriber_main(args))
        return 0

    work = Path(tempfile.mkdtemp(prefix="jobctl-latency-"))
    proc, url, token = start_server(work, args.profile)
    if args.cases == "wire":
        try:
            wire_report(args, url, token, work, proc.pid)
        finally:
            proc.terminate()
            proc.wait(15)
        return 0
    results: dict[tuple[str, int], list[float]] = {}
    try:
        for n in [int(x) for x in args.subscribers.split(",")]:
            for mode in ("realtime", "polling"):
                results[(mode, n)] = run_case(
                    url, token, mode, n, args.seconds, args.rate, work, args.full_clients
                )
    finally:
        proc.terminate()
        proc.wait(15)
    print(f"\ncommitted change -> client callback, loopback, {args.rate:g} changes/s,"
          f" {args.seconds:g} s per case")  # fmt: skip
    print(
        f"{'mode':10} {'subscribers':>11} {'events':>8} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}"
    )
    for (mode, n), values in results.items():
        mean = statistics.mean(values) if values else float("nan")
        label = mode if mode == "polling" or n == 1 or args.full_clients else "realtime*"
        print(
            f"{label:10} {n:11d} {len(values):8d} {pct(values, 50):9.2f} {pct(values, 99):9.2f} {mean:9.2f}"
        )
        raw = RAW_RESULTS.get(n)
        if mode == "realtime" and raw:
            print(f"{'  sockets':10} {n - 1:11d} {len(raw):8d} {pct(raw, 50):9.2f} {pct(raw, 99):9.2f}"
                  f" {statistics.mean(raw):9.2f}")  # fmt: skip
    if not args.full_clients:
        print("realtime* = one JobFeed (the probe) while the other subscribers are bare sockets;"
              " 'sockets' = when their frames arrived")  # fmt: skip
    n_max = max(n for _, n in results)
    rt = results[("realtime", n_max)]
    poll_mean = statistics.mean(results[("polling", n_max)] or [float("nan")])
    print(f"\nRealtime p99 with {n_max} subscribers: {pct(rt, 99):.2f} ms (bar < 20 ms): "
          f"{'PASS' if pct(rt, 99) < 20 else 'FAIL'}")  # fmt: skip
    factor = poll_mean / pct(rt, 99) if rt else float("nan")
    print(
        f"polling mean / Realtime p99: {factor:.0f}x (bar >= 50x): {'PASS' if factor >= 50 else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
