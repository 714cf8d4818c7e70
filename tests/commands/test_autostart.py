"""The local server starts on demand, once; `server start|stop|status` manage it by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobctl.backends.localserver import pid_alive
from tests.clirun import ROOT, jobctl

AUTOSTART = {"JOBCTL_NO_AUTOSTART": None, "JOBCTL_PORT": "0"}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The isolated data dir; any server started there is stopped by its pid afterwards."""
    path = Path(os.environ["JOBCTL_DATA_DIR"])
    yield path
    for name in ("server.pid", "server.json"):
        try:
            text = (path / name).read_text()
            pid = int(json.loads(text)["pid"]) if name.endswith(".json") else int(text)
        except (OSError, ValueError, KeyError):
            continue
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def test_first_command_starts_the_server_and_watches_the_job(data_dir: Path) -> None:
    # The README's first command, from a clean config and data dir.
    assert not data_dir.exists()
    result = jobctl("submit", "examples/journal.txt", "--watch", env=AUTOSTART, cwd=ROOT)
    assert result.code == 0, result.stderr
    assert "5 events, 5 action items" in result.stdout
    assert "✔ completed journal_extraction" in result.stdout
    first = result.stderr.splitlines()[0]
    assert first.startswith("jobctl: started the local job server at http://127.0.0.1:")
    assert f"data: {data_dir}" in first
    assert (data_dir / "server.pid").exists() and (data_dir / "server.log").exists()

    again = jobctl("list", "--json", "id", env=AUTOSTART)
    assert again.code == 0 and "started" not in again.stderr
    assert len(json.loads(again.stdout)) == 1

    status = jobctl("server", "status", "--json", env=AUTOSTART)
    assert status.code == 0
    state = json.loads(status.stdout)
    assert set(state) >= {"running", "url", "pid", "version", "db", "data_dir"}
    assert state["running"] is True and state["data_dir"] == str(data_dir)
    assert state["pid"] == int((data_dir / "server.pid").read_text())

    start = jobctl("server", "start", env=AUTOSTART)
    assert start.code == 0
    assert "already running" in start.stderr and str(state["pid"]) in start.stderr

    stop = jobctl("server", "stop", env=AUTOSTART)
    assert stop.code == 0, stop.stderr
    assert f"pid {state['pid']}" in stop.stderr
    assert not pid_alive(state["pid"])
    assert not (data_dir / "server.pid").exists()

    down = jobctl("server", "status", env=AUTOSTART)
    assert down.code == 6
    assert "running:  no" in down.stdout
    assert json.loads(jobctl("server", "status", "--json").stdout)["running"] is False
    assert jobctl("server", "stop").code == 0  # stopping a stopped server is fine


def test_autostart_can_be_turned_off_by_config(data_dir: Path) -> None:
    assert jobctl("config", "set", "autostart", "false").code == 0
    result = jobctl("list", env=AUTOSTART)
    result.one_line_error(6, "jobctl server start", "autostart is off")
    assert not (data_dir / "server.pid").exists()


def test_no_autostart_for_an_explicit_url(data_dir: Path) -> None:
    env = {**AUTOSTART, "JOBCTL_API_URL": "http://127.0.0.1:9", "JOBCTL_TOKEN": "x"}
    jobctl("list", env=env).one_line_error(6, "http://127.0.0.1:9")
    assert not (data_dir / "server.pid").exists()


def test_two_commands_at_once_start_one_server(data_dir: Path) -> None:
    env = {**os.environ, "JOBCTL_PORT": "0"}
    env.pop("JOBCTL_NO_AUTOSTART")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jobctl", "list", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outcomes
    started = [err for _, err in outcomes if "started the local job server" in err]
    assert len(started) == 1


def test_stale_state_file_is_ignored(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    (data_dir / "server.json").write_text(
        json.dumps({"pid": int(dead), "url": "http://127.0.0.1:9", "version": "0", "db": "x"})
    )
    assert jobctl("server", "status").code == 6
    result = jobctl("list", env=AUTOSTART)
    assert result.code == 0, result.stderr
    assert "started the local job server" in result.stderr


def test_server_that_cannot_start_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    env = {**AUTOSTART, "JOBCTL_DB": str(tmp_path / "no" / "such" / "dir" / "x.db")}
    blocker = tmp_path / "no"
    blocker.write_text("a file where a directory should be")
    line = jobctl("list", env=env).one_line_error(6, "the local server did not start")
    assert "server.log" in line
