"""The live feed in a process of its own (FeedProcess), against a real server: the Realtime
client's work happens in the child, batches reach the caller's loop in order, tokens sent
from the caller reach the child, and nothing of the feed is left running after it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobctl.backends.feed import FeedMode, ModeChanged, PollSettings, RealtimeConfig
from jobctl.backends.feedproc import (
    MAX_JOBS_PER_FRAME,
    FeedProcess,
    _split,
    app_feed,
    app_realtime,
    server_feed,
)
from jobctl.backends.feedthread import FeedBatch
from jobctl.models import JobStatus
from tests.apps.profiles import JOURNAL
from tests.conftest import ServerProcess
from tests.tui.fakes import T0, make_job

DEAD = "http://127.0.0.1:9"  # nothing listens there


def options_for(server: ServerProcess) -> dict[str, Any]:
    return {"base_url": server.url, "token": server.token, "timeout": 5, "retries": 1}


def realtime_for(server: ServerProcess) -> RealtimeConfig:
    return RealtimeConfig(url=f"{server.url}/realtime/v1", apikey=server.token)


def submit(server: ServerProcess, count: int, **input_: Any) -> list[str]:
    with server.client() as c:
        return [
            str(c.post("/api/jobs", json={"type": "demo", "input": input_}).json()["id"])
            for _ in range(count)
        ]


async def collect(
    feed: FeedProcess, done: Callable[[list[FeedBatch]], bool], timeout: float = 30
) -> list[FeedBatch]:
    got: list[FeedBatch] = []

    async def run() -> None:
        async for batches in feed.batches():
            got.extend(batches)
            if done(got):
                return

    await asyncio.wait_for(run(), timeout)
    return got


def ended(batches: list[FeedBatch]) -> dict[str, JobStatus]:
    return {job.id: job.status for batch in batches for job in batch.endings}


def modes(batches: list[FeedBatch]) -> list[FeedMode]:
    return [change.mode for batch in batches for change in batch.modes]


def alive(pid: int) -> bool:
    """Running (a zombie, ended but not reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_realtime_changes_are_parsed_in_the_child_and_arrive_batched(
    server: ServerProcess,
) -> None:
    slow = PollSettings(interval=5, realtime_check=60)  # slow polls: Realtime carries it
    feed = FeedProcess(server_feed, options_for(server), realtime_for(server), slow)
    async with feed:
        assert feed.mode == FeedMode.CONNECTING
        assert feed.pid is not None and feed.pid != os.getpid() and alive(feed.pid)
        first = await collect(feed, lambda got: FeedMode.REALTIME in modes(got))
        assert feed.mode == modes(first)[-1] == FeedMode.REALTIME  # as of the batches taken
        ids = await asyncio.to_thread(submit, server, 30, steps=2, step_seconds=0.05)
        got = await collect(feed, lambda got: set(ended(got)) >= set(ids))
        pid = feed.pid
    assert all(ended(got)[i] == JobStatus.COMPLETED for i in ids)
    # Counted in the child, where realtime-py ran: this process has no Realtime client.
    assert feed.realtime_events > 0 and feed.handed_over > 0
    for job_id in ids:  # within and across batches, each job's progress only goes up
        progress = [b.latest[job_id].progress for b in got if job_id in b.latest]
        assert progress == sorted(progress) and progress[-1] == 100
    assert not alive(pid), "the feed's process outlived close()"


async def test_jobs_added_from_the_callers_loop_are_followed(server: ServerProcess) -> None:
    [first] = submit(server, 1, steps=1, step_seconds=0)
    fast = PollSettings(interval=0.1)
    async with FeedProcess(server_feed, options_for(server), None, fast, [first]) as feed:
        assert feed.mode == FeedMode.POLLING  # the child's feed's first mode, without Realtime
        await collect(feed, lambda got: first in ended(got))
        [second] = await asyncio.to_thread(submit, server, 1, steps=2, step_seconds=0.2)
        feed.add_jobs([second])
        got = await collect(feed, lambda got: second in ended(got))
    assert ended(got)[second] == JobStatus.COMPLETED
    assert feed.poll_requests > 0 and feed.realtime_events == 0


async def test_the_child_ends_when_the_callers_end_of_the_pipe_closes(
    server: ServerProcess,
) -> None:
    feed = FeedProcess(server_feed, options_for(server), None)
    await feed.start()
    proc = feed._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # as when the dashboard's process dies: no "stop" is ever sent
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    await feed.close()


async def test_a_feed_that_cannot_start_says_why_and_leaves_no_process() -> None:
    # `server_feed` given a client option that does not exist: it fails in the child.
    feed = FeedProcess(server_feed, {"base_url": "http://127.0.0.1:9", "nonsense": 1}, None)
    with pytest.raises(RuntimeError, match="the live feed could not start"):
        await feed.start()
    assert feed.pid is not None and not alive(feed.pid)


async def test_a_new_token_of_the_callers_reaches_the_childs_source(tmp_path: Path) -> None:
    # An app profile's feed: its session is refreshed in the dashboard's process, and each
    # new token is handed to the child's source (which never refreshes on its own).
    from jobctl.backends.appprofile import load_profile

    app = tmp_path / "app.toml"
    # Its Realtime and PostgREST at a port nothing listens on: the feed polls, failing.
    app.write_text(JOURNAL.format(api_url=DEAD, supabase_url=DEAD, anon_key="anon"))
    profile = load_profile("app", app)
    assert profile is not None
    realtime = RealtimeConfig(url=f"{DEAD}/realtime/v1", apikey="anon")
    tokens = ["first"]
    feed = FeedProcess(
        app_feed, profile, "first", "anon", 2.0, app_realtime(realtime),
        PollSettings(interval=30), token=lambda: tokens[-1],
    )  # fmt: skip
    async with feed:
        tokens.append("second")
        for _ in range(200):
            await asyncio.sleep(0.05)
            if feed.tokens_taken == 2:
                break
    # The one it started with (the recipe's), then the new one.
    assert feed.tokens_taken == 2, "the child never took the new token"


def test_a_large_batch_is_sent_in_parts_that_keep_every_ending_and_the_modes_first() -> None:
    batch = FeedBatch(modes=[ModeChanged(FeedMode.REALTIME, FeedMode.CONNECTING)])
    count = MAX_JOBS_PER_FRAME * 2
    for n in range(count):
        running = make_job(n, JobStatus.RUNNING, updated_at=T0)
        batch.add(running)
        batch.add(replace(running, status=JobStatus.COMPLETED, updated_at=T0 + timedelta(1)))
    parts = _split(batch)
    assert len(parts) > 1
    assert parts[0].modes == batch.modes and all(not p.modes for p in parts[1:])
    assert sum(len(p.latest) for p in parts) == count
    assert sorted(j.id for p in parts for j in p.endings) == sorted(j.id for j in batch.endings)
    for part in parts:
        assert len(part.latest) + len(part.endings) <= MAX_JOBS_PER_FRAME
        assert {j.id for j in part.endings} <= set(part.latest)
