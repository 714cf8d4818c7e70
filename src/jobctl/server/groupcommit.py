"""Group commit of submits: what arrives while a commit is under way goes in the next one.

Every accepted job must be committed before its 201 (docs/design.md, durability); a
commit's cost is mostly per transaction (PostgreSQL: a round trip, a WAL flush, and a
NOTIFY that holds a cluster-wide lock until that flush: such commits run one at a
time). So submits are written by a leader: a request that finds no commit under way
commits its own jobs at once (no waiting, no extra task: a lone client pays nothing);
requests that arrive meanwhile queue, and when the commit ends the next leader
commits everything queued in one transaction (`Store.create_jobs`, one history
callback per request), and each request is answered after the commit that holds its
jobs. A store whose writes hold the event loop (SQLite: a commit there is a few
hundred microseconds of CPU and no wait) could never have company queued behind a
commit, so there the leader first lets one pass of the loop go: the requests read in
the same pass (several clients at once) reach the queue and share its transaction,
and a lone request, finding no company, commits alone as before (and after a few
passes that found none, most requests skip the pass: see _worth_a_pass).

A group's failure must stay its own: a storage fault fails every request of the
group (each answers 503, nothing of theirs committed, as alone); any other error in
a group of several is retried request by request, so it reaches only the request
that caused it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from jobctl.server.records import JobRow, NewJob, now_us
from jobctl.server.schedule_records import EventRow
from jobctl.server.store.base import HistoryFn, StorageUnavailable, Store

Outcomes = list[tuple[JobRow, bool]]
PASSES_ALONE, LOOK_EVERY = 4, 16


@dataclass(slots=True)
class _Request:
    news: list[NewJob]
    history: HistoryFn
    future: asyncio.Future[Outcomes] = field(default_factory=lambda: _loop().create_future())


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


class GroupCommit:
    def __init__(self, store: Store, ttl_us: Callable[[], int]) -> None:
        self.store = store
        self._ttl_us = ttl_us
        self._queue: list[_Request] = []
        self._busy = False
        self.commits = 0  # transactions made (for tests and benchmarks)
        self.grouped = 0  # requests that shared their commit with another
        self._passes_alone = 0  # loop passes in a row that found no company (SQLite)
        self._skipped = 0  # requests since then that did not look

    async def create(self, news: list[NewJob], history: HistoryFn) -> Outcomes:
        """Commit these jobs (and the history rows `history` makes of their outcomes)
        in a transaction of their own or with others that arrived meanwhile."""
        if self._busy:
            request = _Request(news, history)
            self._queue.append(request)
            return await request.future
        self._busy = True
        try:
            if self.store.writes_hold_the_loop and self._worth_a_pass():
                # The commit will hold the loop, so nothing could queue behind it: one
                # pass of the loop first lets the requests that arrived with this one
                # (read in the same pass) join its transaction.
                await asyncio.sleep(0)
                if self._queue:
                    self._passes_alone = self._skipped = 0
                    mine = _Request(news, history)
                    group, self._queue = [mine, *self._queue], []
                    await self._commit_group(group)
                    return mine.future.result()
                self._passes_alone += 1
            return await self._commit_alone(news, history)
        finally:
            self._next()

    def _worth_a_pass(self) -> bool:
        """Whether to wait a pass of the loop for company: while it comes, always; after
        PASSES_ALONE passes in a row that found none (one client, one request at a time:
        a pass there cost it 10% of its rate), one request in LOOK_EVERY looks."""
        if self._passes_alone < PASSES_ALONE:
            return True
        self._skipped += 1
        return self._skipped % LOOK_EVERY == 0

    def _next(self) -> None:
        """After a commit: the queued requests go in the next one (a task of its own, so
        that the request that led is answered now), or the writer is free."""
        if self._queue:
            asyncio.create_task(self._drain())  # noqa: RUF006 - it ends when the queue does
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            group, self._queue = self._queue, []
            await self._commit_group(group)
        finally:
            self._next()

    async def _commit_alone(self, news: list[NewJob], history: HistoryFn) -> Outcomes:
        self.commits += 1
        return await self.store.create_jobs(news, now_us(), self._ttl_us(), history)

    async def _commit_group(self, group: list[_Request]) -> None:
        group = [r for r in group if not r.future.cancelled()]
        if not group:
            return
        if len(group) == 1:
            await self._settle(group[0])
            return
        news = [new for r in group for new in r.news]

        def history(outcomes: Outcomes) -> list[EventRow]:
            events: list[EventRow] = []
            at = 0
            for r in group:
                events.extend(r.history(outcomes[at : at + len(r.news)]))
                at += len(r.news)
            return events

        try:
            self.commits += 1
            outcomes = await self.store.create_jobs(news, now_us(), self._ttl_us(), history)
        except StorageUnavailable as exc:
            for r in group:
                _fail(r, exc)
            return
        except Exception:
            for r in group:  # whose fault it was: each alone
                await self._settle(r)
            return
        self.grouped += len(group)
        at = 0
        for r in group:
            if not r.future.done():
                r.future.set_result(outcomes[at : at + len(r.news)])
            at += len(r.news)

    async def _settle(self, r: _Request) -> None:
        try:
            outcomes = await self._commit_alone(r.news, r.history)
        except Exception as exc:
            _fail(r, exc)
        else:
            if not r.future.done():
                r.future.set_result(outcomes)


def _fail(r: _Request, exc: BaseException) -> None:
    if not r.future.done():
        r.future.set_exception(exc)
