"""The dashboard against the real embedded server, the real client and the real feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from textual.widgets import Input

from jobctl.backends.backoff import Backoff
from jobctl.backends.feed import PollSettings, RealtimeConfig
from jobctl.backends.feedproc import FeedProcess, server_feed
from jobctl.backends.jobapi import AsyncJobClient
from jobctl.models import JobStatus
from jobctl.tui.app import JobctlApp, make_app
from jobctl.tui.screens.detail import DetailScreen
from jobctl.tui.screens.events import EventsScreen
from jobctl.tui.screens.note import NoteScreen
from jobctl.tui.screens.schedules import SchedulesScreen
from jobctl.tui.screens.submit import SubmitScreen
from jobctl.tui.settings import TuiSettings
from tests.clirun import jobctl
from tests.conftest import EXAMPLES, ServerProcess
from tests.tui.helpers import notes, until, until_text
from tests.tui.screen_text import screen_text

SIZE = (100, 30)


@asynccontextmanager
async def dashboard(
    server: ServerProcess, realtime: bool = False
) -> AsyncIterator[tuple[JobctlApp, Any]]:
    client = AsyncJobClient(server.url, server.token, timeout=5, retries=1, backoff=0.05)
    # As `jobctl tui` runs it: the feed in its own process, with its own client.
    options = {"base_url": server.url, "token": server.token, "timeout": 5, "retries": 1}
    feed = FeedProcess(
        server_feed,
        {**options, "backoff": 0.05},
        RealtimeConfig(f"{server.url}/realtime/v1", server.token) if realtime else None,
        PollSettings(interval=0.2, max_interval=0.5),
        (),
        Backoff(0.2, factor=2.5, cap=0.5),
    )
    settings = TuiSettings(
        target=f"test · {server.url}", stats_interval=1.0, log_interval=0.2, history_interval=0.5
    )
    app = make_app(client, feed, settings)
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            yield app, pilot
    finally:
        await client.aclose()


@pytest.mark.parametrize("mode", ["polling", "realtime"])
async def test_a_submitted_journal_goes_from_pending_to_completed_and_toasts(
    make_server: Any, mode: str
) -> None:
    # One job at a time per user, and a demo job holding the slot until the test cancels
    # it: the journal is pending until then, however slow the machine (a demo of a fixed
    # length could end before the dashboard was up, and the journal never waited).
    server: ServerProcess = make_server("--limit", "user=1")
    with server.client() as http:
        demo = {"type": "demo", "input": {"steps": 600, "step_seconds": 0.2}}
        made = http.post("/api/jobs", json=demo)
        assert made.status_code == 201
        demo_id = made.json()["id"]

    def cancel_demo() -> None:
        with server.client() as http:
            assert http.post(f"/api/jobs/{demo_id}/cancel").status_code == 202

    async with dashboard(server, realtime=mode == "realtime") as (app, pilot):
        rendered: list[tuple[str, JobStatus]] = []
        app.main_screen.table.rendered = lambda job: rendered.append((job.id, job.status))
        await until_text(pilot, f"{'● realtime' if mode == 'realtime' else '◌ polling'}", 60)
        await until_text(pilot, "▶ running", 30)  # the demo job
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen))
        app.screen.query_one("#path", Input).value = str(EXAMPLES / "journal.txt")
        await pilot.press("enter")
        await until(pilot, lambda: len(app.jobs) == 2, timeout=30, what="the job is on the table")
        job_id = next(j.id for j in app.jobs.values() if j.type == "journal_extraction")
        await until(
            pilot,
            lambda: (
                "○ pending" in next(x for x in screen_text(app).splitlines() if job_id[:8] in x)
            ),
            what="the journal's row pending",
        )
        await asyncio.to_thread(cancel_demo)  # the slot frees: the journal runs
        await until(
            pilot,
            lambda: any("Journal entry ready: 5 events extracted" in n for n in notes(app)),
            timeout=20,
            what="the completion toast",
        )
        await until_text(pilot, "Journal entry ready: 5 events extracted")  # the toast is shown
        await until_text(pilot, "5 events, 5 action items")
        row = next(x for x in screen_text(app).splitlines() if job_id[:8] in x)
        assert "✔ completed" in row and "100%" in row
        statuses = [s for i, s in rendered if i == job_id]
        assert statuses[0] == JobStatus.PENDING, statuses  # drawn pending first...
        assert statuses[-1] == JobStatus.COMPLETED  # ...then completed
        assert app.main_screen.table.jobs[job_id].output["events_created"] == 5
        await until_text(pilot, "✔ 1 completed")  # the summary strip has the server's figures
        assert app.mode.value == mode


async def test_offline_keeps_the_table_and_recovers_by_itself(make_server: Any) -> None:
    server: ServerProcess = make_server("--backoff", "0.05,0.1")
    with server.client() as http:
        first = http.post(
            "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
        )
        first_id = first.json()["id"]
    async with dashboard(server) as (app, pilot):
        await until_text(pilot, first_id[:8], timeout=30)
        await until_text(pilot, "◌ polling")
        server.kill()
        await until_text(pilot, "✖ offline", timeout=30)
        assert first_id[:8] in screen_text(app)  # what it had is still there
        await asyncio.to_thread(server.start)  # same data, same port
        await until_text(pilot, "◌ polling", timeout=20)
        with server.client() as http:
            second = http.post(
                "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
            ).json()["id"]
        await until_text(pilot, second[:8], timeout=30)
        assert "✖ offline" not in screen_text(app).splitlines()[0]


def row_of(app: JobctlApp, needle: str) -> str:
    return next((x for x in screen_text(app).splitlines() if needle in x), "")


async def test_a_schedule_made_with_the_cli_is_paused_and_triggered_from_its_view(
    make_server: Any,
) -> None:
    server: ServerProcess = make_server("--backoff", "0.05,0.1")
    quick = '{"steps": 1, "step_seconds": 0}'
    made = await asyncio.to_thread(
        jobctl, "schedule", "create", "tui-hourly", "--type", "demo", "--cron", "@hourly",
        "--tz", "Europe/Berlin", "--input", quick,
    )  # fmt: skip
    assert made.code == 0, made.stderr
    async with dashboard(server) as (app, pilot):
        await until_text(pilot, "◌ polling", 15)
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        await until_text(pilot, "tui-hourly", 10)
        line = row_of(app, "tui-hourly")
        assert "0 * * * * Europe/Berlin" in line and "never run" in line and " in " in line
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, NoteScreen))
        await pilot.press(*"from the tui", "enter")
        await until(pilot, lambda: "‖ paused" in row_of(app, "tui-hourly"), what="paused")
        listed = await asyncio.to_thread(jobctl, "schedule", "list")
        assert listed.stdout.split("\t")[5] == "paused", listed.stdout  # the server's truth
        shown = await asyncio.to_thread(jobctl, "schedule", "show", "tui-hourly")
        assert "paused (from the tui)" in shown.stdout
        await pilot.press("t")  # a paused schedule still runs when triggered
        await until(
            pilot,
            lambda: "✔ completed" in row_of(app, "tui-hourly"),
            timeout=20,
            what="the triggered run completed",
        )
        job_id = next(j.id for j in app.jobs.values() if j.type == "demo")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.job_id == job_id
        await pilot.press("q", "q")
        await until(pilot, lambda: app.screen is app.main_screen)
        await until_text(pilot, job_id[:8])  # the jobs table has it too


async def test_an_api_submit_is_an_event_that_the_events_view_replays(make_server: Any) -> None:
    server: ServerProcess = make_server("--backoff", "0.05,0.1")
    with server.client() as http:
        first = http.post(
            "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
        ).json()["id"]
    async with dashboard(server) as (app, pilot):
        await until_text(pilot, first[:8], timeout=10)
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen) and app.screen.loaded)
        view = app.screen
        await until_text(pilot, first[:8])  # the event's job
        original = view.table.selected_key
        await pilot.press("r")
        await until(pilot, lambda: len(view.records) == 2, timeout=10, what="the replay")
        new = next(iter(view.records.values()))
        assert new["replay_of"] == original and new["id"] == view.table.selected_key
        assert f"replay of {original[:8]}" in row_of(app, new["id"][:8])
        replayed_job = new["job_ids"][0]
        await until(
            pilot,
            lambda: replayed_job in app.jobs and app.jobs[replayed_job].status.is_terminal,
            timeout=20,
            what="the replay's job followed to its end",
        )
        shown = await asyncio.to_thread(jobctl, "events", "show", new["id"])
        assert replayed_job in shown.stdout
