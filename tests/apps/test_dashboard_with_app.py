"""The dashboard over an app profile (the journal reference app beside the stand-in on a real
PostgreSQL): the Context builds it as `jobctl --profile journal-app tui` does (AsyncAppApi
through the JobApi port, the feed on the app's table with the mapping); a job submitted from
the dashboard shows live, pending -> running -> completed, and toasts the app's result. The
feed runs in its own process, as in `jobctl tui`."""

from __future__ import annotations

import os
from typing import Any

import pytest
from textual.widgets import Input

from jobctl.backends.appbackend import AsyncAppApi
from jobctl.backends.feed import FeedMode, PollSettings
from jobctl.commands.context import Context
from jobctl.commands.tui import app_feed_process
from jobctl.models import JobStatus
from jobctl.tui.app import make_app
from jobctl.tui.screens.submit import SubmitScreen
from jobctl.tui.settings import TuiSettings
from tests.apps.test_jobctl_with_apps import use_app
from tests.apps.test_reference_apps import Stack, stack  # noqa: F401 - fixture
from tests.conftest import EXAMPLES
from tests.tui.helpers import notes, until, until_text
from tests.tui.screen_text import screen_text

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_the_dashboard_follows_an_apps_job_and_toasts_its_result(stack: Any) -> None:  # noqa: F811
    s: Stack = stack("journal-app", JOURNAL_STEP_SECONDS="2")
    use_app(s, "journal-app", "viewer@example.com")
    ctx = Context.from_process(dict(os.environ))
    ctx.flags["profile"] = "journal-app"
    backend = ctx.app_backend()
    client = AsyncAppApi(backend)
    # As `jobctl tui` runs it: the feed in its own process, with an AppBackend of its own
    # and this process's token. Slow polls: the live updates must come over Realtime.
    slow = PollSettings(interval=30, realtime_check=60)
    feed = app_feed_process(ctx, backend, ctx.realtime_config(None), slow)
    app = make_app(client, feed, TuiSettings(target="journal-app", stats_interval=1.0))
    try:
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            rendered: list[tuple[str, JobStatus]] = []
            app.main_screen.table.rendered = lambda job: rendered.append((job.id, job.status))
            await until_text(pilot, "● realtime", 20)
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, SubmitScreen))
            app.screen.query_one("#path", Input).value = str(EXAMPLES / "journal.txt")
            await pilot.press("enter")
            await until(pilot, lambda: len(app.jobs) == 1, timeout=15, what="the job on the table")
            job_id = next(iter(app.jobs))
            await until(
                pilot,
                lambda: any("5 events extracted" in n for n in notes(app)),
                timeout=40,
                what="the completion toast",
            )
            row = next(x for x in screen_text(app).splitlines() if job_id[:8] in x)
            assert "✔ completed" in row, row
            statuses = [st for i, st in rendered if i == job_id]
            # The app's worker takes a pending job within 0.2 s, so the row may first be
            # drawn pending or already running; then only forwards, to completed.
            order = [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED]
            assert statuses[-1] == JobStatus.COMPLETED, statuses
            assert [order.index(st) for st in statuses] == sorted(
                order.index(st) for st in statuses
            ), statuses
            assert JobStatus.RUNNING in statuses, "the app's `processing`, drawn as running"
            assert feed.mode == FeedMode.REALTIME and feed.realtime_events >= 2
            assert app.main_screen.table.jobs[job_id].output["events_created"] == 5
    finally:
        await client.aclose()
        ctx.close()
