"""Snapshots of the main screen, the detail view, the submit dialog, the help screen and
the schedules and events views.

Fixed clock, ids and figures, at 80x24 (the smallest terminal we promise to fit).
Update with `pytest tests/tui/test_snapshots.py --snapshot-update` after
reviewing the HTML report.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.pilot import Pilot

from jobctl.models import JobStatus, LogLine, Step
from jobctl.tui.app import JobctlApp, make_app
from jobctl.tui.screens.detail import DetailScreen
from tests.tui.conftest import sample_client, settings
from tests.tui.fakes import T0, FakeFeed, fixed_clock, iso, job_id, make_event, make_schedule
from tests.tui.helpers import until
from tests.tui.screen_text import screen_text

SIZE = (80, 24)
STATS = {
    "counts": {"pending": 2, "running": 2, "completed": 41, "failed": 3, "cancelled": 1},
    "queue_depth": 2,
    "failure_rate": 0.0612,
}


def snapshot_app() -> JobctlApp:
    client = sample_client(12)
    client.stats_value = STATS
    journal = replace(
        client.jobs[job_id(12)],
        status=JobStatus.COMPLETED,
        type="journal_extraction",
        progress=100,
        message="5 events, 5 action items",
        output={"events_created": 5, "action_items_created": 5, "event_ids": ["ev-1", "ev-2"]},
        started_at=T0.replace(second=13),
        completed_at=T0.replace(second=14),
    )
    client.add(journal)
    client.steps[journal.id] = [
        Step(journal.id, "s1", "parse", "completed", 1, None, None, T0, T0.replace(second=1)),
        Step(journal.id, "s2", "extract-events", "completed", 2, None, None, T0, T0),
        Step(journal.id, "s3", "save", "completed", 1, None, None, T0, T0),
    ]
    client.logs[journal.id] = [
        LogLine(journal.id, 1, T0, "info", "parse", "14 sentences, entry dated 2026-03-02"),
        LogLine(journal.id, 2, T0, "info", None, "extracted 5 events and 5 action items"),
    ]
    client.add_schedules(
        make_schedule(1, "hourly-report", cron="0 * * * *", tz="Europe/Berlin", every_seconds=None),
        make_schedule(
            2,
            "every-minute",
            last_status="failed",
            last_tick=iso(fixed_clock().replace(minute=39)),
            last_job_id=job_id(3),
        ),
        make_schedule(3, "nightly", paused=True, note="db migration", next_run_at=None),
    )
    client.events = [
        make_event(8, "journal.submitted", [journal.id]),
        make_event(7, "demo.fanout", [job_id(2), job_id(3), job_id(4), job_id(5)], source="api"),
        make_event(6, "journal.submitted", [job_id(1)], source="replay", replay_of="e0000001"),
    ]
    return make_app(client, FakeFeed(), settings())


async def loaded(pilot: Pilot[object]) -> None:
    app = pilot.app
    assert isinstance(app, JobctlApp)
    await until(pilot, lambda: len(app.main_screen.table.order) == 12 and app.stats is not None)
    await pilot.pause()


def test_main_screen(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(pilot)
        await pilot.press("down", "space", "down")  # one marked row, the cursor below it

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_detail_view(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen))
        await until(pilot, lambda: len(pilot.app.screen.query_one("#logs").lines) == 2)  # type: ignore[attr-defined]
        await until(pilot, lambda: "extract-events" in screen_text(pilot.app))
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_submit_dialog(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(pilot)
        await pilot.press("s", *"examples/journal.txt")
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_schedules_view(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(pilot)
        await pilot.press("S")
        await until(pilot, lambda: "refreshed" in screen_text(pilot.app))
        await pilot.press("j")
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_events_view(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(pilot)
        await pilot.press("E")
        await until(pilot, lambda: "refreshed" in screen_text(pilot.app))
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)
