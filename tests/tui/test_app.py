"""Pilot tests of the dashboard against in-process fakes: every action and live updates."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from jobctl.backends.feed import FeedMode
from jobctl.backends.feedthread import FeedBatch
from jobctl.errors import UnreachableError
from jobctl.models import JobStatus, LogLine, Step
from jobctl.tui.app import TABLE_FIELDS, JobctlApp
from jobctl.tui.screens.confirm import ConfirmScreen
from jobctl.tui.screens.detail import DetailScreen
from jobctl.tui.screens.help import HelpScreen
from jobctl.tui.screens.main import MainScreen
from jobctl.tui.screens.submit import SubmitScreen
from jobctl.tui.widgets.jobs_table import JobsTable
from tests.tui.fakes import T0, FakeClient, FakeFeed, fixed_clock, job_id, make_job
from tests.tui.helpers import notes, until, until_text
from tests.tui.screen_text import screen_text

SIZE = (100, 30)


def table(app: JobctlApp) -> JobsTable:
    return app.main_screen.table


def calls(client: FakeClient, name: str) -> list[Any]:
    return [arg for n, arg in client.calls if n == name]


async def started(app: JobctlApp, pilot: Any) -> None:
    await until(pilot, lambda: len(table(app).order) == 10, what="10 rows loaded")
    await until(pilot, lambda: app.stats is not None, what="stats loaded")


async def test_loads_jobs_newest_first_with_counts(build: Any, feed: FakeFeed) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        assert table(app).order[0] == job_id(10)  # newest first
        text = screen_text(app)
        assert "○ 2 pending  ▶ 2 running  ✔ 2 completed  ✖ 2 failed  ⊘ 2 cancelled" in text
        assert "queue 2" in text
        assert "✖ failed" in text and "demo failure at step 2" in text
        assert feed.entered
        assert "◌ polling" in text


async def test_live_progress_updates_the_row(
    build: Any, client: FakeClient, feed: FakeFeed
) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        running = client.jobs[job_id(6)]
        feed.push(
            replace(running, progress=60, message="Gathering reviews...", updated_at=fixed_clock())
        )
        await until_text(pilot, "Gathering reviews...")
        line = next(x for x in screen_text(app).splitlines() if "Gathering reviews" in x)
        assert "60%" in line and "▶ running" in line
        # a job the table has never seen appears at the top, as it is the newest
        feed.push(make_job(50, JobStatus.RUNNING, progress=10, message="new one"))
        await until(pilot, lambda: table(app).order[0] == job_id(50), what="new job on top")
        await until_text(pilot, "new one")


def test_progress_bursts_collapse_but_endings_never_do() -> None:
    job = make_job(1, JobStatus.RUNNING, progress=10, updated_at=T0)
    later = replace(job, progress=20, updated_at=T0 + timedelta(seconds=1))
    done = replace(
        job, status=JobStatus.COMPLETED, progress=100, updated_at=T0 + timedelta(seconds=2)
    )
    again = replace(done, status=JobStatus.PENDING, attempt=2, updated_at=T0 + timedelta(seconds=3))
    batch = FeedBatch()
    for snapshot in (job, later, done, again, make_job(2, JobStatus.RUNNING)):
        batch.add(snapshot)
    batch.add(job)  # a late poll: older than what the batch has, dropped
    assert [(j.id, j.status) for j in batch.jobs] == [
        (job.id, JobStatus.PENDING),  # the newest of job 1: retried
        (job_id(2), JobStatus.RUNNING),
    ]
    assert batch.endings == [done]  # the ending in between is kept


async def test_a_burst_is_applied_in_a_few_frames_with_the_latest(
    build: Any, feed: FakeFeed
) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        flushes = app.flushes
        base = make_job(6, JobStatus.RUNNING)
        feed.push(
            *[
                replace(
                    base,
                    progress=p,
                    message=f"tick {p}",
                    updated_at=T0 + timedelta(hours=1, seconds=p),
                )
                for p in range(1, 100)
            ]
        )
        await until_text(pilot, "tick 99")
        assert table(app).jobs[base.id].progress == 99
        assert app.flushes - flushes < 10  # 99 snapshots, applied in a few frames


async def test_journal_completion_raises_a_toast_that_opens_it(
    build: Any, client: FakeClient, feed: FakeFeed
) -> None:
    app = build(bell=True, osc9=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        job = make_job(60, JobStatus.RUNNING, type="journal_extraction", progress=55)
        client.add(job)
        feed.push(job)
        await until(pilot, lambda: job.id in table(app).jobs)
        done = replace(
            job,
            status=JobStatus.COMPLETED,
            progress=100,
            output={"events_created": 3, "action_items_created": 2},
            completed_at=fixed_clock(),
            updated_at=fixed_clock(),
        )
        client.add(done)
        feed.push(done)
        await until(
            pilot, lambda: any("Journal entry ready: 3 events extracted" in n for n in notes(app))
        )
        assert list(app.terminal_notices) == ["Journal entry ready: 3 events extracted"]
        assert "open_job('" + job.id in notes(app)[-1]  # the toast's Open link
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.job_id == job.id  # type: ignore[attr-defined]


async def test_failure_toast_carries_the_error(
    build: Any, client: FakeClient, feed: FakeFeed
) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        running = client.jobs[job_id(6)]
        feed.push(
            replace(
                running,
                status=JobStatus.FAILED,
                error="upstream said no",
                completed_at=fixed_clock(),
                updated_at=fixed_clock(),
            )
        )
        await until(pilot, lambda: any("failed: upstream said no" in n for n in notes(app)))
        # jobs that had ended before the dashboard started raise nothing
        assert sum("failed:" in n for n in notes(app)) == 1


async def test_detail_shows_steps_output_error_and_follows_logs(
    build: Any, client: FakeClient
) -> None:
    job = replace(
        client.jobs[job_id(6)],
        output={"events_created": 5, "event_ids": ["e1", "e2"]},
        message="Step 2/3 done",
    )
    client.add(job)
    client.steps[job.id] = [
        Step(job.id, "s1", "parse", "completed", 1, None, None, T0, T0.replace(second=2)),
        Step(
            job.id, "s2", "extract-events", "failed", 2, None, "timeout", T0, T0.replace(second=5)
        ),
        Step(job.id, "s3", "extract-events", "running", 3, None, None, T0, None),
    ]
    client.logs[job.id] = [LogLine(job.id, 1, T0, "info", "parse", "12 sentences")]
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table(app).select(job.id)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await until_text(pilot, "extract-events")
        text = screen_text(app)
        assert job.id in text and "▶ running" in text and "Step 2/3 done" in text
        assert "✖ failed" in text and "timeout" in text  # the failed attempt of the step
        assert '"events_created": 5' in text
        await until_text(pilot, "12 sentences")
        client.logs[job.id].append(LogLine(job.id, 2, T0, "warn", None, "a late line"))
        await until_text(pilot, "a late line")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_submit_sends_the_file_and_selects_the_new_job(
    build: Any, client: FakeClient, tmp_path: Path
) -> None:
    entry = tmp_path / "entry.txt"
    entry.write_text("Monday. Call the landlord on Friday.\n")
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen))
        await pilot.press(*str(entry))
        await pilot.press("enter")
        await until(pilot, lambda: calls(client, "create_job"), what="create_job called")
        type_, input_ = calls(client, "create_job")[0]
        assert type_ == "journal_extraction"
        assert input_ == {"text": entry.read_text(), "filename": "entry.txt"}
        new = job_id(1001)
        await until(pilot, lambda: table(app).selected_id == new, what="new job selected")
        assert any("Submitted journal_extraction job 000003e9" in n for n in notes(app))


async def test_submit_dialog_reports_bad_input_and_sends_nothing(
    build: Any, client: FakeClient
) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen))
        await pilot.press("tab", "tab")  # to the input JSON
        await pilot.press(*"{steps")
        await pilot.press("enter")
        await until_text(pilot, "✖ input JSON:")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert calls(client, "create_job") == []


async def test_retry_the_selected_failed_job(build: Any, client: FakeClient) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        failed = job_id(8)
        assert table(app).select(failed)
        await pilot.press("r")
        await until(pilot, lambda: calls(client, "retry_job") == [failed])
        await until(pilot, lambda: table(app).jobs[failed].status == JobStatus.PENDING)
        assert table(app).jobs[failed].attempt == 4


async def test_cancel_asks_first_and_no_means_no(build: Any, client: FakeClient) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        running = job_id(6)
        table(app).select(running)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Cancel 00000006?" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause(0.1)
        assert calls(client, "cancel_job") == []
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")  # the focused button is No
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause(0.1)
        assert calls(client, "cancel_job") == []
        await pilot.press("c", "y")
        await until(pilot, lambda: calls(client, "cancel_job") == [running])
        await until(pilot, lambda: table(app).jobs[running].status == JobStatus.CANCELLED)


async def test_marked_rows_are_cancelled_together(build: Any, client: FakeClient) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table(app).select(job_id(6))
        await pilot.press("space")  # marks and moves down
        table(app).select(job_id(5))
        await pilot.press("space")
        assert table(app).marked == {job_id(6), job_id(5)}
        assert "* 00000006" in screen_text(app)  # a mark is a symbol, not only a colour
        await until_text(pilot, "2 marked")
        await pilot.press("c")
        await until_text(pilot, "Cancel 2 jobs?")
        await pilot.press("y")
        await until(pilot, lambda: sorted(calls(client, "cancel_job")) == [job_id(5), job_id(6)])
        await until(pilot, lambda: any("Cancel requested for 2 jobs" in n for n in notes(app)))


async def test_a_refused_action_is_reported(build: Any, client: FakeClient) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table(app).select(job_id(7))  # completed: said at once, nothing sent
        await pilot.press("r")
        await until(
            pilot, lambda: any("Nothing to retry: 00000007 is completed" in n for n in notes(app))
        )
        await pilot.press("c")
        await until(
            pilot, lambda: any("Nothing to cancel: 00000007 is completed" in n for n in notes(app))
        )
        assert isinstance(app.screen, MainScreen)  # no question first
        assert calls(client, "retry_job") == calls(client, "cancel_job") == []
        # the server's refusal still reaches the user (the job changed after we loaded it)
        client.jobs[job_id(8)] = replace(client.jobs[job_id(8)], status=JobStatus.COMPLETED)
        table(app).select(job_id(8))
        await pilot.press("r")
        await until(pilot, lambda: any("is not failed or cancelled" in n for n in notes(app)))


async def test_copy_id(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table(app).select(job_id(4))
        await pilot.press("y")
        assert app.clipboard == job_id(4)
        await until(pilot, lambda: any(f"Copied {job_id(4)}" in n for n in notes(app)))


async def test_filter_by_status_type_and_words(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("slash", *"status:failed")
        await until(pilot, lambda: len(table(app).order) == 2)
        await pilot.press("enter")
        assert table(app).has_focus
        assert "showing 2 of 10 · filter: status:failed" in screen_text(app)
        await pilot.press("slash", "ctrl+u", *"type:journal_extraction")
        await until(pilot, lambda: len(table(app).order) == 3)
        await pilot.press("escape")  # clears
        await until(pilot, lambda: len(table(app).order) == 10)
        await pilot.press("slash", *"upstream")
        await until_text(pilot, "No jobs match the filter.")


async def test_readonly_turns_every_action_off(build: Any, client: FakeClient) -> None:
    app = build(readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table(app).select(job_id(8))
        await pilot.press("r", "c", "s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, MainScreen)
        assert not [c for c in client.calls if c[0] in ("retry_job", "cancel_job", "create_job")]
        text = screen_text(app)
        assert "read-only" in text and "Retry" not in text.splitlines()[-1]


async def test_keys_are_rebound_from_settings(build: Any, client: FakeClient) -> None:
    app = build(keys={"retry": "R", "help": "f1"})
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table(app).select(job_id(8))
        await pilot.press("r")
        await pilot.pause(0.2)
        assert calls(client, "retry_job") == []
        await pilot.press("R")
        await until(pilot, lambda: calls(client, "retry_job") == [job_id(8)])
        assert "R Retry" in screen_text(app).splitlines()[-1]
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "Retry the marked jobs" in screen_text(app)


async def test_help_lists_the_keys_of_the_screen(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        for words in ("Submit a job", "Cancel the marked jobs", "Sort by the next column"):
            assert words in text
        await pilot.press("G")  # vim keys scroll the help
        await until_text(pilot, "Command palette")
        assert "Filter (/)" in screen_text(app)
        await pilot.press("q")  # q closes a sub-view, it does not quit
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_offline_keeps_the_rows_and_recovers(
    build: Any, client: FakeClient, feed: FakeFeed
) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        loads = len(calls(client, "list_jobs"))
        client.fail = UnreachableError(
            "the job server at http://127.0.0.1:1 refused the connection"
        )
        feed.set_mode(FeedMode.OFFLINE, "the job server refused the connection")
        await until_text(pilot, "✖ offline")
        assert len(table(app).order) == 10
        client.fail = None
        feed.set_mode(FeedMode.POLLING, "the job API answers")
        await until_text(pilot, "◌ polling")
        await until(pilot, lambda: len(calls(client, "list_jobs")) > loads, what="reloaded")


async def test_command_palette_filters(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"Show failed")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: len(table(app).order) == 2, what="palette applied the filter")


async def test_the_table_lists_its_fields_and_the_detail_shows_the_whole_job(
    build: Any, client: FakeClient, feed: FakeFeed
) -> None:
    """Listings ask for what the table shows (no input, no output); the detail view
    fetches the whole job and keeps its input through later input-less snapshots."""
    job = replace(client.jobs[job_id(6)], input={"steps": 3, "marker": "zebra-42"})
    client.add(job)
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        assert client.listed_fields and set(client.listed_fields) == {TABLE_FIELDS}
        assert not {"input", "output"} & set(TABLE_FIELDS)
        listed = app.jobs[job.id]
        assert listed.missing == {"input", "output"} and listed.input == {}
        table(app).select(job.id)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await until_text(pilot, "zebra-42")  # from get_job: the listing had no input
        assert job.id in calls(client, "get_job")
        # a snapshot without the input (a poll, a reload) moves the job on, keeps the input
        assert job.updated_at is not None
        later = replace(listed, message="most of it", updated_at=job.updated_at + timedelta(1))
        feed.push(later)
        await until_text(pilot, "most of it")
        assert "zebra-42" in screen_text(app)
