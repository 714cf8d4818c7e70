"""`jobctl config detect`: propose an app profile from the project's PostgREST OpenAPI
document (`GET /rest/v1/`, swagger 2.0: `definitions.<table>.properties`) and the status
values in the newest rows. Pure functions here; the command does the two reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobctl.errors import UsageError
from jobctl.models import JobStatus

# jobctl field -> column names that usually hold it, best first
CANDIDATES: dict[str, tuple[str, ...]] = {
    "id": ("id", "job_id", "uuid"),
    "status": ("status", "state", "job_status"),
    "type": ("type", "job_type", "kind"),
    "progress": ("progress", "progress_percent", "percent", "percent_complete"),
    "message": ("message", "status_message", "progress_message", "status_text"),
    "error": ("error", "error_message", "failure_reason", "last_error", "err"),
    "result": ("result", "result_summary", "output", "results", "result_data"),
    "input": ("input", "payload", "params", "parameters", "args"),
    "created_at": ("created_at", "inserted_at", "created", "createdAt"),
    "updated_at": ("updated_at", "modified_at", "updated", "updatedAt"),
    "started_at": ("started_at", "start_time", "started"),
    "completed_at": ("completed_at", "finished_at", "ended_at", "done_at"),
    "owner": ("user_id", "owner_id", "owner", "created_by", "profile_id"),
}
# where a progress text hides inside a JSON column (the decision app's output.status_message)
NESTED_MESSAGE_KEYS = ("status_message", "message", "progress_message", "step")
WORDS: dict[str, JobStatus] = {
    "pending": JobStatus.PENDING,
    "queued": JobStatus.PENDING,
    "waiting": JobStatus.PENDING,
    "created": JobStatus.PENDING,
    "scheduled": JobStatus.PENDING,
    "new": JobStatus.PENDING,
    "running": JobStatus.RUNNING,
    "processing": JobStatus.RUNNING,
    "in_progress": JobStatus.RUNNING,
    "active": JobStatus.RUNNING,
    "started": JobStatus.RUNNING,
    "working": JobStatus.RUNNING,
    "completed": JobStatus.COMPLETED,
    "complete": JobStatus.COMPLETED,
    "done": JobStatus.COMPLETED,
    "succeeded": JobStatus.COMPLETED,
    "success": JobStatus.COMPLETED,
    "finished": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "failure": JobStatus.FAILED,
    "error": JobStatus.FAILED,
    "errored": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "canceled": JobStatus.CANCELLED,
    "aborted": JobStatus.CANCELLED,
}


@dataclass
class Proposal:
    table: str
    columns: dict[str, str]  # jobctl field -> column or JSON path
    all_columns: list[str]
    statuses: dict[str, list[str]] = field(default_factory=dict)  # jobctl status -> words
    seen: list[str] = field(default_factory=list)  # status words seen in the newest rows
    unknown: list[str] = field(default_factory=list)  # seen words no rule maps
    notes: list[str] = field(default_factory=list)


def table_columns(openapi: Any) -> dict[str, dict[str, Any]]:
    """table -> its properties, from PostgREST's swagger 2.0 document."""
    if not isinstance(openapi, Mapping):
        raise UsageError("the OpenAPI document at /rest/v1/ is not a JSON object")
    definitions = openapi.get("definitions")
    if not isinstance(definitions, Mapping):
        raise UsageError("the OpenAPI document at /rest/v1/ has no `definitions` (tables)")
    out = {}
    for name, definition in definitions.items():
        props = definition.get("properties") if isinstance(definition, Mapping) else None
        if isinstance(props, Mapping):
            out[str(name)] = {str(k): v for k, v in props.items() if isinstance(v, Mapping)}
    return out


def find_jobs_table(tables: Mapping[str, Mapping[str, Any]], wanted: str | None = None) -> str:
    if wanted is not None:
        if wanted not in tables:
            raise UsageError(
                f"no table {wanted!r} in the OpenAPI document (tables: {', '.join(sorted(tables))})"
            )
        return wanted

    def has_status(name: str) -> bool:
        return any(c in tables[name] for c in CANDIDATES["status"])

    ranked = sorted(
        tables,
        key=lambda n: (
            not ("job" in n.lower() and has_status(n)),
            n.lower() != "jobs",
            not has_status(n),
            "job" not in n.lower(),
            n,
        ),
    )
    if not ranked or not has_status(ranked[0]):
        raise UsageError(
            "found no jobs table (a table with a status column) in the OpenAPI document "
            f"(tables: {', '.join(sorted(tables)) or 'none'}); name it with --table"
        )
    return ranked[0]


