"""Follow jobs to their end through the live feed, and decide the exit code (no UI code).

Used by `jobctl watch` and `jobctl submit --watch`. The feed brings snapshots
(Realtime, or polling while Realtime is down); this loop keeps the latest one
per job, tells a view about every change and every change of mode, and stops
when every job has ended, at the first failure with `fail_fast`, at the
`timeout`, or when the backend has been unreachable for `lost_after` seconds.

Exit code, worst first (README "watch"): a job failed (1) > the connection was
lost for good (6) > the watch timed out (7) > a job was cancelled (3) > all
completed (0). A failure is definite bad news whatever else happened; "lost"
and "timed out" mean some outcomes are unknown, which is worse than a cancel
(usually someone's deliberate act).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from jobctl.backends.feed import FeedMode, JobChanged, JobFeed, LogReceived, ModeChanged
from jobctl.errors import ExitCode
from jobctl.models import Job, JobStatus, LogLine


class Reason:
    DONE = "done"  # every job ended
    FAIL_FAST = "fail_fast"
    TIMEOUT = "timeout"
    LOST = "lost"


@dataclass(frozen=True)
class WatchOptions:
    fail_fast: bool = False
    timeout: float | None = None  # seconds from the start of the watch
    lost_after: float = 60.0  # unreachable this long -> give up (exit 6)
    tick: float = 1.0  # how often the view hears the time (elapsed, ETA)


@dataclass
class WatchResult:
    jobs: dict[str, Job]  # the last snapshot of every watched job, in watch order
    reason: str
    elapsed: float
    mode: FeedMode
    deliveries: Counter[str] = field(default_factory=Counter)  # snapshots by feed source
    fallbacks: int = 0  # times Realtime was lost and polling took over
    detail: str = ""
    limit: float = 0.0  # the --timeout or reconnect_seconds that ended the watch

    @property
    def unfinished(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.status.is_terminal]

    @property
    def code(self) -> ExitCode:
        return exit_code(self.jobs.values(), self.reason)

    def counts(self) -> dict[str, int]:
        found = Counter(j.status.value for j in self.jobs.values())
        return {s.value: found[s.value] for s in JobStatus}


def exit_code(jobs: Iterable[Job], reason: str = Reason.DONE) -> ExitCode:
    statuses = {j.status for j in jobs}
    if JobStatus.FAILED in statuses:
        return ExitCode.JOB_FAILED
    if reason == Reason.LOST:
        return ExitCode.UNREACHABLE
    if reason == Reason.TIMEOUT:
        return ExitCode.WATCH_TIMEOUT
    if JobStatus.CANCELLED in statuses:
        return ExitCode.JOB_CANCELLED
    return ExitCode.OK


class WatchView(Protocol):
    """What the watch loop tells the person (or the script) watching."""

    def job_changed(self, job: Job, previous: Job | None, source: str) -> None: ...

    def mode_changed(self, event: ModeChanged) -> None: ...

    def tick(self) -> None: ...


class LogView(Protocol):
    """A view that also shows log lines (`watch --logs`)."""

    def log_line(self, line: LogLine, source: str) -> None: ...


async def watch_jobs(
    feed: JobFeed,
    initial: Sequence[Job],
    view: WatchView,
    options: WatchOptions = WatchOptions(),
    *,
    clock: Callable[[], float] = time.monotonic,
) -> WatchResult:
    """Run `feed` (not yet started) until the watch ends; `initial` are the jobs' first
    snapshots (already shown to nobody: the view hears about them here)."""
    start = clock()
    jobs: dict[str, Job] = {}
    deliveries: Counter[str] = Counter()
    fallbacks = 0
    offline_since: float | None = None
    detail = ""
    for job in initial:
        jobs[job.id] = job
        view.job_changed(job, None, "initial")

    log_view: LogView | None = view if feed.logs and hasattr(view, "log_line") else None  # type: ignore[assignment]

    def show_log(event: LogReceived) -> None:
        if log_view is not None and event.line.job_id in jobs:
            deliveries[f"log:{event.source}"] += 1
            log_view.log_line(event.line, event.source)

    async def ended(reason: str) -> WatchResult:
        if log_view is not None:
            # Lines written just before a job ended can come after its end (a poll saw
            # the end first): read the rest before saying the watch is over.
            await feed.drain_logs(list(jobs))
            while (event := await feed.next_any(0)) is not None:
                if isinstance(event, LogReceived):
                    show_log(event)
        return result(reason)

    def result(reason: str) -> WatchResult:
        limit = {Reason.TIMEOUT: options.timeout, Reason.LOST: options.lost_after}.get(reason)
        elapsed = clock() - start
        return WatchResult(
            jobs, reason, elapsed, feed.mode, deliveries, fallbacks, detail, limit or 0.0
        )

    def settled() -> str | None:
        if options.fail_fast and any(j.status == JobStatus.FAILED for j in jobs.values()):
            return Reason.FAIL_FAST
        if all(j.status.is_terminal for j in jobs.values()):
            return Reason.DONE
        return None

    if (reason := settled()) is not None:
        return await ended(reason)
    async with feed:
        while True:
            now = clock()
            waits = [options.tick]
            if options.timeout is not None:
                waits.append(start + options.timeout - now)
            if offline_since is not None:
                waits.append(offline_since + options.lost_after - now)
            event = await feed.next_any(max(0.0, min(waits)))
            if isinstance(event, LogReceived):
                show_log(event)
            elif isinstance(event, JobChanged) and event.job.id in jobs:
                previous = jobs[event.job.id]
                if previous.status.is_terminal:
                    continue  # its first end is its outcome (a retry is a new watch)
                jobs[event.job.id] = event.job
                deliveries[event.source] += 1
                view.job_changed(event.job, previous, event.source)
                if (reason := settled()) is not None:
                    return await ended(reason)
            elif isinstance(event, ModeChanged):
                if event.previous == FeedMode.REALTIME:
                    fallbacks += 1
                offline_since = (
                    (offline_since or clock()) if event.mode == FeedMode.OFFLINE else None
                )
                detail = event.detail
                view.mode_changed(event)
            now = clock()
            if options.timeout is not None and now - start >= options.timeout:
                return await ended(Reason.TIMEOUT)
            if offline_since is not None and now - offline_since >= options.lost_after:
                return result(Reason.LOST)
            view.tick()
