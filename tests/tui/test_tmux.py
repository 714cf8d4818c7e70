"""`jobctl tui` in a real terminal: tmux on a private socket, keys sent with send-keys,
the screen read back with capture-pane. A journal submitted from the dashboard is
drawn pending with its bar, then completed at 100%, and its toast appears.

Runs in CI (.ci/run installs tmux). The session and its server are killed at the end.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, ROOT, ServerProcess

WIDTH, HEIGHT = 100, 30


class Tmux:
    def __init__(self) -> None:
        self.socket = f"jobctl-test-{uuid.uuid4().hex[:8]}"  # never the user's own tmux server
        self.session = "tui"
        self.frames: list[str] = []

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        assignments = [f"{k}={v}" for k, v in env.items()]
        # Textual draws on stderr, so nothing is redirected; the pane keeps the
        # last screen after the app exits (remain-on-exit) for the failure report.
        # `env -i`: a clean environment, so no COLUMNS/LINES from the test run's own
        # terminal override the pane's size.
        shell = shlex.join(["env", "-i", *assignments, *command])
        self.run(
            "-f", "/dev/null", "new-session", "-d", "-s", self.session,
            "-x", str(WIDTH), "-y", str(HEIGHT), shell,
        )  # fmt: skip
        self.run("set-option", "-t", self.session, "remain-on-exit", "on")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.session, *(["-l"] if literal else []), *keys)

    def capture(self) -> str:
        screen = self.run("capture-pane", "-p", "-t", self.session)
        if not self.frames or self.frames[-1] != screen:
            self.frames.append(screen)
        return screen

    def wait(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.capture()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{what}: not seen in {timeout}s; last screen:\n{self.capture()}")

    def pane_dead(self) -> bool:
        return self.run("display-message", "-p", "-t", self.session, "#{pane_dead}").strip() == "1"

    def exit_status(self) -> str:
        """The exit code, 'signal N', or '' when tmux has not collected it (it sometimes
        marks the pane dead on the terminal's hang-up before it reaps the process)."""
        status = self.run(
            "display-message", "-p", "-t", self.session, "#{pane_dead_status}/#{pane_dead_signal}"
        ).strip()
        code, signal = status.split("/")
        return code or (f"signal {signal}" if signal else "")

    def kill(self) -> None:
        path = self.run("display-message", "-p", "#{socket_path}").strip()
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        if path:
            Path(path).unlink(missing_ok=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed (.ci/run installs it)")
        pytest.skip("tmux is not installed")
    session = Tmux()
    try:
        yield session
    finally:
        session.kill()


def row(screen: str, type_: str) -> str:
    """The table row of the (only) job of this type."""
    pattern = re.compile(rf"^\s*\*?\s*[0-9a-f]{{8}} {type_}")
    return next((line for line in screen.splitlines() if pattern.match(line)), "")


def test_journal_submitted_in_a_real_terminal(make_server: Any, tmux: Tmux) -> None:
    # One job at a time per user: the journal waits behind a 4-second demo job, so
    # the terminal shows it pending while the demo's bar moves, then completed.
    server: ServerProcess = make_server("--limit", "user=1")
    with server.client() as http:
        demo = {"type": "demo", "input": {"steps": 4, "step_seconds": 1}}
        assert http.post("/api/jobs", json=demo).status_code == 201
    env = {
        "JOBCTL_CONFIG_DIR": os.environ["JOBCTL_CONFIG_DIR"],
        "JOBCTL_DATA_DIR": os.environ["JOBCTL_DATA_DIR"],
        "JOBCTL_NO_AUTOSTART": "1",
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT / "src"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
    }
    tmux.start([sys.executable, "-m", "jobctl", "tui"], env)
    # the embedded server offers Realtime: the header says so once subscribed
    tmux.wait(lambda s: "● realtime" in s.splitlines()[0], 30, "the realtime mode")
    tmux.wait(lambda s: "▶ running" in row(s, "demo"), 30, "the running demo job")
    tmux.keys("s")
    tmux.wait(lambda s: "Submit a job" in s, 10, "the submit dialog")
    tmux.keys(str(EXAMPLES / "journal.txt"), literal=True)
    tmux.keys("Enter")
    pending = tmux.wait(lambda s: "○ pending" in row(s, "journal_extract"), 10, "pending journal")
    assert "░░░░░░░░░░   0%" in row(pending, "journal_extract")
    done = tmux.wait(
        lambda s: (
            "✔ completed" in row(s, "journal_extract")
            and "Journal entry ready: 5 events extracted" in s
        ),
        20,
        "the completed journal and its toast",
    )
    journal = row(done, "journal_extract")
    assert "██████████ 100%" in journal and "5 events, 5 action items" in journal
    # the demo job's bar moved through its steps on screen
    demo_bars = {m.group(1) for f in tmux.frames for m in [BAR.search(row(f, "demo"))] if m}
    assert {"25", "50", "75"} & demo_bars and "100" in demo_bars, demo_bars
    tmux.keys("q")
    tmux.wait(lambda _: tmux.pane_dead(), 10, "the dashboard to quit")
    assert tmux.exit_status() in ("0", "")


BAR = re.compile(r"[█░]{10}\s+(\d+)%")
