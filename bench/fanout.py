"""The server's CPU to fan one change out to N Realtime sockets: the hub's pass and the writes.

    python bench/fanout.py                                 # 1,000 sockets, every wire kind
    python bench/fanout.py --sockets 100,1000 --kinds bcast-2.0.0 --changes 300
    python bench/fanout.py --profile 30                    # cProfile's top 30 of the pass
    PYTHONPATH=/tmp/old/src python bench/fanout.py         # the same against another tree

The hub runs in this process on a real uvicorn socket (uvloop, websockets-sansio, the
KeepTransport wrapper the server uses), fed straight from a ChangeBus; the sockets are cheap
epoll readers (bench/_wsread.py) in `--procs` other processes, joined as `bench/latency.py
--cases wire` joins them (postgres_changes with `id=eq.<job>` on a topic per socket, or with
`--shared-topic` one topic for all; broadcast from the database on `job:<id>`). Each change is
published alone, one per 20 ms, and timed from `bus.publish` to the last transport write
(process CPU and wall clock): the figure that latency's p99 is made of, less the scheduling a
loaded machine adds. Every reader checks it got every change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SECRET = "s" * 40
JOB_ID = "2b5c3a4e-8f7d-4d61-9a0b-1c2d3e4f5a6b"
T0 = 1_767_225_600_000_000


def reader_main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import _wsread
    from latency import _wire_join, _wire_stamp

    vsn = args.kind.split("-")[1]
    heartbeat = (
        json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "hb"})
        if vsn == "1.0.0"
        else json.dumps([None, "hb", "phoenix", "heartbeat", {}])
    )
    readers = []
    for i in range(args.count):
        reader = _wsread.connect(args.url, f"apikey={args.token}&vsn={vsn}")
        _, join = _wire_join(args.kind, 0 if args.shared_topic else args.first + i, JOB_ID,
                             args.token)  # fmt: skip
        reader.send_text(join)
        readers.append(reader)
    waiting = set(range(len(readers)))

    def check() -> None:
        for i in list(waiting):
            for _, binary, payload in readers[i].frames:
                if _wire_stamp(args.kind, payload if binary else payload.decode())[0]:
                    waiting.discard(i)

    deadline = time.monotonic() + 120
    _wsread.serve(readers, lambda: not waiting or time.monotonic() > deadline, heartbeat, check)
    for reader in readers:
        reader.frames.clear()
    Path(args.ready).write_text(str(len(readers) - len(waiting)))
    stop = Path(args.stop)
    last = [0.0]

    def done() -> bool:
        now = time.monotonic()
        if now - last[0] < 0.1:
            return False
        last[0] = now
        return stop.exists() or now > deadline + 600

    _wsread.serve(readers, done, heartbeat)
    counts = []
    for reader in readers:
        got = 0
        for _, binary, payload in reader.frames:
            if _wire_stamp(args.kind, payload if binary else payload.decode())[1] is not None:
                got += 1
        counts.append(got)
    Path(args.out).write_text(json.dumps(counts))


async def serve_hub() -> tuple[Any, Any, str, Any, Any, str]:
    import uvicorn
    from fastapi import FastAPI

    from jobctl.server.auth import Authenticator
    from jobctl.server.changes import ChangeBus
    from jobctl.server.realtime import RealtimeSettings, mount_realtime

    auth = Authenticator("local-token", SECRET)

    class Store:
        """The bus, and the one job the private channels ask about (the token's user's)."""

        def __init__(self) -> None:
            self.changes = ChangeBus()

        async def get_job(self, job_id: str, user_id: str | None) -> object | None:
            return object() if job_id == JOB_ID and user_id == auth.local_user else None

    store = Store()
    app = FastAPI()
    hub = mount_realtime(app, store, auth, RealtimeSettings(max_sockets_per_user=100_000))  # type: ignore[arg-type]
    served: Any = app
    for wrap in getattr(app.state, "outer_middleware", ()):
        served = wrap(served)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(served, log_level="warning", ws="websockets-sansio", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"ws://127.0.0.1:{sock.getsockname()[1]}/realtime/v1/websocket"
    return store.changes, hub, url, server, task, auth.local_user


async def run_case(
    kind: str, sockets: int, args: argparse.Namespace, work: Path
) -> dict[str, float]:
    from jobctl.server.records import Change, JobRow

    bus, hub, url, server, task, user = await serve_hub()
    case = work / f"{kind}-{sockets}"
    case.mkdir()
    nprocs = max(1, min(args.procs, sockets))
    counts = [sockets // nprocs + (1 if i < sockets % nprocs else 0) for i in range(nprocs)]
    procs = []
    for i, count in enumerate(counts):
        procs.append(subprocess.Popen([
            sys.executable, __file__, "--reader", "--url", url, "--token", "local-token",
            "--kind", kind, "--count", str(count), "--first", str(sum(counts[:i])),
            *(["--shared-topic"] if args.shared_topic else []),
            "--ready", str(case / f"ready-{i}"), "--stop", str(case / "stop"),
            "--out", str(case / f"out-{i}")]))  # fmt: skip
    deadline = time.monotonic() + 180
    while not all((case / f"ready-{i}").exists() for i in range(nprocs)):
        if time.monotonic() > deadline:
            raise SystemExit(f"{kind}: readers not ready in 180 s")
        await asyncio.sleep(0.05)
    joined = sum(int((case / f"ready-{i}").read_text()) for i in range(nprocs))
    if joined < sockets:
        raise SystemExit(f"{kind}: only {joined} of {sockets} sockets joined")
    await asyncio.sleep(0.5)
    fields: dict[str, Any] = dict(
        id=JOB_ID, type="demo", status="running", progress=0, message=None, input='{"steps":9}',
        output=None, error=None, attempt=1, max_attempts=3, user_id=user, concurrency_key=None,
        idempotency_key=None, created_at=T0, updated_at=T0, started_at=T0, completed_at=None,
        schedule_id=None, schedule_tick=None, run_at=T0, lease_owner=None, lease_expires_at=None,
    )  # fmt: skip
    flusher = getattr(hub, "flusher", None)
    profile = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not wall
    cpu: list[float] = []
    writes: list[float] = []  # CPU in the flush (the transport writes), when there is one
    wall: list[float] = []
    burst = args.burst
    for n in range(args.changes):
        changes = []
        for k in range(burst):
            now_us = int(time.time() * 1_000_000)
            row = JobRow(**{**fields, "progress": (n + k) % 100, "updated_at": now_us})
            changes.append(
                Change(bus.next_seq(), "jobs", "UPDATE", row, {"id": JOB_ID}, now_us, user)
            )
        if profile is not None:
            profile.enable()
        c0, w0 = time.process_time(), time.perf_counter()
        for change in changes:
            bus.publish(change)
        cm = time.process_time()
        if flusher is not None:
            flusher.flush()  # the writes it would do at the loop's turn, inside the timing
        w1, c1 = time.perf_counter(), time.process_time()
        writes.append((c1 - cm) * 1000 / burst)
        if profile is not None:
            profile.disable()
        cpu.append((c1 - c0) * 1000 / burst)
        wall.append((w1 - w0) * 1000 / burst)
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)
    (case / "stop").write_text("1")
    got: list[int] = []
    for i, proc in enumerate(procs):
        await asyncio.to_thread(proc.wait, 120)
        got += json.loads((case / f"out-{i}").read_text())
    server.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(task, 10)
    if profile is not None:
        print(f"\n-- {kind}, {sockets} sockets: cProfile of {args.changes} passes")
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    return {
        "cpu": statistics.median(cpu),
        "writes": statistics.median(writes),
        "wall": statistics.median(wall),
        "wall_p90": sorted(wall)[int(len(wall) * 0.9)],
        "complete": sum(1 for c in got if c == args.changes * burst),
        "sockets": len(got),
    }


async def driver(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="jobctl-fanout-"))
    results = {}
    for n in [int(x) for x in args.sockets.split(",")]:
        for kind in args.kinds.split(","):
            results[(kind, n)] = await run_case(kind, n, args, work)
    import jobctl

    where = Path(jobctl.__file__).resolve().parents[1]
    print(f"\none change fanned out, {args.changes} passes of {args.burst} change(s) per case,"
          f" code from {where}")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores;"
          f" shared topic: {args.shared_topic}")  # fmt: skip
    print(f"{'path':12} {'sockets':>7} {'CPU ms':>7} {'us/socket':>9} {'writes ms':>9}"
          f" {'wall ms':>8} {'wall p90':>8} {'got all':>9}")  # fmt: skip
    for (kind, n), r in results.items():
        print(f"{kind:12} {n:7d} {r['cpu']:7.2f} {r['cpu'] * 1000 / n:9.2f} {r['writes']:9.2f}"
              f" {r['wall']:8.2f} {r['wall_p90']:8.2f}"
              f" {int(r['complete']):4d}/{int(r['sockets']):<4d}")  # fmt: skip
    print("CPU ms, wall ms: medians per change (a pass / its changes), from bus.publish to the last transport write;"
          " writes ms: the CPU of the batched writes alone (the hub's pass is the rest; a tree"
          " without the Flusher writes inside the pass)")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url"), ap.add_argument("--token"), ap.add_argument("--kind")
    ap.add_argument("--count", type=int, default=1), ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--ready"), ap.add_argument("--stop"), ap.add_argument("--out")
    ap.add_argument("--sockets", default="1000")
    ap.add_argument("--kinds", default="pg-1.0.0,pg-2.0.0,bcast-1.0.0,bcast-2.0.0")
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument(
        "--burst", type=int, default=1, help="changes published in one pass (a commit of many)"
    )
    ap.add_argument("--procs", type=int, default=4, help="reader processes")
    ap.add_argument("--shared-topic", action="store_true", help="postgres_changes: one topic")
    ap.add_argument("--profile", type=int, default=0, help="print cProfile's top N")
    args = ap.parse_args()
    if args.reader:
        reader_main(args)
        return 0
    import uvloop

    uvloop.run(driver(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
