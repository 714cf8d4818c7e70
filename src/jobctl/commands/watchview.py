"""What `watch` shows: a live block of progress bars on a terminal, plain lines elsewhere,
JSONL transitions for scripts, notes on stderr, and a terminal notification at the end;
and `follow`, which runs the UI-free watch loop (backends/watchloop.py) with this view.
Shared by `watch` and `submit --watch`.

Hand-drawn with a few ANSI sequences rather than Rich's Live: the block and the
lines printed above it (a job's end on stdout, a note on stderr) go to two
streams that usually share one terminal, and only one writer that knows the
block's height can interleave them without tearing. It also keeps Rich off the
start-up path. Off a terminal nothing is redrawn and no escape code is written.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from jobctl.backends.feed import FeedMode, ModeChanged
from jobctl.backends.watchloop import Reason, WatchOptions, WatchResult
from jobctl.commands import render
from jobctl.commands._shared import quiet_libraries
from jobctl.commands.context import Context, _isatty
from jobctl.glyphs import STATUS_GLYPHS
from jobctl.models import Job, JobStatus, LogLine, Step

if TYPE_CHECKING:
    from jobctl.backends.appbackend import AppBackend
    from jobctl.backends.jobapi import JobClient
    from jobctl.backends.supabase_reader import SupabaseReader

NOTIFY_KINDS = ("off", "bell", "osc9", "osc777")
REDRAW_EVERY = 0.1  # seconds: bursts of progress collapse into one redraw
HIDE_CURSOR, SHOW_CURSOR, ERASE_DOWN = "\x1b[?25l", "\x1b[?25h", "\x1b[J"


def terminal_size() -> tuple[int, int]:
    size = shutil.get_terminal_size((100, 24))
    return size.columns, size.lines


def clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def elapsed_and_eta(job: Job, now: datetime) -> tuple[float, float | None]:
    """Seconds since the job started (or was created), and a linear estimate of what is left."""
    begin = job.started_at or job.created_at
    elapsed = max(0.0, (now - begin).total_seconds()) if begin else 0.0
    if job.status != JobStatus.RUNNING or not 0 < job.progress < 100 or not job.started_at:
        return elapsed, None
    return elapsed, elapsed * (100 - job.progress) / job.progress


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def live_line(job: Job, now: datetime) -> str:
    elapsed, eta = elapsed_and_eta(job, now)
    head = f"{STATUS_GLYPHS[job.status]} {job.short_id}  {job.type[:18]:<18}"
    if job.status == JobStatus.PENDING:
        return f"{head}  {'pending':<15}  {clock_text(elapsed)}"
    eta_text = f"ETA {clock_text(eta)}" if eta is not None else ""
    tail = f"  {job.message}" if job.message else ""
    return (
        f"{head}  {render.progress_bar(job.progress)}  {clock_text(elapsed)}  {eta_text:<9}{tail}"
    )


def end_line(job: Job) -> str:
    took = render.duration(job.duration_seconds)
    word = "in" if job.status == JobStatus.COMPLETED else "after"
    line = f"{STATUS_GLYPHS[job.status]} {job.status.value:<9} {job.short_id}  {job.type}  {word} {took}"
    if job.status == JobStatus.FAILED and job.error:
        line += f": {job.error}"
    return line


def transition_line(job: Job) -> str:
    """Off a terminal: tab-separated, full id, raw words, the error when it failed."""
    last = job.error if job.status == JobStatus.FAILED else job.message
    cells = [job.id, job.type, job.status.value, str(job.progress), last or ""]
    return "\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells)


LAST_LOG_LINES = 10  # shown again under a failed job at the end of `watch --logs`


def log_text(line: LogLine) -> str:
    """On a terminal: short id, time, level, step, message."""
    ts = line.ts.strftime("%H:%M:%S") if line.ts else "--:--:--"
    step = f"[{line.step}] " if line.step else ""
    return f"  {line.job_id[:8]} {ts} {line.level:<7} {step}{line.message}"


def log_tsv(line: LogLine) -> str:
    """Off a terminal: job id, `log`, ts, level, step, message (tab-separated)."""
    cells = [
        line.job_id,
        "log",
        line.to_dict()["ts"] or "",
        line.level,
        line.step or "",
        line.message,
    ]
    return "\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells)


def log_record(line: LogLine, source: str) -> dict[str, object]:
    return {"type": "log", **line.to_dict(), "source": source}


def failure_lines(job: Job, step: Step | None, logs: list[LogLine]) -> list[str]:
    """Why a job failed, for the end of `watch --logs`: the step, the error, the last lines."""
    where = f" at step {step.name!r} (attempt {step.attempt})" if step else ""
    out = [
        f"{STATUS_GLYPHS[JobStatus.FAILED]} {job.short_id} {job.type} failed{where}: {job.error or 'no error given'}"
    ]
    if step is not None and step.error and step.error not in (job.error or ""):
        out.append(f"  step error: {step.error}")
    if logs:
        out.append(f"  last {len(logs)} log line{'s' if len(logs) != 1 else ''}:")
        out += [log_text(line) for line in logs]
    return out


def notification(kind: str, title: str, body: str) -> str:
    def clean(text: str) -> str:
        return "".join(c for c in text if c >= " " and c != "\x7f")

    title, body = clean(title), clean(body)
    if kind == "bell":
        return "\a"
    if kind == "osc9":
        return f"\x1b]9;{title}: {body}\x07"
    if kind == "osc777":
        return f"\x1b]777;notify;{title.replace(';', ',')};{body}\x07"
    return ""


def summary_text(result: WatchResult) -> str:
    counts = result.counts()
    total = len(result.jobs)
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    text = f"{total} job{'s' if total != 1 else ''}: {parts}"
    if result.reason == Reason.FAIL_FAST and result.unfinished:
        text += " (--fail-fast: stopped watching at the first failure; the others go on)"
    ending = ending_text(result)
    return f"{text}; {ending}" if ending else text


def ending_text(result: WatchResult) -> str:
    """Why the watch stopped before every job ended (empty when they all did)."""
    waiting = ", ".join(j.id for j in result.unfinished[:5])
    more = f" and {len(result.unfinished) - 5} more" if len(result.unfinished) > 5 else ""
    if result.reason == Reason.TIMEOUT:
        return f"timed out after {result.limit:g}s; still running: {waiting}{more}"
    if result.reason == Reason.LOST:
        why = f" ({result.detail})" if result.detail else ""
        return (
            f"lost the job server for {result.limit:g}s{why}; not ended when last seen: "
            f"{waiting}{more}"
        )
    return ""


@dataclass
class ViewConfig:
    human: IO[str]  # where the per-job lines go (stdout, or stderr with --jsonl)
    notes: IO[str]  # stderr
    live: bool  # `human` is a terminal: draw the block
    jsonl: IO[str] | None = None
    progress: bool = True  # False: nothing on `human` (`submit --watch --quiet`)
    end_lines: bool = True  # `submit --watch` prints its own summary instead
    summary: bool = True
    notify: str = "off"
    notify_stream: IO[str] | None = None  # a terminal, or nothing
    poll_interval: float = 2.0
    lost_after: float = 60.0
    color: bool = False
    logs: bool = False  # `watch --logs`: log lines, and why a failed job failed at the end
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    size: Callable[[], tuple[int, int]] = field(default=lambda: terminal_size())


class WatchPrinter:
    """The one WatchView: every stream goes through here, so the block never tears."""

    def __init__(self, config: ViewConfig) -> None:
        self.c = config
        if not config.progress:
            config.live = False
        self.jobs: dict[str, Job] = {}
        self.mode: FeedMode | None = None
        self._block = 0  # lines of the live block on screen
        self._drawn_at = 0.0
        self._dirty = False
        self._cursor_hidden = False
        self._closed = False
        self.recent_logs: dict[str, deque[LogLine]] = {}
        self.failed_steps: dict[str, Step | None] = {}  # set by the caller before finish

    # WatchView ----------------------------------------------------------------
    def log_line(self, line: LogLine, source: str) -> None:
        self.recent_logs.setdefault(line.job_id, deque(maxlen=LAST_LOG_LINES)).append(line)
        if self.c.jsonl is not None:
            self._write(self.c.jsonl, render.to_json(log_record(line, source), False))
        if self.c.progress:
            self._write(self.c.human, log_text(line) if self.c.live else log_tsv(line))

    def job_changed(self, job: Job, previous: Job | None, source: str) -> None:
        self.jobs[job.id] = job
        self._dirty = True
        if previous is not None and previous.status == job.status:
            self.tick()
            return
        if self.c.jsonl is not None:
            self._write(self.c.jsonl, render.to_json(transition(job, previous, source), False))
        if not self.c.progress:
            return
        if self.c.live:
            if job.status.is_terminal and self.c.end_lines:
                self._write(self.c.human, render.paint(end_line(job), job.status, self.c.color))
            else:
                self._redraw(force=True)
        elif self.c.end_lines or not job.status.is_terminal:
            self._write(self.c.human, transition_line(job))

    def mode_changed(self, event: ModeChanged) -> None:
        self.mode = event.mode
        text = mode_note(event, self.c.poll_interval, self.c.lost_after)
        if text:
            self._write(self.c.notes, f"jobctl: {text}")
        else:
            self._redraw(force=True)

    def tick(self) -> None:
        if self._dirty or time.monotonic() - self._drawn_at >= 1.0:
            self._redraw()

    def finish(self, result: WatchResult) -> None:
        self.close()
        if self.c.logs:
            self._explain_failures(result)
        if self.c.jsonl is not None:
            self._write(self.c.jsonl, render.to_json(summary(result), False))
        if self.c.summary:
            self._write(self.c.notes, f"jobctl: {summary_text(result)}")
        if self.c.notify != "off" and self.c.notify_stream is not None:
            title = "jobctl: " + ("done" if result.reason == Reason.DONE else result.reason)
            self._flush(
                self.c.notify_stream, notification(self.c.notify, title, summary_text(result))
            )

    def _explain_failures(self, result: WatchResult) -> None:
        for job in result.jobs.values():
            if job.status != JobStatus.FAILED:
                continue
            step = self.failed_steps.get(job.id)
            logs = list(self.recent_logs.get(job.id, ()))
            if self.c.jsonl is not None:
                record = {
                    "type": "failure",
                    "job_id": job.id,
                    "error": job.error,
                    "step": step.name if step else None,
                    "step_error": step.error if step else None,
                    "last_logs": [ln.to_dict() for ln in logs],
                }
                self._write(self.c.jsonl, render.to_json(record, False))
            if self.c.progress:
                for text in failure_lines(job, step, logs):
                    self._flush(self.c.human, render.paint(text, "failed", self.c.color) + "\n")

    def close(self) -> None:
        """At the end or after an interruption: leave the terminal as it was."""
        self._erase()
        self._closed = True
        if self._cursor_hidden:
            self._flush(self.c.human, SHOW_CURSOR)
            self._cursor_hidden = False

    # drawing ------------------------------------------------------------------
    def _write(self, stream: IO[str], line: str) -> None:
        """A permanent line: above the live block, which is drawn again below it."""
        self._erase()
        self._flush(stream, line + "\n")
        self._redraw(force=True)

    def _flush(self, stream: IO[str], text: str) -> None:
        stream.write(text)
        stream.flush()

    def _erase(self) -> None:
        if self._block:
            self._flush(self.c.human, f"\x1b[{self._block}F{ERASE_DOWN}")
            self._block = 0

    def _redraw(self, force: bool = False) -> None:
        if not self.c.live or self._closed:
            return
        mono = time.monotonic()
        if not force and mono - self._drawn_at < REDRAW_EVERY:
            return
        width, height = self.c.size()
        lines = self._block_lines(max(20, width - 1), max(3, height - 2))
        text = "\n".join(lines) + "\n" if lines else ""
        prefix = "" if self._cursor_hidden else HIDE_CURSOR
        up = f"\x1b[{self._block}F{ERASE_DOWN}" if self._block else ""
        self._flush(self.c.human, prefix + up + text)
        self._block, self._drawn_at, self._dirty = len(lines), mono, False
        self._cursor_hidden = True

    def _block_lines(self, width: int, rows: int) -> list[str]:
        now = self.c.now()
        active = [j for j in self.jobs.values() if not j.status.is_terminal]
        active.sort(key=lambda j: j.status != JobStatus.RUNNING)
        shown = active if len(active) <= rows - 1 else active[: rows - 2]
        lines = []
        for job in shown:
            line = clip(live_line(job, now), width)
            lines.append(render.paint(line[0], job.status, self.c.color) + line[1:])
        if len(shown) < len(active):
            lines.append(f"  … and {len(active) - len(shown)} more")
        if active:
            ended = len(self.jobs) - len(active)
            mode = f"[{self.mode.value}] " if self.mode else ""
            lines.append(clip(f"{mode}{ended} of {len(self.jobs)} ended", width))
        return lines


def mode_note(event: ModeChanged, interval: float, lost_after: float) -> str:
    cause = event.detail
    if cause.startswith("Realtime unavailable (") and cause.endswith(")"):
        cause = cause[len("Realtime unavailable (") : -1]
    why = f" ({cause})" if cause else ""
    if event.mode == FeedMode.POLLING:
        if event.previous == FeedMode.OFFLINE:
            return f"the job server answers again; polling every {interval:g}s"
        return f"realtime unavailable, polling every {interval:g}s{why}"
    if event.mode == FeedMode.REALTIME and event.previous != FeedMode.CONNECTING:
        return "realtime restored"
    if event.mode == FeedMode.OFFLINE:
        return f"the job server is unreachable{why}; retrying for up to {lost_after:g}s"
    return ""


def transition(job: Job, previous: Job | None, source: str) -> dict[str, object]:
    return {
        "type": "transition",
        "job_id": job.id,
        "job_type": job.type,
        "from": previous.status.value if previous else None,
        "to": job.status.value,
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "attempt": job.attempt,
        "updated_at": job.to_dict()["updated_at"],
        "source": source,
    }


def summary(result: WatchResult) -> dict[str, object]:
    return {
        "type": "summary",
        "exit_code": int(result.code),
        "reason": result.reason,
        "elapsed_seconds": round(result.elapsed, 3),
        "counts": result.counts(),
        "mode": result.mode.value,
        "fallbacks": result.fallbacks,
        "deliveries": dict(result.deliveries),
        "jobs": [
            {k: j.to_dict()[k] for k in ("id", "type", "status", "progress", "error", "output")}
            for j in result.jobs.values()
        ],
    }


def view_config(
    ctx: Context,
    *,
    human: IO[str],
    jsonl: bool = False,
    notify: str = "off",
    poll_interval: float = 2.0,
    **extra: Any,
) -> ViewConfig:
    """The view for this command's streams: live on a terminal, colour unless turned off."""
    live = _isatty(human) and ctx.env.get("TERM") != "dumb"
    color = live and not ctx.no_color and not ctx.env.get("NO_COLOR")
    terminal = ctx.stderr if ctx.stderr_tty else ctx.stdout if ctx.stdout_tty else None
    return ViewConfig(
        human=human,
        notes=ctx.stderr,
        live=live,
        jsonl=ctx.stdout if jsonl else None,
        notify=notify,
        notify_stream=terminal,
        poll_interval=poll_interval,
        lost_after=ctx.settings.reconnect_seconds,
        color=color,
        now=ctx.clock,
        **extra,
    )


