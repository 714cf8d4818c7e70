"""The live feed on a thread of its own (FeedThread), against a real server: the Realtime
client's work happens on the feed's thread, batches reach the caller's loop in order,
and nothing of the feed is left running after it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from jobctl.backends.feed import (
    FeedEvent,
    FeedMode,
    JobChanged,
    JobFeed,
    ModeChanged,
    PollSettings,
    RealtimeConfig,
    Subscription,
)
from jobctl.backends.feedthread import Batcher, FeedBatch, FeedThread
from jobctl.backends.jobapi import AsyncJobClient
from jobctl.models import JobStatus
from tests.conftest import ServerProcess
from tests.tui.fakes import T0, make_job


def client_for(server: ServerProcess) -> AsyncJobClient:
    return AsyncJobClient(server.url, server.token, timeout=5, retries=1, backoff=0.05)


def realtime_for(server: ServerProcess) -> RealtimeConfig:
    return RealtimeConfig(url=f"{server.url}/realtime/v1", apikey=server.token)


def submit(server: ServerProcess, count: int, **input_: Any) -> list[str]:
    with server.client() as c:
        return [
            str(c.post("/api/jobs", json={"type": "demo", "input": input_}).json()["id"])
            for _ in range(count)
        ]


async def collect(
    feed: FeedThread, done: Callable[[list[FeedBatch]], bool], timeout: float = 30
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


class ThreadNotingFeed(JobFeed):
    """The real feed, noting which thread the Realtime client calls it on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.callback_threads: set[str] = set()

    def _on_postgres_change(self, payload: Any) -> None:
        self.callback_threads.add(threading.current_thread().name)
        super()._on_postgres_change(payload)


async def test_realtime_changes_are_parsed_on_the_feeds_thread_and_arrive_batched(
    server: ServerProcess,
) -> None:
    client = client_for(server)
    live = ThreadNotingFeed(
        client,
        Subscription(),
        realtime=realtime_for(server),
        poll=PollSettings(interval=5, realtime_check=60),  # slow polls: Realtime carries it
    )
    async with FeedThread(live, on_close=client.aclose) as feed:
        assert feed.mode == FeedMode.CONNECTING
        first = await collect(feed, lambda got: FeedMode.REALTIME in modes(got))
        assert feed.mode == modes(first)[-1] == FeedMode.REALTIME  # as of the batches taken
        ids = await asyncio.to_thread(submit, server, 30, steps=2, step_seconds=0.05)
        got = await collect(feed, lambda got: set(ended(got)) >= set(ids))
    assert all(ended(got)[i] == JobStatus.COMPLETED for i in ids)
    assert live.realtime_events > 0
    assert live.callback_threads == {"jobctl-feed"}, "the Realtime client ran off the caller's loop"
    for job_id in ids:  # within and across batches, each job's progress only goes up
        progress = [b.latest[job_id].progress for b in got if job_id in b.latest]
        assert progress == sorted(progress) and progress[-1] == 100


async def test_the_realtime_mode_comes_before_the_sessions_snapshot_and_stream(
    server: ServerProcess,
) -> None:
    # Jobs that change every 0.1 s: the session's snapshot differs from the first poll's.
    ids = submit(server, 3, steps=40, step_seconds=0.1)
    client = client_for(server)
    feed = JobFeed(
        client,
        Subscription(frozenset(ids)),
        realtime=realtime_for(server),
        poll=PollSettings(interval=5, realtime_check=60),
    )
    events: list[FeedEvent] = []
    try:
        async with feed:
            while not any(
                isinstance(e, JobChanged) and e.source in ("snapshot", "realtime") for e in events
            ):
                event = await asyncio.wait_for(feed.next_event(), 30)
                assert event is not None
                events.append(event)
    finally:
        await client.aclose()
    realtime_at = next(
        n
        for n, e in enumerate(events)
        if isinstance(e, ModeChanged) and e.mode == FeedMode.REALTIME
    )
    before = [e.source for e in events[:realtime_at] if isinstance(e, JobChanged)]
    assert set(before) <= {"poll"}, f"the session's jobs came before its mode: {before}"


async def test_jobs_added_from_the_callers_loop_are_followed(server: ServerProcess) -> None:
    [first] = submit(server, 1, steps=1, step_seconds=0)
    client = client_for(server)
    live = JobFeed(client, Subscription(frozenset([first])), poll=PollSettings(interval=0.1))
    async with FeedThread(live, on_close=client.aclose) as feed:
        await collect(feed, lambda got: first in ended(got))
        [second] = await asyncio.to_thread(submit, server, 1, steps=2, step_seconds=0.2)
        feed.add_jobs([second])
        got = await collect(feed, lambda got: second in ended(got))
    assert ended(got)[second] == JobStatus.COMPLETED


async def test_closing_stops_the_feeds_thread_and_closes_its_client_there(
    server: ServerProcess,
) -> None:
    [job] = submit(server, 1, steps=1, step_seconds=0)
    client = client_for(server)
    closed_on: list[str] = []

    async def close_client() -> None:
        closed_on.append(threading.current_thread().name)
        await client.aclose()

    live = JobFeed(client, Subscription(frozenset([job])), poll=PollSettings(interval=0.1))
    async with FeedThread(live, on_close=close_client) as feed:
        assert "jobctl-feed" in [t.name for t in threading.enumerate()]
        await collect(feed, lambda got: job in ended(got))
    assert closed_on == ["jobctl-feed"]
    assert "jobctl-feed" not in [t.name for t in threading.enumerate()]


def test_batches_keep_every_mode_change_where_it_happened() -> None:
    running = make_job(1, JobStatus.RUNNING, updated_at=T0)
    done = replace(running, status=JobStatus.COMPLETED, updated_at=T0 + timedelta(seconds=1))
    retried = replace(
        done, status=JobStatus.PENDING, attempt=2, updated_at=T0 + timedelta(seconds=2)
    )
    other = make_job(2, JobStatus.RUNNING)
    batcher = Batcher()
    for event in (
        ModeChanged(FeedMode.REALTIME, FeedMode.CONNECTING),
        JobChanged(running, "snapshot"),
        JobChanged(done, "realtime"),
        JobChanged(other, "realtime"),
        ModeChanged(FeedMode.POLLING, FeedMode.REALTIME),
        ModeChanged(FeedMode.OFFLINE, FeedMode.POLLING),
        JobChanged(retried, "poll"),
        JobChanged(running, "poll"),  # a late poll, older than what the batch has: dropped
    ):
        batcher.add(event)
    one, two = batcher.take()
    assert [m.mode for m in one.modes] == [FeedMode.REALTIME]
    assert one.jobs == [done, other] and one.endings == [done]
    assert [m.mode for m in two.modes] == [FeedMode.POLLING, FeedMode.OFFLINE]
    assert two.jobs == [retried] and two.endings == []
    assert batcher.take() == [] and not batcher
