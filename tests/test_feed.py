"""The live feed against a real server: polling now; Realtime where the server offers it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from jobctl.backends.backoff import Backoff
from jobctl.backends.feed import (
    FeedMode,
    JobChanged,
    JobFeed,
    ModeChanged,
    PollSettings,
    RealtimeConfig,
    Subscription,
)
from jobctl.errors import UnreachableError
from jobctl.models import Job, JobStatus
from tests.conftest import ServerProcess


class HttpSource:
    """A minimal JobSource over the job API (the CLI's client provides the real one)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {server.token}"}, timeout=5
        )

    async def fetch_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        try:
            return [
                Job.from_dict((await self.client.get(f"{self.server.url}/api/jobs/{i}")).json())
                for i in job_ids
            ]
        except httpx.TransportError as exc:
            raise UnreachableError(f"cannot reach {self.server.url}") from exc

    async def fetch_active(self) -> list[Job]:
        try:
            r = await self.client.get(f"{self.server.url}/api/jobs", params={"limit": 100})
        except httpx.TransportError as exc:
            raise UnreachableError(f"cannot reach {self.server.url}") from exc
        return [Job.from_dict(j) for j in r.json()["jobs"]]


async def collect_until(
    feed: JobFeed, done: Any, timeout: float = 30
) -> tuple[list[Job], list[ModeChanged]]:
    jobs: list[Job] = []
    modes: list[ModeChanged] = []

    async def run() -> None:
        async for event in feed.events():
            if isinstance(event, JobChanged):
                jobs.append(event.job)
            else:
                modes.append(event)
            if done(jobs, modes):
                return

    await asyncio.wait_for(run(), timeout)
    return jobs, modes


def submit(server: ServerProcess, input_: dict[str, Any]) -> str:
    with server.client() as c:
        r = c.post("/api/jobs", json={"type": "demo", "input": input_})
        return str(r.json()["id"])


async def test_polling_feed_follows_jobs_to_the_end(server: ServerProcess) -> None:
    ids = [submit(server, {"steps": 3, "step_seconds": 0.2}) for _ in range(3)]
    feed = JobFeed(
        HttpSource(server), Subscription(frozenset(ids)), poll=PollSettings(interval=0.1)
    )
    async with feed:
        jobs, _ = await collect_until(
            feed, lambda js, _: {j.id for j in js if j.status == JobStatus.COMPLETED} == set(ids)
        )
    assert feed.mode == FeedMode.POLLING
    for job_id in ids:
        seen = [j for j in jobs if j.id == job_id]
        assert [j.progress for j in seen] == sorted(j.progress for j in seen), "in order"
        assert seen[-1].status == JobStatus.COMPLETED


async def test_polling_feed_goes_offline_and_recovers(make_server: Any) -> None:
    server: ServerProcess = make_server()
    job_id = submit(server, {"steps": 40, "step_seconds": 0.1})
    feed = JobFeed(
        HttpSource(server),
        Subscription(frozenset([job_id])),
        poll=PollSettings(interval=0.1, max_interval=0.3),
    )
    async with feed:
        await collect_until(feed, lambda js, _: any(j.status == JobStatus.RUNNING for j in js))
        server.kill()
        await collect_until(feed, lambda _, ms: any(m.mode == FeedMode.OFFLINE for m in ms))
        assert feed.mode == FeedMode.OFFLINE
        await asyncio.to_thread(server.start)  # same data, same port
        jobs, modes = await collect_until(
            feed, lambda js, _: any(j.status == JobStatus.COMPLETED for j in js), timeout=40
        )
        assert any(m.mode == FeedMode.POLLING for m in modes)
        assert jobs[-1].status == JobStatus.COMPLETED and jobs[-1].attempt == 1


@pytest.mark.parametrize("all_mine", [True, False])
async def test_feed_drops_nothing_of_a_batch(server: ServerProcess, all_mine: bool) -> None:
    ids = [submit(server, {"steps": 1, "step_seconds": 0}) for _ in range(10)]
    sub = Subscription() if all_mine else Subscription(frozenset(ids))
    feed = JobFeed(HttpSource(server), sub, poll=PollSettings(interval=0.1))
    async with feed:
        await collect_until(
            feed,
            lambda js, _: {j.id for j in js if j.status == JobStatus.COMPLETED} >= set(ids),
        )
    assert set(feed.jobs) >= set(ids)