def propose(
    table: str,
    properties: Mapping[str, Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]] = (),
) -> Proposal:
    names = list(properties)
    lower = {n.lower(): n for n in names}
    columns: dict[str, str] = {}
    used: set[str] = set()
    for name, candidates in CANDIDATES.items():
        for candidate in candidates:
            column = lower.get(candidate.lower())
            if column is not None and column not in used:
                columns[name] = column
                used.add(column)
                break
    proposal = Proposal(table, columns, names)
    if "message" not in columns:
        nested = _nested_message(properties, rows)
        if nested:
            columns["message"] = nested
    for name in ("id", "status"):
        if name not in columns:
            proposal.notes.append(f"no column looks like the job's {name}: set table.{name}")
    for name in ("progress", "message"):
        if name not in columns:
            what = "an indeterminate bar" if name == "progress" else "no progress text"
            proposal.notes.append(f"no {name} column: {what}")
    words = _status_words(properties.get(columns.get("status", ""), {}), rows, columns)
    proposal.seen = words
    by_status: dict[str, list[str]] = {}
    for word in words:
        status = WORDS.get(word.lower().replace("-", "_").replace(" ", "_"))
        if status is None:
            proposal.unknown.append(word)
            continue
        by_status.setdefault(status.value, []).append(word)
    proposal.statuses = {s.value: by_status[s.value] for s in JobStatus if s.value in by_status}
    for word in proposal.unknown:
        proposal.notes.append(f"status {word!r} means nothing jobctl knows: add it under [status]")
    return proposal


def _nested_message(
    properties: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
) -> str | None:
    json_columns = [n for n, p in properties.items() if str(p.get("format", "")).startswith("json")]
    for column in json_columns:
        for row in rows:
            value = row.get(column)
            if isinstance(value, Mapping):
                for key in NESTED_MESSAGE_KEYS:
                    if isinstance(value.get(key), str):
                        return f"{column}.{key}"
    return None


def _status_words(
    prop: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> list[str]:
    words: list[str] = []
    enum = prop.get("enum")
    if isinstance(enum, list):
        words += [str(w) for w in enum]
    column = columns.get("status")
    if column:
        words += [str(r[column]) for r in rows if r.get(column) is not None]
    return list(dict.fromkeys(words))


def profile_document(
    proposal: Proposal,
    *,
    supabase_url: str,
    api_url: str | None,
    default_type: str,
    existing: Any = None,
) -> Any:
    """The profile as a tomlkit document: [table] and [status] from the proposal, and
    everything else of an existing profile (submit, job, cancel, retry, types) kept."""
    import tomlkit

    doc = existing if existing is not None else tomlkit.document()
    if existing is None:
        doc.add(tomlkit.comment("jobctl app profile, proposed by `jobctl config detect`"))
    app = doc.get("app")
    if app is None:
        app = tomlkit.table()
        doc["app"] = app
    app["supabase_url"] = supabase_url
    if api_url and "api_url" not in app:
        app["api_url"] = api_url
    if "type" not in app:
        app["type"] = default_type
    table = tomlkit.table()
    table["name"] = proposal.table
    for name in CANDIDATES:
        if name in proposal.columns:
            table[name] = proposal.columns[name]
    doc["table"] = table
    status = tomlkit.table()
    for key, words in proposal.statuses.items():
        status[key] = words
    doc["status"] = status
    if existing is None:
        submit = tomlkit.table()
        submit.add(tomlkit.comment("the app's submit call; {text} {filename} {input} {type}"))
        submit["method"] = "POST"
        submit["path"] = "/api/jobs"
        body = tomlkit.inline_table()
        body.update({"type": "{type}", "input": "{input}"})
        submit["body"] = body
        submit["job_id"] = "id"
        doc["submit"] = submit
    return doc


def seen_text(words: Iterable[str]) -> str:
    found = list(words)
    return ", ".join(found) if found else "none (no rows readable yet)"