def follow(
    ctx: Context,
    reader: JobClient | SupabaseReader | AppBackend,
    initial: Sequence[Job],
    view: WatchPrinter,
    options: WatchOptions,
    *,
    poll_only: bool = False,
    interval: float = 2.0,
    logs: bool = False,
) -> WatchResult:
    """Follow `initial` to their end (or the watch's), telling `view`; returns the result.

    The feed reads through the async form of `reader`: the job API client that the
    Context builds (the same profile, settings and autostart), or the Supabase reader
    in a worker thread, or an app's backend (its table, its poll intervals per type)."""
    import asyncio

    from jobctl.backends.appbackend import AppBackend, AsyncAppApi
    from jobctl.backends.feed import JobFeed, PollSettings, Subscription
    from jobctl.backends.jobapi import AsyncJobClient, Endpoint, JobClient
    from jobctl.backends.supabase_reader import AsyncSupabaseSource
    from jobctl.backends.watchloop import watch_jobs

    quiet_libraries(ctx)

    async def run() -> WatchResult:
        source: AsyncJobClient | AsyncSupabaseSource | AsyncAppApi
        endpoint = None
        by_type: dict[str, float] = {}
        if isinstance(reader, JobClient):
            client = source = ctx.async_client()
            endpoint = Endpoint(client.base_url, client.core.token)
        elif isinstance(reader, AppBackend):
            source = AsyncAppApi(reader)
            by_type = reader.profile.poll_by_type()
        else:
            source = AsyncSupabaseSource(reader)
        active = frozenset(j.id for j in initial if not j.status.is_terminal)
        feed = JobFeed(
            source,
            Subscription(active),
            realtime=None if poll_only else ctx.realtime_config(endpoint),
            poll=PollSettings(interval=interval, by_type=by_type, max_interval=max(15.0, interval)),
            logs=logs,
        )
        try:
            result = await watch_jobs(feed, initial, view, options)
            if logs and isinstance(source, AsyncJobClient):
                await _failed_steps(source, result, view)
            return result
        finally:
            await source.aclose()

    try:
        result = asyncio.run(run())
    finally:
        view.close()
    view.finish(result)
    return result


async def _failed_steps(source: Any, result: WatchResult, view: WatchPrinter) -> None:
    """The step each failed job failed at, for the end of `watch --logs`."""
    from jobctl.errors import JobctlError

    for job in [j for j in result.jobs.values() if j.status.value == "failed"][:20]:
        try:
            steps = await source.get_steps(job.id)
        except JobctlError:
            continue
        failed = [s for s in steps if s.status == "failed"]
        view.failed_steps[job.id] = failed[-1] if failed else None
