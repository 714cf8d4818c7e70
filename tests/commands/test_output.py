"""Output formats: JSON matches the API's shape; pipes get plain text; terminals get tables.

In process (`invoke`), but for the real pipe of test_piped_output_is_tsv_without_escapes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from jobctl.jobshape import JOB_FIELD_NAMES
from tests.clirun import ROOT, invoke, jobctl
from tests.conftest import ServerProcess, wait_job

JOURNAL = str(ROOT / "examples" / "journal.txt")


@pytest.fixture
def jobs(server: ServerProcess) -> list[dict[str, Any]]:
    """A completed journal job, a failed and a completed demo job; API answers, newest first."""
    with server.client() as http:
        done = http.post(
            "/api/jobs",
            json={"type": "journal_extraction", "input": {"text": "Call Ann on Friday at 3pm."}},
        )
        failed = http.post(
            "/api/jobs",
            json={
                "type": "demo",
                "input": {"steps": 1, "step_seconds": 0, "fail_at": 1, "fail_times": 9},
            },
        )
        quick = http.post(
            "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
        )
        for made in (done, failed, quick):
            wait_job(http, made.json()["id"])
        every_field = {"fields": ",".join(JOB_FIELD_NAMES)}
        return list(http.get("/api/jobs", params=every_field).json()["jobs"])


def api_jobs(server: ServerProcess, **params: Any) -> list[dict[str, Any]]:
    """The listing with every field of each job (not the default summary)."""
    params.setdefault("fields", ",".join(JOB_FIELD_NAMES))
    with server.client() as http:
        return list(http.get("/api/jobs", params=params).json()["jobs"])


def test_list_json_is_the_api_shape(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    result = invoke("list", "--json")
    assert result.code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [j["id"] for j in listed] == [j["id"] for j in api_jobs(server)]
    api = {j["id"]: j for j in api_jobs(server)}
    for job in listed:
        assert set(job) == set(JOB_FIELD_NAMES)
        # Jobs may move on between the two reads; everything but state must be identical.
        fixed = {
            k: v
            for k, v in job.items()
            if k
            not in (
                "status",
                "progress",
                "message",
                "output",
                "updated_at",
                "started_at",
                "completed_at",
                "attempt",
            )
        }
        assert fixed == {k: api[job["id"]][k] for k in fixed}
    finished = [j for j in listed if j["status"] in ("completed", "failed")]
    assert finished and all(j == api[j["id"]] for j in finished)


def test_show_json_is_the_api_shape(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    done = next(j for j in jobs if j["status"] == "completed")
    result = invoke("show", done["id"][:10], "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == done


def test_show_json_fields_and_steps(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    failed = next(j for j in jobs if j["status"] == "failed")
    result = invoke("show", failed["id"], "--json", "status,error,steps")
    data = json.loads(result.stdout)
    assert set(data) == {"status", "error", "steps"}
    assert data["status"] == "failed"
    assert data["steps"][0]["name"] == "step-1"
    assert data["steps"][0]["attempt"] == 3  # tried three times before the job failed


def test_json_fields(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    result = invoke("list", "--json", "id,status")
    data = json.loads(result.stdout)
    assert data == [{"id": j["id"], "status": j["status"]} for j in api_jobs(server)]


def test_list_json_fields_brings_the_input_when_asked(
    server: ServerProcess, jobs: list[dict[str, Any]]
) -> None:
    result = jobctl("list", "--json", "id,input,input_bytes")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [{"id": j["id"], "input": j["input"]} for j in jobs] == [
        {"id": d["id"], "input": d["input"]} for d in data
    ]
    for row in data:
        stored = json.dumps(row["input"], separators=(",", ":"), ensure_ascii=False)
        assert row["input_bytes"] == len(stored.encode())
    assert data[-1]["input"] == {"text": "Call Ann on Friday at 3pm."}


def test_jsonl(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    result = invoke("list", "--jsonl")
    lines = result.stdout.strip().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [j["id"] for j in jobs]


def test_piped_output_is_tsv_without_escapes(
    server: ServerProcess, jobs: list[dict[str, Any]]
) -> None:
    for args in (["list"], ["show", jobs[0]["id"]], ["logs", jobs[-1]["id"]], ["stats"]):
        result = jobctl(*args, env={"NO_COLOR": None})
        assert result.code == 0, result.stderr
        assert "\x1b" not in result.stdout + result.stderr, args
    rows = [line.split("\t") for line in jobctl("list").stdout.strip().splitlines()]
    assert [r[0] for r in rows] == [j["id"] for j in api_jobs(server)]
    failed = next(r for r in rows if r[2] == "failed")
    assert (failed[1] == "demo" and failed[3] == "100") or failed[3].isdigit()
    assert "demo failure at step 1" in failed[5]


def test_terminal_table_has_symbols_words_and_colour(
    server: ServerProcess, jobs: list[dict[str, Any]]
) -> None:
    result = invoke("list", tty=True, env={"NO_COLOR": ""})
    assert result.code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "TYPE", "STATUS", "PROGRESS", "CREATED", "MESSAGE"]
    assert len(rows) == 3
    assert "\x1b[32m✔ completed\x1b[0m" in result.stdout
    assert "\x1b[31m✖ failed\x1b[0m" in result.stdout
    assert jobs[0]["id"][:8] in rows[0]


@pytest.mark.parametrize("switch", [["--no-color"], ["NO_COLOR"]])
def test_no_color(server: ServerProcess, jobs: list[dict[str, Any]], switch: list[str]) -> None:
    env = {"NO_COLOR": "1"} if switch == ["NO_COLOR"] else {"NO_COLOR": ""}
    args = ["list", *switch] if switch != ["NO_COLOR"] else ["list"]
    result = invoke(*args, tty=True, env=env)
    assert "\x1b" not in result.stdout
    assert "✔ completed" in result.stdout  # the symbol and the word carry the meaning


def test_list_filters(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    def ids(*args: str) -> list[str]:
        result = invoke("list", *args, "--json", "id")
        assert result.code == 0, result.stderr
        return [j["id"] for j in json.loads(result.stdout)]

    failed = [j["id"] for j in jobs if j["status"] == "failed"]
    completed = [j["id"] for j in jobs if j["status"] == "completed"]
    assert ids("--status", "failed") == failed
    assert ids("--status", "completed") == completed
    assert len(completed) == 2
    assert sorted(ids("-s", "failed", "-s", "completed")) == sorted(failed + completed)
    assert ids("--status", "failed,completed") == ids("-s", "failed", "-s", "completed")
    assert len(ids("--type", "demo")) == 2
    assert ids("--limit", "1") == [jobs[0]["id"]]
    assert len(ids("--since", "1h")) == 3
    assert ids("--type", "nothing_like_this") == []


def test_list_all_follows_cursors(server: ServerProcess) -> None:
    with server.client() as http:
        for _ in range(7):
            http.post("/api/jobs", json={"type": "demo", "input": {"steps": 0}})
    # Pages of 500 would hide the cursor logic; --limit smaller than --all's page is moot,
    # so check both: --all returns everything, --limit caps across pages.
    assert len(json.loads(invoke("list", "--all", "--json", "id").stdout)) == 7
    assert len(json.loads(invoke("list", "--limit", "5", "--json", "id").stdout)) == 5


def test_empty_list_is_exit_0(server: ServerProcess) -> None:
    result = invoke("list")
    assert (result.code, result.stdout) == (0, "")
    assert invoke("list", tty=True).stderr.strip() == "jobctl: no jobs match"
    assert json.loads(invoke("list", "--json").stdout) == []


def test_show_text(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    failed = next(j for j in jobs if j["status"] == "failed")
    text = invoke("show", failed["id"][:8]).stdout
    assert f"id:        {failed['id']}" in text
    assert "status:    ✖ failed (attempt 1 of 3)" in text
    assert re.search(r"\n  ✖ failed +step-1 +attempt 3 +\d", text), text
    assert "error:     " in text and "demo failure at step 1" in text


def test_logs(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    done = next(j for j in jobs if j["type"] == "journal_extraction")
    text = invoke("logs", done["id"][:8]).stdout
    assert "INFO" in text and "extracted 1 events and 0 action items" in text
    lines = invoke("logs", done["id"], "--jsonl").stdout.strip().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == sorted(
        json.loads(line)["seq"] for line in lines
    )


def test_logs_follow_until_the_job_ends(server: ServerProcess) -> None:
    job_id = invoke(
        "submit", "--type", "demo", "--input", '{"steps": 3, "step_seconds": 0.2}', "-q"
    ).stdout.strip()
    result = invoke("logs", job_id, "--follow", "--timeout", "20")
    assert result.code == 0, result.stderr
    with server.client() as http:
        assert http.get(f"/api/jobs/{job_id}").json()["status"] == "completed"


def test_submit_json_and_quiet(server: ServerProcess) -> None:
    quiet = invoke("submit", JOURNAL, "-q")
    assert quiet.code == 0 and quiet.stderr == ""
    job_id = quiet.stdout.strip()
    as_json = json.loads(invoke("submit", JOURNAL, "--json").stdout)
    assert set(as_json) == set(JOB_FIELD_NAMES) and as_json["id"] != job_id
    watched = json.loads(invoke("submit", JOURNAL, "--watch", "--json", "status,output").stdout)
    assert watched["status"] == "completed"
    assert watched["output"]["events_created"] == 5


def test_stats(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    text = invoke("stats")
    assert text.code == 0, text.stderr
    assert "failures:  33% of 3 finished in the last hour" in text.stdout
    assert "ALERT failure_rate" in text.stdout
    data = json.loads(invoke("stats", "--json").stdout)
    assert data["failure_rate"] == pytest.approx(1 / 3)
    assert json.loads(invoke("stats", "--json", "queue_depth").stdout) == {
        "queue_depth": data["queue_depth"]
    }
    check = invoke("stats", "--check")
    assert check.code == 1
    assert "alert threshold(s) crossed: failure_rate" in check.stderr


def test_stats_check_passes_when_quiet(server: ServerProcess) -> None:
    invoke("submit", JOURNAL, "--watch", "-q")
    assert invoke("stats", "--check").code == 0


def test_retry_and_cancel(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    failed = next(j for j in jobs if j["status"] == "failed")
    result = invoke("retry", failed["id"][:8])
    assert (result.code, result.stdout.strip()) == (0, failed["id"])
    with server.client() as http:
        assert http.get(f"/api/jobs/{failed['id']}").json()["attempt"] == 2


def test_bulk_needs_yes_off_a_terminal(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    invoke("retry", "--all-failed").one_line_error(2, "retry 1 job: add --yes")
    result = invoke("retry", "--all-failed", "--yes")
    assert result.code == 0, result.stderr
    assert len(result.stdout.split()) == 1
    invoke("cancel", *[j["id"] for j in jobs]).one_line_error(2, "cancel 3 jobs: add --yes")


def test_bulk_asks_on_a_terminal(server: ServerProcess, jobs: list[dict[str, Any]]) -> None:
    failed = next(j for j in jobs if j["status"] == "failed")
    no = invoke("retry", "--all-failed", "--type", "demo", tty=True, stdin="n\n")
    assert (no.code, no.stdout) == (0, "")
    assert "retry 1 job? [y/N] " in no.stderr and "nothing retried" in no.stderr
    yes = invoke("retry", "--all-failed", tty=True, stdin="y\n")
    assert (yes.code, yes.stdout.strip()) == (0, failed["id"])
