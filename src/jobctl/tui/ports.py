"""What the dashboard needs from the job API and from the live feed: the one declaration.

`jobctl.backends.jobapi.AsyncJobClient` and `jobctl.backends.feed.JobFeed` are the real
ones (mypy checks them against these protocols below); the tests and bench/tui.py pass
the in-process fakes of tests/tui/fakes.py, which subclass the protocols so that mypy
checks them too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from jobctl.backends.feed import FeedEvent, FeedMode
from jobctl.backends.jobapi import LogPage
from jobctl.models import Job, JobPage, Step


class JobApi(Protocol):
    async def list_jobs(
        self,
        statuses: list[str] | None = None,
        type: str | None = None,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        id_prefix: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> JobPage: ...

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


class LiveFeed(Protocol):
    @property
    def mode(self) -> FeedMode: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def events(self) -> AsyncIterator[FeedEvent]: ...

    def add_jobs(self, job_ids: Sequence[str]) -> None: ...

    def refresh(self) -> None: ...


if TYPE_CHECKING:
    from jobctl.backends.feed import JobFeed
    from jobctl.backends.jobapi import AsyncJobClient

    def _the_real_ones_fit(client: AsyncJobClient, feed: JobFeed) -> tuple[JobApi, LiveFeed]:
        return client, feed  # a mypy error here: the real client or feed left the protocol
