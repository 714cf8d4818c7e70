"""Running the real `jobctl` command, in a subprocess or in process, and checking its errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from jobctl.cli import main
from jobctl.commands.context import Context

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "jobctl"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def one_line_error(self, code: int, *needles: str) -> str:
        """Assert: exit `code`, exactly one line on stderr, no traceback, mentions `needles`."""
        assert self.code == code, f"exit {self.code}, wanted {code}\n{self.stderr}"
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, f"wanted one line on stderr, got:\n{self.stderr}"
        assert "Traceback" not in self.stderr
        assert lines[0].startswith("jobctl: "), lines[0]
        for needle in needles:
            assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
        return lines[0]


def jobctl(
    *args: str,
    env: dict[str, str | None] | None = None,
    input: str | None = None,
    timeout: float = 60,
    cwd: Path = ROOT,
) -> Result:
    """The installed `jobctl` console script in a subprocess, with the test's environment."""
    full = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "jobctl"]
    proc = subprocess.run(
        [*command, *args],
        env=full,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def invoke(
    *args: str,
    env: dict[str, str | None] | None = None,
    tty: bool = False,
    stdin: str = "",
    transport: httpx.BaseTransport | None = None,
) -> Result:
    """main() in process with string streams: as `jobctl()` sees it, without the cost of a
    process (an interpreter and its imports, per call). For what a command says and does;
    `jobctl()` for what only a real process shows (exit status, signals, real pipes and
    terminals, start-up)."""
    out: io.StringIO = FakeTTY() if tty else io.StringIO()
    err: io.StringIO = FakeTTY() if tty else io.StringIO()
    full = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    ctx = Context(
        out, err, FakeTTY(stdin) if tty else io.StringIO(stdin), full, transport=transport
    )
    code = main(list(args), ctx=ctx)
    return Result(code, out.getvalue(), err.getvalue())
