"""The schedules and events views against the in-process fakes: opened from the main
screen, rows shown and polled, pause/resume (with a note), trigger and replay through
the API with the row updated, Enter to the jobs, read-only refusals, q back."""

from __future__ import annotations

from typing import Any

import pytest

from jobctl.errors import UnreachableError
from jobctl.models import JobStatus
from jobctl.tui.app import JobctlApp
from jobctl.tui.format import event_cells, parse_filter, relative, schedule_cells
from jobctl.tui.screens.detail import DetailScreen
from jobctl.tui.screens.events import EventsScreen
from jobctl.tui.screens.help import HelpScreen
from jobctl.tui.screens.main import MainScreen
from jobctl.tui.screens.note import NoteScreen
from jobctl.tui.screens.schedules import SchedulesScreen
from tests.tui.fakes import (
    FakeClient,
    FakeFeed,
    event_id,
    fixed_clock,
    iso,
    job_id,
    make_event,
    make_job,
    make_schedule,
    schedule_id,
)
from tests.tui.helpers import notes, until, until_text
from tests.tui.screen_text import screen_lines, screen_text

SIZE = (100, 30)


def calls(client: FakeClient, name: str) -> list[Any]:
    return [arg for n, arg in client.calls if n == name]


@pytest.fixture(autouse=True)
def history(client: FakeClient) -> None:
    """Three schedules (one paused, one run already) and three events (one with two
    jobs, one with a job the table has not loaded, one with none)."""
    client.add_schedules(
        make_schedule(1, "hourly-report", cron="0 * * * *", tz="Europe/Berlin", every_seconds=None),
        make_schedule(
            2,
            "every-minute",
            last_status="completed",
            last_tick=iso(fixed_clock().replace(minute=39)),
            last_job_id=job_id(2),
        ),
        make_schedule(3, "nightly", paused=True, note="db migration", next_run_at=None),
    )
    client.events = [
        make_event(6, "journal.submitted", [job_id(4)]),
        make_event(5, "demo.fanout", [job_id(2), job_id(3)], source="api"),
        make_event(4, "nothing.started"),
    ]


def row(app: JobctlApp, needle: str) -> str:
    return next(x for x in screen_lines(app) if needle in x)


async def open_view(app: JobctlApp, pilot: Any, key: str, screen: type[Any]) -> Any:
    await until(pilot, lambda: len(app.main_screen.table.order) == 10, what="jobs loaded")
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, screen), what=f"{screen.__name__} open")
    view = app.screen
    await until(pilot, lambda: view.loaded, what="the view loaded")
    await until(
        pilot,
        lambda: "refreshed" in screen_text(app) or "yet" in screen_text(app),
        what="the view drawn",
    )
    return view


# schedules ------------------------------------------------------------------------------
async def test_schedules_view_shows_each_schedule_and_q_goes_back(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await open_view(app, pilot, "S", SchedulesScreen)
        text = screen_text(app)
        assert "NAME" in text and "NEXT RUN" in text and "LAST RUN" in text
        assert "3 schedules (1 paused)" in text
        line = row(app, "every-minute")
        assert "every 1m" in line and "in 1m" in line and "✔ completed, 1m ago" in line
        assert "paused" not in line
        assert "0 * * * * Europe/Berlin" in row(app, "hourly-report")
        assert "never run" in row(app, "hourly-report")
        nightly = row(app, "nightly")
        assert "‖ paused" in nightly and "db migration" in nightly  # its next run: none
        await until(
            pilot,
            lambda: "p Pause/resume  t Trigger" in screen_lines(app)[-1],
            what="the footer",
        )
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("S", "escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_pause_asks_for_a_note_then_resume_clears_it(build: Any, client: FakeClient) -> None:
    app = build()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        view = await open_view(app, pilot, "S", SchedulesScreen)
        assert view.table.selected_key == schedule_id(2)  # every-minute: sorted by name
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, NoteScreen))
        assert "Pause schedule every-minute?" in screen_text(app)
        await pilot.press(*"disk full", "enter")
        await until(pilot, lambda: "disk full" in row(app, "every-minute"), what="the note")
        assert calls(client, "schedule_action") == [
            (schedule_id(2), "pause", {"note": "disk full"})
        ]
        assert view.table.get_cell(schedule_id(2), "NEXT RUN") == "‖ paused"
        assert "3 schedules (2 paused)" in screen_text(app)
        assert any("Paused every-minute (disk full)." in n for n in notes(app))
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, NoteScreen))
        assert "Resume schedule every-minute?" in screen_text(app)
        await pilot.press("enter")  # no note
        await until(pilot, lambda: "paused" not in row(app, "every-minute"), what="resumed")
        assert "disk full" not in row(app, "every-minute")
        assert calls(client, "schedule_action")[-1] == (schedule_id(2), "resume", None)
        assert "in 1m" in row(app, "every-minute")
        # Esc on the prompt: nothing is sent
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, NoteScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        assert len(calls(client, "schedule_action")) == 2


