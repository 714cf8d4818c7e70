"""Schedules, events and run traces -> text (tables on a terminal, tab-separated when
piped), as render.py does for jobs. The data are the API's dicts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jobctl.commands.render import (
    _kv,
    _tsv_cell,
    age,
    describe_input,
    duration,
    paint,
    status_label,
    table,
)
from jobctl.models import Job, LogLine, Step, parse_time

Data = Mapping[str, Any]


def _when(value: str | None, now: datetime) -> str:
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    rel = "in " + age(now, moment).removesuffix(" ago") if seconds >= 0 else age(moment, now)
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')} UTC ({rel})"


def period(seconds: float) -> str:
    """3600 -> 1h, 90 -> 90s: the largest unit that divides the period."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def spec_of(s: Data) -> str:
    if s.get("cron"):
        return f"{s['cron']} {s['tz']}" if s.get("tz") not in (None, "UTC") else str(s["cron"])
    return f"every {period(float(s.get('every_seconds') or 0))}"


def _next_run(s: Data, now: datetime) -> str:
    if s.get("paused") or not s.get("next_run_at"):
        return "-"
    text = _when(s["next_run_at"], now)
    return text[:-1] + _local(s["next_run_at"], s.get("tz")) + ")"


def _local(value: str | None, tz: str | None) -> str:
    """A schedule's time in its own zone, when that is not UTC."""
    moment = parse_time(value)
    if moment is None or not tz or tz == "UTC":
        return ""
    from zoneinfo import ZoneInfo

    return f", {moment.astimezone(ZoneInfo(tz)).strftime('%H:%M %Z')} in {tz}"


def _last(s: Data, color: bool) -> str:
    status = s.get("last_status")
    return status_label(status, color) if status else "-"


# schedules ---------------------------------------------------------------------------
def render_schedules_table(
    schedules: Iterable[Data], now: datetime, color: bool, width: int = 100
) -> str:
    rows = [
        [
            str(s["name"]),
            str(s["type"]),
            spec_of(s),
            "paused" if s.get("paused") else _when(s.get("next_run_at"), now).split(" (")[-1][:-1],
            _last(s, color),
            str(s.get("note") or ""),
        ]
        for s in schedules
    ]
    return table(["NAME", "TYPE", "WHEN", "NEXT RUN", "LAST", "NOTE"], rows, width)


def render_schedules_tsv(schedules: Iterable[Data]) -> str:
    """id, name, type, cron or every, tz, next run (or paused), last status."""
    lines = []
    for s in schedules:
        every = float(s.get("every_seconds") or 0)
        when = s.get("cron") or f"every:{every:g}s"
        cells = [
            s["id"],
            s["name"],
            s["type"],
            when,
            s.get("tz"),
            "paused" if s.get("paused") else s.get("next_run_at"),
            s.get("last_status"),
        ]
        lines.append("\t".join(_tsv_cell(c) for c in cells))
    return "\n".join(lines)


def render_schedule_detail(s: Data, now: datetime, color: bool) -> str:
    policy = f"overlap {s['overlap']}, catch-up {duration(float(s['catchup_seconds']))}"
    policy += f" ({s['catchup_policy']})"
    if s.get("jitter_seconds"):
        policy += f", jitter up to {duration(float(s['jitter_seconds']))}"
    lines = [
        _kv("id", str(s["id"])),
        _kv("name", str(s["name"])),
        _kv("type", str(s["type"])),
        _kv("when", spec_of(s)),
        _kv("policy", policy),
        _kv("input", describe_input(s.get("input") or {})),
        _kv(
            "state",
            ("paused" if s.get("paused") else "active")
            + (f" ({s['note']})" if s.get("note") else ""),
        ),
        _kv("next run", _next_run(s, now)),
        _kv("last run", _when(s.get("last_tick"), now) + f"  {_last(s, color)}"),
    ]
    runs = s.get("runs") or []
    if runs:
        lines += ["", "Recent runs:"]
        rows = [
            [
                str(parse_time(r["tick"]).strftime("%Y-%m-%d %H:%M:%S"))  # type: ignore[union-attr]
                if r.get("tick")
                else "-",
                str(r["kind"]),
                paint(
                    str(r["outcome"]),
                    "completed" if r["outcome"] == "started" else "pending",
                    color,
                ),
                str(r.get("job_id") or "-")[:8],
                status_label(r["job_status"], color) if r.get("job_status") else "",
                str(r.get("detail") or ""),
            ]
            for r in runs
        ]
        lines.append(table(["  TICK (UTC)", "KIND", "OUTCOME", "JOB", "STATUS", "DETAIL"], rows))
    return "\n".join(lines)


def render_runs_result(runs: Sequence[Data]) -> str:
    out = []
    for r in runs:
        job = r.get("job_id") or "-"
        out.append(f"{r['tick']}\t{r['outcome']}\t{job}")
    return "\n".join(out)


