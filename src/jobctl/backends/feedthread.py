"""The live feed on a thread of its own, handing batches to a UI's event loop (no UI code).

realtime-py validates every frame it receives with pydantic, about 0.65 ms each on
a loaded machine: 2,000 jobs ending together are over a second of work. On the
dashboard's event loop that was a second without keys or frames. `FeedThread`
runs a `JobFeed` (its Realtime client, its polls and its source's HTTP client) on a
thread with an event loop of its own, and gathers what the feed delivers into
batches there: the newest snapshot of each job, every terminal snapshot, the
changes of mode in order. The consumer's loop is woken once, whatever arrived
meanwhile, and takes everything gathered in one go: it only applies batches.

    async with FeedThread(JobFeed(source, Subscription(), realtime=...), on_close=...) as feed:
        async for batches in feed.batches():
            ...  # apply them; what arrives meanwhile gathers for the next take

The feed and its source belong to the thread: give the feed a source (an HTTP
client) that nothing else uses, since an httpx client's connections belong to
the event loop that opened them.

The two threads share the GIL. While the feed's thread parses a burst it always
wants the GIL, and each time the UI's loop lets go of it (every select() of its
event loop, many a frame) the UI waited for the switch interval, 5 ms by default,
to get it back: frames of 100-170 ms. Starting a FeedThread lowers the process's
switch interval to SWITCH_INTERVAL, so the UI waits a fraction of a millisecond,
and the feed paces itself (`feed.pace`, called after each Realtime record): after
WORK_SLICE of steady work its thread sleeps for REST, leaving the GIL to the UI.
A storm is then worked off a little slower; keys and frames do not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobctl.backends.feed import FeedEvent, FeedMode, JobChanged, ModeChanged
from jobctl.models import Job

log = logging.getLogger("jobctl.backends.feedthread")

STOP_TIMEOUT = 5.0  # seconds __aexit__ waits for the thread to close the feed
SWITCH_INTERVAL = 0.0005  # seconds a thread waiting for the GIL waits before asking for it
WORK_SLICE = 0.004  # seconds of steady work on the feed's thread...
REST = 0.002  # ...then it sleeps this long (the GIL is the UI's meanwhile)


def is_older(new: Job, old: Job) -> bool:
    """A snapshot older than one already seen (a late poll racing the stream)."""
    if new.updated_at is None or old.updated_at is None:
        return False
    return new.updated_at < old.updated_at


@dataclass
class FeedBatch:
    """What the feed delivered between two takes. Its `modes` came before its jobs.

    Many snapshots of one job collapse to the newest, but every terminal snapshot
    is kept, in order, even one followed at once by a retry: an ending is never lost."""

    modes: list[ModeChanged] = field(default_factory=list)
    latest: dict[str, Job] = field(default_factory=dict)
    endings: list[Job] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)  # when its first event came

    def add(self, job: Job) -> None:
        old = self.latest.get(job.id)
        if old is not None and is_older(job, old):
            return
        self.latest[job.id] = job
        if job.status.is_terminal:
            self.endings.append(job)

    @property
    def jobs(self) -> list[Job]:
        """The newest snapshot of each job."""
        return list(self.latest.values())


class Batcher:
    """Feed events gathered into batches. A change of mode after jobs starts a new batch,
    so the batches taken, read in order, keep every mode change where it happened."""

    def __init__(self) -> None:
        self._batches: list[FeedBatch] = []

    def __bool__(self) -> bool:
        return bool(self._batches)

    def add(self, event: FeedEvent) -> None:
        last = self._batches[-1] if self._batches else None
        if isinstance(event, ModeChanged):
            if last is None or last.latest:
                last = FeedBatch()
                self._batches.append(last)
            last.modes.append(event)
        elif isinstance(event, JobChanged):
            if last is None:
                last = FeedBatch()
                self._batches.append(last)
            last.add(event.job)

    def take(self) -> list[FeedBatch]:
        batches, self._batches = self._batches, []
        return batches


class RunnableFeed(Protocol):
    """What FeedThread runs: a `JobFeed`, or a benchmark's stand-in for one."""

    @property
    def mode(self) -> FeedMode: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def next_event(self, timeout: float | None = None) -> FeedEvent | None: ...

    pace: Callable[[], None]  # the feed calls it after each record it parses

    def add_jobs(self, job_ids: Sequence[str]) -> None: ...

    def refresh(self) -> None: ...


