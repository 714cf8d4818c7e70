"""Tables of an app's that the server publishes (`--publish public.jobs --owner-column user_id`):
their shape read from the catalog, a trigger that announces their changes, and the reads that
`/rest/v1/<table>` needs. PostgreSQL only; all of it is SQL, so it lives with the store.

The trigger (`jobctl_publish`, AFTER INSERT OR UPDATE OR DELETE, FOR EACH ROW) calls
`<own schema>.jobctl_publish_change(owner column, primary key columns)`, which NOTIFYs on the
store's channel, in the writer's transaction (so after its commit, in commit order), as the
store's own statements do for its tables:
`["P", "schema.table", TG_OP, to_jsonb(NEW) or null, {primary key}, owner, microseconds]`, or,
for a row over NOTIFY's payload limit, the same with tag "Px" and no row (the listener reads the
row back). Installing is idempotent (CREATE OR REPLACE); the trigger stays after the server
stops (it costs one NOTIFY per written row): `DROP TRIGGER jobctl_publish ON <table>` removes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

CHANNEL = "jobctl_changes"
PAYLOAD_MAX = 7900
TRIGGER = "jobctl_publish"
FUNCTION = "jobctl_publish_change"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class PublishError(ValueError):
    """A table that cannot be published; the message names what is missing."""


@dataclass(frozen=True)
class PublishSpec:
    schema: str
    name: str
    owner_column: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @classmethod
    def parse(cls, text: str, owner_column: str) -> PublishSpec:
        """`public.jobs` or `jobs` (meaning public); plain identifiers only."""
        schema, dot, name = text.strip().rpartition(".")
        schema = schema if dot else "public"
        for part, what in ((schema, "schema"), (name, "table"), (owner_column, "owner column")):
            if not NAME.match(part):
                raise PublishError(
                    f"--publish {text!r}: {what} {part!r} is not a plain identifier"
                    " (letters, digits, _ and $)"
                )
        return cls(schema, name, owner_column)


@dataclass(frozen=True)
class PublishedColumn:
    name: str
    typname: str  # pg_type.typname: what Realtime's `columns` carry
    format: str  # format_type(): what PostgREST's OpenAPI document calls it
    not_null: bool
    default: str | None
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublishedTable:
    spec: PublishSpec
    columns: tuple[PublishedColumn, ...]
    primary_key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return self.spec.qualified

    def ident(self) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.spec.schema), sql.Identifier(self.spec.name)])


async def describe(conn: AsyncConnection[Any], spec: PublishSpec) -> PublishedTable:
    cur = await conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (spec.schema, spec.name),
    )
    found = await cur.fetchone()
    if found is None:
        raise PublishError(
            f"--publish {spec.qualified}: no such table (create it first: the app's migration)"
        )
    oid = found[0]
    cur = await conn.execute(
        "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        " pg_get_expr(d.adbin, d.adrelid),"
        " (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e"
        "   WHERE e.enumtypid = a.atttypid)"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (oid,),
    )
    columns = tuple(
        PublishedColumn(name, typname, fmt, bool(not_null), default, tuple(enum or ()))
        for name, typname, fmt, not_null, default, enum in await cur.fetchall()
    )
    cur = await conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = %s AND i.indisprimary"
        " ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (oid,),
    )
    primary_key = tuple(r[0] for r in await cur.fetchall())
    names = [c.name for c in columns]
    if spec.owner_column not in names:
        raise PublishError(
            f"--owner-column {spec.owner_column}: {spec.qualified} has no such column"
            f" (its columns: {', '.join(names)})"
        )
    if not primary_key:
        raise PublishError(
            f"--publish {spec.qualified}: the table has no primary key"
            " (Realtime identifies rows by it)"
        )
    return PublishedTable(spec, columns, primary_key)


def _function_sql(own_schema: str) -> sql.Composed:
    body = f"""
DECLARE
  src jsonb;
  pk jsonb;
  payload text;
  stamp bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
  source text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
BEGIN
  IF TG_OP = 'DELETE' THEN src := to_jsonb(OLD); ELSE src := to_jsonb(NEW); END IF;
  SELECT coalesce(jsonb_object_agg(k, src -> k), '{{}}'::jsonb) INTO pk
    FROM unnest(TG_ARGV[1]::text[]) AS k;
  payload := json_build_array('P', source, TG_OP,
    CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE src END, pk, src ->> TG_ARGV[0], stamp)::text;
  IF octet_length(payload) > {PAYLOAD_MAX} THEN
    payload := json_build_array('Px', source, TG_OP, NULL, pk, src ->> TG_ARGV[0], stamp)::text;
  END IF;
  PERFORM pg_notify('{CHANNEL}', payload);
  RETURN NULL;
END
"""
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {}.{}() RETURNS trigger LANGUAGE plpgsql AS {}"
    ).format(sql.Identifier(own_schema), sql.Identifier(FUNCTION), sql.Literal(body))


async def install_trigger(
    conn: AsyncConnection[Any], table: PublishedTable, own_schema: str
) -> None:
    """Create (or replace) the function and the table's trigger. Call in a transaction."""
    await conn.execute(_function_sql(own_schema))
    keys = "{" + ",".join(table.primary_key) + "}"
    await conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {}"
            " FOR EACH ROW EXECUTE FUNCTION {}.{}({}, {})"
        ).format(
            sql.Identifier(TRIGGER),
            table.ident(),
            sql.Identifier(own_schema),
            sql.Identifier(FUNCTION),
            sql.Literal(table.spec.owner_column),
            sql.Literal(keys),
        )
    )


def _key_text(value: Any) -> str:
    """A primary-key value from `to_jsonb` as `->>` would give it (to compare as text)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


async def read_row(
    conn: AsyncConnection[Any], table: PublishedTable, key: dict[str, Any]
) -> dict[str, Any] | None:
    where = sql.SQL(" AND ").join(
        sql.SQL("{}::text = %s").format(sql.SQL("t.") + sql.Identifier(k))
        for k in table.primary_key
    )
    query = sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE {}").format(table.ident(), where)
    cur = await conn.execute(query, [_key_text(key.get(k)) for k in table.primary_key])
    found = await cur.fetchone()
    return None if found is None else dict(found[0])


async def scan_rows(
    conn: AsyncConnection[Any],
    table: PublishedTable,
    owner: str | None,
    after: tuple[str, ...] | None,
    limit: int,
) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    """One page of rows (all, or one owner's) with their keyset positions, in primary-key order
    (compared as text)."""
    keys = [sql.SQL("t.{}::text").format(sql.Identifier(k)) for k in table.primary_key]
    key_row = sql.SQL("ROW({})").format(sql.SQL(", ").join(keys))
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if owner is not None:
        clauses.append(sql.SQL("t.{}::text = %s").format(sql.Identifier(table.spec.owner_column)))
        params.append(owner)
    if after is not None:
        marks = sql.SQL(", ").join(sql.SQL("%s") for _ in after)
        clauses.append(sql.SQL("{} > ROW({})").format(key_row, marks))
        params.extend(after)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
    query = sql.SQL("SELECT to_jsonb(t), {} FROM {} t{} ORDER BY {} LIMIT {}").format(
        sql.SQL(", ").join(keys), table.ident(), where, sql.SQL(", ").join(keys),
        sql.Literal(limit),
    )  # fmt: skip
    cur = await conn.execute(query, params)
    rows = await cur.fetchall()
    return [(dict(row[0]), tuple(row[1:])) for row in rows]
