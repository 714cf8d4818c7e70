"""A throwaway PostgreSQL cluster for tests and benchmarks (stdlib + psycopg only).

PostgreSQL refuses to run as root, so the cluster lives in a temp dir owned by the
`postgres` user and its commands run through `runuser` when we are root. It listens
on 127.0.0.1 and a private unix socket dir, and is stopped by its postmaster pid.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin that has initdb and postgres, or PATH's."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2] or 0)
    )
    for path in reversed(candidates):
        if os.path.exists(os.path.join(path, "initdb")):
            return Path(path)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """initdb + pg_ctl start in a temp dir; `url(db)` for clients; `stop()` by pid."""

    def __init__(
        self, bindir: Path, *, durable: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        self.bindir = bindir
        self.durable = durable
        self.settings = settings or {}
        self.root = Path(tempfile.mkdtemp(prefix="jobctl-pg-"))
        self.data = self.root / "data"
        self.sockdir = self.root / "sock"
        self.logfile = self.root / "postgres.log"
        self.port = 0
        self.pid: int | None = None
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str, timeout: float = 60) -> None:
        cmd = list(argv)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> PgCluster:
        self.sockdir.mkdir()
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            for path in (self.root, self.sockdir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sockdir),
            "max_connections": "200",
        }
        if not self.durable:  # tests: PostgreSQL's own crash safety is not what we test
            options.update({"fsync": "off", "synchronous_commit": "off",
                            "full_page_writes": "off"})  # fmt: skip
        options.update(self.settings)
        for attempt in range(5):
            self.port = free_port()
            opts = " ".join(f"-c {k}={v}" for k, v in {**options, "port": str(self.port)}.items())
            try:
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                    "-w", "-t", "30", "-o", opts, "start",
                )  # fmt: skip
                break
            except RuntimeError:
                if attempt == 4 or "could not bind" not in self.log():
                    raise
        pidfile = self.data / "postmaster.pid"
        self.pid = int(pidfile.read_text().splitlines()[0])
        return self

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def url(self, dbname: str = "postgres", *, unix: bool = False) -> str:
        if unix:
            return f"postgresql://postgres@/{dbname}?host={self.sockdir}&port={self.port}"
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL if it lingers; then delete."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)
            if _alive(self.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not a running postmaster (it is not our child, so it is reaped by init)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