# events ------------------------------------------------------------------------------
def render_events_table(events: Iterable[Data], now: datetime, width: int = 100) -> str:
    rows = [
        [
            str(e["id"])[:8],
            str(e["name"]),
            str(e["source"]) + (f" of {str(e['replay_of'])[:8]}" if e.get("replay_of") else ""),
            age(parse_time(e.get("received_at")), now),
            ", ".join(str(j)[:8] for j in e.get("job_ids") or []) or "-",
        ]
        for e in events
    ]
    return table(["ID", "NAME", "SOURCE", "RECEIVED", "JOBS"], rows, width)


def render_events_tsv(events: Iterable[Data]) -> str:
    """id, name, source, received_at, job ids (comma-separated), replay_of."""
    lines = []
    for e in events:
        cells = [
            e["id"],
            e["name"],
            e["source"],
            e["received_at"],
            ",".join(e.get("job_ids") or []),
            e.get("replay_of"),
        ]
        lines.append("\t".join(_tsv_cell(c) for c in cells))
    return "\n".join(lines)


def render_event_detail(e: Data, now: datetime, color: bool) -> str:
    lines = [
        _kv("id", str(e["id"])),
        _kv("name", str(e["name"])),
        _kv("source", str(e["source"])),
        _kv("received", _when(e.get("received_at"), now)),
    ]
    if e.get("event_id"):
        lines.append(_kv("event id", str(e["event_id"])))
    if e.get("replay_of"):
        lines.append(_kv("replay of", str(e["replay_of"])))
    lines.append(_kv("data", json.dumps(e.get("data"), ensure_ascii=False)[:2000]))
    jobs = [Job.from_dict(j) for j in e.get("jobs") or []]
    lines += ["", "Jobs:" if jobs else "Jobs: none (a repeated event id starts no new job)"]
    for job in jobs:
        lines.append(f"  {job.id}  {job.type}  {status_label(job.status, color)}")
    return "\n".join(lines)


# trace -------------------------------------------------------------------------------
def _offset(t: datetime | None, origin: datetime | None) -> str:
    if t is None or origin is None:
        return "     -"
    return f"+{duration(max(0.0, (t - origin).total_seconds()))}"


def _span(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "-"
    if end is None:
        return "running"
    return duration(max(0.0, (end - start).total_seconds()))


def render_trace(
    job: Job,
    steps: Sequence[Step],
    logs: Sequence[LogLine],
    events: Sequence[Data],
    color: bool,
) -> str:
    """event -> job -> attempts -> steps -> sleeps and retries, with offsets from the
    job's creation and each part's duration."""
    origin = job.created_at
    lines: list[str] = []
    indent = ""
    for e in events:
        got = parse_time(e.get("received_at"))
        lines.append(
            f"event {e['name']} ({e['source']}) {str(e['id'])[:8]}  received {_offset(got, origin)}"
        )
        indent = "  "
    if job.schedule_id:
        tick = job.schedule_tick.strftime("%Y-%m-%d %H:%M:%S") if job.schedule_tick else "-"
        lines.append(f"schedule {job.schedule_id[:8]} tick {tick} UTC")
        indent = "  "
    total = _span(job.created_at, job.completed_at)
    lines.append(
        f"{indent}job {job.short_id} {job.type}  {status_label(job.status, color)}"
        f"  {total} in all, queued {_span(job.created_at, job.started_at)}"
    )
    lines.append(
        f"{indent}└─ attempt {job.attempt}  started {_offset(job.started_at, origin)}"
        f"  {_span(job.started_at, job.completed_at)}"
    )
    branch = indent + "   "
    retries: dict[str, list[LogLine]] = {}
    for line in logs:
        if line.step and line.level in ("warning", "error"):
            retries.setdefault(line.step, []).append(line)
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        head = "└─" if last else "├─"
        kind = "sleep" if step.kind == "sleep" else "step"
        tries = f", {step.attempt} attempts" if step.attempt > 1 else ""
        lines.append(
            f"{branch}{head} {kind} {step.name}  {status_label(step.status, color)}"
            f"  {_offset(step.started_at, origin)}  {_span(step.started_at, step.completed_at)}"
            f"{tries}"
        )
        sub = branch + ("   " if last else "│  ")
        for line in retries.get(step.name, []):
            earlier = (
                " (an earlier attempt)"
                if job.started_at is not None and line.ts is not None and line.ts < job.started_at
                else ""
            )
            lines.append(f"{sub}· {_offset(line.ts, origin)} {line.message}{earlier}")
        if step.status == "failed" and step.error:
            lines.append(f"{sub}✖ {step.error}")
    if not steps:
        lines.append(f"{branch}└─ (no steps)")
    if job.error:
        lines.append(f"{indent}error: {job.error}")
    return "\n".join(lines)
