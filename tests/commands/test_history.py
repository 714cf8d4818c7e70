"""Event history and replay, retry with new input, watch --logs and show --trace, end to end
(a real server process, the real `jobctl` command)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.clirun import jobctl
from tests.conftest import ServerProcess, wait_job

pytestmark = pytest.mark.both_stores  # every server of these tests on SQLite, then PostgreSQL


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.log"


@pytest.fixture
def fn_server(make_server: Any, effects: Path) -> ServerProcess:
    server: ServerProcess = make_server(
        "--functions", "jobfns", "--backoff", "0.05", env={"JOBCTL_TEST_EFFECTS": str(effects)}
    )
    return server


def ran(effects: Path, job_id: str) -> list[str]:
    if not effects.exists():
        return []
    return [line.split()[1] for line in effects.read_text().splitlines() if line.startswith(job_id)]


def test_events_replay_of_an_e_event_starts_a_new_job_linked_to_it(
    fn_server: ServerProcess, effects: Path
) -> None:
    with fn_server.client() as http:
        sent = http.post(
            f"/e/{fn_server.token}",
            json={"name": "app/counted", "data": {"steps": 1, "step_seconds": 0}, "id": "evt-1"},
        )
        assert sent.status_code == 200, sent.text
        first_job = sent.json()["ids"][0]
        wait_job(http, first_job)
    listed = jobctl("events", "list", "--name", "app/counted", "--json")
    assert listed.code == 0, listed.stderr
    [event] = json.loads(listed.stdout)
    assert event["source"] == "event" and event["event_id"] == "evt-1"
    assert event["job_ids"] == [first_job]
    replayed = jobctl("events", "replay", event["id"][:8])
    assert replayed.code == 0, replayed.stderr
    new_job = replayed.stdout.strip()
    assert new_job != first_job
    with fn_server.client() as http:
        done = wait_job(http, new_job)
        assert done["status"] == "completed"
        assert done["input"] == {"steps": 1, "step_seconds": 0}
        events = http.get("/api/events", params={"name": "app/counted"}).json()["events"]
    replay = next(e for e in events if e["source"] == "replay")
    assert replay["replay_of"] == event["id"] and replay["job_ids"] == [new_job]
    shown = json.loads(jobctl("events", "show", replay["id"], "--json").stdout)
    assert [j["id"] for j in shown["jobs"]] == [new_job]
    # the same event id sent again starts no job (de-duplicated) and is still recorded
    with fn_server.client() as http:
        again = http.post(
            f"/e/{fn_server.token}",
            json={"name": "app/counted", "data": {"steps": 1, "step_seconds": 0}, "id": "evt-1"},
        )
        assert again.json()["ids"] == [first_job]
        # with other data it is a conflict, not a silent de-duplication (#10)
        other = http.post(
            f"/e/{fn_server.token}", json={"name": "app/counted", "data": {}, "id": "evt-1"}
        )
        assert other.status_code == 400 and other.json()["code"] == "idempotency_conflict"
    assert ran(effects, first_job) == ["step-1"] and ran(effects, new_job) == ["step-1"]


def test_api_submits_are_kept_as_events(fn_server: ServerProcess) -> None:
    made = jobctl("submit", "--type", "counted", "--input", '{"steps": 0}', "-q")
    assert made.code == 0, made.stderr
    job_id = made.stdout.strip()
    [event] = json.loads(jobctl("events", "list", "--json").stdout)
    assert (event["name"], event["source"], event["job_ids"]) == ("counted", "api", [job_id])
    trace = jobctl("show", job_id[:8], "--trace")
    assert trace.code == 0, trace.stderr
    assert trace.stdout.splitlines()[0].startswith(f"event counted (api) {event['id'][:8]}")


def test_retry_with_new_input_runs_the_failed_step_and_keeps_completed_ones(
    fn_server: ServerProcess, effects: Path
) -> None:
    bad = {"steps": 3, "step_seconds": 0, "fail_at": 2, "fail_times": 99}
    made = jobctl("submit", "--type", "counted", "--input", json.dumps(bad), "-q")
    job_id = made.stdout.strip()
    with fn_server.client() as http:
        assert wait_job(http, job_id)["status"] == "failed"
    assert ran(effects, job_id) == ["step-1", "fail-2", "fail-2", "fail-2"]
    jobctl("retry", job_id, "--input", '{"steps": "x"', "-y").one_line_error(2, "invalid JSON")
    good = {"steps": 3, "step_seconds": 0}
    retried = jobctl("retry", job_id[:8], "--input", json.dumps(good))
    assert retried.code == 0, retried.stderr
    with fn_server.client() as http:
        done = wait_job(http, job_id)
        steps = http.get(f"/api/jobs/{job_id}/steps").json()["steps"]
    assert done["status"] == "completed" and done["attempt"] == 2
    assert done["input"] == good
    # step 1 kept its result (not run again); step 2 ran with the new input; then step 3
    assert ran(effects, job_id) == ["step-1", "fail-2", "fail-2", "fail-2", "step-2", "step-3"]
    assert [s["status"] for s in steps] == ["completed"] * 3
    trace = jobctl("show", job_id, "--trace").stdout
    assert "attempt 2" in trace and "(an earlier attempt)" in trace


def test_retry_edit_opens_the_editor_and_an_unchanged_file_cancels(
    fn_server: ServerProcess, tmp_path: Path
) -> None:
    made = jobctl(
        "submit",
        "--type",
        "counted",
        "-q",
        "--input",
        '{"steps": 1, "step_seconds": 0, "fail_at": 1, "fail_times": 99}',
    )
    job_id = made.stdout.strip()
    with fn_server.client() as http:
        wait_job(http, job_id)
    keep = tmp_path / "keep.sh"
    keep.write_text("#!/bin/sh\ntrue\n")
    fix = tmp_path / "fix.sh"
    fix.write_text('#!/bin/sh\nprintf \'{"steps": 1, "step_seconds": 0}\' > "$1"\n')
    for script in (keep, fix):
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    unchanged = jobctl("retry", job_id, "--edit", env={"VISUAL": str(keep), "TMPDIR": str(scratch)})
    assert unchanged.code == 0 and "unchanged" in unchanged.stderr
    with fn_server.client() as http:
        assert http.get(f"/api/jobs/{job_id}").json()["attempt"] == 1
    edited = jobctl(
        "retry", job_id, "--edit", env={"VISUAL": None, "EDITOR": str(fix), "TMPDIR": str(scratch)}
    )
    assert edited.code == 0, edited.stderr
    with fn_server.client() as http:
        done = wait_job(http, job_id)
    assert done["status"] == "completed" and done["input"] == {"steps": 1, "step_seconds": 0}
    assert os.listdir(scratch) == []  # the edited file is removed


@pytest.mark.parametrize("poll", [False, True], ids=["realtime", "polling"])
def test_watch_logs_interleaves_lines_and_explains_a_failure(
    fn_server: ServerProcess, poll: bool
) -> None:
    # Realtime: slow enough that the watch is subscribed before the first line (~3 s in).
    seconds = 0.2 if poll else 1.5
    bad = {"steps": 2, "step_seconds": seconds, "fail_at": 2, "fail_times": 99}
    job_id = jobctl("submit", "--type", "counted", "--input", json.dumps(bad), "-q").stdout.strip()
    extra = ["--poll", "--interval", "0.2"] if poll else []
    watched = jobctl("watch", job_id, "--logs", "--jsonl", *extra)
    assert watched.code == 1, watched.stderr
    records = [json.loads(line) for line in watched.stdout.splitlines()]
    kinds = [r["type"] for r in records]
    logs = [r for r in records if r["type"] == "log"]
    assert [r["seq"] for r in logs] == list(range(1, len(logs) + 1))  # each once, in order
    assert len(logs) == 3  # two retries announced, then the failure
    assert kinds[-2:] == ["failure", "summary"]
    failure = records[-2]
    assert failure["step"] == "step-2" and "planned failure" in failure["error"]
    assert [ln["seq"] for ln in failure["last_logs"]] == [1, 2, 3]
    sources = {r["source"] for r in logs}
    assert sources == {"poll"} if poll else "realtime" in sources, sources
    # live, the log lines come before the job's end (polling, a quick job may have ended
    # before the watch began: then its lines follow its first sighting)
    assert poll or kinds.index("log") < next(
        i for i, r in enumerate(records) if r["type"] == "transition" and r["to"] == "failed"
    )
    human = jobctl("watch", job_id, "--logs")
    assert human.code == 1
    lines = human.stdout.splitlines()
    assert any(line.split("\t")[1:2] == ["log"] for line in lines)
    assert any("failed at step 'step-2'" in line for line in lines)
