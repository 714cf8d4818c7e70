"""Bad input: one clear line on stderr, the right exit code, no traceback, no job made."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.clirun import jobctl
from tests.conftest import ServerProcess


def job_count(server: ServerProcess) -> int:
    with server.client() as http:
        return len(http.get("/api/jobs", params={"limit": 500}).json()["jobs"])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "dir": tmp_path / "a-directory",
        "binary": tmp_path / "image.png",
        "empty": tmp_path / "empty.txt",
        "blank": tmp_path / "blank.txt",
        "huge": tmp_path / "huge.txt",
        "latin1": tmp_path / "latin1.txt",
        "bad_json": tmp_path / "input.json",
    }
    made["dir"].mkdir()
    made["binary"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    made["empty"].write_bytes(b"")
    made["blank"].write_text("  \n\n\t")
    made["huge"].write_text("x" * (1024 * 1024 + 1))
    made["latin1"].write_bytes("caf\xe9 au lait".encode("latin-1"))
    made["bad_json"].write_text("{not json")
    return made


CASES = [
    (["submit", "{tmp}/missing.txt"], "missing.txt: no such file"),
    (["submit", "{dir}"], "is a directory"),
    (["submit", "{binary}"], "looks like a binary file"),
    (["submit", "{empty}"], "is empty"),
    (["submit", "{blank}"], "is empty"),
    (["submit", "{huge}"], "over the 1024 KiB input limit"),
    (["submit", "{latin1}"], "not UTF-8 text"),
    (["submit", "--type", "demo", "--input", "{{nope"], "--input: invalid JSON"),
    (["submit", "--type", "demo", "--input", "[1, 2]"], "must be a JSON object"),
    (["submit", "--type", "demo", "--input-file", "{bad_json}"], "invalid JSON"),
    (["submit"], "nothing to submit"),
    (["submit", "--type", "demo", "--input", "{{}}", "--input-file", "{bad_json}"], "not both"),
    (["list", "--status", "done"], "unknown status 'done'"),
    (["list", "--since", "yesterday"], "since: expected ISO-8601"),
    (["list", "--json", "id,nope"], "unknown field 'nope' for --json; available: id, type"),
    (["show", "xyz!"], "not a job id or id prefix"),
    (["retry"], "give job ids or --all-failed"),
]


@pytest.mark.parametrize(("argv", "needle"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    server: ServerProcess,
    files: dict[str, Path],
    tmp_path: Path,
    argv: list[str],
    needle: str | None,
) -> None:
    names = {k: str(v) for k, v in files.items()}
    args = [a.format(tmp=tmp_path, **names) for a in argv]
    before = job_count(server)
    line = jobctl(*args).one_line_error(2)
    if needle:
        assert needle in line
    assert job_count(server) == before


def test_unknown_job_type(server: ServerProcess) -> None:
    line = jobctl("submit", "--type", "nope", "--input", "{}").one_line_error(2)
    assert "unknown job type 'nope' (known: demo, journal_extraction)" in line


def test_missing_required_input(server: ServerProcess) -> None:
    jobctl("submit", "--input", "{}").one_line_error(2, "input.text is required")


def test_unknown_id_prefix(server: ServerProcess) -> None:
    jobctl("show", "0123abcd").one_line_error(4, "no job with an id starting '0123abcd'")


def test_ambiguous_id_prefix(server: ServerProcess) -> None:
    # 17 jobs over 16 hex digits: two of them must share a first character.
    with server.client() as http:
        for _ in range(17):
            made = http.post("/api/jobs", json={"type": "demo", "input": {"steps": 0}})
            assert made.status_code == 201
        ids = [j["id"] for j in http.get("/api/jobs", params={"limit": 100}).json()["jobs"]]
    first = [i[0] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    jobctl("show", shared).one_line_error(2, f"id prefix {shared!r} is ambiguous")
    shown = jobctl("show", ids[0][:13], "--json", "id")
    assert shown.code == 0, shown.stderr
    assert ids[0] in shown.stdout


def test_server_down_says_how_to_start_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    line = jobctl("submit", "--type", "demo", "--input", "{}", env={"JOBCTL_PORT": str(port)})
    text = line.one_line_error(6)
    assert f"http://127.0.0.1:{port}" in text
    assert "jobctl server start" in text


def test_wrong_token_is_never_printed(server: ServerProcess) -> None:
    secret = "jctl_this_is_not_the_token_0123456789"
    result = jobctl("submit", "--type", "demo", "--input", "{}", env={"JOBCTL_TOKEN": secret})
    result.one_line_error(5, "not authenticated")
    assert secret not in result.stdout + result.stderr


def test_stdin_input(server: ServerProcess) -> None:
    result = jobctl("submit", "-", "--json", "input", input="Call Bob on Monday.\n")
    assert result.code == 0, result.stderr
    assert '"text": "Call Bob on Monday.\\n"' in result.stdout


def test_empty_stdin(server: ServerProcess) -> None:
    jobctl("submit", "-", input="").one_line_error(2, "stdin: is empty")


def test_file_plus_input_merges(server: ServerProcess, tmp_path: Path) -> None:
    entry = tmp_path / "entry.txt"
    entry.write_text("Dentist on Friday at 3pm.")
    result = jobctl("submit", str(entry), "--input", '{"date": "2026-03-02"}', "-q")
    assert result.code == 0, result.stderr
    with server.client() as http:
        job = http.get(f"/api/jobs/{result.stdout.strip()}").json()
    assert job["input"] == {
        "date": "2026-03-02",
        "text": "Dentist on Friday at 3pm.",
        "filename": "entry.txt",
    }


def test_idempotency_key_makes_one_job(server: ServerProcess) -> None:
    args = ("submit", "--type", "demo", "--input", '{"steps": 0}', "--idempotency-key", "k-1", "-q")
    first, second = jobctl(*args), jobctl(*args)
    assert first.code == second.code == 0
    assert first.stdout == second.stdout
    with server.client() as http:
        assert len(http.get("/api/jobs").json()["jobs"]) == 1