async def test_trigger_runs_it_now_and_the_row_shows_the_run(
    build: Any, client: FakeClient, feed: FakeFeed
) -> None:
    app = build()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        view = await open_view(app, pilot, "S", SchedulesScreen)
        await pilot.press("j")  # hourly-report
        assert view.table.selected_key == schedule_id(1)
        await pilot.press("t")
        await until(pilot, lambda: "○ pending, now" in row(app, "hourly-report"), what="row")
        assert calls(client, "schedule_action") == [(schedule_id(1), "trigger", None)]
        started = client.schedules[schedule_id(1)]["last_job_id"]
        assert any(f"Triggered hourly-report: job {started[:8]} started." in n for n in notes(app))
        assert started in feed.added  # the jobs table follows it
        # Enter opens the last run's job over the view; q comes back to the view
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the job")
        assert app.screen.job_id == started
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen))


async def test_a_failed_action_says_why_and_the_view_polls_through_an_outage(
    build: Any, client: FakeClient
) -> None:
    app = build(history_interval=0.1)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_view(app, pilot, "S", SchedulesScreen)
        client.add_schedules(make_schedule(9, "added-later", every_seconds=300.0))
        await until_text(pilot, "added-later")  # polled
        assert "every 5m" in row(app, "added-later")
        client.fail = UnreachableError("the job server at http://127.0.0.1:8765 did not answer")
        await pilot.press("t")
        await until(
            pilot,
            lambda: any("trigger" in n and "did not answer" in n for n in notes(app)),
            what="the error toast",
        )
        await until_text(pilot, "✖ could not load the schedules: the job server")
        assert "added-later" in screen_text(app)  # what it had stays
        client.fail = None
        await until(
            pilot, lambda: "✖ could not load" not in screen_text(app), what="back to normal"
        )
        assert "4 schedules" in screen_text(app)


