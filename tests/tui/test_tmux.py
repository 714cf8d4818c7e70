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


def dashboard_env() -> dict[str, str]:
    return {
        "JOBCTL_CONFIG_DIR": os.environ["JOBCTL_CONFIG_DIR"],
        "JOBCTL_DATA_DIR": os.environ["JOBCTL_DATA_DIR"],
        "JOBCTL_NO_AUTOSTART": "1",
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT / "src"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
    }


def test_journal_submitted_in_a_real_terminal(make_server: Any, tmux: Tmux, tmp_path: Path) -> None:
    # One job at a time per user: a `burst` job (tests/jobfns.py) holds the slot until the
    # test ends it, with a 4-second demo job queued behind it, so the journal is pending
    # however slow the machine; then the demo's bar moves, then the journal completes.
    gate = tmp_path / "burst-at"
    server: ServerProcess = make_server(
        "--limit", "user=1", "--functions", "jobfns", env={"JOBCTL_TEST_BURST": str(gate)}
    )  # fmt: skip
    tmux.start([sys.executable, "-m", "jobctl", "tui"], dashboard_env())
    # the embedded server offers Realtime: the header says so once subscribed
    tmux.wait(lambda s: "● realtime" in s.splitlines()[0], 30, "the realtime mode")
    with server.client() as http:  # submitted once the dashboard is up, however slow it was
        assert http.post("/api/jobs", json={"type": "burst", "input": {}}).status_code == 201
        demo = {"type": "demo", "input": {"steps": 4, "step_seconds": 1}}
        assert http.post("/api/jobs", json=demo).status_code == 201
    tmux.wait(lambda s: "▶ running" in row(s, "burst"), 30, "the running burst job")
    tmux.wait(lambda s: "○ pending" in row(s, "demo"), 30, "the demo job queued")
    tmux.keys("s")
    tmux.wait(lambda s: "Submit a job" in s, 30, "the submit dialog")
    tmux.keys(str(EXAMPLES / "journal.txt"), literal=True)
    tmux.keys("Enter")
    pending = tmux.wait(lambda s: "○ pending" in row(s, "journal_extract"), 30, "pending journal")
    assert "░░░░░░░░░░   0%" in row(pending, "journal_extract")
    gate.with_suffix(".tmp").write_text(repr(time.time()))
    gate.with_suffix(".tmp").replace(gate)  # the burst job ends: the demo runs, then the journal
    done = tmux.wait(
        lambda s: (
            "✔ completed" in row(s, "journal_extract")
            and "Journal entry ready: 5 events extracted" in s
        ),
        60,
        "the completed journal and its toast",
    )
    journal = row(done, "journal_extract")
    assert "██████████ 100%" in journal and "5 events, 5 action items" in journal
    # the demo job's bar moved through its steps on screen
    demo_bars = {m.group(1) for f in tmux.frames for m in [BAR.search(row(f, "demo"))] if m}
    assert {"25", "50", "75"} & demo_bars and "100" in demo_bars, demo_bars
    tmux.keys("q")
    tmux.wait(lambda _: tmux.pane_dead(), 30, "the dashboard to quit")
    assert tmux.exit_status() in ("0", "")


BAR = re.compile(r"[█░]{10}\s+(\d+)%")


COMPLETED = re.compile(r"✔ (\d+) completed")


def submit_burst(server: ServerProcess, count: int) -> list[str]:
    """`count` `burst` jobs (tests/jobfns.py): each runs until the time the test writes to
    $JOBCTL_TEST_BURST, so they end together however long submitting them took."""
    import httpx

    def post(part: range) -> list[str]:
        ids = []
        with server.client() as http:
            for _ in part:
                answer = http.post("/api/jobs", json={"type": "burst", "input": {}})
                assert answer.status_code == 201, answer.text
                ids.append(answer.json()["id"])
        return ids

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        parts = [range(i, count, 4) for i in range(4)]
        ids = [i for chunk in pool.map(post, parts) for i in chunk]
    assert httpx  # the client's own module: imported for the type of server.client()
    return ids


def server_counts(server: ServerProcess) -> dict[str, int]:
    with server.client() as http:
        counts: dict[str, int] = http.get("/api/stats").json()["counts"]
        return counts


@pytest.mark.slow
@pytest.mark.exclusive  # its bars are seconds on a busy machine: not beside other workers
def test_a_burst_of_a_thousand_completions_in_a_real_terminal(
    make_server: Any, tmux: Tmux, tmp_path: Path
) -> None:
    count = 1000
    gate = tmp_path / "burst-at"
    server: ServerProcess = make_server(
        "--slots", str(count + 50), "--limit", "user=0", "--functions", "jobfns",
        env={"JOBCTL_TEST_BURST": str(gate)},
    )  # fmt: skip
    tmux.start([sys.executable, "-m", "jobctl", "tui"], dashboard_env())
    tmux.wait(lambda s: "● realtime" in s.splitlines()[0], 30, "the realtime mode")
    ids = submit_burst(server, count)
    tmux.wait(lambda s: "▶ 1000 running" in s, 60, "the thousand jobs running")
    # every job is running and on screen: they end together 2 s from now (the submitting
    # took what it took; a fixed lead was outrun on a loaded machine)
    end_at = time.time() + 2.0
    tmp = gate.with_suffix(".tmp")
    tmp.write_text(repr(end_at))
    tmp.replace(gate)
    while time.time() < end_at - 0.2:
        time.sleep(0.05)
    # the burst: the help screen opens within a second while the jobs end
    sent = time.monotonic()
    tmux.keys("?")
    tmux.wait(lambda s: "Keys: jobs" in s, 30, "the help screen")
    opened = time.monotonic() - sent
    tmux.keys("Escape")
    tmux.wait(lambda s: "Keys: jobs" not in s, 30, "the help screen closed")
    # the burst's end, by the server's figures; then the dashboard's count within 2 s
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = server_counts(server)
        if counts["completed"] >= count:
            break
        time.sleep(0.05)
    ended = time.monotonic()
    assert counts["completed"] == count, counts

    def count_matches(screen: str) -> bool:
        found = COMPLETED.search(screen)
        return found is not None and int(found.group(1)) == counts["completed"]

    tmux.wait(count_matches, 10, "the server's completed count")
    caught_up = time.monotonic() - ended
    print(f"help opened in {opened:.2f} s; count caught up {caught_up:.2f} s after the burst")
    assert opened < 1.0, f"the help screen took {opened:.2f} s to open during the burst"
    assert caught_up < 2.0, f"the completed count caught up {caught_up:.2f} s after the burst"
    # no row is left running (the newest, on screen, are the burst's)
    screen = tmux.capture()
    assert "▶ running" not in "\n".join(screen.splitlines()[3:-1]), screen
    assert len(ids) == count
    tmux.keys("q")
    tmux.wait(lambda _: tmux.pane_dead(), 30, "the dashboard to quit")
