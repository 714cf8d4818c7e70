"""`jobctl server run` as a process: SIGTERM drains and cleans up (exit 0), start-up
errors are one line with exit 2 or 6, and the files it keeps are its owner's only."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobctl.server.records import NewJob, now_us
from jobctl.server.store.sqlite import SQLiteStore
from tests.clirun import jobctl
from tests.conftest import ServerProcess, wait_for, wait_job

HOUR = 3600 * 1_000_000


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_cleans_up_and_exits_0(
    make_server: Any, tmp_path: Path, signum: signal.Signals
) -> None:
    db = tmp_path / "jobs.db"
    server: ServerProcess = make_server("--db", str(db))
    with server.client() as http:
        quick = http.post(
            "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
        )
        long = http.post(
            "/api/jobs", json={"type": "demo", "input": {"steps": 50, "step_seconds": 0.5}}
        )
        assert quick.status_code == long.status_code == 201
        wait_job(http, quick.json()["id"])
        long_id = long.json()["id"]
        wait_job(http, long_id, ("running",))
    assert server.proc is not None
    os.kill(server.proc.pid, signum)
    assert server.proc.wait(30) == 0, server.log[-3000:]
    server.ended = True
    assert not server.state_file.exists(), "server.json left behind"
    assert "draining" in server.log and "Traceback" not in server.log
    # The store was closed: the lock is free, and SQLite's last close removed the WAL.
    with open(str(db) + ".lock") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not Path(str(db) + "-wal").exists()
    with sqlite3.connect(db) as conn:
        status, message, owner = conn.execute(
            "SELECT status, message, lease_owner FROM jobs WHERE id = ?", (long_id,)
        ).fetchone()
    # the drain gave the running job its grace, then put it back in the queue
    assert (status, message, owner) == ("pending", "Interrupted by a server shutdown", None)


def _db_with_jobs(path: Path, *, finished: bool = False) -> None:
    store = SQLiteStore(str(path))
    store.open_sync()
    try:
        for _ in range(40):
            job = NewJob(
                str(uuid.uuid4()), "demo", json.dumps({"pad": "y" * 3000}), "earlier-user", 1
            )
            store.create_job_sync(job, now_us(), HOUR)
        if finished:  # history only: nothing for the server to run
            store.conn.execute("UPDATE jobs SET status = 'completed'")
    finally:
        store.close_sync()


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for n in range(2, len(data) // page):  # every page but the first (the schema's)
        data[n * page : (n + 1) * page] = b"\xde" * page
    path.write_bytes(bytes(data))


def run_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobctl", "server", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def one_line(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("jobctl server: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_start_up_errors_are_one_line_with_exit_2_or_6(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    _db_with_jobs(damaged)
    _damage(damaged)
    one_line(run_server("--port", "0", "--db", str(damaged)), 6, str(damaged), "malformed")

    garbage = tmp_path / "garbage.db"
    garbage.write_text("this is not a database\n" * 100)
    one_line(run_server("--port", "0", "--db", str(garbage)), 6, "not a database")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        one_line(run_server("--port", port, "--db", str(tmp_path / "a.db")), 6, "cannot listen")

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = blocker / "server.json"  # its directory is a file: cannot be written
    done = run_server("--port", "0", "--db", str(tmp_path / "b.db"), "--state-file", str(state))
    one_line(done, 6, "cannot write the state file")

    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    one_line(run_server("--port", "0", "--db", unreachable), 6, "cannot connect to PostgreSQL")

    done = run_server("--port", "0", "--functions", "no_such_module_here")
    one_line(done, 2, "cannot load job functions")
    done = run_server("--port", "0", env={"JOBCTL_LEASE_SECONDS": "soon"})
    one_line(done, 2, "JOBCTL_LEASE_SECONDS")


def test_a_second_server_on_the_same_database_is_one_line_exit_6(server: ServerProcess) -> None:
    done = run_server("--port", "0")  # the same data dir, so the same jobctl.db
    one_line(done, 6, "another jobctl server is using")
    with server.client() as http:  # and the first is unharmed
        assert http.get("/api/health").status_code == 200


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_read_only_disk_at_start_up_is_one_line_exit_6(tmp_path: Path) -> None:
    disk = tmp_path / "ro"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN?)")
    try:
        (disk / "data").mkdir()
        _db_with_jobs(disk / "data" / "jobs.db")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        state = disk / "data" / "server.json"
        done = run_server("--port", "0", "--db", str(tmp_path / "c.db"), "--state-file", str(state))
        one_line(done, 6, "cannot write the state file", "Read-only file system")
        done = run_server("--port", "0", "--db", str(disk / "data" / "jobs.db"))
        one_line(done, 6, "cannot open the database", "Read-only file system")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_files_are_the_owners_only_and_loose_secrets_are_tightened(
    make_server: Any, isolated_dirs: Path
) -> None:
    config_dir, data_dir = isolated_dirs / "config", isolated_dirs / "data"
    config_dir.mkdir(parents=True)
    data_dir.mkdir(mode=0o755, parents=True)
    os.chmod(data_dir, 0o755)
    token = config_dir / "server-token"
    token.write_text("jctl_" + "t" * 40)
    secret = config_dir / "jwt-secret"
    secret.write_text("s" * 43)
    db = data_dir / "jobctl.db"
    _db_with_jobs(db, finished=True)  # as an older jobctl left them: 0644 in 0755
    for path in (token, secret, db):
        os.chmod(path, 0o644)

    server: ServerProcess = make_server()
    with server.client() as http:  # the existing token is still the one used
        job = http.post(
            "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
        )
        assert job.status_code == 201
        wait_job(http, job.json()["id"])
    assert mode(data_dir) == 0o700
    for name in ("jobctl.db", "jobctl.db-wal", "jobctl.db-shm", "jobctl.db.lock", "server.json"):
        assert mode(data_dir / name) == 0o600, name
    assert mode(token) == 0o600 and mode(secret) == 0o600
    assert f"token file {token} was open to other users (mode 0644); now 0600" in server.log
    assert f"JWT secret file {secret} was open to other users (mode 0644)" in server.log


def test_an_autostarted_servers_files_are_the_owners_only(isolated_dirs: Path) -> None:
    data_dir = isolated_dirs / "data"
    started = jobctl("server", "start", "--port", "0", "--json")
    try:
        assert started.code == 0, started.stderr
        wait_for(lambda: (data_dir / "server.json").exists())
        assert mode(data_dir) == 0o700
        for name in ("server.log", "server.pid", "server.lock", "server.json", "jobctl.db"):
            assert mode(data_dir / name) == 0o600, name
    finally:
        assert jobctl("server", "stop").code == 0
