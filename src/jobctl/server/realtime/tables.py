"""The tables Realtime and the PostgREST subset expose: columns, types, records, row-level security.

Each table is a view of what the store publishes (`Change`): its columns are the API (JSON) shape,
typed with PostgreSQL's `typname`s so that `columns` matches what Supabase sends, and values use
`to_jsonb` formats (timestamps with `+00:00`, JSON nested, numbers as numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobctl.jobshape import JOB_FIELDS, PRIMARY_KEY
from jobctl.server.auth import Principal
from jobctl.server.records import Change, JobRow, LogRow

if TYPE_CHECKING:  # psycopg, which SQLite users may not have
    from jobctl.server.store.published import PublishedTable

MISSING: Any = object()  # a column the change does not carry (a DELETE's PK-only old record)


# The kinds filters compare by (filters.py), for the PostgreSQL types a published table may have;
# a type not listed compares as text (its `to_jsonb` form is a string).
FILTER_KINDS = {
    "int2": "int4", "int4": "int4", "int8": "int8", "oid": "int8",
    "float4": "float8", "float8": "float8", "numeric": "float8",
    "text": "text", "varchar": "text", "bpchar": "text", "name": "text", "citext": "text",
    "uuid": "uuid", "timestamptz": "timestamptz", "timestamp": "timestamptz",
    "jsonb": "jsonb", "json": "jsonb", "bool": "bool",
}  # fmt: skip


@dataclass(frozen=True)
class ColumnInfo:
    """What the OpenAPI document says of a column: PostgreSQL's own type name (`format_type`),
    whether it may be NULL, its default expression."""

    name: str
    format: str
    not_null: bool = False
    default: str | None = None
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL typname), in attnum order
    primary_key: tuple[str, ...]
    schema: str = "public"  # where clients see it (Realtime bindings, Accept-Profile)
    source: str = ""  # its changes' `Change.table`: "jobs" for ours, "schema.name" if published
    owner: str | None = "user_id"  # the column row-level security compares with the JWT's sub
    details: tuple[ColumnInfo, ...] = ()  # for the OpenAPI document; derived when empty
    published: bool = False  # a table of the app's, read through the store's published scan

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def change_source(self) -> str:
        return self.source or self.name

    def type_of(self, column: str) -> str | None:
        """The column's kind for filters (FILTER_KINDS), None if there is no such column."""
        for name, kind in self.columns:
            if name == column:
                return FILTER_KINDS.get(kind, "text")
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


class Catalog:
    """The tables a server exposes: its own (`public`, or `jobctl` beside published tables)
    and the app tables it publishes (`--publish`), by (schema, name) and by change source."""

    def __init__(self, tables: list[Table]) -> None:
        self.tables = list(tables)
        self.by_key = {t.key: t for t in self.tables}
        self.by_source = {t.change_source: t for t in self.tables}

    @property
    def schemas(self) -> list[str]:
        """The exposed schemas, `public` first: the one a request without a profile reads."""
        names = list(dict.fromkeys(t.schema for t in self.tables))
        return sorted(names, key=lambda name: name != "public")

    def in_schema(self, schema: str) -> list[Table]:
        return [t for t in self.tables if t.schema == schema]

    def add(self, table: Table) -> None:
        self.tables = [t for t in self.tables if t.key != table.key] + [table]
        self.by_key[table.key] = table
        self.by_source[table.change_source] = table

    def get(self, schema: str, name: str) -> Table | None:
        return self.by_key.get((schema, name))

    def for_change(self, change: Change) -> Table | None:
        return self.by_source.get(change.table)

    @classmethod
    def own(cls, schema: str = "public", published: list[Table] | None = None) -> Catalog:
        ours = [JOBS, JOB_LOGS] if schema == "public" else [
            replace(t, schema=schema) for t in (JOBS, JOB_LOGS)
        ]  # fmt: skip
        return cls([*ours, *(published or [])])


DEFAULT_CATALOG = Catalog.own()


def published_table(info: PublishedTable) -> Table:
    """An app's table the store publishes, as Realtime and the PostgREST subset show it."""
    return Table(
        info.spec.name,
        tuple((c.name, c.typname) for c in info.columns),
        info.primary_key,
        schema=info.spec.schema,
        source=info.qualified,
        owner=info.spec.owner_column,
        details=tuple(
            ColumnInfo(c.name, c.format, c.not_null, c.default, c.enum) for c in info.columns
        ),
        published=True,
    )


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
    if change.type != "DELETE" and change.record is not None:  # a published table's row
        return RowView(table, None, change.record)
    return RowView(table, None, change.old_record)


def old_record_of(change: Change, table: Table) -> dict[str, Any]:
    """Primary-key-only old record, as Supabase sends it without REPLICA IDENTITY FULL."""
    source = change.old_record or change.record or {}
    return {key: source.get(key) for key in table.primary_key}
