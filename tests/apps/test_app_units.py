"""App profiles without a server: the mapping, the body templates, the profile's checks, and
the commands against a mocked app (pytest-httpx: every response used, nothing unexpected)."""

from __future__ import annotations

import json
import os
import re
import stat
import time
import tomllib
from pathlib import Path
from typing import Any

import jwt
import pytest
from pytest_httpx import HTTPXMock

from jobctl.backends.appprofile import fill_template, load_profile, parse_profile
from jobctl.errors import UsageError
from jobctl.models import JobStatus
from tests.apps.profiles import DECISION, JOURNAL, write_profile
from tests.clirun import invoke

SB = "http://sb.test"
API = "http://app.test"
JOB_ID = "3fa2c0de-0000-4000-8000-000000000001"
REST = re.compile(rf"^{SB}/rest/v1/jobs\?")


def token(seconds: float = 3600, sub: str = "u1") -> str:
    claims = {"sub": sub, "role": "authenticated", "exp": int(time.time() + seconds)}
    return jwt.encode(claims, "test-secret-of-32-bytes-at-least!!", algorithm="HS256")


def config_dir() -> Path:
    return Path(os.environ["JOBCTL_CONFIG_DIR"])


def setup(template: str = JOURNAL, name: str = "journal-app", access: str | None = None,
          refresh: str | None = "r1") -> Path:  # fmt: skip
    path = write_profile(
        config_dir(), name, template, api_url=API, supabase_url=SB, anon_key="anon"
    )
    lines = [f'[profiles."{name}"]', f'token = "{access or token()}"']
    if refresh:
        lines.append(f'refresh_token = "{refresh}"')
    (config_dir() / "config.toml").write_text("\n".join(lines) + "\n")
    return path


def journal_row(status: str = "completed", **extra: Any) -> dict[str, Any]:
    row = {
        "id": JOB_ID,
        "status": status,
        "error_message": None,
        "result_summary": None,
        "created_at": "2026-03-02T09:30:00+00:00",
        "updated_at": "2026-03-02T09:30:04+00:00",
        "user_id": "u1",
        "journal_entry_id": "e1",
    }
    if status == "completed":
        row["result_summary"] = {"events_created": 5, "evidence_processed": 2,
                                 "action_items_created": 1, "event_ids": ["a"]}  # fmt: skip
    row.update(extra)
    return row


def journal() -> Any:
    path = setup()
    profile = load_profile("journal-app", path)
    assert profile is not None
    return profile


# mapping -------------------------------------------------------------------------
def test_a_journal_row_maps_through_the_profile() -> None:
    profile = journal()
    running = profile.map_row(journal_row("processing"))
    assert (running.status, running.progress, running.message) == (JobStatus.RUNNING, 0, None)
    assert running.type == "journal_extraction" and running.user_id == "u1"
    done = profile.map_row(journal_row())
    assert done.status == JobStatus.COMPLETED and done.progress == 100
    assert done.message == "5 events extracted"
    assert done.output["events_created"] == 5
    failed = profile.map_row(journal_row("failed", error_message="the model timed out"))
    assert (failed.status, failed.error) == (JobStatus.FAILED, "the model timed out")


def test_a_decision_row_maps_json_paths_and_its_own_words() -> None:
    path = write_profile(config_dir(), "decision-app", DECISION, api_url=API, supabase_url=SB,
                         anon_key="anon")  # fmt: skip
    profile = load_profile("decision-app", path)
    assert profile is not None
    row = {"id": JOB_ID, "type": "market_research", "status": "processing", "progress": 40,
           "output": {"status_message": "Reading filings"}, "error": None,
           "created_at": "2026-03-02T09:30:00Z", "updated_at": "2026-03-02T09:30:04Z"}  # fmt: skip
    job = profile.map_row(row)
    assert (job.type, job.status, job.progress, job.message) == (
        "market_research", JobStatus.RUNNING, 40, "Reading filings")  # fmt: skip
    assert profile.map_row({**row, "status": "complete"}).status == JobStatus.COMPLETED
    assert profile.timeout_for("option_analysis") == 30
    assert profile.poll_by_type()["brief_generation"] == 2
    assert profile.columns["message"] == "output.status_message"


def test_body_templates() -> None:
    values = {"text": "Met Ana", "input": {"text": "Met Ana", "n": 2}, "type": "t", "n": 2}
    body = {"eventText": "{text}", "referenceDate": "{reference_date}", "input": "{input}",
            "n": "{n}", "label": "{type} job: {text}", "list": ["{n}", "{missing}"]}  # fmt: skip
    assert fill_template(body, values) == {
        "eventText": "Met Ana",
        "input": {"text": "Met Ana", "n": 2},  # an object stays an object
        "n": 2,  # a number stays a number
        "label": "t job: Met Ana",
        "list": [2],
    }, "an optional field with no value is left out"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"table": {"progres": "x"}}, "table.progres: not a job field"),
        ({"status": {"done": ["complete"]}}, "status.done: not a jobctl status"),
        ({"submit": {"path": "api/x"}}, "submit.path"),
        ({"job": {"url": "/api/jobs"}}, "job.url: must contain {id}"),
        ({"types": {"t": {"poll": 0}}}, "types.t.poll"),
        ({"tabel": {}}, "tabel: unknown section"),
        ({"table": {"status": "output.status"}}, "table.status: must be a column"),
    ],
)
def test_a_wrong_profile_is_one_message_naming_the_setting(
    change: dict[str, Any], needle: str
) -> None:
    data: dict[str, Any] = tomllib.loads(JOURNAL.format(api_url=API, supabase_url=SB, anon_key="k"))
    for section, values in change.items():
        data.setdefault(section, {}).update(values)
    with pytest.raises(UsageError, match=re.escape(needle)):
        parse_profile("p", Path("p.toml"), data)


