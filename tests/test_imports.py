"""Start-up hygiene, checked in a fresh interpreter: what `jobctl --help` and
`jobctl list --json` import. The static layout cannot prove a lazy import stays lazy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ServerProcess

FORBIDDEN = ("textual", "supabase", "realtime", "jobctl.server")

PROBE = """
import json, sys
from jobctl.cli import main
code = main(sys.argv[1:])
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["code"], set(data["modules"])


def heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_help_imports_nothing_heavy() -> None:
    code, modules = imported("--help")
    assert code == 0
    assert heavy(modules, FORBIDDEN) == []


def test_list_json_imports_nothing_heavy(server: ServerProcess) -> None:
    code, modules = imported("list", "--json")
    assert code == 0
    assert heavy(modules, (*FORBIDDEN, "rich", "asyncio")) == []
    assert "httpx" in modules  # the probe did reach the server


@pytest.mark.parametrize(
    "module",
    [
        "jobctl.backends.jobapi",
        "jobctl.backends.feed",
        "jobctl.backends.supabase_reader",
        "jobctl.backends.watchloop",
        "jobctl.backends.localserver",
        "jobctl.config",
        "jobctl.models",
        "jobctl.jobshape",
        "jobctl.errors",
        "jobctl.glyphs",
        "jobctl.jobinput",
        "jobctl.supabase_migration",
    ],
)
def test_client_core_imports_no_ui_and_no_server(module: str) -> None:
    """The backends and the shared basics: no Typer, Rich or Textual, and no server (the
    import-linter contracts say the same of the source; this proves it at run time)."""
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert heavy(set(json.loads(out.stdout)), (*FORBIDDEN, "rich", "typer")) == []
