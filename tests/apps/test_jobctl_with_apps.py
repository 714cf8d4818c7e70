"""jobctl driving the two reference apps (examples/apps/) beside the stand-in on a real
PostgreSQL, through the profiles they ship: `auth login --email` at the stand-in's /auth/v1,
`submit` through the app's own API, `watch` over Realtime `postgres_changes` on the app's
table, `list` and `show` through /rest/v1 and the mapping, `cancel` through the app's call,
`config detect` proposing the mapping the test then uses, and a wrong mapping refused."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.apps.test_reference_apps import APPS, PASSWORD, Stack, stack  # noqa: F401 - fixture
from tests.clirun import jobctl
from tests.commands.watchkit import parse_jsonl
from tests.conftest import EXAMPLES

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def use_app(s: Stack, name: str, email: str) -> Path:
    """The app's shipped profile with this test's URLs and anon key, and the user logged in."""
    text = (APPS / name / "profile.toml").read_text()
    for key, value in (("api_url", s.app.url), ("supabase_url", s.server.url),
                       ("supabase_anon_key", s.anon_key)):  # fmt: skip
        text = re.sub(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', text)
    path = Path(os.environ["JOBCTL_CONFIG_DIR"]) / "apps" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    added = jobctl("server", "user", "add", email, input=PASSWORD + "\n")
    assert added.code == 0, added.stderr
    login = jobctl("auth", "login", "-p", name, "--email", email, input=PASSWORD + "\n")
    assert login.code == 0, login.stderr
    return path


def detect_matches(name: str, path: Path) -> dict[str, Any]:
    """`config detect` proposes the shipped mapping; --write keeps the rest of the profile."""
    shipped = tomllib.loads(path.read_text())
    shown = jobctl("-p", name, "config", "detect")
    assert shown.code == 0, shown.stderr
    assert "status values seen in the newest" in shown.stderr
    proposed = tomllib.loads(shown.stdout)
    assert proposed["table"] == shipped["table"], shown.stderr
    written = jobctl("-p", name, "config", "detect", "--write")
    assert written.code == 0, written.stderr
    now = tomllib.loads(path.read_text())
    assert now["table"] == shipped["table"] and now["submit"] == shipped["submit"]
    return proposed


def test_journal_app(stack: Any, tmp_path: Path) -> None:  # noqa: F811
    s: Stack = stack("journal-app", JOURNAL_STEP_SECONDS="3")
    path = use_app(s, "journal-app", "writer@example.com")
    journal = str(EXAMPLES / "journal.txt")

    done = jobctl("-p", "journal-app", "submit", journal, "--watch", timeout=120)
    assert done.code == 0, done.stderr
    assert "5 events extracted" in done.stdout, done.stdout
    assert "\trunning\t" in done.stderr, "the app's `processing` is running"

    job_id = jobctl("-p", "journal-app", "submit", journal, "-q").stdout.strip()
    watched = jobctl("-p", "journal-app", "watch", job_id, "--jsonl", timeout=120)
    assert watched.code == 0, watched.stderr
    stream = parse_jsonl(watched.stdout)
    assert [t["to"] for t in stream.transitions][-2:] == ["running", "completed"]
    assert stream.transitions[-1]["source"] == "realtime", stream.transitions
    assert stream.summary["deliveries"].get("realtime", 0) >= 1, stream.summary
    assert stream.summary["jobs"][0]["output"]["events_created"] == 5

    failing = tmp_path / "fail.txt"
    failing.write_text("Please FAIL today.\n")
    failed = jobctl("-p", "journal-app", "submit", str(failing), "--watch", timeout=120)
    assert failed.code == 1, failed.stderr
    assert "error: the event extraction failed" in failed.stdout, failed.stdout

    listed = jobctl("-p", "journal-app", "list", "--json", "id,type,status,progress,message,error")
    assert listed.code == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert [j["status"] for j in jobs] == ["failed", "completed", "completed"]
    assert jobs[1] == {"id": job_id, "type": "journal_extraction", "status": "completed",
                       "progress": 100, "message": "5 events extracted", "error": None}  # fmt: skip
    assert jobs[0]["error"].startswith("the event extraction failed")
    shown = jobctl("-p", "journal-app", "show", job_id[:8], "--json", "raw")
    assert shown.code == 0, shown.stderr
    row = json.loads(shown.stdout)["raw"]
    assert row["journal_entry_id"] and row["result_summary"]["events_created"] == 5

    proposed = detect_matches("journal-app", path)
    # The words the newest rows hold (all ended by now); the others keep jobctl's defaults.
    assert proposed["status"] == {"completed": ["completed"], "failed": ["failed"]}
    again = jobctl("-p", "journal-app", "list", "--status", "failed", "--json", "id")
    assert again.code == 0 and len(json.loads(again.stdout)) == 1, again.stderr

    jobctl("-p", "journal-app", "cancel", job_id).one_line_error(2, "has no [cancel] call")
    path.write_text(path.read_text().replace('error = "error_message"', 'error = "error_msg"'))
    jobctl("-p", "journal-app", "list").one_line_error(2, "table.error = 'error_msg'", "no column")


def test_decision_app(stack: Any) -> None:  # noqa: F811
    s: Stack = stack("decision-app", DECISION_STEP_SECONDS="1")
    path = use_app(s, "decision-app", "decider@example.com")

    done = jobctl("-p", "decision-app", "submit", "--type", "option_analysis", "--watch",
                  "--json", "--input", json.dumps({"decision_id": "d-1", "options": ["a", "b"]}),
                  timeout=120)  # fmt: skip
    assert done.code == 0, done.stderr
    final = json.loads(done.stdout)
    assert (final["status"], final["progress"], final["message"]) == ("completed", 100, "Done")
    assert final["input"] == {"decision_id": "d-1", "options": ["a", "b"]}

    job_id = jobctl("-p", "decision-app", "submit", "--type", "market_research", "-q",
                    "--input", json.dumps({"decision_id": "d-2"})).stdout.strip()  # fmt: skip
    watched = jobctl("-p", "decision-app", "watch", job_id, "--jsonl", timeout=120)
    assert watched.code == 0, watched.stderr
    stream = parse_jsonl(watched.stdout)
    assert stream.transitions[-1]["source"] == "realtime", stream.transitions
    assert stream.summary["deliveries"].get("realtime", 0) >= 2, stream.summary

    broken = jobctl("-p", "decision-app", "submit", "--type", "brief_generation", "--watch",
                    "--input", json.dumps({"decision_id": "d-3", "fail": True}), timeout=120)  # fmt: skip
    assert broken.code == 1, broken.stderr
    assert "Polishing failed: the data source refused the request" in broken.stdout

    twice = json.dumps({"decision_id": "d-4"})
    first = jobctl(
        "-p", "decision-app", "submit", "--type", "market_research", "-q", "--input", twice
    )
    assert first.code == 0, first.stderr
    jobctl("-p", "decision-app", "submit", "--type", "market_research", "--input", twice
           ).one_line_error(8, "already running for this decision")  # fmt: skip
    cancelled = jobctl("-p", "decision-app", "cancel", first.stdout.strip())
    assert cancelled.code == 0, cancelled.stderr
    shown = jobctl("-p", "decision-app", "show", first.stdout.strip(), "--json", "status")
    assert json.loads(shown.stdout) == {"status": "cancelled"}
    jobctl("-p", "decision-app", "retry", job_id).one_line_error(2, "has no [retry] call")

    only = jobctl("-p", "decision-app", "list", "--type", "option_analysis", "--json", "id")
    assert [j["id"] for j in json.loads(only.stdout)] == [final["id"]]
    detect_matches("decision-app", path)