# commands against a mocked app --------------------------------------------------
def test_list_and_show_read_the_apps_table(httpx_mock: HTTPXMock) -> None:
    setup()
    httpx_mock.add_response(
        url=REST, json=[journal_row(), journal_row("processing", id=JOB_ID[:-1] + "2")]
    )
    listed = invoke("--profile", "journal-app", "list", "--json", "id,status,message,type")
    assert listed.code == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {"id": JOB_ID, "status": "completed", "message": "5 events extracted",
         "type": "journal_extraction"},
        {"id": JOB_ID[:-1] + "2", "status": "running", "message": None,
         "type": "journal_extraction"},
    ]  # fmt: skip
    request = httpx_mock.get_requests()[0]
    assert request.headers["apikey"] == "anon"
    assert request.headers["authorization"].startswith("Bearer ey")
    params = dict(request.url.params)
    assert params["select"].split(",") == [
        "id", "status", "error_message", "result_summary", "created_at", "updated_at", "user_id"]  # fmt: skip
    assert params["order"] == "created_at.desc,id.asc"

    httpx_mock.add_response(url=REST, json=[journal_row("processing")])
    running = invoke("-p", "journal-app", "list", "--status", "running", "--json", "id")
    assert running.code == 0, running.stderr
    assert dict(httpx_mock.get_requests()[1].url.params)["status"] == "in.(processing)"

    httpx_mock.add_response(url=REST, json=[journal_row()])
    shown = invoke("-p", "journal-app", "show", JOB_ID, "--json", "raw")
    assert shown.code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["status"] == "completed" and data["output"]["events_created"] == 5
    assert data["raw"]["journal_entry_id"] == "e1", "the app's own row, every column"
    assert dict(httpx_mock.get_requests()[2].url.params)["select"] == "*"


def test_a_wrong_mapping_names_the_column(httpx_mock: HTTPXMock) -> None:
    path = setup(JOURNAL.replace('error = "error_message"', 'error = "error_msg"'))
    httpx_mock.add_response(
        url=REST, status_code=400,
        json={"code": "42703", "message": "column jobs.error_msg does not exist",
              "details": None, "hint": None},
    )  # fmt: skip
    line = invoke("-p", "journal-app", "list").one_line_error(2, "table.error", "'error_msg'")
    assert str(path) in line


def test_a_wrong_mapping_is_caught_in_raw_rows_too(httpx_mock: HTTPXMock) -> None:
    setup(JOURNAL.replace('result = "result_summary"', 'result = "summary"'))
    httpx_mock.add_response(url=REST, json=[journal_row()])
    invoke("-p", "journal-app", "list", "--json", "raw").one_line_error(
        2, "table.result", "'summary'"
    )


def test_cancel_and_retry_without_a_call_say_which_setting_is_missing(
    httpx_mock: HTTPXMock,
) -> None:
    setup()
    for verb in ("cancel", "retry"):
        result = invoke("-p", "journal-app", verb, JOB_ID)
        assert result.code == 2, result.stderr
        assert f"has no [{verb}] call" in result.stderr


