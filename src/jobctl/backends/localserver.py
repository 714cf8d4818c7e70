"""The embedded server as a background process: find it, start it detached, stop it.

Client-side: it never imports jobctl.server. It reads the state file that a
running server writes (`<data_dir>/server.json`), keeps a pid file and a log
file beside it, and serialises starts with a lock file so that two commands
starting at once on a fresh machine make one server, not two.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobctl.backends._httpx import httpx
from jobctl.errors import UnreachableError

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PRIVATE = 0o600  # the log and state files: the server's log names every user's jobs


@dataclass(frozen=True)
class ServerState:
    pid: int
    url: str
    version: str
    db: str
    data_dir: str
    store: str = ""

    def to_dict(self, running: bool = True) -> dict[str, Any]:
        return {
            "running": running,
            "url": self.url,
            "pid": self.pid,
            "version": self.version,
            "store": self.store,
            "db": self.db,
            "data_dir": self.data_dir,
        }


def state_file(data_dir: Path) -> Path:
    return data_dir / "server.json"


def pid_file(data_dir: Path) -> Path:
    return data_dir / "server.pid"


def log_file(data_dir: Path) -> Path:
    return data_dir / "server.log"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(data_dir: Path) -> ServerState | None:
    try:
        data = json.loads(state_file(data_dir).read_text())
        return ServerState(
            pid=int(data["pid"]),
            url=str(data["url"]),
            version=str(data.get("version", "")),
            db=str(data.get("db", "")),
            data_dir=str(data.get("data_dir", data_dir)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def probe(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The server's /api/health answer, or None when nothing answers there."""
    try:
        response = httpx.get(f"{url}/api/health", timeout=timeout)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_server(data_dir: Path) -> ServerState | None:
    """The server of this data dir if it runs and answers; a stale state file is ignored."""
    state = read_state(data_dir)
    if state is None or not pid_alive(state.pid):
        return None
    health = probe(state.url)
    if health is None or int(health.get("pid") or -1) != state.pid:
        return None
    return ServerState(
        state.pid,
        state.url,
        str(health.get("version") or state.version),
        str(health.get("db") or state.db),
        state.data_dir,
        str(health.get("store") or ""),
    )


def _private_file(path: Path, flags: int) -> int:
    """os.open a file readable by its owner only, tightening one made before."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE)
    os.fchmod(fd, PRIVATE)
    return fd


def _write_private(path: Path, text: str) -> None:
    with os.fdopen(_private_file(path, os.O_WRONLY | os.O_TRUNC), "w") as fh:
        fh.write(text)


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    import fcntl

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.fdopen(_private_file(data_dir / "server.lock", os.O_WRONLY), "w") as fh:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UnreachableError(
                        f"another jobctl is starting the server; gave up after {START_TIMEOUT:g}s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def start_server(
    data_dir: Path, port: int, timeout: float = START_TIMEOUT
) -> tuple[ServerState, bool]:
    """Start `jobctl server run` detached; returns (state, started) - started is False
    when a server was already running for this data dir."""
    with _start_lock(data_dir):
        current = running_server(data_dir)
        if current is not None:
            return current, False
        log_path = log_file(data_dir)
        with os.fdopen(_private_file(log_path, os.O_WRONLY | os.O_APPEND), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobctl", "server", "run", "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                start_new_session=True,  # survives this command and its terminal's ^C
            )
        _write_private(pid_file(data_dir), f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pid_file(data_dir).unlink(missing_ok=True)
                reason = _last_line(log_path) or f"exit status {proc.returncode}"
                raise UnreachableError(
                    f"the local server did not start: {reason} (log: {log_path})"
                )
            state = read_state(data_dir)
            if state is not None and state.pid == proc.pid:
                health = probe(state.url)
                if health is not None:
                    store = str(health.get("store") or "")
                    return ServerState(
                        state.pid, state.url, state.version, state.db, state.data_dir, store
                    ), True
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        raise UnreachableError(
            f"the local server did not answer within {timeout:g}s (log: {log_path})"
        )


def stop_server(data_dir: Path, timeout: float = STOP_TIMEOUT) -> ServerState | None:
    """SIGTERM the running server of this data dir and wait for it; None if none ran."""
    state = running_server(data_dir)
    if state is None:
        # Tidy up after a server that died without its clean exit.
        stale = read_state(data_dir)
        if stale is not None and not pid_alive(stale.pid):
            state_file(data_dir).unlink(missing_ok=True)
        pid_file(data_dir).unlink(missing_ok=True)
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(state.pid):
        _reap(state.pid)
        time.sleep(0.05)
    if pid_alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
        time.sleep(0.1)
        _reap(state.pid)
    left = read_state(data_dir)
    if left is not None and left.pid == state.pid:
        state_file(data_dir).unlink(missing_ok=True)
    pid_file(data_dir).unlink(missing_ok=True)
    return state


def _reap(pid: int) -> None:
    # When this process started the server itself, collect the zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
