"""A light HTTP/1.1 keep-alive client for the submit benchmarks: what the server can take,
not what httpx can send.

httpx spends 700-1,000 us of CPU a request on this machine (building the request,
its event hooks, parsing the answer into a Response), more than the server spends on a
submit; one httpx client sending one request at a time measures httpx. This client
writes prepared bytes to `connections` keep-alive sockets and parses the answers with
httptools (the parser uvicorn itself uses), one request in flight on each socket, as
an app's API with that many concurrent handlers would. Every answer's status is
checked and its body returned, so a failed submit is never counted.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httptools


class _Answer:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body = bytearray()
        self.done = False

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


class RawClient:
    def __init__(self, url: str, token: str, connections: int = 1) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.token = token
        self.socks = [socket.create_connection((self.host, self.port)) for _ in range(connections)]
        for s in self.socks:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        for s in self.socks:
            s.close()

    def request_bytes(self, method: str, path: str, body: object | None = None) -> bytes:
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    def run(
        self, requests: Iterator[bytes], check: Callable[[int, bytes], None] | None = None
    ) -> int:
        """Send every request, at most one in flight on each socket; returns how many."""
        sel = selectors.DefaultSelector()
        sent = 0
        answers: dict[socket.socket, _Answer] = {}

        def send(s: socket.socket) -> bool:
            nonlocal sent
            req = next(requests, None)
            if req is None:
                return False
            answers[s] = _Answer()
            s.sendall(req)
            sent += 1
            return True

        for s in self.socks:
            if send(s):
                sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + 600
        while answers:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer within 600 s")
            for key, _ in sel.select(30):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                chunk = s.recv(262144)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                answer = answers[s]
                answer.parser.feed_data(chunk)
                if answer.done:
                    status = answer.parser.get_status_code()
                    if status >= 300:
                        raise RuntimeError(f"HTTP {status}: {bytes(answer.body)[:300]!r}")
                    if check is not None:
                        check(status, bytes(answer.body))
                    del answers[s]
                    if not send(s):
                        sel.unregister(s)
        sel.close()
        return sent
