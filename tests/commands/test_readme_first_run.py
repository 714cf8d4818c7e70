"""The README's first command, verbatim, in a fresh virtual environment of a clean clone.

Slow (a `pip install -e .` of the clone, ~30 s with a warm pip cache), and the
one test that proves a new user's first minute: the command installs jobctl,
starts the local server by itself, and prints the extraction summary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from jobctl.backends.localserver import pid_alive
from tests.clirun import ROOT


def first_command() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.+?)\n```", readme, re.S)
    assert block, "README.md must open with a ```sh block holding the first command"
    command = block.group(1).strip()
    assert readme.index(block.group(0)) < 200, (
        "the first command belongs in the README's first lines"
    )
    return command


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_readme_first_command_on_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    command = first_command()
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert command.endswith(".venv/bin/jobctl submit examples/journal.txt --watch")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBCTL_", "VIRTUAL_ENV"))}
    env.update(
        JOBCTL_CONFIG_DIR=str(tmp_path / "config"),
        JOBCTL_DATA_DIR=str(tmp_path / "data"),
        JOBCTL_PORT="0",
        PIP_QUIET="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    try:
        proc = subprocess.run(
            ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=540
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "5 events, 5 action items" in proc.stdout
        assert "✔ completed journal_extraction" in proc.stdout
        assert "jobctl: started the local job server at http://127.0.0.1:" in proc.stderr
        assert f"data: {tmp_path / 'data'}" in proc.stderr
    finally:
        state = tmp_path / "data" / "server.json"
        if state.exists():
            pid = int(json.loads(state.read_text())["pid"])
            if pid_alive(pid):
                os.kill(pid, signal.SIGTERM)


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.+?)\n```", readme, re.S)
    assert len(blocks) >= 2, "the README's second block is the test command"
    test_command = blocks[1].strip()
    assert readme.index(test_command) < 800, "the test command belongs in the first lines"
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci, ".ci/run must run the README's test command verbatim"
