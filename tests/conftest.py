"""Shared fixtures: isolated config/data dirs, and a real server process on loopback.

The suite runs in parallel (pytest-xdist, `-n auto` in pyproject.toml: at least 4
workers, as most tests wait on subprocesses and servers rather than compute; `-n 0`
runs it serially, `-p no:xdist` without the plugin). So a test, and any fixture you add:

- owns its files: everything under `tmp_path` (unique per test and per worker). HOME,
  the XDG dirs, JOBCTL_CONFIG_DIR and JOBCTL_DATA_DIR point there (`isolated_dirs`);
  never write to a fixed path, the repo, or the real home.
- owns its ports: listen on port 0 and read the port back (`make_server` reads the
  server's state file; `tests.pgcluster.free_port()` for a client that needs one up
  front, retried on a bind race as PgCluster does). Never a fixed port such as 8765.
- owns its names: tmux sockets, browser profiles, databases carry a unique suffix
  (uuid, pid, tmp_path); `new_database()` names include the worker's pid.
- does not rely on test order or on what another test left: session fixtures are
  per worker (each worker starts its own PostgreSQL cluster, on its own port and dir).
- waits for a condition (`wait_for`, `wait_job`), never for a fixed time, unless it
  proves that something does *not* happen; and asserts no timings (bench/ has those).
  Waits are bounded generously (a loaded machine runs 4 workers on 2 cores): a wait
  that holds costs nothing, a tight one fails for no defect.

`@pytest.mark.exclusive`: the test runs while no other test of the run does (the other
workers wait; `exclusive_gate`). Only for the few tests that hold a bar on the machine's
responsiveness by issue (#12's event-loop lag and tmux burst); everything else shares.
`@pytest.mark.xdist_group("name")` keeps tests on one worker (the run uses `--dist
loadgroup`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: one worker per CPU, but at least 4: the tests mostly wait on child
    processes and servers, so more workers than cores keep the CPUs busy.
    PYTEST_XDIST_AUTO_NUM_WORKERS still overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return max(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def pytest_configure(config: pytest.Config) -> None:
    """Compile src/ once, in the controller, before any child process imports it.

    The tests start hundreds of `jobctl` and server processes; with
    PYTHONDONTWRITEBYTECODE set (as on some CI machines) no run caches the bytecode of
    the editable install, and every child compiles ~20k lines of src/ again (the servers
    also import tests/jobfns.py and its neighbours)."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller did it
    import compileall

    compileall.compile_dir(ROOT / "src", quiet=2)
    compileall.compile_dir(ROOT / "tests", quiet=2, rx=re.compile(r"node_modules"))


@pytest.fixture(autouse=True)
def exclusive_gate(request: pytest.FixtureRequest) -> Iterator[None]:
    """A readers-writer lock across the xdist workers (two flock files): every test holds
    it shared, an `exclusive` test alone. The gate is a turnstile: a waiting exclusive
    test holds it, so no new test starts before it runs."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run or fcntl is None:
        yield  # not under xdist: tests run one at a time anyway
        return
    exclusive = request.node.get_closest_marker("exclusive") is not None
    base = Path(tempfile.gettempdir()) / f"jobctl-tests-{run}"
    with open(f"{base}.gate", "a") as gate, open(f"{base}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the developer's real ~/.config/jobctl or data, nor their HOME: each
    test has its own HOME and XDG dirs (child processes inherit them)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("JOBCTL_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("JOBCTL_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("JOBCTL_NO_AUTOSTART", "1")
    monkeypatch.delenv("JOBCTL_TOKEN", raising=False)
    monkeypatch.delenv("JOBCTL_PROFILE", raising=False)
    monkeypatch.delenv("JOBCTL_API_URL", raising=False)
    return home


@dataclass
class ServerProcess:
    """A `jobctl server run` child process; stopped by its pid."""

    config_dir: Path
    data_dir: Path
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    port: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    ended: bool = False  # stopped or killed by the test (not a crash)

    @property
    def token(self) -> str:
        return (self.config_dir / "server-token").read_text().strip()

    @property
    def state_file(self) -> Path:
        return self.data_dir / "server.json"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.ended = False
        if self.state_file.exists():
            self.state_file.unlink()
        port_args = ["--port", str(self.port)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed once the child has it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "server", "run", *port_args, *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            if self.state_file.exists():
                state = json.loads(self.state_file.read_text())
                if state["pid"] == self.proc.pid:
                    self.url = state["url"]
                    self.port = int(self.url.rsplit(":", 1)[1])
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.ended = True
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self.ended = True
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=10,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def make_server(
    tmp_path: Path,
    server_db: str | None,  # noqa: F811 - the fixture imported below
) -> Iterator[type[ServerProcess] | object]:
    """Factory: make_server(*args, env={...}) -> a started ServerProcess (stopped at teardown).

    In a test marked `both_stores`, servers without their own `--db` use the store of
    the test's parameter (`server_db`, passed as JOBCTL_DB): SQLite, then PostgreSQL.
    """
    started: list[ServerProcess] = []

    def factory(*args: str, env: dict[str, str] | None = None, start: bool = True) -> ServerProcess:
        config_dir = Path(os.environ["JOBCTL_CONFIG_DIR"])
        data_dir = Path(os.environ["JOBCTL_DATA_DIR"])
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(ROOT / "tests") + os.pathsep + full_env.get("PYTHONPATH", "")
        if server_db is not None:
            full_env["JOBCTL_DB"] = server_db
            # Shared stores re-queue a killed server's jobs when its lease runs out (30 s
            # by default); restart tests want that sooner.
            full_env.setdefault("JOBCTL_LEASE_SECONDS", "3")
        full_env.update(env or {})
        server = ServerProcess(
            config_dir, data_dir, list(args), full_env, tmp_path / f"server-{len(started)}.log"
        )
        started.append(server)
        return server.start() if start else server

    yield factory
    died = [s for s in started if s.proc is not None and s.proc.poll() is not None and not s.ended]
    for server in started:
        server.stop()
    # A server that exited by itself during a test is a bug even if the test passed.
    assert not died, (
        "a server process exited on its own:\n"
        + "\n".join(
            f"[pid {s.proc.pid if s.proc else '?'}, exit status {s.proc.returncode if s.proc else '?'}]"
            for s in died
        )
        + "\n"
        + "\n".join(s.log[-3000:] for s in died)
    )


@pytest.fixture
def server(make_server: object) -> ServerProcess:
    """A started server with fast retries, for most end-to-end tests."""
    return make_server("--backoff", "0.05,0.1")  # type: ignore[operator, no-any-return]


def wait_for(predicate: object, timeout: float = 60.0, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_job(
    client: httpx.Client,
    job_id: str,
    statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
    timeout: float = 60.0,
) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_for(done, timeout)  # type: ignore[return-value]


# PostgreSQL: a session cluster, `pg_url` (a fresh database), `store_url` (both stores), and
# the `both_stores` marker (every server of the test on SQLite, then on PostgreSQL).
from tests.pgfixtures import (  # noqa: E402, F401
    pg_cluster,
    pg_url,
    pytest_generate_tests,
    server_db,
    store_url,
)
