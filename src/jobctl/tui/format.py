"""Pure text helpers for the dashboard: status words, bars, ages, filters, toasts.

No Textual here, so these are unit-tested on their own and shared by the
widgets. Every status is a symbol and a word: nothing is told by colour alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobctl.backends.feed import FeedMode
from jobctl.glyphs import STATUS_GLYPHS as STATUS_SYMBOL
from jobctl.models import Job, JobStatus, parse_time

MODE_LABEL = {
    FeedMode.CONNECTING: "… connecting",
    FeedMode.REALTIME: "● realtime",
    FeedMode.POLLING: "◌ polling",
    FeedMode.OFFLINE: "✖ offline",
}


def status_label(status: JobStatus) -> str:
    return f"{STATUS_SYMBOL[status]} {status.value}"


def progress_bar(progress: int, width: int) -> str:
    """A bar of `width` cells plus the percentage: '██████░░░░  60%'."""
    pct = max(0, min(100, progress))
    filled = round(width * pct / 100)
    return "█" * filled + "░" * (width - filled) + f" {pct:>3}%"


def short_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f}m"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.0f}h"
    return f"{hours / 24:.0f}d"


def job_time(job: Job, now: datetime) -> str:
    """Duration for a finished job, age (since start, else since creation) for an active one."""
    if job.status.is_terminal and job.started_at and job.completed_at:
        return short_duration(max(0.0, (job.completed_at - job.started_at).total_seconds()))
    since = job.started_at or job.created_at
    if since is None:
        return ""
    return short_duration(max(0.0, (now - since).total_seconds()))


@dataclass(frozen=True)
class JobFilter:
    """`/` filter: free words match id, type, message and error; `status:`, `type:` and
    `id:` (prefixes) narrow; `notice:N` keeps the jobs of the Nth summary toast. `since`
    is the time window.

    A filter with errors (an unknown status, a notice no longer kept) matches nothing:
    a typo must not widen what is shown."""

    words: tuple[str, ...] = ()
    statuses: frozenset[JobStatus] = frozenset()
    types: frozenset[str] = frozenset()
    ids: frozenset[str] | None = None
    since: datetime | None = None
    id_prefixes: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=(), compare=False)
    notice: int | None = field(default=None, compare=False)

    @property
    def active(self) -> bool:
        return (
            bool(self.words or self.statuses or self.types or self.errors)
            or bool(self.id_prefixes)
            or (self.ids is not None or self.since is not None)
        )

    def matches(self, job: Job) -> bool:
        if self.errors:
            return False
        if self.ids is not None and job.id not in self.ids:
            return False
        if self.id_prefixes and not job.id.startswith(self.id_prefixes):
            return False
        if self.since is not None and (job.created_at is None or job.created_at < self.since):
            return False
        if self.statuses and job.status not in self.statuses:
            return False
        if self.types and job.type not in self.types:
            return False
        if self.words:
            hay = " ".join((job.id, job.type, job.message or "", job.error or "")).lower()
            return all(w in hay for w in self.words)
        return True

    def describe(self) -> str:
        parts = list(self.words)
        if self.statuses:
            parts.append("status:" + ",".join(sorted(s.value for s in self.statuses)))
        if self.types:
            parts.append("type:" + ",".join(sorted(self.types)))
        if self.id_prefixes:
            parts.append("id:" + ",".join(self.id_prefixes))
        if self.notice is not None and self.ids is not None:
            parts.append(f"notice:{self.notice} ({count_label(len(self.ids), 'job')})")
        return " ".join(parts)


STATUS_KEYS = ("status:", "s:", "is:")
TYPE_KEYS = ("type:", "t:")
NOTICE_KEYS = ("notice:", "n:")
ID_KEYS = ("id:",)


def parse_filter(text: str, notices: Mapping[int, frozenset[str]] | None = None) -> JobFilter:
    """`notices`: the job ids of each summary toast still kept, by number."""
    try:
        tokens = shlex.split(text)
    except ValueError:  # an unbalanced quote while typing: read it word by word
        tokens = text.split()
    words: list[str] = []
    statuses: set[JobStatus] = set()
    types: set[str] = set()
    ids: frozenset[str] | None = None
    notice: int | None = None
    prefixes: list[str] = []
    errors: list[str] = []
    for token in tokens:
        low = token.lower()
        if low.startswith(STATUS_KEYS):
            values = [v for v in low.split(":", 1)[1].split(",") if v]
            for value in values:
                matched = [s for s in JobStatus if s.value.startswith(value)]
                if matched:
                    statuses.update(matched)
                else:
                    known = ", ".join(s.value for s in JobStatus)
                    errors.append(f"unknown status {value!r} (known: {known})")
        elif low.startswith(TYPE_KEYS):
            types.update(v for v in token.split(":", 1)[1].split(",") if v)
        elif low.startswith(ID_KEYS):
            prefixes.extend(v for v in low.split(":", 1)[1].split(",") if v)
        elif low.startswith(NOTICE_KEYS):
            value = low.split(":", 1)[1]
            kept = (notices or {}).get(int(value)) if value.isdigit() else None
            if kept is None:
                errors.append(f"no notice {value!r} is kept (the last 20 are)")
            else:
                notice, ids = int(value), kept
        else:
            words.append(low)
    return JobFilter(
        tuple(words),
        frozenset(statuses),
        frozenset(types),
        ids,
        errors=tuple(errors),
        notice=notice,
        id_prefixes=tuple(prefixes),
    )


# time windows, cycled by `w` ---------------------------------------------------------
WINDOWS = ("all", "hour", "today")
WINDOW_LABEL = {"all": "all time", "hour": "last hour", "today": "today"}


def window_start(window: str, now: datetime) -> datetime | None:
    """The first creation time a window shows (`today` is since local midnight)."""
    if window == "hour":
        return now - timedelta(hours=1)
    if window == "today":
        local = now.astimezone()
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    return None


def finish_notice(job: Job) -> tuple[str, str, str]:
    """(title, message, severity) of the toast for a job that just ended."""
    if job.status == JobStatus.COMPLETED:
        output: Any = job.output if isinstance(job.output, dict) else {}
        if job.type == "journal_extraction" and "events_created" in output:
            events = output["events_created"]
            message = f"Journal entry ready: {events} event{'s' if events != 1 else ''} extracted"
        else:
            message = f"{job.type} {job.short_id} completed" + (
                f": {job.message}" if job.message else ""
            )
        return f"{status_label(job.status)} · {job.short_id}", message, "information"
    if job.status == JobStatus.FAILED:
        return (
            f"{status_label(job.status)} · {job.short_id}",
            f"{job.type} {job.short_id} failed: {job.error or 'no error message'}",
            "error",
        )
    return (
        f"{status_label(job.status)} · {job.short_id}",
        f"{job.type} {job.short_id} was cancelled",
        "warning",
    )


def ended_summary(jobs: Iterable[Job]) -> tuple[str, str, str]:
    """(title, message, severity) of the one toast for many jobs that ended together:
    "37 completed, 2 failed"; failures first, as they are what needs looking at."""
    counts = {s: 0 for s in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.COMPLETED)}
    total = 0
    for job in jobs:
        total += 1
        counts[job.status] = counts.get(job.status, 0) + 1
    order = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    message = ", ".join(f"{counts[s]} {s.value}" for s in order if counts[s])
    if counts[JobStatus.FAILED]:
        severity = "error"
    elif counts[JobStatus.CANCELLED]:
        severity = "warning"
    else:
        severity = "information"
    worst = next(
        s for s in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.COMPLETED) if counts[s]
    )
    return f"{STATUS_SYMBOL[worst]} {count_label(total, 'job')} ended", message, severity


def count_label(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def ids_label(ids: Iterable[str]) -> str:
    ids = list(ids)
    if len(ids) == 1:
        return ids[0][:8]
    return count_label(len(ids), "job")


# the schedules and events views: the API's dicts -> cells ------------------------------
def relative(moment: datetime | None, now: datetime) -> str:
    """`in 42s` for a time to come, `3m ago` for one gone, `now` within a second, `-`
    for none."""
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    if seconds > 0:
        return f"in {short_duration(seconds)}"
    return f"{short_duration(-seconds)} ago"


def period_text(seconds: float) -> str:
    """3600 -> 1h, 90 -> 90s: the largest unit that divides the period."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"