class FeedThread:
    def __init__(
        self,
        feed: RunnableFeed,
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
        name: str = "jobctl-feed",
    ) -> None:
        """`feed`: not started; it runs on the thread. `on_close`: awaited on the thread
        after the feed has closed (to close the feed's own HTTP client)."""
        self.feed = feed
        self._on_close = on_close
        self._name = name
        self._mode = feed.mode  # as of the batches taken: what the consumer was told
        self._lock = threading.Lock()
        self._batcher = Batcher()
        self._woken = False  # a wake-up is on its way to the consumer, not yet taken
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the thread's
        self._stop: asyncio.Event | None = None  # set on the thread's loop
        self._consumer: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._started: asyncio.Future[None] | None = None
        self._finished: asyncio.Future[None] | None = None
        self.handed_over = 0  # events gathered (read by tests and the benchmark)
        self._slice_start = self._last_pace = 0.0
        feed.pace = self._pace

    # the consumer's side ---------------------------------------------------------------
    @property
    def mode(self) -> FeedMode:
        """The mode as of the last batch taken (the feed's own may be a step ahead)."""
        return self._mode

    async def __aenter__(self) -> FeedThread:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._consumer = asyncio.get_running_loop()
        self._started = self._consumer.create_future()
        self._finished = self._consumer.create_future()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        await self._started

    async def close(self) -> None:
        """Stop the feed on its thread and wait (up to STOP_TIMEOUT) for it to close."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the thread's loop has already closed
                loop.call_soon_threadsafe(stop.set)
        if self._finished is not None:
            with contextlib.suppress(TimeoutError):  # a daemon thread: it ends with us anyway
                await asyncio.wait_for(asyncio.shield(self._finished), STOP_TIMEOUT)
            if self._finished.done() and self._thread is not None:
                self._thread.join(1.0)  # it has said its last word: only its return is left

    def take(self) -> list[FeedBatch]:
        """Everything gathered since the last take, oldest first."""
        with self._lock:
            self._woken = False
            batches = self._batcher.take()
        for batch in batches:
            if batch.modes:
                self._mode = batch.modes[-1].mode
        return batches

    async def batches(self) -> AsyncIterator[list[FeedBatch]]:
        """Each time something has arrived: all of it, as `take()` returns it."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            if taken := self.take():
                yield taken

    def add_jobs(self, job_ids: Sequence[str]) -> None:
        self._on_thread(self.feed.add_jobs, list(job_ids))

    def refresh(self) -> None:
        self._on_thread(self.feed.refresh)

    def _on_thread(self, call: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:  # not started: nothing runs on the feed yet
            call(*args)
            return
        with contextlib.suppress(RuntimeError):  # closed: too late to matter
            loop.call_soon_threadsafe(call, *args)

    def _tell_consumer(self, call: Callable[..., None], *args: Any) -> None:
        consumer = self._consumer
        if consumer is not None:
            with contextlib.suppress(RuntimeError):  # the consumer's loop has closed
                consumer.call_soon_threadsafe(call, *args)

    # the feed's thread -----------------------------------------------------------------
    def _pace(self) -> None:
        """After WORK_SLICE of steady work (records coming back to back), rest."""
        now = time.perf_counter()
        if now - self._last_pace > WORK_SLICE:  # it was idle in between: a new slice
            self._slice_start = now
        elif now - self._slice_start >= WORK_SLICE:
            time.sleep(REST)
            now = self._slice_start = time.perf_counter()
        self._last_pace = now

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the consumer's start(), never lost
            log.warning("the feed's thread failed: %s", exc, exc_info=True)
            error = exc
        self._tell_consumer(self._resolve, self._started, error)
        self._tell_consumer(self._resolve, self._finished, None)

    @staticmethod
    def _resolve(future: asyncio.Future[None] | None, error: BaseException | None) -> None:
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        pump: asyncio.Task[None] | None = None
        try:
            await self.feed.start()
            self._tell_consumer(self._resolve, self._started, None)
            pump = asyncio.create_task(self._pump(), name="feed-handover")
            pump.add_done_callback(self._pump_ended)
            await self._stop.wait()
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            with contextlib.suppress(Exception):
                await self.feed.close()
            if self._on_close is not None:
                with contextlib.suppress(Exception):
                    await self._on_close()

    @staticmethod
    def _pump_ended(pump: asyncio.Task[None]) -> None:
        if not pump.cancelled() and pump.exception() is not None:  # never silent
            log.warning("the feed's hand-over stopped: %s", pump.exception())

    async def _pump(self) -> None:
        """Gather what the feed delivers; one wake-up of the consumer per take."""
        while True:
            events: list[FeedEvent] = []
            event = await self.feed.next_event()
            while event is not None:
                events.append(event)
                event = await self.feed.next_event(0)  # what is queued already: no wait
            with self._lock:
                for event in events:
                    self._batcher.add(event)
                self.handed_over += len(events)
                wake, self._woken = not self._woken, True
            if wake:
                self._tell_consumer(self._ready.set)
