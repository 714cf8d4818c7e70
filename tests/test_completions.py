"""completions/ holds `jobctl completion SHELL` output; it must not drift from the app."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from typer.main import get_command

from jobctl.cli import app
from jobctl.commands.completion import script
from tests.clirun import ROOT, jobctl

FILES = {"bash": "jobctl.bash", "zsh": "_jobctl", "fish": "jobctl.fish"}


@pytest.mark.parametrize("shell", FILES)
def test_completion_files_match_the_app(shell: str) -> None:
    committed = (ROOT / "completions" / FILES[shell]).read_text()
    assert committed == script(shell, get_command(app)), (
        f"completions/{FILES[shell]} is stale: run "
        f"`jobctl completion {shell} > completions/{FILES[shell]}`"
    )
    assert jobctl("completion", shell).stdout == committed


def complete(line: str) -> list[str]:
    """What bash offers for `line` (the cursor at its end), using the committed script."""
    words = line.split(" ")
    program = f"""
source {ROOT / "completions" / "jobctl.bash"}
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_jobctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_values() -> None:
    assert complete("jobctl su") == ["submit"]
    assert complete("jobctl server st") == ["start", "status", "stop"]
    assert complete("jobctl list --j") == ["--json", "--jsonl"]
    assert complete("jobctl --profile prod list --st") == ["--status"]
    assert complete("jobctl list --status f") == ["failed"]
    assert complete("jobctl submit --w") == ["--watch"]
    assert complete("jobctl submit ex") == []  # left to bash's file completion (-o default)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_scripts_parse(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = ROOT / "completions" / FILES[shell]
    flag = ["--no-execute"] if shell == "fish" else ["-n"]
    subprocess.run([shell, *flag, str(path)], check=True)


def test_fish_completes_commands_and_values() -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    program = (
        f"source {ROOT / 'completions' / 'jobctl.fish'}; "
        "complete -C 'jobctl server st'; echo ---; complete -C 'jobctl list --status f'"
    )
    out = subprocess.run(["fish", "-c", program], capture_output=True, text=True, check=True)
    servers, statuses = out.stdout.split("---\n")
    assert [line.split("\t")[0] for line in servers.splitlines()] == ["start", "status", "stop"]
    assert [line.split("\t")[0] for line in statuses.splitlines()] == ["failed"]
