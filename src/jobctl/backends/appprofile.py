"""An app profile: how jobctl reads, follows and drives an app's own jobs table and job API.

Apps built on Supabase keep jobs in a table of their own shape and start them through
their own API (a journal app's `POST /api/journal/submit`, a decision app's
`POST /api/jobs`). A profile file, `<config dir>/apps/<profile>.toml`, says how that
table's columns map to jobctl's job fields, which words mean which status, and how to
submit, poll, cancel and retry; README "Your own app" has two complete ones. Nothing
here does I/O beyond reading that file: the backend (backends/appbackend.py) uses it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobctl import paths
from jobctl.errors import UsageError
from jobctl.models import Job, JobStatus, parse_time

# jobctl's job fields a profile may map ([table] keys), and those it must map.
MAPPABLE = (
    "id",
    "status",
    "type",
    "progress",
    "message",
    "error",
    "result",
    "input",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "owner",
)
REQUIRED = ("id", "status")
# [table] key -> the Job attribute it fills (where the names differ)
ATTRIBUTE = {"result": "output", "owner": "user_id"}
SECTIONS = ("app", "table", "status", "submit", "job", "cancel", "retry", "types")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
APP_KEYS = ("name", "api_url", "supabase_url", "supabase_anon_key", "type")


def profile_file(profile: str) -> Path:
    return paths.app_profile_file(profile)


@dataclass(frozen=True)
class Call:
    """An HTTP call of the app's API: method, path (with `{id}`), an optional JSON body."""

    method: str
    path: str
    body: Any = None
    job_id: str | None = None  # where the job id is in the answer (submit): `jobId`, `data.id`


@dataclass(frozen=True)
class TypeSettings:
    poll: float | None = None  # seconds between polls of the job URL
    timeout: float | None = None  # the default --timeout of a watch of this type


@dataclass(frozen=True)
class AppProfile:
    name: str
    path: Path
    api_url: str | None
    supabase_url: str | None
    supabase_anon_key: str | None
    table: str
    schema: str
    columns: dict[str, str]  # jobctl field -> column or JSON path (`output.status_message`)
    statuses: dict[str, JobStatus]  # the app's word -> jobctl's status
    default_type: str
    submit: Call | None = None
    job_url: str | None = None  # polled as a fallback (`/api/jobs/{id}`)
    job_row: str | None = None  # where the row is in the job URL's answer (`data`)
    cancel: Call | None = None
    retry: Call | None = None
    summary: str | None = None  # `{result.events_created} events extracted`
    types: dict[str, TypeSettings] = field(default_factory=dict)

    # columns --------------------------------------------------------------------
    def column(self, name: str) -> str | None:
        """The top-level column behind a mapped field (`output` for `output.status_message`)."""
        path = self.columns.get(name)
        return None if path is None else path.split(".", 1)[0]

    def is_plain(self, name: str) -> bool:
        """The field maps to a column itself (it can be filtered and ordered on)."""
        path = self.columns.get(name)
        return path is not None and "." not in path

    def selected_columns(self) -> list[str]:
        return list(dict.fromkeys(c for f in self.columns if (c := self.column(f)) is not None))

    def field_of_column(self, column: str) -> str | None:
        for name in self.columns:
            if self.column(name) == column:
                return name
        return None

    def words_for(self, status: JobStatus) -> list[str]:
        return [word for word, s in self.statuses.items() if s == status]

    def timeout_for(self, job_type: str) -> float | None:
        settings = self.types.get(job_type)
        return None if settings is None else settings.timeout

    def poll_by_type(self) -> dict[str, float]:
        return {t: s.poll for t, s in self.types.items() if s.poll is not None}

    # rows -> jobs ------------------------------------------------------------------
    def map_row(self, row: Mapping[str, Any]) -> Job:
        """A row of the app's table (or the job URL's answer) as jobctl's job."""
        values: dict[str, Any] = {}
        for name in self.columns:
            values[name] = dig(row, self.columns[name])
        if values.get("id") is None:
            raise ValueError("a row without its id column")
        status = self.status_of(values.get("status"))
        message = _text(values.get("message"))
        result = values.get("result")
        job_type = _text(values.get("type")) or self.default_type
        progress = _progress(values.get("progress"), status)
        job = Job(
            id=str(values["id"]),
            type=job_type,
            status=status,
            progress=progress,
            message=message,
            input=values["input"] if isinstance(values.get("input"), dict) else {},
            output=result,
            error=_text(values.get("error")),
            user_id=_text(values.get("owner")) or "",
            created_at=_time(values.get("created_at")),
            updated_at=_time(values.get("updated_at")),
            started_at=_time(values.get("started_at")),
            completed_at=_time(values.get("completed_at")),
        )
        if status == JobStatus.COMPLETED and self.summary:
            summary = self.render_summary(job, row)
            if summary:  # the app's result in words, where jobctl shows a job's message
                job = _replace(job, message=summary)
        return job

    def status_of(self, word: Any) -> JobStatus:
        text = str(word or "").strip()
        if text in self.statuses:
            return self.statuses[text]
        try:
            return JobStatus.parse(text.lower())
        except ValueError:
            # A word the profile does not know: not ended, so a watch keeps waiting.
            return JobStatus.RUNNING

    def render_summary(self, job: Job, row: Mapping[str, Any]) -> str | None:
        """The summary template filled from the job (`result`, `message`, ...) and the
        raw row (`raw.<column>`); None when a value it names is absent."""
        assert self.summary is not None
        scope = {**job.to_dict(), "result": job.output, "raw": dict(row)}
        missing = False

        def fill(m: re.Match[str]) -> str:
            nonlocal missing
            value = dig(scope, m[1])
            if value is None:
                missing = True
                return ""
            return str(value)

        text = PLACEHOLDER.sub(fill, self.summary)
        return None if missing else text


