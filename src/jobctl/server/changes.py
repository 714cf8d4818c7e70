"""The change bus: committed changes, fanned out in commit order to subscribers.

Stores publish after commit. Subscribers (the Realtime hub, the engine's cancel
watcher) get an asyncio queue each. A subscriber that falls far behind is
dropped with an overflow marker rather than letting memory grow without bound.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from jobctl.server.records import Change

OVERFLOW = None  # put on a queue when its subscriber fell too far behind


class ChangeBus:
    def __init__(self, max_queue: int = 10_000) -> None:
        self._subscribers: list[asyncio.Queue[Change | None]] = []
        self._listeners: list[Callable[[Change], None]] = []
        self._max_queue = max_queue
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    @property
    def active(self) -> bool:
        return bool(self._subscribers or self._listeners)

    def subscribe(self) -> asyncio.Queue[Change | None]:
        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change | None]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """A synchronous listener, called in the publishing task (keep it cheap)."""
        self._listeners.append(listener)

    def publish(self, change: Change) -> None:
        for listener in self._listeners:
            listener(change)
        for queue in list(self._subscribers):
            if queue.qsize() >= self._max_queue:
                self._subscribers.remove(queue)
                queue.put_nowait(OVERFLOW)
            else:
                queue.put_nowait(change)
