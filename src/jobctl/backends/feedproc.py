"""The live feed in a process of its own, handing batches to a UI's event loop (no UI code).

`FeedThread` moved realtime-py off the dashboard's event loop, but not off its GIL: the
feed's thread parsing a storm (realtime-py validates every frame with pydantic, about
0.65 ms each on a loaded machine, ~5 s of CPU for a burst of 2,000 jobs' three changes)
took the GIL from the app at every switch interval. `FeedProcess` runs the whole
`JobFeed` (its Realtime client, its polls, its source's HTTP client) in a child process,
`python -m jobctl.backends.feedproc`, gathers what it delivers into `FeedBatch`es there
(the newest snapshot per job, every terminal snapshot, the mode changes in order) and
sends them over a pipe: the app's GIL only sees batches arrive (unpickling a job is
about 5 µs).

    async with FeedProcess(server_feed, options, realtime) as feed:
        async for batches in feed.batches():
            ...  # apply them; what arrives meanwhile gathers for the next take

The child is built from a recipe: a module-level function and its arguments (pickled,
so plain data), called in the child to make the feed there. `server_feed` builds the
job server's (an `AsyncJobClient` of its own); `app_feed` an app profile's (an
`AppBackend` of its own on the app's table, with the mapping). An app profile's token
stays the parent's: the parent's `TokenSession` is refreshed there (`keep_fresh`, by the
dashboard's client), and `FeedProcess(token=...)` sends each new one to the child, which
reads with it and hands it to its Realtime channel; the child never refreshes (two
processes spending one refresh token would race).

The wire, both ways: frames of a 4-byte big-endian length and a pickle. Child to
parent: ("started", mode), ("batch", FeedBatch, counters), ("counters", counters) after
a token was taken, ("log", level, name, text),
("error", text) when it could not start, ("closed",). Parent to child: first the recipe
(function, args), then ("add_jobs", ids), ("refresh",), ("token", text), ("stop",). The
child stops on "stop" or when its stdin closes (the parent died), ignores SIGINT (the
terminal's), and writes nothing to the terminal (stderr to /dev/null; its warnings are
sent as "log" frames and logged by the parent). Both ends are jobctl's own, so pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobctl.backends.backoff import Backoff
from jobctl.backends.feed import (
    RECONNECT,
    FeedMode,
    JobFeed,
    PollSettings,
    RealtimeConfig,
    Subscription,
)
from jobctl.backends.feedthread import Batcher, FeedBatch, is_older

if TYPE_CHECKING:
    from jobctl.backends.appprofile import AppProfile

log = logging.getLogger("jobctl.backends.feedproc")

STOP_TIMEOUT = 5.0  # seconds close() waits for the child to close its feed, then kills it
START_TIMEOUT = 60.0  # seconds start() waits for the child (imports under load included)
SEND_GAP = 0.01  # seconds between two batches sent: what comes meanwhile joins the next
MAX_JOBS_PER_FRAME = 500  # a batch is sent in frames of at most this many jobs
TOKEN_CHECK = 1.0  # seconds between two looks at the parent's token
HEADER = struct.Struct(">I")


@dataclass
class ChildFeed:
    """What a recipe builds in the child: the feed, what closes its source afterwards, and
    (app profiles) where a token sent by the parent goes."""

    feed: JobFeed
    on_close: Callable[[], Awaitable[None]] | None = None
    set_token: Callable[[str], None] | None = None


def server_feed(
    options: dict[str, Any],
    realtime: RealtimeConfig | None,
    poll: PollSettings | None = None,
    job_ids: Sequence[str] = (),
    reconnect: Backoff = RECONNECT,
) -> ChildFeed:
    """The job server's feed (a recipe, called in the child): these jobs, or every job of
    mine, through an `AsyncJobClient` made from `options` (base_url, token, timeout...)."""
    from jobctl.backends.jobapi import AsyncJobClient

    client = AsyncJobClient(**options)
    subscription = Subscription(frozenset(job_ids))
    feed = JobFeed(client, subscription, realtime=realtime, poll=poll, reconnect=reconnect)
    return ChildFeed(feed, client.aclose)


def app_feed(
    profile: AppProfile,
    access_token: str,
    anon_key: str,
    timeout: float,
    realtime: RealtimeConfig,
    poll: PollSettings | None = None,
) -> ChildFeed:
    """An app profile's feed (a recipe, called in the child): its table over PostgREST and
    its Realtime, the rows mapped by the profile, with the token the parent sends."""
    from jobctl.backends.appbackend import AppBackend, AsyncAppApi
    from jobctl.backends.apptokens import Tokens, TokenSession

    # No refresh token here: the parent refreshes and sends the new access token.
    session = TokenSession(
        Tokens(access_token, None), supabase_url=profile.supabase_url or "", anon_key=anon_key
    )
    source = AsyncAppApi(AppBackend(profile, session, anon_key, timeout=timeout))
    realtime = dataclasses.replace(realtime, decode=profile.map_row, token=lambda: session.current)

    def set_token(token: str) -> None:
        session.tokens = Tokens(token, None)

    async def close() -> None:
        await source.aclose()

    feed = JobFeed(source, Subscription(), realtime=realtime, poll=poll)
    return ChildFeed(feed, close, set_token)


def app_realtime(realtime: RealtimeConfig) -> RealtimeConfig:
    """An app profile's RealtimeConfig as the child's recipe takes it: its decode (the
    profile's mapping) and token (the parent's session) are rebuilt there."""
    return dataclasses.replace(realtime, decode=None, token=None)


def _frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        return pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


class FeedProcess:
    """A `JobFeed` in a child process, its batches on the caller's loop: the consumer's
    side of FeedThread (`mode`, `batches()`, `take()`, `add_jobs`, `refresh`), plus the
    child's counters as of the last batch (`realtime_events`, `poll_requests`,
    `token_updates`) and its `pid`."""

    def __init__(
        self,
        recipe: Callable[..., ChildFeed],
        *args: Any,
        token: Callable[[], str | None] | None = None,
        mode: FeedMode = FeedMode.CONNECTING,
        stderr: int | None = None,
    ) -> None:
        """`recipe(*args)` is called in the child (both pickled: a module-level function
        and plain data). `token`: the parent's current token, sent to the child whenever
        it changes. `mode`: the mode until the child has started and said its feed's. `stderr`: where the child's stderr goes (default
        /dev/null: the dashboard draws on the terminal)."""
        self._recipe = (recipe, args)
        self._token = token
        self._mode = mode
        self._stderr = subprocess_devnull() if stderr is None else stderr
        self._pending: list[FeedBatch] = []
        self._ready = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self._stopping = False
        self._sent_token: str | None = None
        self.handed_over = 0  # jobs received (read by tests and the benchmark)
        self.realtime_events = 0
        self.poll_requests = 0
        self.token_updates = 0  # refreshed tokens the child's feed sent to its channel
        self.tokens_taken = 0  # tokens of ours the child's source has taken
        # For the benchmark: called with each batch received and when its first event left
        # the child's feed (time.perf_counter() there, the same clock as here).
        self.received: Callable[[FeedBatch, float], None] | None = None

    # the consumer's side ---------------------------------------------------------------
    @property
    def mode(self) -> FeedMode:
        """The mode as of the last batch taken (the child's own may be a step ahead)."""
        return self._mode

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def __aenter__(self) -> FeedProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        import jobctl

        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        env = dict(os.environ)
        here = str(Path(jobctl.__file__).resolve().parent.parent)  # the child imports this
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jobctl.backends.feedproc",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr, env=env,
        )  # fmt: skip
        token = self._token() if self._token is not None else None
        self._sent_token = token
        self._send(self._recipe)
        if token:
            self._send(("token", token))
        self._tasks.append(loop.create_task(self._read(), name="feed-process-reader"))
        if self._token is not None:
            self._tasks.append(loop.create_task(self._watch_token(), name="feed-process-token"))
        try:
            await asyncio.wait_for(asyncio.shield(self._started), START_TIMEOUT)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Ask the child to close its feed; wait for it (STOP_TIMEOUT), else kill it."""
        proc = self._proc
        if proc is None:
            return
        self._stopping = True
        self._send(("stop",))
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def take(self) -> list[FeedBatch]:
        """Everything received since the last take, oldest first."""
        batches, self._pending = self._pending, []
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
        self._send(("add_jobs", list(job_ids)))

    def refresh(self) -> None:
        self._send(("refresh",))

    # the parent's work -------------------------------------------------------------------
    def _send(self, message: Any) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        with contextlib.suppress(Exception):  # the child has gone: its reader reports it
            proc.stdin.write(_frame(message))

    async def _watch_token(self) -> None:
        assert self._token is not None
        while True:
            await asyncio.sleep(TOKEN_CHECK)
            with contextlib.suppress(Exception):
                token = self._token()
                if token and token != self._sent_token:
                    self._sent_token = token
                    self._send(("token", token))

    def _counted(self, counters: dict[str, Any]) -> None:
        self.realtime_events = counters["realtime_events"]
        self.poll_requests = counters["poll_requests"]
        self.token_updates = counters["token_updates"]
        self.tokens_taken = counters["tokens_taken"]

    def _merge(self, batch: FeedBatch) -> None:
        """Join a received batch to the last one not taken yet, unless it changes the mode
        (which must stay where it happened): as Batcher gathers events."""
        last = self._pending[-1] if self._pending else None
        if last is None or batch.modes:
            self._pending.append(batch)
            return
        for job in batch.latest.values():
            old = last.latest.get(job.id)
            if old is None or not is_older(job, old):
                last.latest[job.id] = job
        last.endings.extend(batch.endings)

    async def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and self._started is not None
        error = "the feed's process ended"
        try:
            while (message := await _read_frame(proc.stdout)) is not None:
                kind = message[0]
                if kind == "batch":
                    batch = message[1]
                    self._counted(message[2])
                    if self.received is not None:
                        self.received(batch, message[2]["first_at"])
                    self._merge(batch)
                    self.handed_over += len(batch.latest)
                    self._ready.set()
                elif kind == "counters":
                    self._counted(message[1])
                elif kind == "started":
                    self._mode = message[1]  # the child's feed's first mode
                    if not self._started.done():
                        self._started.set_result(None)
                elif kind == "log":
                    logging.getLogger(message[2]).log(message[1], "%s", message[3])
                elif kind == "error":
                    error = message[1]
                elif kind == "closed":
                    break
        except Exception as exc:  # an unreadable frame: say so, never silently stop
            error = f"the feed's process sent an unreadable frame ({exc})"
        if not self._started.done():
            self._started.set_exception(RuntimeError(error))
        elif not self._stopping:
            log.warning("%s; live updates have stopped", error)
            self._pending.append(FeedBatch(modes=[_offline(self._mode, "the live feed stopped")]))
            self._ready.set()


def _offline(previous: FeedMode, detail: str) -> Any:
    from jobctl.backends.feed import ModeChanged

    return ModeChanged(FeedMode.OFFLINE, previous, detail)


def subprocess_devnull() -> int:
    return asyncio.subprocess.DEVNULL


# the child -------------------------------------------------------------------------------
class _LogForward(logging.Handler):
    """The child's warnings, sent to the parent (its stderr goes nowhere)."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__(logging.WARNING)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self._send(("log", record.levelno, record.name, self.format(record)))


