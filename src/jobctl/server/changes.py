"""The change bus: committed changes, fanned out in commit order to subscribers.

Stores publish after commit. Listeners (the engine, the Realtime hub) are called in
the publishing task; queue subscribers get an asyncio queue each, and one that falls
far behind is dropped with an overflow marker rather than letting memory grow
without bound.

A bus may be selective: a store shared by several servers (PostgreSQL) publishes only
the changes an engine acts on (see Store.changes) unless someone wants every change
(`want_everything`), so that a server without Realtime subscribers does not read
every other server's finishes, progress and log lines.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from jobctl.server.records import Change

OVERFLOW = None  # put on a queue when its subscriber fell too far behind


class ChangeBus:
    def __init__(self, max_queue: int = 10_000) -> None:
        self._subscribers: dict[asyncio.Queue[Change | None], Callable[[], None]] = {}
        self._listeners: list[Callable[[Change], None]] = []
        self._max_queue = max_queue
        self._seq = itertools.count(1)
        self._wanting_all = 0
        self._on_want: Callable[[], None] | None = None
        # Set while every committed change is published (always, on a bus not selective).
        self.everything = asyncio.Event()
        self.everything.set()

    def next_seq(self) -> int:
        return next(self._seq)

    @property
    def active(self) -> bool:
        return bool(self._subscribers or self._listeners)

    def make_selective(self, on_want: Callable[[], None]) -> None:
        """For the store: it publishes only work changes unless `wants_everything`; it is
        told through `on_want` when that changes, and sets `everything` from the moment
        every later commit will be published (clears it when it stops)."""
        self._on_want = on_want
        self.everything.clear()

    @property
    def wants_everything(self) -> bool:
        return self._wanting_all > 0

    def want_everything(self) -> Callable[[], None]:
        """Ask for every change until the returned function is called. On a selective bus
        this takes effect a little later: changes are published in full from the moment
        `everything` is set (await `everything.wait()`; read current state after it)."""
        self._wanting_all += 1
        if self._wanting_all == 1 and self._on_want is not None:
            self._on_want()
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._wanting_all -= 1
            if self._wanting_all == 0 and self._on_want is not None:
                self._on_want()

        return release

    def subscribe(self) -> asyncio.Queue[Change | None]:
        """A queue of every change (it wants everything: see `everything`)."""
        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._subscribers[queue] = self.want_everything()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change | None]) -> None:
        release = self._subscribers.pop(queue, None)
        if release is not None:
            release()

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """A synchronous listener, called in the publishing task (keep it cheap)."""
        self._listeners.append(listener)

    def publish(self, change: Change) -> None:
        for listener in self._listeners:
            listener(change)
        for queue in list(self._subscribers):
            if queue.qsize() >= self._max_queue:
                self.unsubscribe(queue)
                queue.put_nowait(OVERFLOW)
            else:
                queue.put_nowait(change)
