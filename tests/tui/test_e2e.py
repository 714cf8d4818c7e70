"""The dashboard against the real embedded server, the real client and the real feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from textual.widgets import Input

from jobctl.backends.backoff import Backoff
from jobctl.backends.feed import JobFeed, PollSettings, RealtimeConfig, Subscription
from jobctl.backends.feedthread import FeedThread
from jobctl.backends.jobapi import AsyncJobClient
from jobctl.models import JobStatus
from jobctl.tui.app import JobctlApp, make_app
from jobctl.tui.screens.submit import SubmitScreen
from jobctl.tui.settings import TuiSettings
from tests.conftest import EXAMPLES, ServerProcess
from tests.tui.helpers import notes, until, until_text
from tests.tui.screen_text import screen_text

SIZE = (100, 30)


@asynccontextmanager
async def dashboard(
    server: ServerProcess, realtime: bool = False
) -> AsyncIterator[tuple[JobctlApp, Any]]:
    client = AsyncJobClient(server.url, server.token, timeout=5, retries=1, backoff=0.05)
    # As `jobctl tui` runs it: the feed on its own thread, with its own client.
    feed_client = AsyncJobClient(server.url, server.token, timeout=5, retries=1, backoff=0.05)
    live = JobFeed(
        feed_client,
        Subscription(),
        realtime=RealtimeConfig(f"{server.url}/realtime/v1", server.token) if realtime else None,
        poll=PollSettings(interval=0.2, max_interval=0.5),
        reconnect=Backoff(0.2, factor=2.5, cap=0.5),
    )
    feed = FeedThread(live, on_close=feed_client.aclose)
    settings = TuiSettings(target=f"test · {server.url}", stats_interval=1.0, log_interval=0.2)
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
    # One job at a time per user, and a demo job holding the slot: the journal is
    # pending for a while whatever the machine's speed, then runs and completes (6 s:
    # on a loaded machine, opening the dashboard and submitting took over 3 s).
    server: ServerProcess = make_server("--limit", "user=1")
    with server.client() as http:
        demo = {"type": "demo", "input": {"steps": 6, "step_seconds": 1}}
        assert http.post("/api/jobs", json=demo).status_code == 201
    async with dashboard(server, realtime=mode == "realtime") as (app, pilot):
        rendered: list[tuple[str, JobStatus]] = []
        app.main_screen.table.rendered = lambda job: rendered.append((job.id, job.status))
        await until_text(pilot, f"{'● realtime' if mode == 'realtime' else '◌ polling'}", 15)
        await until_text(pilot, "▶ running", 10)  # the demo job
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen))
        app.screen.query_one("#path", Input).value = str(EXAMPLES / "journal.txt")
        await pilot.press("enter")
        await until(pilot, lambda: len(app.jobs) == 2, timeout=10, what="the job is on the table")
        job_id = next(j.id for j in app.jobs.values() if j.type == "journal_extraction")
        await until(
            pilot,
            lambda: (
                "○ pending" in next(x for x in screen_text(app).splitlines() if job_id[:8] in x)
            ),
            what="the journal's row pending",
        )
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
        await until_text(pilot, "✔ 2 completed")  # the summary strip has the server's figures
        assert app.mode.value == mode


async def test_offline_keeps_the_table_and_recovers_by_itself(make_server: Any) -> None:
    server: ServerProcess = make_server("--backoff", "0.05,0.1")
    with server.client() as http:
        first = http.post(
            "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
        )
        first_id = first.json()["id"]
    async with dashboard(server) as (app, pilot):
        await until_text(pilot, first_id[:8], timeout=10)
        await until_text(pilot, "◌ polling")
        server.kill()
        await until_text(pilot, "✖ offline", timeout=15)
        assert first_id[:8] in screen_text(app)  # what it had is still there
        await asyncio.to_thread(server.start)  # same data, same port
        await until_text(pilot, "◌ polling", timeout=20)
        with server.client() as http:
            second = http.post(
                "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
            ).json()["id"]
        await until_text(pilot, second[:8], timeout=15)
        assert "✖ offline" not in screen_text(app).splitlines()[0]
