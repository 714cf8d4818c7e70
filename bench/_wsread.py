"""Cheap WebSocket readers for the latency benchmark: many sockets on one epoll loop, no asyncio,
no client library, no JSON while the clock runs.

A reader's own cost is in every latency it reports (arrival = when this process got round to the
socket), so it does the least it can per frame: one recv, split the bytes into frames, note the
time and keep the payload; pings are answered (uvicorn closes a socket that does not), phoenix
heartbeats are sent so the server's idle timeout never fires, and the payloads are decoded only
after the run. With the `websockets` client, 100 sockets per process, the readers used more CPU
than the server they measured.
"""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

HEARTBEAT_EVERY = 20.0


def _mask(opcode: int, data: bytes) -> bytes:
    """A client frame (masked, RFC 6455 5.3), FIN set."""
    key = os.urandom(4)
    size = len(data)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return head + key + masked


class Reader:
    """One socket: its handshake, its bytes, the frames read so far as (arrival, frame)."""

    __slots__ = ("buf", "frames", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.frames: list[tuple[float, bool, bytes]] = []  # (arrival, is binary, payload)

    def send_text(self, text: str) -> None:
        self.sock.setblocking(True)
        try:
            self.sock.sendall(_mask(0x1, text.encode()))
        finally:
            self.sock.setblocking(False)

    def on_readable(self) -> bool:
        """Read what is there; False once the peer closed."""
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        now = time.time()
        buf = self.buf + data if self.buf else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            size, head = b1 & 0x7F, 2
            if size == 126:
                if end - pos < 4:
                    break
                size, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if end - pos < head + size:
                break
            payload = buf[pos + head : pos + head + size]
            pos += head + size
            opcode = b0 & 0x0F
            if opcode in (0x1, 0x2):  # text, binary: decoded after the run
                self.frames.append((now, opcode == 0x2, payload))
            elif opcode == 0x9:
                self.sock.send(_mask(0xA, payload))
            elif opcode == 0x8:
                return False
        self.buf = buf[pos:]
        return True


def connect(url: str, query: str) -> Reader:
    """The HTTP upgrade, blocking; then the socket is non-blocking."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parts.path}?{query} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the upgrade")
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    sock.setblocking(False)
    reader = Reader(sock)
    if rest:  # frames right behind the upgrade answer
        reader.buf = rest
    return reader


def serve(
    readers: list[Reader],
    until: Callable[[], bool],
    heartbeat: str,
    tick: Callable[[], None] = lambda: None,
) -> None:
    """Read every socket until `until()`; `tick` runs between polls (cheap checks only)."""
    selector = selectors.DefaultSelector()
    for reader in readers:
        selector.register(reader.sock, selectors.EVENT_READ, reader)
    next_beat = time.monotonic() + HEARTBEAT_EVERY
    try:
        while not until():
            for key, _ in selector.select(0.2):
                reader = key.data
                if not reader.on_readable():
                    selector.unregister(reader.sock)
            tick()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_EVERY
                for reader in readers:
                    with contextlib.suppress(OSError):
                        reader.send_text(heartbeat)
    finally:
        selector.close()
