"""The tables Realtime and the PostgREST subset expose: columns, types, records, row-level security.

Each table is a view of what the store publishes (`Change`): its columns are the API (JSON) shape,
typed with PostgreSQL's `typname`s so that `columns` matches what Supabase sends, and values use
`to_jsonb` formats (timestamps with `+00:00`, JSON nested, numbers as numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobctl.jobshape import JOB_FIELDS, PRIMARY_KEY
from jobctl.server.auth import Principal
from jobctl.server.records import Change, JobRow, LogRow

MISSING: Any = object()  # a column the change does not carry (a DELETE's PK-only old record)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL typname), in attnum order
    primary_key: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def type_of(self, column: str) -> str | None:
        for name, kind in self.columns:
            if name == column:
                return kind
        return None

    def columns_json(self) -> list[dict[str, str]]:
        return [{"name": name, "type": kind} for name, kind in self.columns]


# The job's shape (jobshape.JOB_FIELDS) with PostgreSQL's typnames; nothing internal.
JOBS = Table("jobs", tuple((f.name, f.pg_type) for f in JOB_FIELDS), PRIMARY_KEY)

JOB_LOGS = Table(
    "job_logs",
    (
        ("job_id", "uuid"),
        ("seq", "int4"),
        ("ts", "timestamptz"),
        ("level", "text"),
        ("step", "text"),
        ("message", "text"),
    ),
    ("job_id", "seq"),
)

TABLES = {table.name: table for table in (JOBS, JOB_LOGS)}


def can_read(who: Principal, owner: str) -> bool:
    """Row-level security as the Supabase policy "users see their own jobs" has it."""
    if who.is_service:
        return True
    return who.user_id is not None and who.user_id == owner


def pg_timestamp(value: Any) -> Any:
    """The API's `...Z` timestamps in `to_jsonb(timestamptz)` form (`...+00:00`)."""
    if isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+00:00"
    return value


def to_wire(table: Table, api: dict[str, Any]) -> dict[str, Any]:
    """An API-shaped row as Supabase shows it: the table's columns, in order, pg formats."""
    out: dict[str, Any] = {}
    for name, kind in table.columns:
        value = api.get(name)
        out[name] = pg_timestamp(value) if kind == "timestamptz" else value
    return out


def parse_timestamp(text: str) -> int:
    """ISO-8601 (a `Z`, an offset or none, meaning UTC) -> microseconds since the epoch."""
    when = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class RowView:
    """Typed column values of a row, for filters: ints, microsecond timestamps, parsed JSON.

    Built from a store row when there is one, else from an API-shaped record (a DELETE's old
    record); a column absent from that record reads as MISSING.
    """

    __slots__ = ("_cache", "_record", "_row", "table")

    def __init__(
        self, table: Table, row: JobRow | LogRow | None, record: dict[str, Any] | None
    ) -> None:
        self.table = table
        self._row = row
        self._record = record or {}
        self._cache: dict[str, Any] = {}

    def get(self, column: str) -> Any:
        try:
            return self._cache[column]
        except KeyError:
            pass
        value = self._load(column)
        self._cache[column] = value
        return value

    def _load(self, column: str) -> Any:
        kind = self.table.type_of(column)
        if self._row is not None:
            value = getattr(self._row, column)
            if kind == "jsonb" and isinstance(value, str):
                return json.loads(value)
            return value  # timestamps are already microseconds in store rows
        if column not in self._record:
            return MISSING
        value = self._record[column]
        if kind == "timestamptz" and isinstance(value, str):
            return parse_timestamp(value)
        return value


def view_of(change: Change, table: Table) -> RowView:
    if change.row is not None:
        return RowView(table, change.row, None)
    return RowView(table, None, change.old_record)


def old_record_of(change: Change, table: Table) -> dict[str, Any]:
    """Primary-key-only old record, as Supabase sends it without REPLICA IDENTITY FULL."""
    source = change.old_record or change.record or {}
    return {key: source.get(key) for key in table.primary_key}