def replace_urls(profile: AppProfile, api_url: str | None, supabase_url: str | None) -> AppProfile:
    """The profile with the URLs the settings give (flags, environment, config file)."""
    import dataclasses

    return dataclasses.replace(
        profile,
        api_url=api_url or profile.api_url,
        supabase_url=supabase_url or profile.supabase_url,
    )


def dig(data: Any, path: str) -> Any:
    """`a.b.c` in nested objects; None where any part is absent."""
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def fill_template(template: Any, values: Mapping[str, Any]) -> Any:
    """A submit body from its template: a string that is one placeholder (`"{input}"`)
    becomes the value itself (an object stays an object); one whose value is absent is
    left out of its object; placeholders inside longer strings are replaced as text."""
    if isinstance(template, Mapping):
        out = {}
        for key, item in template.items():
            filled = fill_template(item, values)
            if filled is not _ABSENT:
                out[str(key)] = filled
        return out
    if isinstance(template, list):
        return [v for v in (fill_template(i, values) for i in template) if v is not _ABSENT]
    if not isinstance(template, str):
        return template
    whole = PLACEHOLDER.fullmatch(template)
    if whole:
        value = dig(values, whole[1])
        return _ABSENT if value is None else value
    return PLACEHOLDER.sub(lambda m: "" if (v := dig(values, m[1])) is None else str(v), template)


_ABSENT: Any = object()


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _progress(value: Any, status: JobStatus) -> int:
    if status == JobStatus.COMPLETED:
        return 100
    try:
        return max(0, min(100, int(float(value))))
    except (TypeError, ValueError):
        return 0  # no progress column: the bar is indeterminate (0 until the end)


def _time(value: Any) -> Any:
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _replace(job: Job, **changes: Any) -> Job:
    import dataclasses

    return dataclasses.replace(job, **changes)


# loading -------------------------------------------------------------------------
def load_profile(name: str, path: Path | None = None) -> AppProfile | None:
    """The profile's app file, or None when there is none."""
    path = path or profile_file(name)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the app profile {path}: {exc}") from None
    return parse_profile(name, path, data)