async def test_vim_keys_move_in_the_views(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        view = await open_view(app, pilot, "S", SchedulesScreen)
        await pilot.press("G")
        assert view.table.selected_key == schedule_id(3)
        assert view.table.cursor_row == 2
        await pilot.press("k")
        assert view.table.selected_key == schedule_id(1)
        await pilot.press("g")
        assert view.table.selected_key == schedule_id(2)


async def test_an_empty_view_says_how_to_make_one(build: Any, client: FakeClient) -> None:
    client.schedules.clear()
    client.events.clear()
    app = build()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_view(app, pilot, "S", SchedulesScreen)
        assert "No schedules yet: `jobctl schedule create" in screen_text(app)
        await pilot.press("t")
        await until(pilot, lambda: "No schedule selected." in notes(app))
        assert calls(client, "schedule_action") == []
        await pilot.press("q", "E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen) and app.screen.loaded)
        await until_text(pilot, "No events yet")


# events ---------------------------------------------------------------------------------
async def test_events_view_shows_the_newest_first_with_their_jobs(build: Any) -> None:
    app = build()
    async with app.run_test(size=SIZE) as pilot:
        await open_view(app, pilot, "E", EventsScreen)
        text = screen_text(app)
        assert "3 events" in text
        names = [x.split()[1] for x in screen_lines(app) if x.strip().startswith("e000")]
        assert names == ["journal.submitted", "demo.fanout", "nothing.started"]
        line = row(app, "demo.fanout")
        assert event_id(5)[:8] in line and " api " in line
        assert "10m ago" in line and f"{job_id(2)[:8]} +1" in line
        assert "none" in row(app, "nothing.started")
        await until(
            pilot, lambda: "⏎ Open job  r Replay" in screen_lines(app)[-1], what="the footer"
        )
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_replay_sends_the_event_again_and_shows_the_new_one_on_top(
    build: Any, client: FakeClient, feed: FakeFeed
) -> None:
    app = build()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        view = await open_view(app, pilot, "E", EventsScreen)
        await pilot.press("j")  # demo.fanout
        await pilot.press("r")
        await until(pilot, lambda: len(view.records) == 4, what="the new event")
        assert calls(client, "replay_event") == [event_id(5)]
        new = client.events[0]
        assert new["replay_of"] == event_id(5)
        assert view.table.selected_key == new["id"]  # on top, highlighted
        line = screen_lines(app)[3]
        assert new["id"][:8] in line and f"replay of {event_id(5)[:8]}" in line
        assert new["job_ids"][0][:8] in line
        assert new["job_ids"][0] in feed.added
        replayed = f"Replayed event {event_id(5)[:8]} as {new['id'][:8]}: job"
        assert any(replayed in n for n in notes(app))
        assert "4 events" in screen_text(app)


async def test_enter_on_an_event_opens_its_job_or_shows_its_jobs(
    build: Any, client: FakeClient
) -> None:
    client.events.insert(0, make_event(7, "old.one", [job_id(77)]))
    app = build()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        view = await open_view(app, pilot, "E", EventsScreen)
        # not in the table: fetched, then opened over the view
        client.add(make_job(77, JobStatus.COMPLETED))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail")
        assert app.screen.job_id == job_id(77) and job_id(77) in calls(client, "get_job")
        await pilot.press("q")
        await until(pilot, lambda: app.screen is view)
        await pilot.press("j", "enter")  # journal.submitted: one job, loaded
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.job_id == job_id(4)
        await pilot.press("escape", "j", "enter")  # demo.fanout: two jobs
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the jobs table")
        await until(pilot, lambda: len(app.main_screen.table.order) == 2)
        assert set(app.main_screen.table.order) == {job_id(2), job_id(3)}
        assert app.main_screen.filter_bar.value == f"id:{job_id(2)[:8]},{job_id(3)[:8]}"
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen) and app.screen.loaded)
        await pilot.press("G", "enter")  # nothing.started
        await until(pilot, lambda: any("started no job" in n for n in notes(app)))
        assert isinstance(app.screen, EventsScreen)


# read-only, keys, help ------------------------------------------------------------------
async def test_read_only_views_explain_their_keys_and_send_nothing(
    build: Any, client: FakeClient
) -> None:
    app = build(readonly=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_view(app, pilot, "S", SchedulesScreen)
        await until(
            pilot,
            lambda: (
                "read-only: pause, resume and trigger are off" in " ".join(screen_text(app).split())
            ),
            what="the read-only note",
        )
        await until(pilot, lambda: "^r Refresh" in screen_lines(app)[-1], what="the footer")
        assert (
            "Pause/resume" not in screen_lines(app)[-1] and "Trigger" not in screen_lines(app)[-1]
        )
        await pilot.press("p")
        await until(pilot, lambda: any("pause is turned off" in n for n in notes(app)))
        assert not isinstance(app.screen, NoteScreen)
        await pilot.press("G", "p")  # nightly is paused: p would resume it
        await until(pilot, lambda: any("resume is turned off" in n for n in notes(app)))
        await pilot.press("t")
        await until(pilot, lambda: any("trigger is turned off" in n for n in notes(app)))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "off: read-only" in screen_text(app)
        await pilot.press("escape", "q", "E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen) and app.screen.loaded)
        await until(
            pilot,
            lambda: "read-only: replay is off" in " ".join(screen_text(app).split()),
            what="the read-only note",
        )
        await pilot.press("r")
        await until(pilot, lambda: any("replay is turned off" in n for n in notes(app)))
        assert calls(client, "schedule_action") == [] and calls(client, "replay_event") == []


async def test_the_main_footer_names_the_views_when_it_has_room(build: Any) -> None:
    app = build()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.main_screen.table.order) == 10)
        await until(pilot, lambda: "? Keys" in screen_lines(app)[-1], what="the footer")
        assert "Schedules" not in screen_lines(app)[-1]  # no room at 80 columns
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_text = screen_text(app)
        assert "Schedules: next run" in help_text and "Events received" in help_text
        await pilot.press("escape")
        await pilot.resize_terminal(100, 24)
        await until(pilot, lambda: "S Schedules" in screen_lines(app)[-1], what="the footer")
        assert "E Events" in screen_lines(app)[-1] and "? Keys" in screen_lines(app)[-1]


