"""Pure text helpers for the dashboard: status words, bars, ages, filters, toasts.

No Textual here, so these are unit-tested on their own and shared by the
widgets. Every status is a symbol and a word: nothing is told by colour alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobctl.backends.feed import FeedMode
from jobctl.glyphs import STATUS_GLYPHS as STATUS_SYMBOL
from jobctl.models import Job, JobStatus

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
    """`/` filter: free words match id, type, message and error; `status:` and `type:` narrow."""

    words: tuple[str, ...] = ()
    statuses: frozenset[JobStatus] = frozenset()
    types: frozenset[str] = frozenset()
    errors: tuple[str, ...] = field(default=(), compare=False)

    @property
    def active(self) -> bool:
        return bool(self.words or self.statuses or self.types)

    def matches(self, job: Job) -> bool:
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
        return " ".join(parts)


STATUS_KEYS = ("status:", "s:", "is:")
TYPE_KEYS = ("type:", "t:")


def parse_filter(text: str) -> JobFilter:
    try:
        tokens = shlex.split(text)
    except ValueError:  # an unbalanced quote while typing: read it word by word
        tokens = text.split()
    words: list[str] = []
    statuses: set[JobStatus] = set()
    types: set[str] = set()
    errors: list[str] = []
    for token in tokens:
        low = token.lower()
        if low.startswith(STATUS_KEYS):
            for value in low.split(":", 1)[1].split(","):
                if not value:
                    continue
                matched = [s for s in JobStatus if s.value.startswith(value)]
                if matched:
                    statuses.update(matched)
                else:
                    errors.append(f"unknown status {value!r}")
        elif low.startswith(TYPE_KEYS):
            types.update(v for v in token.split(":", 1)[1].split(",") if v)
        else:
            words.append(low)
    return JobFilter(tuple(words), frozenset(statuses), frozenset(types), tuple(errors))


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


def count_label(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def ids_label(ids: Iterable[str]) -> str:
    ids = list(ids)
    if len(ids) == 1:
        return ids[0][:8]
    return count_label(len(ids), "job")