def realtime_for(server: ServerProcess) -> RealtimeConfig:
    return RealtimeConfig(url=f"{server.url}/realtime/v1", apikey=server.token)


async def test_realtime_feed_delivers_every_transition(server: ServerProcess) -> None:
    # The jobs are submitted once the feed is live on Realtime: the snapshot it read on
    # subscribing predates them and its next poll is a minute away, so every change of
    # theirs it delivers came over the Realtime stream. (Submitting first raced: on a
    # loaded machine the jobs could end before the subscription, and all of it came from
    # the snapshot.)
    feed = JobFeed(
        HttpSource(server),
        Subscription(),
        realtime=realtime_for(server),
        poll=PollSettings(interval=5, realtime_check=60),  # slow polls: Realtime must carry it
    )
    async with feed:
        await collect_until(feed, lambda _, ms: any(m.mode == FeedMode.REALTIME for m in ms))
        ids = [submit(server, {"steps": 4, "step_seconds": 0.05}) for _ in range(5)]
        changes: list[JobChanged] = []

        async def run() -> None:
            async for event in feed.events():
                assert isinstance(event, JobChanged), f"the feed left Realtime: {event}"
                changes.append(event)
                done = {c.job.id for c in changes if c.job.status == JobStatus.COMPLETED}
                if done >= set(ids):
                    return

        await asyncio.wait_for(run(), 30)
    assert {c.source for c in changes} == {"realtime"}
    order = [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED]
    for job_id in ids:
        seen = [c.job for c in changes if c.job.id == job_id]
        statuses = [j.status for j in seen]
        assert statuses == sorted(statuses, key=order.index), statuses
        assert [j.progress for j in seen] == sorted(j.progress for j in seen)
        assert seen[-1].progress == 100 and seen[-1].status == JobStatus.COMPLETED


async def test_realtime_feed_falls_back_to_polling_and_comes_back(make_server: Any) -> None:
    server: ServerProcess = make_server()
    job_id = submit(server, {"steps": 60, "step_seconds": 0.1})
    feed = JobFeed(
        HttpSource(server),
        Subscription(frozenset([job_id])),
        realtime=realtime_for(server),
        poll=PollSettings(interval=0.2, max_interval=0.5),
        reconnect=Backoff(0.3, factor=2.0, cap=0.5),
    )
    async with feed:
        await collect_until(feed, lambda _, ms: any(m.mode == FeedMode.REALTIME for m in ms))
        with server.client() as c:  # the server drops every socket
            assert c.post("/realtime/v1/api/disconnect").status_code == 200
        _, modes = await collect_until(
            feed, lambda _, ms: [m.mode for m in ms][-2:] == [FeedMode.POLLING, FeedMode.REALTIME]
        )
        server.kill()
        await collect_until(feed, lambda _, ms: any(m.mode == FeedMode.OFFLINE for m in ms))
        await asyncio.to_thread(server.start)
        jobs, modes = await collect_until(
            feed, lambda js, _: any(j.status == JobStatus.COMPLETED for j in js), timeout=60
        )
        assert FeedMode.REALTIME in [m.mode for m in modes]
        assert jobs[-1].status == JobStatus.COMPLETED


async def test_a_cancel_beside_an_arriving_event_is_not_swallowed() -> None:
    """^C cancels the watch's task; when it lands just as an event arrives, the wait still
    ends in CancelledError (Python 3.11's wait_for returned the event instead)."""
    feed = JobFeed(object(), Subscription())  # type: ignore[arg-type]  # never started
    waiter = asyncio.ensure_future(feed.next_any(5.0))
    await asyncio.sleep(0)  # waiting in the queue now
    feed._queue.put_nowait(ModeChanged(FeedMode.POLLING, FeedMode.REALTIME, ""))
    waiter.cancel()  # before the waiting task resumes with the event
    with pytest.raises(asyncio.CancelledError):
        await waiter