def test_submit_posts_the_apps_body_and_reads_the_job_id(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    setup()
    entry = tmp_path / "journal.txt"
    entry.write_text("Met Ana for coffee.\n")
    httpx_mock.add_response(
        url=f"{API}/api/journal/submit", method="POST",
        match_json={"eventText": "Met Ana for coffee.\n"},
        json={"journalEntryId": "e1", "jobId": JOB_ID, "message": "queued"},
    )  # fmt: skip
    httpx_mock.add_response(url=REST, json=[journal_row("pending")])
    result = invoke("-p", "journal-app", "submit", str(entry))
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == JOB_ID
    post = httpx_mock.get_requests()[0]
    assert post.headers["authorization"].startswith("Bearer ey"), "the user's own token"


def test_a_token_near_its_expiry_is_refreshed_and_saved(httpx_mock: HTTPXMock) -> None:
    old, new = token(seconds=10), token(seconds=3600, sub="u1")
    setup(access=old, refresh="r-old")
    httpx_mock.add_response(
        url=f"{SB}/auth/v1/token?grant_type=refresh_token", method="POST",
        match_json={"refresh_token": "r-old"},
        json={"access_token": new, "refresh_token": "r-new", "token_type": "bearer",
              "expires_in": 3600, "expires_at": int(time.time()) + 3600,
              "user": {"id": "u1", "aud": "authenticated", "app_metadata": {},
                       "user_metadata": {}, "created_at": "2026-01-01T00:00:00Z"}},
    )  # fmt: skip
    httpx_mock.add_response(url=REST, json=[journal_row()])
    result = invoke("-p", "journal-app", "list", "--json", "id")
    assert result.code == 0, result.stderr
    assert httpx_mock.get_requests()[1].headers["authorization"] == f"Bearer {new}"
    saved = tomllib.loads((config_dir() / "config.toml").read_text())["profiles"]["journal-app"]
    assert (saved["token"], saved["refresh_token"]) == (new, "r-new")
    assert stat.S_IMODE((config_dir() / "config.toml").stat().st_mode) == 0o600


def test_auth_login_with_email_signs_in_at_auth_v1(httpx_mock: HTTPXMock) -> None:
    setup(access="placeholder", refresh=None)
    access = token()
    httpx_mock.add_response(
        url=f"{SB}/auth/v1/token?grant_type=password", method="POST",
        match_headers={"apikey": "anon"},
        json={"access_token": access, "refresh_token": "r1", "token_type": "bearer",
              "expires_in": 3600, "expires_at": int(time.time()) + 3600,
              "user": {"id": "u1", "aud": "authenticated", "app_metadata": {},
                       "user_metadata": {}, "created_at": "2026-01-01T00:00:00Z"}},
    )  # fmt: skip
    result = invoke(
        "-p", "journal-app", "auth", "login", "--email", "ana@example.com", stdin="pw\n"
    )
    assert result.code == 0, result.stderr
    assert json.loads(httpx_mock.get_requests()[0].content)["password"] == "pw"
    saved = tomllib.loads((config_dir() / "config.toml").read_text())["profiles"]["journal-app"]
    assert (saved["token"], saved["refresh_token"]) == (access, "r1")
    assert "pw" not in result.stderr and access not in result.stderr


def test_a_refused_sign_in_is_exit_5(httpx_mock: HTTPXMock) -> None:
    setup(access="placeholder", refresh=None)
    httpx_mock.add_response(
        url=f"{SB}/auth/v1/token?grant_type=password", method="POST", status_code=400,
        json={"code": "invalid_credentials", "error_code": "invalid_credentials",
              "msg": "Invalid login credentials"},
    )  # fmt: skip
    result = invoke(
        "-p", "journal-app", "auth", "login", "--email", "ana@example.com", stdin="no\n"
    )
    result.one_line_error(5, "sign-in refused", "Invalid login credentials")


OPENAPI = {
    "swagger": "2.0",
    "definitions": {
        "journal_entries": {"properties": {"id": {"format": "uuid"}, "body": {"format": "text"}}},
        "jobs": {
            "properties": {
                "id": {"format": "uuid"},
                "user_id": {"format": "uuid"},
                "journal_entry_id": {"format": "uuid"},
                "status": {"format": "text"},
                "error_message": {"format": "text"},
                "result_summary": {"format": "jsonb"},
                "created_at": {"format": "timestamp with time zone"},
                "updated_at": {"format": "timestamp with time zone"},
            }
        },
    },
}


def test_config_detect_proposes_the_mapping_and_writes_it(httpx_mock: HTTPXMock) -> None:
    (config_dir()).mkdir(parents=True, exist_ok=True)
    (config_dir() / "config.toml").write_text(
        f'[profiles."journal-app"]\nsupabase_url = "{SB}"\nsupabase_anon_key = "anon"\n'
        f'token = "{token()}"\n'
    )
    httpx_mock.add_response(url=f"{SB}/rest/v1/", json=OPENAPI, is_reusable=True)
    rows = [journal_row(), journal_row("processing"), journal_row("failed"), journal_row("pending")]
    httpx_mock.add_response(url=re.compile(rf"^{SB}/rest/v1/jobs\?"), json=rows, is_reusable=True)
    shown = invoke("-p", "journal-app", "config", "detect")
    assert shown.code == 0, shown.stderr
    proposed = tomllib.loads(shown.stdout)
    assert proposed["table"] == {
        "name": "jobs", "id": "id", "status": "status", "error": "error_message",
        "result": "result_summary", "created_at": "created_at", "updated_at": "updated_at",
        "owner": "user_id",
    }  # fmt: skip
    assert proposed["status"] == {
        "pending": ["pending"], "running": ["processing"], "completed": ["completed"],
        "failed": ["failed"],
    }  # fmt: skip
    assert (
        "status values seen in the newest 4 rows: completed, processing, failed, pending"
        in shown.stderr
    )
    assert "no progress column: an indeterminate bar" in shown.stderr
    written = invoke("-p", "journal-app", "config", "detect", "--write")
    assert written.code == 0, written.stderr
    path = config_dir() / "apps" / "journal-app.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    profile = load_profile("journal-app", path)
    assert profile is not None and profile.columns["error"] == "error_message"
