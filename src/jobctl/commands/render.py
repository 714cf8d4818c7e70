"""Models -> text: aligned tables for terminals, tab-separated lines for pipes, JSON.

No fetching here. Colour is opt-in per call (the command decides from the
Context) and is never the only signal: every status has a symbol and a word.
Tables are laid out by hand rather than with Rich: it keeps Rich off the
start-up path of `jobctl list` and the output is the same in tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jobctl.errors import UsageError
from jobctl.glyphs import STATUS_GLYPHS, STEP_GLYPHS
from jobctl.models import Job, JobStatus, LogLine, Step

JOB_GLYPHS = {s.value: glyph for s, glyph in STATUS_GLYPHS.items()}
COLORS = {"pending": "33", "running": "36", "completed": "32", "failed": "31", "cancelled": "35"}


def paint(text: str, status: str, color: bool) -> str:
    code = COLORS.get(status)
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def status_label(status: JobStatus | str, color: bool = False) -> str:
    word = str(status)
    symbol = JOB_GLYPHS.get(word) or STEP_GLYPHS.get(word, "?")
    return paint(f"{symbol} {word}", word, color)


def progress_bar(percent: int, width: int = 10) -> str:
    percent = max(0, min(100, percent))
    filled = round(width * percent / 100)
    return f"{'█' * filled}{'░' * (width - filled)} {percent:>3}%"


def age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _visible_len(text: str) -> int:
    # ANSI sequences take no columns.
    length, i = 0, 0
    while i < len(text):
        if text[i] == "\x1b":
            end = text.find("m", i)
            i = end + 1 if end != -1 else len(text)
            continue
        length += 1
        i += 1
    return length


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int = 100) -> str:
    """Columns padded to fit; the last column is clipped to the terminal width."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], _visible_len(cell))
    used = sum(widths[:-1]) + 2 * (len(headers) - 1)
    last = max(10, width - used)
    lines = []
    for row in [list(headers), *rows]:
        cells = [c + " " * (widths[i] - _visible_len(c)) for i, c in enumerate(row[:-1])]
        cells.append(_clip(row[-1], last))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# Jobs -----------------------------------------------------------------------
def render_jobs_table(jobs: Iterable[Job], now: datetime, color: bool, width: int = 100) -> str:
    rows = [
        [
            job.short_id,
            job.type,
            status_label(job.status, color),
            progress_bar(job.progress),
            age(job.created_at, now),
            job.error if job.status == JobStatus.FAILED and job.error else job.message or "",
        ]
        for job in jobs
    ]
    return table(["ID", "TYPE", "STATUS", "PROGRESS", "CREATED", "MESSAGE"], rows, width)


def _tsv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\n", " ")


def render_jobs_tsv(jobs: Iterable[Job]) -> str:
    """Machine-friendly: full ids, raw words, ISO times, no header, no escapes."""
    lines = []
    for job in jobs:
        row = job.to_dict()
        cells = [
            row["id"],
            row["type"],
            row["status"],
            row["progress"],
            row["created_at"],
            job.error if job.status == JobStatus.FAILED else job.message,
        ]
        lines.append("\t".join(_tsv_cell(c) for c in cells))
    return "\n".join(lines)


def parse_fields(spec: str | None, available: Sequence[str]) -> list[str] | None:
    """`--json` alone (spec "") -> None (all fields); `--json a,b` -> checked names."""
    if not spec:
        return None
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UsageError(
            f"unknown field {unknown[0]!r} for --json; available: {', '.join(available)}"
        )
    return names


def parse_job_fields(spec: str | None, list_fields: bool = False) -> tuple[list[str] | None, bool]:
    """A job's `--json` fields (a listing may also name `input_bytes`), and whether `raw`
    (the app's row, app profiles) is asked for: `--json raw` is the whole job shape plus
    `raw`."""
    from jobctl.jobshape import JOB_FIELD_NAMES, LIST_FIELDS

    fields = parse_fields(spec, (*(LIST_FIELDS if list_fields else JOB_FIELD_NAMES), "raw"))
    if fields is None or "raw" not in fields:
        return fields, False
    rest = [f for f in fields if f != "raw"]
    return rest or None, True


def job_json(job: Job, fields: list[str] | None, raw: bool, reader: Any) -> dict[str, Any]:
    """A job in jobctl's shape (these fields), with the app's raw row under `raw`."""
    from jobctl.jobshape import INPUT_BYTES

    record = job.to_dict()
    if fields is not None and INPUT_BYTES in fields:
        record[INPUT_BYTES] = job.input_bytes
    data = select(record, fields)
    if raw:
        rows = getattr(reader, "raw_rows", None)
        if rows is None:
            raise UsageError("--json raw is for app profiles (the app's own row of the job)")
        data["raw"] = rows.get(job.id)
    return data


