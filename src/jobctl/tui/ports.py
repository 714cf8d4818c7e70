"""What the dashboard needs from the job API and from the live feed: the one declaration.

`jobctl.backends.jobapi.AsyncJobClient` and `jobctl.backends.feedproc.FeedProcess` (a
`JobFeed` in a process of its own; `feedthread.FeedThread` runs one on a thread) are the
real ones (mypy checks them against these
protocols below); the tests pass the in-process fakes of tests/tui/fakes.py, which
subclass the protocols so that mypy checks them too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from jobctl.backends.feed import FeedMode
from jobctl.backends.feedthread import FeedBatch
from jobctl.backends.jobapi import ListParams, LogPage
from jobctl.models import Job, JobPage, Step


class JobApi(Protocol):
    async def list_jobs(self, **query: Unpack[ListParams]) -> JobPage: ...

    async def get_job(self, job_id: str) -> Job: ...

    async def get_steps(self, job_id: str) -> list[Step]: ...

    async def get_logs(self, job_id: str, after: int = 0, limit: int = 1000) -> LogPage: ...

    async def create_job(
        self,
        type: str,
        input: dict[str, Any],
        idempotency_key: str,
        concurrency_key: str | None = None,
    ) -> Job: ...

    async def cancel_job(self, job_id: str) -> Job: ...

    async def retry_job(self, job_id: str, from_start: bool = False) -> Job: ...

    async def stats(self) -> dict[str, Any]: ...

    async def types(self) -> list[dict[str, Any]]: ...

    # schedules and the event history, in the API's shape (the views of tui/screens/)
    async def list_schedules(self) -> list[dict[str, Any]]: ...

    async def schedule_action(
        self, ref: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...

    async def list_events(
        self,
        name: str | None = None,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    async def replay_event(self, event_id: str) -> dict[str, Any]: ...


class LiveFeed(Protocol):
    """Live snapshots in batches: each time something arrived, everything gathered since
    the last take (the newest snapshot per job, every ending, changes of mode in order)."""

    @property
    def mode(self) -> FeedMode: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def batches(self) -> AsyncIterator[list[FeedBatch]]: ...

    def add_jobs(self, job_ids: Sequence[str]) -> None: ...

    def refresh(self) -> None: ...


if TYPE_CHECKING:
    from jobctl.backends.appbackend import AsyncAppApi
    from jobctl.backends.feedproc import FeedProcess
    from jobctl.backends.feedthread import FeedThread
    from jobctl.backends.jobapi import AsyncJobClient

    def _the_real_ones_fit(client: AsyncJobClient, feed: FeedProcess) -> tuple[JobApi, LiveFeed]:
        return client, feed  # a mypy error here: the real client or feed left the protocol

    def _the_thread_fits(feed: FeedThread) -> LiveFeed:
        return feed  # the feed on a thread of the app's process (tests, the benchmark)

    def _the_app_fits(client: AsyncAppApi) -> JobApi:
        return client  # an app profile's backend serves the dashboard through the same port
