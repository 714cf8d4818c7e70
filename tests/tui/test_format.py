"""The dashboard's pure parts: filters, bars, toasts' words, the [tui] config table."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobctl.errors import UsageError
from jobctl.models import JobStatus
from jobctl.tui.format import finish_notice, job_time, parse_filter, progress_bar
from jobctl.tui.screens.submit import build_submission
from jobctl.tui.settings import tui_settings_from_file
from tests.tui.fakes import fixed_clock, make_job


def test_filter_parses_words_statuses_and_types() -> None:
    f = parse_filter('status:fail,run type:demo "step 2" Upstream')
    assert f.statuses == {JobStatus.FAILED, JobStatus.RUNNING}
    assert f.types == {"demo"}
    assert f.words == ("step 2", "upstream")
    bogus = parse_filter("s:bogus")
    assert bogus.errors == (
        "unknown status 'bogus' (known: pending, running, completed, failed, cancelled)",
    )
    assert not bogus.matches(make_job(1, JobStatus.PENDING))  # a typo matches nothing
    assert parse_filter("notice:2", {2: frozenset({"a"})}).ids == {"a"}
    assert parse_filter("notice:3", {2: frozenset({"a"})}).errors
    assert not parse_filter("  ").active
    assert parse_filter('"unbalanced').words == ('"unbalanced',)


def test_filter_matches() -> None:
    failed = make_job(1, JobStatus.FAILED, error="Upstream said no")
    running = make_job(2, JobStatus.RUNNING, type="journal_extraction", message="Step 2")
    assert parse_filter("status:failed").matches(failed)
    assert not parse_filter("status:failed").matches(running)
    assert parse_filter("upstream").matches(failed)
    assert parse_filter("type:journal_extraction step").matches(running)
    assert not parse_filter("type:demo").matches(running)
    assert parse_filter(running.id[:6]).matches(running)


def test_progress_bar_and_times() -> None:
    assert progress_bar(0, 10) == "░░░░░░░░░░   0%"
    assert progress_bar(55, 10) == "██████░░░░  55%"
    assert progress_bar(140, 4) == "████ 100%"
    done = make_job(1, JobStatus.COMPLETED)
    assert job_time(done, fixed_clock()) == "3.0s"  # duration once ended
    assert job_time(make_job(1, JobStatus.RUNNING), fixed_clock()) == "10m"  # age while running


def test_finish_notice_words() -> None:
    journal = make_job(
        1,
        JobStatus.COMPLETED,
        type="journal_extraction",
        output={"events_created": 1, "action_items_created": 0},
    )
    assert finish_notice(journal)[1] == "Journal entry ready: 1 event extracted"
    assert finish_notice(journal)[0].startswith("✔ completed")
    failed = make_job(2, JobStatus.FAILED, error="boom")
    assert finish_notice(failed) == ("✖ failed · 00000002", "demo 00000002 failed: boom", "error")
    assert finish_notice(make_job(3, JobStatus.CANCELLED))[2] == "warning"


def test_tui_settings_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[tui]\nbell = true\n[tui.keys]\nretry = "R"\ncancel = "ctrl+x"\n')
    settings = tui_settings_from_file(config, target="local")
    assert settings.bell and not settings.osc9 and not settings.readonly
    assert settings.keys == {"retry": "R", "cancel": "ctrl+x"}
    assert settings.key_for("retry") == "R" and settings.key_for("submit") == "s"
    assert tui_settings_from_file(tmp_path / "absent.toml", readonly=True).readonly


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[tui.keys]\nexplode = "x"\n', "unknown key binding"),
        ("[tui.keys]\nretry = 3\n", "must be a key name"),
        ('[tui]\nbell = "yes"\n', "tui.bell must be true or false"),
        ('tui = "x"\n', "[tui] must be a table"),
    ],
)
def test_tui_settings_errors(tmp_path: Path, text: str, error: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(UsageError, match=error.replace("[", r"\[")):
        tui_settings_from_file(config)


def test_build_submission(tmp_path: Path) -> None:
    entry = tmp_path / "entry.txt"
    entry.write_text("Tuesday. Dentist at 3.")
    sub = build_submission(str(entry), "journal_extraction", "")
    assert sub.input == {"text": "Tuesday. Dentist at 3.", "filename": "entry.txt"}
    assert sub.label == "entry.txt"
    assert build_submission("", "demo", '{"steps": 2}').input == {"steps": 2}
    for path, type_, data, error in [
        ("", "demo", "", "nothing to submit"),
        ("", "", "{}", "give a job type"),
        ("", "demo", "[1]", "must be a JSON object"),
        ("", "demo", "{oops", "input JSON"),
        (str(tmp_path / "nope.txt"), "demo", "", "no such file"),
        (str(tmp_path), "demo", "", "is a directory"),
        (str(entry), "demo", '{"text": "x"}', "given twice"),
    ]:
        with pytest.raises(UsageError, match=error):
            build_submission(path, type_, data)
