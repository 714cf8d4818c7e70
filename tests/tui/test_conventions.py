"""k9s conventions and the table's views: sort, columns, time window, q/Esc/ctrl+c,
vim keys, read-only keys that explain themselves, filter errors in the filter line,
and the detail view's live state."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

from rich.text import Text

from jobctl.backends.feed import FeedMode
from jobctl.models import JobStatus, LogLine, Step
from jobctl.tui.app import JobctlApp
from jobctl.tui.screens.columns import ColumnsScreen
from jobctl.tui.screens.detail import DetailScreen, output_note, render_log_line
from jobctl.tui.screens.main import MainScreen
from jobctl.tui.widgets.step_timeline import render_steps
from tests.tui.fakes import T0, FakeClient, FakeFeed, fixed_clock, job_id, make_job
from tests.tui.helpers import notes, until, until_text
from tests.tui.screen_text import screen_lines, screen_text

SIZE = (100, 30)


def table_rows(app: JobctlApp) -> list[str]:
    return [x for x in screen_lines(app) if x.strip()[:8].isalnum() and "-" not in x[:3]][1:]


async def started(app: JobctlApp, pilot: Any, count: int = 10) -> None:
    await until(pilot, lambda: len(app.main_screen.table.order) == count, what="rows loaded")


async def test_sort_cycles_columns_and_inverts(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.main_screen.table
        assert table.order[0] == job_id(10)  # newest first
        assert "AGE▲" in screen_text(app)
        await pilot.press("greater_than_sign")  # the next column after age: message
        await pilot.press("less_than_sign", "less_than_sign")  # back past age: time
        assert table.sort.column == "time" and table.sort.descending
        assert "TIME▼" in screen_text(app) and "sort: time ▼" in screen_text(app)
        await pilot.press("less_than_sign")  # progress, largest first
        progress = [table.jobs[i].progress for i in table.order]
        assert progress == sorted(progress, reverse=True)
        await pilot.press("I")
        progress = [table.jobs[i].progress for i in table.order]
        assert progress == sorted(progress) and "PROGRESS▲" in screen_text(app)
        await pilot.press("less_than_sign")  # status: failed first
        assert table.sort.column == "status"
        assert table.jobs[table.order[0]].status == JobStatus.FAILED
        # the selection survives a re-sort
        chosen = table.order[4]
        table.select(chosen)
        await pilot.press("I")
        assert table.selected_id == chosen


async def test_columns_can_be_chosen(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ColumnsScreen))
        # the list: id (fixed), type (highlighted), status, progress, time, age, attempt, ...
        assert "[ ] ATTEMPT" in screen_text(app) and "[x] PROGRESS" in screen_text(app)
        await pilot.press("j", "j", "space")  # progress off
        await pilot.press("j", "j", "j", "space")  # attempt on
        assert "[x] ATTEMPT" in screen_text(app) and "[ ] PROGRESS" in screen_text(app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        header = next(x for x in screen_lines(app) if "STATUS" in x)
        assert "PROGRESS" not in header and "ATTEMPT" in header
        assert "░" not in screen_text(app)
        await pilot.press("C", "escape")  # Esc leaves them as they are
        assert "ATTEMPT" in next(x for x in screen_lines(app) if "STATUS" in x)


async def test_the_time_window(client: FakeClient, feed: FakeFeed) -> None:
    # the fixed clock is T0 + 10 min; these were made two hours before it
    for n in range(1, 4):
        client.add(make_job(100 + n, JobStatus.COMPLETED, created_at=T0 - timedelta(hours=2)))
    from jobctl.tui.app import make_app
    from tests.tui.conftest import settings

    app = make_app(client, feed, settings())
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, 13)
        await pilot.press("w")  # last hour
        await until(pilot, lambda: len(app.main_screen.table.order) == 10)
        assert "window: last hour · showing 10 of 13" in screen_text(app)
        await pilot.press("w", "w")  # today, then all time again
        await until(pilot, lambda: len(app.main_screen.table.order) == 13)
        assert "window:" not in screen_text(app)


async def test_q_and_escape_go_back_and_ctrl_c_quits(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("q")  # back, not quit
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.is_running
        await pilot.press("s")  # ctrl+c quits from anywhere, a dialog's input included
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.is_running, what="the app quit")


async def test_q_quits_from_the_main_view(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app quit")


async def test_vim_keys_move_and_scroll(build: Any, client: FakeClient) -> None:
    for n in range(11, 80):
        client.add(make_job(n, JobStatus.COMPLETED))
    job = client.jobs[job_id(79)]
    client.logs[job.id] = [LogLine(job.id, n, T0, "info", None, f"line {n}") for n in range(1, 200)]
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, 79)
        table = app.main_screen.table
        await pilot.press("G")
        assert table.cursor == 78
        rows = table_rows(app)
        assert job_id(1)[:8] in rows[-1]  # the last row is on screen, not under a scrollbar
        await pilot.press("ctrl+u")
        assert table.cursor == 78 - table.rows_on_screen // 2
        await pilot.press("g")
        assert table.cursor == 0
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        await until(pilot, lambda: len(screen.logs.lines) == 199)
        screen.logs.focus()
        await pilot.press("g")
        await until_text(pilot, "line 1\n")
        await pilot.press("G")
        await until_text(pilot, "line 199")
        await pilot.press("k", "k")
        assert screen.logs.scroll_y < screen.logs.max_scroll_y


async def test_readonly_keys_say_why_they_do_nothing(build: Any, client: FakeClient) -> None:
    app = build(readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        app.main_screen.table.select(job_id(8))
        for key, verb in (("r", "retry"), ("c", "cancel"), ("s", "submit")):
            await pilot.press(key)
            await until(pilot, lambda v=verb: any(f"{v} is turned off" in n for n in notes(app)))
        assert not [c for c in client.calls if c[0] in ("retry_job", "cancel_job", "create_job")]
        await pilot.press("question_mark")
        await until_text(pilot, "off: read-only")


async def test_filter_errors_stay_in_the_filter_line(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("slash", *"status:xy")
        await until_text(pilot, "unknown status 'xy'")
        assert app.main_screen.table.order == []  # matches nothing, not everything
        line = next(x for x in screen_lines(app) if "unknown status" in x)
        assert "status:xy" in line and "matches nothing" in line  # the same line
        assert not app._notifications  # no toast per keystroke
        await pilot.press("backspace", "backspace", *"fail")
        await until(pilot, lambda: len(app.main_screen.table.order) == 2)
        assert "unknown status" not in screen_text(app)


async def test_empty_table_says_why(client: FakeClient, feed: FakeFeed) -> None:
    from jobctl.errors import UnreachableError
    from jobctl.tui.app import make_app
    from tests.tui.conftest import settings

    client.jobs.clear()
    client.fail = UnreachableError("the job server at http://127.0.0.1:1 refused the connection")
    app = make_app(client, feed, settings())
    async with app.run_test(size=SIZE) as pilot:
        feed.set_mode(FeedMode.OFFLINE, "refused")
        await until_text(pilot, "No jobs to show: the job server does not answer")
        assert "No jobs yet" not in screen_text(app)
        client.fail = None
        feed.set_mode(FeedMode.POLLING, "back")
        await until_text(pilot, "No jobs yet. Press s to submit one.")


async def test_a_fast_job_has_no_pending_toast_after_its_end(
    build: Any, client: FakeClient, feed: FakeFeed, tmp_path: Any
) -> None:
    app = build()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, pilot)
        new = make_job(1001, JobStatus.COMPLETED, updated_at=fixed_clock() + timedelta(seconds=5))
        feed.push(replace(new, completed_at=fixed_clock()))  # the end, before the answer
        await until(pilot, lambda: any("completed" in n for n in notes(app)))
        from jobctl.tui.screens.submit import Submission

        app.submit_job(Submission("demo", {"steps": 1}, "demo"))
        await until(pilot, lambda: app.main_screen.table.selected_id == new.id)
        await pilot.pause(0.3)
        assert not any("Submitted" in n for n in notes(app))


def test_detail_view_words() -> None:
    done = make_job(1, JobStatus.COMPLETED)
    assert output_note(done) == "The job returned no output."
    assert output_note(make_job(2, JobStatus.FAILED, error="boom")) is None  # hidden
    assert output_note(make_job(3, JobStatus.RUNNING)) == "No output yet."
    assert output_note(replace(done, output={"a": 1})) == ""
    line = render_log_line(LogLine("j", 1, T0, "error", "save", "disk full"))
    assert line.plain.endswith("error [save] disk full")
    assert any(span.style == "bold red" for span in line.spans)  # coloured, and written out
    steps = [Step("j", "s1", "parse", "failed", 3, None, "timeout", T0, T0)]
    table = render_steps(steps, T0, budget=3)
    cells = [c for col in table.columns for c in col._cells]
    assert "3 of 3" in cells  # as the job's "attempt N of M", out of the per-step budget
    status = next(c for c in cells if isinstance(c, Text) and "failed" in c.plain)
    assert status.style == "bold red"


async def test_detail_view_is_live(build: Any, client: FakeClient, feed: FakeFeed) -> None:
    clock = [fixed_clock()]
    job = make_job(6, JobStatus.PENDING, created_at=fixed_clock() - timedelta(seconds=5))
    client.add(job)
    app = build(clock=lambda: clock[0])
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        app.open_job(job.id)
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await until(pilot, lambda: re.search(r"age +5\.0s", screen_text(app)) is not None)
        await until_text(pilot, "Logs (following")
        clock[0] += timedelta(seconds=3)
        app._tick()
        await until(pilot, lambda: re.search(r"age +8\.0s", screen_text(app)) is not None)
        done = replace(job, status=JobStatus.FAILED, error="boom", updated_at=clock[0])
        client.add(done)
        feed.push(done)
        await until_text(pilot, "every line is shown")
        text = screen_text(app)
        assert "following" not in text and "No output yet." not in text and "boom" in text