def schedule_spec(schedule: Mapping[str, Any]) -> str:
    """`every 5m`, or the cron expression and its zone when that is not UTC."""
    cron = schedule.get("cron")
    if cron:
        tz = schedule.get("tz")
        return f"{cron} {tz}" if tz not in (None, "UTC") else str(cron)
    return f"every {period_text(float(schedule.get('every_seconds') or 0))}"


def _job_status_label(value: object) -> str:
    try:
        return status_label(JobStatus(str(value)))
    except ValueError:
        return str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


PAUSED = "‖ paused"
SCHEDULE_COLUMNS = ("NAME", "TYPE", "WHEN", "NEXT RUN", "LAST RUN", "NOTE")


def schedule_cells(schedule: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    """One row of the schedules view, narrow enough for 80 columns (long names, cron
    expressions and notes are cut). A paused schedule's next run says so; the last run
    is its job's status (as `schedule list` shows it) and when that tick was."""
    paused = bool(schedule.get("paused"))
    next_run = PAUSED if paused else relative(parse_time(schedule.get("next_run_at")), now)
    status = schedule.get("last_status")
    last = "never run"
    if status or schedule.get("last_tick"):
        label = _job_status_label(status) if status else "no job"
        last = f"{label}, {relative(parse_time(schedule.get('last_tick')), now)}"
    return (
        _cut(str(schedule.get("name")), 24),
        _cut(str(schedule.get("type")), 18),
        _cut(schedule_spec(schedule), 24),
        next_run,
        last,
        _cut(str(schedule.get("note") or ""), 40),
    )


EVENT_COLUMNS = ("ID", "NAME", "SOURCE", "RECEIVED", "JOBS")


def event_cells(event: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    """One row of the events view: its id, name, where it came from, how long ago, its
    first job and how many more."""
    source = str(event.get("source") or "")
    if event.get("replay_of"):
        source += f" of {str(event['replay_of'])[:8]}"
    job_ids = [str(j) for j in event.get("job_ids") or []]
    jobs = (
        job_ids[0][:8] + (f" +{len(job_ids) - 1}" if len(job_ids) > 1 else "")
        if job_ids
        else "none"
    )
    return (
        str(event.get("id") or "")[:8],
        _cut(str(event.get("name")), 32),
        source,
        relative(parse_time(event.get("received_at")), now),
        jobs,
    )
