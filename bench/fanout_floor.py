"""The floor under Realtime fan-out on this machine: one frame written to N WebSockets by a
server that does nothing else, read by the same epoll readers as bench/latency.py.

    python bench/fanout_floor.py                          # 1,000 sockets, 5 frames/s, 10 s
    python bench/fanout_floor.py --subscribers 100,1000 --size 700 --rate 5

The server here is the least a Python server can do per frame: one uvloop process that
answers the upgrade, keeps the transports in a list, and every 1/rate s takes the time,
builds one text frame holding it (--size bytes, about what a job's broadcast-from-database
frame is) and writes those same bytes to every transport, in one loop pass; no hub, no
channels, no JSON per socket. The readers are bench/_wsread.py's (the arrival time taken
before any decoding), split over --procs processes, as in `bench/latency.py --cases wire`.
Latency = arrival - the server's time just before its first write; p50/p99 over every
socket; the server's CPU per frame from /proc.

What it tells: whatever jobctl's hub does on top, a fan-out to N sockets cannot beat this
on the same cores, so `bench/latency.py`'s broadcast p99 at 1,000 subscribers is compared
with it (issue #13's bar: under 20 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def text_frame(data: bytes) -> bytes:
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + data
    return struct.pack("!BBQ", 0x81, 127, size) + data


# -- the server ---------------------------------------------------------------------
class _Socket(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buf = b""
        self.transport: Any = None
        self.upgraded = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # uvloop's: not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            return  # the readers' heartbeats: nothing to answer
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        head = self.buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))  # fmt: skip
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        self.upgraded = True
        self.server.sockets.append(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport in self.server.sockets:
            self.server.sockets.remove(self.transport)


class _Server:
    def __init__(self) -> None:
        self.sockets: list[Any] = []


def _write_all(fds: list[int], frame: bytes) -> None:
    for fd in fds:
        os.write(fd, frame)  # a measurement only: a short write would be lost here


async def serve_main(args: argparse.Namespace) -> None:
    state = _Server()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Socket(state), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    Path(args.port_file).write_text(str(port))
    go = Path(args.go_file)
    while not go.exists() or not go.read_text():
        await asyncio.sleep(0.02)
    start, until = (float(x) for x in go.read_text().split())
    pad = "x" * max(0, args.size - 60)
    pool = ThreadPoolExecutor(1) if args.threads else None
    at = start
    while at < until:
        await asyncio.sleep(max(0.0, at - time.time()))
        stamp = time.time()
        payload = json.dumps([None, None, "realtime:job:floor", "broadcast",
                              {"stamp": stamp, "pad": pad}]).encode()  # fmt: skip
        frame = text_frame(payload)
        if pool is None:
            for transport in state.sockets:
                transport.write(frame)
        else:  # the second half's sends on a thread (os.write lets go of the GIL)
            half = len(state.sockets) // 2
            fds = [t.get_extra_info("socket").fileno() for t in state.sockets[half:]]
            done = pool.submit(_write_all, fds, frame)
            for transport in state.sockets[:half]:
                transport.write(frame)
            done.result()
        at += 1 / args.rate
    await asyncio.sleep(2)
    server.close()


# -- a reader process ---------------------------------------------------------------
def reader_main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import _wsread

    url = f"ws://127.0.0.1:{args.port}/floor"
    readers = [_wsread.connect(url, "x=1") for _ in range(args.count)]
    Path(args.ready_file).write_text(str(len(readers)))
    go = Path(args.go_file)
    end_at = [0.0]

    def finished() -> bool:
        if not end_at[0]:
            if go.exists() and (text := go.read_text()):
                end_at[0] = float(text.split()[1]) + 2
            return False
        return time.time() > end_at[0]

    _wsread.serve(readers, finished, "{}")
    lat = []
    for reader in readers:
        for arrival, _, payload in reader.frames:
            lat.append((arrival - json.loads(payload)[4]["stamp"]) * 1000)
        reader.sock.close()
    Path(args.out).write_text(json.dumps(lat))


# -- the driver ---------------------------------------------------------------------
def run_case(args: argparse.Namespace, n: int, work: Path) -> tuple[list[float], float, float]:
    case = work / f"floor-{n}"
    case.mkdir()
    go = case / "go"
    port_file = case / "port"
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--port-file", str(port_file),
                               "--go-file", str(go), "--rate", str(args.rate),
                               "--size", str(args.size),
                               *(["--threads"] if args.threads else [])])  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the floor server did not start")
            time.sleep(0.02)
        port = port_file.read_text()
        nprocs = max(1, min(args.procs, n))
        counts = [n // nprocs + (1 if i < n % nprocs else 0) for i in range(nprocs)]
        for i, count in enumerate(counts):
            procs.append(subprocess.Popen([
                sys.executable, __file__, "--reader", "--port", port, "--count", str(count),
                "--ready-file", str(case / f"ready-{i}"), "--go-file", str(go),
                "--out", str(case / f"out-{i}.json")]))  # fmt: skip
        deadline = time.monotonic() + 60
        while not all((case / f"ready-{i}").exists() for i in range(nprocs)):
            if time.monotonic() > deadline:
                raise SystemExit("readers not connected in 60 s")
            time.sleep(0.05)
        start = time.time() + 1.0
        go.write_text(f"{start} {start + args.seconds}")
        time.sleep(1.0)
        pids = [server.pid] + [p.pid for p in procs]
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(args.seconds)
        used = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
        lat: list[float] = []
        for i, proc in enumerate(procs):
            proc.wait(timeout=60)
            lat += json.loads((case / f"out-{i}.json").read_text())
        server.wait(timeout=30)
        return lat, used[0] / (args.seconds * args.rate) * 1000, sum(used[1:]) / args.seconds
    finally:
        for proc in [server, *procs]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--subscribers", default="1000")
    ap.add_argument("--rate", type=float, default=5.0, help="frames per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=700, help="frame payload bytes")
    ap.add_argument("--procs", type=int, default=4, help="reader processes")
    ap.add_argument("--threads", action="store_true", help="half the sends on a second thread")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port-file"), ap.add_argument("--go-file"), ap.add_argument("--port")
    ap.add_argument("--ready-file"), ap.add_argument("--out")
    ap.add_argument("--count", type=int, default=1)
    args = ap.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(serve_main(args))
        return 0
    if args.reader:
        reader_main(args)
        return 0
    work = Path(tempfile.mkdtemp(prefix="jobctl-floor-"))
    how = "half the sends on a second thread" if args.threads else "one thread"
    print(f"one frame ({args.size} bytes) to every socket ({how}), {args.rate:g}/s, {args.seconds:g} s;"
          f" readers in {args.procs} processes; {os.cpu_count()} cores")  # fmt: skip
    print(f"{'sockets':>8} {'frames':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'server ms/frame':>16} {'readers CPU':>12} {'load':>5}")  # fmt: skip
    for n in (int(x) for x in args.subscribers.split(",")):
        lat, per_frame, readers = run_case(args, n, work)
        print(f"{n:8d} {len(lat):8d} {pct(lat, 50):8.2f} {pct(lat, 99):8.2f} {max(lat):8.2f}"
              f" {per_frame:16.2f} {readers:12.0%} {os.getloadavg()[0]:5.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
