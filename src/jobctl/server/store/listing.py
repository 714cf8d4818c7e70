"""The SQL of a job listing (`Store.list_jobs`), for both stores: every filter the API takes,
newest first, as a page of an index (migration 0007 holds the indexes).

- Each filter is an equality on the leading columns of an index that ends in
  (created_at, id), so a page is a walk down one index, whatever the history holds.
- Several statuses are one ordered walk each (a `UNION ALL` of per-status pages, merged
  and cut to the page): `status IN (..)` cannot give created_at order from a
  (status, created_at) index, and would sort every matching row. A type without a status
  is the same walk over the five statuses, on the (type, status, created_at, id) index.
- `since` and the cursor bound created_at on both sides (`created_at >= since AND
  created_at <= cursor`), so a deep page starts where the cursor points (keyset, never
  OFFSET), and a `since` that leaves fewer than a page stops at the window's edge.
- An id prefix of three characters or more is a range on the id (`id >= 'abc' AND
  id < 'abd'`) that the primary key (SQLite) or `jobs_id_c` (PostgreSQL) serves, and
  its matches are sorted (few: three hex digits match one job in 4,096). A shorter one
  matches too many to sort: it filters the ordered walk instead (one job in 16 or 256
  matches, so a page is found within a few thousand rows).
- Summaries (the default of the API) do not select `input` or `output`; they carry
  `input_bytes`, the stored input's size in bytes.

PostgreSQL compares ids in byte order (`COLLATE "C"`), as SQLite does, whatever the
database's collation: the order, the cursor and the prefix range agree on both stores.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from jobctl.server.records import JOB_COLUMNS, STATUSES, JobRow
from jobctl.server.store.base import ListQuery, decode_cursor, encode_cursor

# Below this many characters an id prefix matches too many jobs to sort them all: the
# listing walks its ordered index and skips the jobs whose id does not match instead.
PREFIX_RANGE_MIN = 3


@dataclass(frozen=True)
class Dialect:
    mark: str  # the placeholder
    id_order: str  # the id as the order, the cursor and the prefix compare it
    input_bytes: str  # the stored input's size in bytes
    # How a short id prefix filters the walk. SQLite: a function of the id, which its
    # planner (without statistics) cannot take for a way in instead of the walk's index.
    # PostgreSQL: the id's range, which the walk's index checks on its own entries (each
    # index ends in the id), not on the table's rows.
    short_prefix_range: bool


# octet_length() (SQLite 3.43) reads a text's size from the record header; before it,
# the size in bytes is the length of the text cast to a blob (SQLite reads the text).
_SQLITE_BYTES = (
    "octet_length(input)"
    if sqlite3.sqlite_version_info >= (3, 43)
    else "length(CAST(input AS BLOB))"
)
SQLITE = Dialect("?", "id", _SQLITE_BYTES, short_prefix_range=False)
# octet_length of a text reads its stored size (TOAST header), not the text itself.
POSTGRES = Dialect("%s", 'id COLLATE "C"', "octet_length(input)", short_prefix_range=True)


def select_list(d: Dialect, query: ListQuery) -> str:
    """The columns of a listed row (records.JobRow, then input_bytes); a column that is
    not read is a constant of its type."""
    cols = [
        "'' AS input" if c == "input" and not query.read_input
        else "NULL AS output" if c == "output" and not query.read_output
        else c
        for c in JOB_COLUMNS
    ]  # fmt: skip
    return ", ".join([*cols, f"{d.input_bytes} AS input_bytes"])


def prefix_end(prefix: str) -> str:
    """The first text after every text that starts with `prefix` (in byte order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def list_sql(d: Dialect, query: ListQuery) -> tuple[str, list[Any]]:
    """(sql, args) of one page of `query`, limit + 1 rows (the extra one says a next page exists)."""
    m = d.mark
    prefix = query.id_prefix or ""
    by_prefix = len(prefix) >= PREFIX_RANGE_MIN
    where: list[str] = []
    args: list[Any] = []
    if query.user_id is not None:
        where.append(f"user_id = {m}")
        args.append(query.user_id)
    if query.type:
        where.append(f"type = {m}")
        args.append(query.type)
    if query.since_us is not None:
        where.append(f"created_at >= {m}")
        args.append(query.since_us)
    if query.cursor:
        created, last_id = decode_cursor(query.cursor)
        where.append(f"created_at <= {m} AND (created_at < {m} OR {d.id_order} < {m})")
        args.extend([created, created, last_id])
    if prefix and not by_prefix:  # a filter on the walk, not a way into the table
        if d.short_prefix_range:
            where.append(f"{d.id_order} >= {m} AND {d.id_order} < {m}")
            args.extend([prefix, prefix_end(prefix)])
        else:
            where.append(f"substr(id, 1, {len(prefix)}) = {m}")
            args.append(prefix)
    order = f"ORDER BY created_at DESC, {d.id_order} DESC LIMIT {m}"
    statuses = sorted(set(query.statuses))
    cols = select_list(d, query)
    if by_prefix:
        # The prefix's range first, fenced off (MATERIALIZED) so that no planner walks
        # a user's or a status's whole index instead; the other filters on its few rows.
        if statuses:
            where.append(f"status IN ({', '.join([m] * len(statuses))})")
            args.extend(statuses)
        sql = (
            f"WITH m AS MATERIALIZED (SELECT {cols} FROM jobs"
            f" WHERE {d.id_order} >= {m} AND {d.id_order} < {m}) SELECT * FROM m"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return f"{sql} {order}", [prefix, prefix_end(prefix), *args, query.limit + 1]
    if not statuses and query.type:
        statuses = list(STATUSES)  # the type's jobs, one status at a time
    if len(statuses) <= 1:
        if statuses:
            where.append(f"status = {m}")
            args.extend(statuses)
        sql = f"SELECT {cols} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return f"{sql} {order}", [*args, query.limit + 1]
    arms: list[str] = []
    arm_args: list[Any] = []
    for status in statuses:
        conds = " AND ".join([*where, f"status = {m}"])
        arms.append(f"SELECT * FROM (SELECT {cols} FROM jobs WHERE {conds} {order}) AS s")
        arm_args += [*args, status, query.limit + 1]
    merged = " UNION ALL ".join(arms)
    return f"SELECT * FROM ({merged}) AS page {order}", [*arm_args, query.limit + 1]


def page_of(rows: list[JobRow], query: ListQuery) -> tuple[list[JobRow], str | None]:
    """The page and the cursor of the next one (None: this was the last)."""
    if len(rows) <= query.limit:
        return rows, None
    rows = rows[: query.limit]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id)
