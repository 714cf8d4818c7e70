"""The watch loop and its view without a server: exit-code order, the live block's bounds,
notifications, and the loop's timeout and lost-connection ends over a scripted source."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from jobctl.backends.feed import FeedMode, JobFeed, ModeChanged, PollSettings, Subscription
from jobctl.backends.watchloop import Reason, WatchOptions, exit_code, watch_jobs
from jobctl.commands.watchview import (
    ViewConfig,
    WatchPrinter,
    elapsed_and_eta,
    mode_note,
    notification,
    transition_line,
)
from jobctl.errors import ExitCode, UnreachableError
from jobctl.models import Job, JobStatus
from tests.clirun import FakeTTY

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(n: int, status: str = "running", progress: int = 40, **extra: object) -> Job:
    return Job(
        id=f"{n:08x}-0000-4000-8000-000000000000",
        type="demo",
        status=JobStatus(status),
        progress=progress,
        started_at=T0,
        created_at=T0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("statuses", "reason", "code"),
    [
        (["completed", "completed"], Reason.DONE, ExitCode.OK),
        (["completed", "cancelled"], Reason.DONE, ExitCode.JOB_CANCELLED),
        (["cancelled", "failed"], Reason.DONE, ExitCode.JOB_FAILED),
        (["cancelled", "running"], Reason.TIMEOUT, ExitCode.WATCH_TIMEOUT),
        (["failed", "running"], Reason.TIMEOUT, ExitCode.JOB_FAILED),
        (["running", "cancelled"], Reason.LOST, ExitCode.UNREACHABLE),
        (["failed", "running"], Reason.FAIL_FAST, ExitCode.JOB_FAILED),
    ],
)
def test_exit_code_is_the_worst_outcome(statuses: list[str], reason: str, code: int) -> None:
    assert exit_code([job(i, s) for i, s in enumerate(statuses)], reason) == code


def test_notifications_strip_control_characters() -> None:
    assert notification("bell", "t", "b") == "\a"
    assert notification("osc9", "jobctl", "x\x1b]0;evil\x07y") == "\x1b]9;jobctl: x]0;evily\x07"
    assert notification("osc777", "a;b", "c;d") == "\x1b]777;notify;a,b;c;d\x07"
    assert notification("off", "a", "b") == ""


def test_mode_notes() -> None:
    down = ModeChanged(FeedMode.POLLING, FeedMode.REALTIME, "Realtime unavailable (refused)")
    assert mode_note(down, 2, 60) == "realtime unavailable, polling every 2s (refused)"
    back = ModeChanged(FeedMode.REALTIME, FeedMode.POLLING)
    assert mode_note(back, 2, 60) == "realtime restored"
    assert mode_note(ModeChanged(FeedMode.REALTIME, FeedMode.CONNECTING), 2, 60) == ""


def test_eta_and_plain_lines() -> None:
    assert elapsed_and_eta(job(1, progress=25), T0 + timedelta(seconds=10)) == (10.0, 30.0)
    assert elapsed_and_eta(job(1, "pending"), T0 + timedelta(seconds=3)) == (3.0, None)
    line = transition_line(job(1, "failed", error="bad\tthing\nhappened"))
    assert line.split("\t")[2:] == ["failed", "40", "bad thing happened"]


def test_the_live_block_fits_the_terminal_and_is_erased() -> None:
    out, err = FakeTTY(), io.StringIO()
    config = ViewConfig(out, err, live=True, size=lambda: (40, 8), now=lambda: T0)
    view = WatchPrinter(config)
    for n in range(10):
        view.job_changed(job(n, message="a long message " * 5), None, "initial")
    drawn = out.getvalue().rsplit("\x1b[J", 1)[-1].splitlines()
    assert len(drawn) <= 6, drawn
    assert "… and" in drawn[-2] and "0 of 10 ended" in drawn[-1]
    assert all(len(line) <= 39 for line in drawn), drawn
    view.close()
    assert out.getvalue().endswith(f"\x1b[{len(drawn)}F\x1b[J\x1b[?25h")


class Script:
    """A JobSource that answers from a list of states, or fails."""

    def __init__(self, states: list[Job] | None) -> None:
        self.states = states

    async def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if self.states is None:
            raise UnreachableError("gone")
        return [j for j in self.states if j.id in job_ids]

    async def fetch_active(self) -> list[Job]:
        return await self.fetch_jobs([])


class Quiet:
    def __init__(self) -> None:
        self.modes: list[FeedMode] = []

    def job_changed(self, job: Job, previous: Job | None, source: str) -> None: ...

    def mode_changed(self, event: ModeChanged) -> None:
        self.modes.append(event.mode)

    def tick(self) -> None: ...


def feed_of(source: Script, jobs: list[Job]) -> JobFeed:
    sub = Subscription(frozenset(j.id for j in jobs))
    return JobFeed(source, sub, poll=PollSettings(interval=0.05, max_interval=0.05))


async def test_the_loop_times_out_and_gives_up_on_a_lost_server() -> None:
    running = [job(1)]
    result = await watch_jobs(
        feed_of(Script(running), running), running, Quiet(), WatchOptions(timeout=0.3)
    )
    assert result.reason == Reason.TIMEOUT and result.code == ExitCode.WATCH_TIMEOUT
    view = Quiet()
    options = WatchOptions(lost_after=0.3)
    result = await watch_jobs(feed_of(Script(None), running), running, view, options)
    assert result.reason == Reason.LOST and result.code == ExitCode.UNREACHABLE
    assert view.modes == [FeedMode.OFFLINE]


async def test_the_loop_ends_when_every_job_has_ended() -> None:
    start = [job(1), job(2, "pending")]
    ended = [job(1, "completed", 100), job(2, "cancelled")]
    result = await watch_jobs(feed_of(Script(ended), start), start, Quiet())
    assert result.reason == Reason.DONE and result.code == ExitCode.JOB_CANCELLED
    assert result.deliveries["poll"] == 2


async def test_polling_a_big_batch_lists_the_active_jobs_once() -> None:
    import httpx

    from jobctl.backends.jobapi import AsyncJobClient

    ids = [job(n).id for n in range(6)]
    requests: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/jobs":
            assert request.url.params.get_list("status") == ["pending", "running"]
            return httpx.Response(200, json={"jobs": [job(n).to_dict() for n in range(4)]})
        job_id = request.url.path.rsplit("/", 1)[1]
        if job_id == ids[4]:
            return httpx.Response(200, json=job(4, "completed", 100).to_dict())
        return httpx.Response(404, json={"error": {"message": "not found", "code": "not_found"}})

    client = AsyncJobClient("http://jobs.test", "t", transport=httpx.MockTransport(answer))
    found = await client.fetch_jobs(ids)
    await client.aclose()
    assert [j.id for j in found] == ids[:5]
    assert found[4].status == JobStatus.COMPLETED
    assert requests == ["GET /api/jobs", f"GET /api/jobs/{ids[4]}", f"GET /api/jobs/{ids[5]}"]