async def test_the_views_keys_can_be_rebound(build: Any, client: FakeClient) -> None:
    app = build(keys={"schedules": "F", "trigger": "T"})
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.main_screen.table.order) == 10)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen) and app.screen.loaded)
        await until(pilot, lambda: "T Trigger" in screen_lines(app)[-1], what="the footer")
        await pilot.press("T")
        await until(pilot, lambda: len(calls(client, "schedule_action")) == 1)


# the cells --------------------------------------------------------------------------------
def test_cells_and_times() -> None:
    now = fixed_clock()
    assert relative(None, now) == "-"
    assert relative(now, now) == "now"
    assert relative(now.replace(minute=45), now) == "in 5m"
    assert relative(now.replace(minute=39, second=30), now) == "30s ago"
    every = make_schedule(1, "a", every_seconds=90.0, last_status="failed", last_tick=iso(now))
    assert schedule_cells(every, now) == (
        "a",
        "demo",
        "every 90s",
        "in 30s",
        "✖ failed, now",
        "",
    )
    odd = make_schedule(2, "b", every_seconds=1.5, last_status="weird", last_tick=None)
    assert schedule_cells(odd, now)[2:5] == ("every 1.5s", "in 1m", "weird, -")
    many = make_event(
        3, "x", [job_id(n) for n in range(1, 6)], replay_of=event_id(1), source="replay"
    )
    cells = event_cells(many, now)
    assert cells[2] == f"replay of {event_id(1)[:8]}"
    assert cells[3:] == ("10m ago", f"{job_id(1)[:8]} +4")
    long = make_schedule(4, "n" * 30, cron="0 0 1,15 * 1-5", tz="America/New_York", note="x" * 50)
    assert [len(c) for c in schedule_cells(long, now)] == [24, 4, 24, 5, 9, 40]
    assert schedule_cells(long, now)[2] == "0 0 1,15 * 1-5 America/…"


def test_the_id_filter_keeps_jobs_by_id_prefix() -> None:
    f = parse_filter(f"id:{job_id(2)[:8]},{job_id(3)[:8]}")
    assert f.active and f.describe() == f"id:{job_id(2)[:8]},{job_id(3)[:8]}"
    assert f.matches(make_job(2)) and f.matches(make_job(3)) and not f.matches(make_job(4))


async def test_record_table_widens_its_columns_in_the_call_that_fills_it() -> None:
    """The widths follow the cells at once, not at the table's next idle (which a
    fresh-clone CI run once never saw within 10 s: 'tui-' for 'tui-hourly')."""
    from textual.app import App, ComposeResult

    from jobctl.tui.widgets.record_table import RecordTable

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield RecordTable(("NAME", "NOTE"), id="t")

    async with One().run_test(size=(100, 10)) as pilot:
        table = pilot.app.query_one(RecordTable)
        table.show([("a", ("tui-hourly", "x"))])
        assert table.columns["NAME"].content_width == len("tui-hourly")  # type: ignore[index]
        table.update_row("a", ("a-much-longer-name", "x"))
        assert table.columns["NAME"].content_width == len("a-much-longer-name")  # type: ignore[index]