async def _child_main(stdin: Any, stdout: Any) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    def send(message: Any) -> None:
        if not writer.is_closing():
            writer.write(_frame(message))

    logging.getLogger().addHandler(_LogForward(send))
    logging.getLogger().setLevel(logging.WARNING)
    recipe = await _read_frame(reader)
    if recipe is None:
        return 0
    try:
        build, args = recipe
        child: ChildFeed = build(*args)
        feed = child.feed
        await feed.start()
    except Exception as exc:
        send(("error", f"the live feed could not start: {exc}"))
        await writer.drain()
        return 1
    send(("started", feed.mode))
    stop = asyncio.Event()
    tokens_taken = 0

    first_at = 0.0  # when the first event of the batch being gathered left the feed

    def counters() -> dict[str, Any]:
        return {
            "realtime_events": feed.realtime_events,
            "poll_requests": feed.poll_requests,
            "token_updates": feed.token_updates,
            "tokens_taken": tokens_taken,
            "first_at": first_at,  # time.perf_counter(): CLOCK_MONOTONIC, the parent's too
        }

    async def control() -> None:
        nonlocal tokens_taken
        while (message := await _read_frame(reader)) is not None:
            kind = message[0]
            if kind == "add_jobs":
                feed.add_jobs(message[1])
            elif kind == "refresh":
                feed.refresh()
            elif kind == "token":
                if child.set_token is not None:
                    child.set_token(message[1])
                    tokens_taken += 1
                send(("counters", counters()))
            elif kind == "stop":
                break
        stop.set()  # "stop", or the parent's end of the pipe closed

    async def pump() -> None:
        nonlocal first_at
        last_sent = 0.0
        while True:
            event = await feed.next_event()
            first_at = time.perf_counter()
            # A little time for more to come: they travel in one batch.
            await asyncio.sleep(max(0.0, last_sent + SEND_GAP - time.monotonic()))
            batcher = Batcher()
            while event is not None:
                batcher.add(event)
                event = await feed.next_event(0)  # what is queued already: no wait
            for batch in batcher.take():
                for part in _split(batch):
                    send(("batch", part, counters()))
            await writer.drain()  # the parent reads slowly: gather more meanwhile
            last_sent = time.monotonic()

    tasks = [loop.create_task(control()), loop.create_task(pump())]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await feed.close()
        if child.on_close is not None:
            with contextlib.suppress(Exception):
                await child.on_close()
        with contextlib.suppress(Exception):
            send(("closed",))
            await writer.drain()
            writer.close()
    return 0


def _split(batch: FeedBatch) -> list[FeedBatch]:
    """A batch in parts of at most MAX_JOBS_PER_FRAME jobs (the parent unpickles each in
    one go, holding its GIL): the modes go with the first part, each ending with its job."""
    jobs = list(batch.latest.values())
    if len(jobs) + len(batch.endings) <= MAX_JOBS_PER_FRAME:
        return [batch]
    parts: list[FeedBatch] = []
    endings: dict[str, list[Any]] = {}
    for job in batch.endings:
        endings.setdefault(job.id, []).append(job)
    for start in range(0, len(jobs), MAX_JOBS_PER_FRAME // 2):
        chunk = jobs[start : start + MAX_JOBS_PER_FRAME // 2]
        part = FeedBatch(modes=batch.modes if not parts else [], since=batch.since)
        part.latest = {job.id: job for job in chunk}
        part.endings = [e for job in chunk for e in endings.get(job.id, [])]
        parts.append(part)
    return parts


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl+C is the parent's
    # The frames go out on the original stdout; anything printed goes to stderr instead.
    stdout = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    stdin = os.fdopen(os.dup(0), "rb", buffering=0)
    return asyncio.run(_child_main(stdin, stdout))


if __name__ == "__main__":
    sys.exit(main())
