"""A small fault-injecting HTTP server on loopback: 5xx, 429, slow answers, dropped
connections and malformed bodies, for testing the client's error paths end to end."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultServer:
    """Answers every request according to `mode`; counts what it received."""

    def __init__(self, mode: str = "500", **options: Any) -> None:
        self.mode = mode
        self.options = options
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with owner._lock:
                    owner.requests.append((self.command, self.path, dict(self.headers), body))
                    count = len(owner.requests)
                owner.answer(self, count)

            do_GET = _handle
            do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    @staticmethod
    def send_json(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def answer(self, handler: BaseHTTPRequestHandler, count: int) -> None:
        mode = self.mode
        ok_after = self.options.get("ok_after")  # serve `ok_body` from this request on
        if ok_after is not None and count >= ok_after:
            status, body = self.options.get("ok_body", (200, {"jobs": [], "next_cursor": None}))
            self.send_json(handler, status, body)
            return
        if mode in ("500", "502", "503"):
            self.send_json(handler, int(mode), {"error": {"code": "internal", "message": "boom"}})
        elif mode == "429":
            retry_after = str(self.options.get("retry_after", 0))
            self.send_json(
                handler,
                429,
                {"error": {"code": "limit_reached", "message": "slow down"}},
                {"Retry-After": retry_after},
            )
        elif mode == "slow":
            time.sleep(float(self.options.get("delay", 3.0)))
            self.send_json(handler, 200, {"jobs": [], "next_cursor": None})
        elif mode == "drop":
            # Close without an answer: the client sees the connection dropped.
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        elif mode == "json":
            status, body = self.options["body"]
            self.send_json(handler, status, body)
        elif mode == "html":
            page = b"<html>Bad gateway</html>"
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
        else:  # pragma: no cover
            raise ValueError(mode)
