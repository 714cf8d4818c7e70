"""Drive the official JavaScript clients (tests/js/client.mjs) from pytest, through a node process.

Every wait is bounded (WAIT). The clients come from tests/js/node_modules, which `.ci/run`
installs with `npm ci` from the lockfile; without them the tests skip locally and fail in CI.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parents[2] / "js"
WAIT = 60.0  # the bound on every wait (it returns as soon as it holds)
Event = dict[str, Any]


def node_command() -> list[str]:
    node = shutil.which("node")
    modules = JS_DIR / "node_modules" / "@supabase"
    missing = node is None or not (modules / "supabase-js").is_dir()
    if missing:
        if os.environ.get("CI"):
            pytest.fail("node or tests/js/node_modules missing: .ci/run must `npm ci` in tests/js")
        pytest.skip("node or tests/js/node_modules missing (cd tests/js && npm ci)")
    assert node is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    # Node 22 has a global WebSocket; 20 (Debian's and this machine's) has it behind a flag.
    flags = ["--experimental-websocket"] if major < 22 else []
    return [node, *flags, str(JS_DIR / "client.mjs")]


class JsClient:
    """One node process holding one client (realtime-js or supabase-js)."""

    def __init__(self, lib: str, url: str, key: str, vsn: str | None = None) -> None:
        self.proc = subprocess.Popen(
            node_command(),
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self._inbox: queue.Queue[Event | None] = queue.Queue()
        self._ids = itertools.count(1)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.call("connect", lib=lib, url=url, key=key, vsn=vsn)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._inbox.put(json.loads(line))
            except ValueError:
                self.stderr.append(line)
        self._inbox.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _pump(self, timeout: float) -> bool:
        try:
            event = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return False
        if event is None:
            raise AssertionError("node exited: " + "".join(self.stderr[-30:]))
        self.events.append(event)
        return True

    def wait(self, predicate: Callable[[list[Event]], Any], timeout: float = WAIT) -> Any:
        """Until predicate(events) is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.events)
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                tail = json.dumps(self.events[-8:])[:3000]
                raise AssertionError(f"timed out; last events {tail}; stderr {self.stderr[-10:]}")
            self._pump(min(left, 0.5))

    def call(self, op: str, **args: Any) -> Event:
        ident = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "id": ident, **args}) + "\n")
        self.proc.stdin.flush()
        done: Event = self.wait(
            lambda events: next(
                (e for e in events if e["ev"] == "done" and e.get("id") == ident), None
            )
        )
        if "failed" in done:
            raise AssertionError(f"{op} failed in node: {done['failed']}")
        return done

    def of(self, kind: str, channel: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e["ev"] == kind and (channel is None or e.get("channel") == channel)
        ]

    def statuses(self, channel: str) -> list[str]:
        return [e["status"] for e in self.of("status", channel)]

    def subscribe(self, name: str, topic: str, expect: str = "SUBSCRIBED", **spec: Any) -> Event:
        self.call("channel", name=name, topic=topic, **spec)
        status: Event = self.wait(lambda _: next(iter(self.of("status", name)), None))
        assert status["status"] == expect, (status, self.stderr[-5:])
        return status

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
