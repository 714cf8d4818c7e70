"""An app profile against the real embedded server, whose own `jobs` table stands in for an
app's: the user signs in at its /auth/v1 (`jobctl auth login --email`), and a watch that
outlives several access tokens (JOBCTL_AUTH_ACCESS_TTL=6) keeps its Realtime channel: each
refreshed token is pushed to the channel before the old one runs out (the server closes a
channel whose token expired), and the PostgREST reads use the new one."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from tests.clirun import jobctl
from tests.commands.watchkit import mint, parse_jsonl
from tests.conftest import ServerProcess

SELF_APP = """\
[app]
api_url = "{url}"
supabase_url = "{url}"
supabase_anon_key = "{anon}"
type = "demo"

[table]
name = "jobs"
id = "id"
status = "status"
type = "type"
progress = "progress"
message = "message"
error = "error"
result = "output"
input = "input"
created_at = "created_at"
updated_at = "updated_at"
started_at = "started_at"
completed_at = "completed_at"
owner = "user_id"

[submit]
path = "/api/jobs"
body = {{ type = "{{type}}", input = "{{input}}", idempotency_key = "{{key}}" }}
job_id = "id"

[cancel]
path = "/api/jobs/{{id}}/cancel"

[job]
summary = "{{result.steps}} steps done"
"""


def saved_tokens(config_dir: Path) -> dict[str, str]:
    data = tomllib.loads((config_dir / "config.toml").read_text())
    return dict(data["profiles"]["self"])


def signed_in(make_server: object, ttl: str = "3600", profile: str = SELF_APP) -> ServerProcess:
    """A server, its user ana, the app profile `self` on its own jobs table, ana logged in."""
    server: ServerProcess = make_server(  # type: ignore[operator]
        "--backoff", "0.05,0.1", env={"JOBCTL_AUTH_ACCESS_TTL": ttl}
    )
    config_dir = Path(os.environ["JOBCTL_CONFIG_DIR"])
    added = jobctl("server", "user", "add", "ana@example.com", input="correct horse battery\n")
    assert added.code == 0, added.stderr
    apps = config_dir / "apps"
    apps.mkdir(parents=True, exist_ok=True)
    (apps / "self.toml").write_text(
        profile.format(url=server.url, anon=mint(server, None, role="anon"))
    )
    login = jobctl("auth", "login", "-p", "self", "--email", "ana@example.com",
                   input="correct horse battery\n")  # fmt: skip
    assert login.code == 0, login.stderr
    return server


def test_a_token_that_expires_during_a_watch_is_refreshed(make_server: object) -> None:
    signed_in(make_server, ttl="6")
    config_dir = Path(os.environ["JOBCTL_CONFIG_DIR"])
    first = saved_tokens(config_dir)
    assert first["refresh_token"]

    submitted = jobctl("-p", "self", "submit", "--type", "demo", "-q",
                       "--input", json.dumps({"steps": 14, "step_seconds": 1}))  # fmt: skip
    assert submitted.code == 0, submitted.stderr
    job_id = submitted.stdout.strip()

    watched = jobctl("-p", "self", "watch", job_id, "--jsonl", timeout=90)
    assert watched.code == 0, watched.stderr
    stream = parse_jsonl(watched.stdout)
    summary = stream.summary
    assert summary["jobs"][0]["status"] == "completed"
    # The end came over the channel, ~8 s after the first token ran out (a closed channel
    # would leave it to the safety poll).
    assert stream.transitions[-1]["to"] == "completed"
    assert stream.transitions[-1]["source"] == "realtime", stream.transitions
    # 14 s of job, 6 s tokens: without the pushes the server closes the channel at the first
    # token's expiry, and the watch ends on polling (a fallback and a note on stderr).
    assert summary["deliveries"].get("realtime", 0) > 0, summary
    assert summary["fallbacks"] == 0, (summary, watched.stderr)
    assert "realtime unavailable" not in watched.stderr
    after = saved_tokens(config_dir)
    assert after["token"] != first["token"], "the refreshed token is saved for the next command"
    assert after["refresh_token"] != first["refresh_token"], "refresh tokens rotate"
    listed = jobctl("-p", "self", "list", "--json", "id,status,user_id")
    assert listed.code == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["id"] == job_id


def test_submit_watch_prints_the_summary_and_a_failure_its_error(make_server: object) -> None:
    signed_in(make_server)
    done = jobctl("-p", "self", "submit", "--type", "demo", "--watch",
                  "--input", json.dumps({"steps": 2, "step_seconds": 0}))  # fmt: skip
    assert done.code == 0, done.stderr
    assert "2 steps done" in done.stdout.splitlines()[1], done.stdout
    failed = jobctl("-p", "self", "submit", "--type", "demo", "--watch", "--input",
                    json.dumps({"steps": 2, "step_seconds": 0, "fail_at": 1, "fail_times": 99}))  # fmt: skip
    assert failed.code == 1, failed.stderr
    assert "error: " in failed.stdout, failed.stdout
    job_id = failed.stderr.split("submitted demo job ")[1].split()[0]
    shown = jobctl("-p", "self", "show", job_id, "--json", "status,error,raw")
    assert shown.code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["status"] == "failed" and data["error"] and data["raw"]["error"] == data["error"]


def test_a_wrong_mapping_against_the_real_postgrest_names_the_column(make_server: object) -> None:
    signed_in(
        make_server, profile=SELF_APP.replace('progress = "progress"', 'progress = "progres"')
    )
    result = jobctl("-p", "self", "list")
    result.one_line_error(2, "table.progress = 'progres'", "no column 'progres'")