def parse_profile(name: str, path: Path, data: Mapping[str, Any]) -> AppProfile:
    """Check every setting and build the profile; a mistake is one message naming the
    file and the setting (exit 2)."""

    def bad(where: str, what: str) -> UsageError:
        return UsageError(f"app profile {path}: {where}: {what}")

    for key in data:
        if key not in SECTIONS:
            raise bad(key, f"unknown section (known: {', '.join(SECTIONS)})")
    app = _section(data, "app", bad)
    table = _section(data, "table", bad)
    for key in app:
        if key not in APP_KEYS:
            raise bad(f"app.{key}", f"unknown key (known: {', '.join(APP_KEYS)})")
    urls: dict[str, str | None] = {}
    for key in ("api_url", "supabase_url"):
        value = app.get(key)
        if value is not None and (
            not isinstance(value, str) or not value.startswith(("http://", "https://"))
        ):
            raise bad(f"app.{key}", f"expected an http:// or https:// URL, got {value!r:.60}")
        urls[key] = value.rstrip("/") if isinstance(value, str) else None
    columns: dict[str, str] = {}
    for key, value in table.items():
        if key in ("name", "schema"):
            continue
        if key not in MAPPABLE:
            raise bad(
                f"table.{key}", f"not a job field (known: name, schema, {', '.join(MAPPABLE)})"
            )
        if not isinstance(value, str) or not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", value
        ):
            raise bad(
                f"table.{key}",
                f"expected a column or a JSON path like output.status_message, got {value!r:.60}",
            )
        columns[key] = value
    columns.setdefault("id", "id")
    columns.setdefault("status", "status")
    for key in ("id", "status", "created_at", "updated_at", "type"):
        if key in columns and "." in columns[key]:
            raise bad(f"table.{key}", "must be a column of its own (it is filtered and ordered on)")
    statuses = _statuses(data, bad)
    types = _types(data, bad)
    submit = _call(data, "submit", bad, needs_job_id=True)
    job = _section(data, "job", bad)
    for key in job:
        if key not in ("url", "row", "summary"):
            raise bad(f"job.{key}", "unknown key (known: url, row, summary)")
    for key in ("url", "row", "summary"):
        if key in job and not isinstance(job[key], str):
            raise bad(f"job.{key}", "expected a string")
    if "url" in job and "{id}" not in job["url"]:
        raise bad("job.url", "must contain {id} (the job's id)")
    table_name = table.get("name", "jobs")
    schema = table.get("schema", "public")
    for key, value in (("name", table_name), ("schema", schema)):
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise bad(f"table.{key}", f"expected a table name, got {value!r:.60}")
    default_type = app.get("type", name)
    if not isinstance(default_type, str) or not default_type:
        raise bad("app.type", "expected a job type name")
    anon_key = app.get("supabase_anon_key")
    return AppProfile(
        name=name,
        path=path,
        api_url=urls["api_url"],
        supabase_url=urls["supabase_url"],
        supabase_anon_key=anon_key if isinstance(anon_key, str) and anon_key else None,
        table=table_name,
        schema=schema,
        columns=columns,
        statuses=statuses,
        default_type=default_type,
        submit=submit,
        job_url=job.get("url"),
        job_row=job.get("row"),
        cancel=_call(data, "cancel", bad),
        retry=_call(data, "retry", bad),
        summary=job.get("summary"),
        types=types,
    )


def _section(data: Mapping[str, Any], name: str, bad: Any) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise bad(name, f"must be a table ([{name}])")
    return value


def _statuses(data: Mapping[str, Any], bad: Any) -> dict[str, JobStatus]:
    found: dict[str, JobStatus] = {s.value: s for s in JobStatus}
    found["processing"] = JobStatus.RUNNING
    declared: set[str] = set()
    for key, words in _section(data, "status", bad).items():
        try:
            status = JobStatus(key)
        except ValueError:
            known = ", ".join(s.value for s in JobStatus)
            raise bad(f"status.{key}", f"not a jobctl status (known: {known})") from None
        if isinstance(words, str):
            words = [words]
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise bad(f"status.{key}", 'expected a list of the app\'s words, like ["processing"]')
        # The app's words for this status replace jobctl's (`--status running` asks the
        # table for exactly these).
        found = {w: s for w, s in found.items() if s != status or w in declared}
        for word in words:
            found[word] = status
            declared.add(word)
    return found


def _types(data: Mapping[str, Any], bad: Any) -> dict[str, TypeSettings]:
    out = {}
    for name, table in _section(data, "types", bad).items():
        if not isinstance(table, Mapping):
            raise bad(f"types.{name}", "must be a table ([types.NAME] poll, timeout)")
        values: dict[str, float] = {}
        for key, value in table.items():
            if key not in ("poll", "timeout"):
                raise bad(f"types.{name}.{key}", "unknown key (known: poll, timeout)")
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise bad(f"types.{name}.{key}", f"expected seconds above 0, got {value!r:.40}")
            values[key] = float(value)
        out[str(name)] = TypeSettings(values.get("poll"), values.get("timeout"))
    return out


def _call(data: Mapping[str, Any], name: str, bad: Any, needs_job_id: bool = False) -> Call | None:
    if name not in data:
        return None
    table = _section(data, name, bad)
    known = ("method", "path", "body", "job_id")
    for key in table:
        if key not in known:
            raise bad(f"{name}.{key}", f"unknown key (known: {', '.join(known)})")
    method = str(table.get("method", "POST")).upper()
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        raise bad(f"{name}.method", f"expected an HTTP method, got {method!r:.20}")
    path = table.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise bad(f"{name}.path", "expected a path on api_url, starting with /")
    job_id = table.get("job_id")
    if job_id is not None and not isinstance(job_id, str):
        raise bad(f"{name}.job_id", "expected where the id is in the answer, like jobId or data.id")
    if needs_job_id and job_id is None:
        job_id = "id"
    return Call(method, path, table.get("body"), job_id)