def select(data: Mapping[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return dict(data) if fields is None else {k: data.get(k) for k in fields}


def to_json(data: Any, pretty: bool = True) -> str:
    if pretty:
        return json.dumps(data, indent=2, ensure_ascii=False)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# One job ----------------------------------------------------------------------
def _kv(label: str, value: str) -> str:
    return f"{label + ':':<11}{value}"


def describe_input(data: Mapping[str, Any]) -> str:
    parts = []
    for key, value in data.items():
        if isinstance(value, str) and len(value) > 60:
            parts.append(f"{key}=<{len(value.encode())} bytes>")
        else:
            parts.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
    return ", ".join(parts) or "{}"


def render_job_detail(job: Job, steps: Sequence[Step], now: datetime, color: bool) -> str:
    def when(value: datetime | None) -> str:
        if value is None:
            return "-"
        return f"{value.strftime('%Y-%m-%d %H:%M:%S')} UTC ({age(value, now)})"

    lines = [
        _kv("id", job.id),
        _kv("type", job.type),
        _kv(
            "status",
            f"{status_label(job.status, color)} (attempt {job.attempt} of {job.max_attempts})",
        ),
        _kv("progress", f"{progress_bar(job.progress)} {job.message or ''}".rstrip()),
        _kv("created", when(job.created_at)),
        _kv("started", when(job.started_at)),
        _kv("finished", when(job.completed_at)),
        _kv("duration", duration(job.duration_seconds)),
        _kv("input", describe_input(job.input)),
    ]
    if job.concurrency_key:
        lines.append(_kv("conc. key", job.concurrency_key))
    if steps:
        lines.append("steps:")
        width = max(len(s.name) for s in steps)
        for step in steps:
            text = (
                f"  {status_label(step.status, color):<12} {step.name:<{width}}  "
                f"attempt {step.attempt}  {duration(step.duration_seconds):>7}"
            )
            if step.error:
                text += f"  {_clip(step.error, 80)}"
            lines.append(text.rstrip())
    if job.output is not None:
        lines.append("output:")
        lines.extend("  " + ln for ln in render_output(job.output).splitlines())
    if job.error:
        lines.append(_kv("error", job.error))
    return "\n".join(lines)


def render_output(output: Any) -> str:
    """A readable summary for known shapes (journal extraction), JSON otherwise."""
    if isinstance(output, dict) and "events_created" in output:
        lines = [
            f"{output.get('events_created', 0)} events, "
            f"{output.get('action_items_created', 0)} action items"
        ]
        for event in output.get("events") or []:
            when = event.get("date") or ""
            time_ = f" {event['time']}" if event.get("time") else ""
            lines.append(f"  event  {when}{time_}  {event.get('title') or event.get('text', '')}")
        for item in output.get("action_items") or []:
            due = f"  (due {item['due']})" if item.get("due") else ""
            lines.append(f"  todo   {item.get('title') or item.get('text', '')}{due}")
        return "\n".join(lines)
    return to_json(output)


def render_summary(job: Job, summary: str | None = None) -> str:
    """The last word of `submit --watch`: outcome, duration, the app's result in words
    (app profiles: `summary`), and the output or error."""
    head = (
        f"{status_label(job.status)} {job.type} {job.short_id} in {duration(job.duration_seconds)}"
    )
    if summary:
        head = f"{head}\n{summary}"
    if job.status == JobStatus.COMPLETED and job.output is not None:
        return f"{head}\n{render_output(job.output)}"
    if job.error:
        return f"{head}\nerror: {job.error}"
    return head


def render_progress(job: Job) -> str:
    message = f"  {job.message}" if job.message else ""
    return f"{job.short_id} {status_label(job.status)}  {progress_bar(job.progress)}{message}"


# Logs and stats -----------------------------------------------------------------
def render_log_line(line: LogLine) -> str:
    ts = line.ts.strftime("%H:%M:%S.%f")[:-3] if line.ts else "-"
    step = f" [{line.step}]" if line.step else ""
    return f"{ts} {line.level.upper():<5}{step} {line.message}"


def render_stats(stats: Mapping[str, Any]) -> str:
    counts = stats.get("counts", {})
    alerts = stats.get("alerts", [])
    lines = [
        "jobs:      " + "  ".join(f"{k} {v}" for k, v in counts.items()),
        f"created:   {stats.get('created_last_hour', 0)} in the last hour "
        f"({stats.get('creation_rate_per_minute', 0):.2f}/min)",
        f"failures:  {stats.get('failure_rate', 0):.0%} of {stats.get('finished_last_hour', 0)} "
        f"finished in the last hour",
        f"queue:     {stats.get('queue_depth', 0)} pending",
        f"stuck:     {stats.get('stuck_jobs', 0)}",
    ]
    durations = stats.get("duration_by_type") or {}
    if durations:
        rows = [
            [
                t,
                str(d.get("count", 0)),
                duration(d.get("avg_seconds")),
                duration(d.get("p95_seconds")),
                duration(d.get("last_hour_p95_seconds")),
            ]
            for t, d in durations.items()
        ]
        estimated = any(d.get("estimate") for d in durations.values())
        note = "; p95 estimated, within ~10%" if estimated else ""
        lines.append(f"durations (completed, last 7 days{note}):")
        body = table(
            ["  TYPE", "COUNT", "AVG", "P95", "P95 LAST HOUR"],
            [["  " + r[0], *r[1:]] for r in rows],
        )
        lines.append(body)
    if alerts:
        lines.extend(f"ALERT {a.get('name')}: {a.get('message')}" for a in alerts)
    else:
        lines.append("alerts:    none")
    return "\n".join(lines)
