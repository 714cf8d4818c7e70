"""The read-only PostgREST subset for `/rest/v1/jobs` that supabase-py's table queries use.

GET and HEAD; `select=*` or a column list; filters `col=[not.]eq|neq|gt|gte|lt|lte|in|is.<v>`;
`order=col.asc|desc[.nullsfirst|.nullslast]` (comma list); `limit`, `offset`;
`Prefer: count=exact` -> `Content-Range`; `Accept: application/vnd.pgrst.object+json` -> one
object (406 otherwise); errors as `{"message","code","hint","details"}`. The token comes from
`Authorization: Bearer` or `apikey`, with the same row-level rule as Realtime.

It reads through `Store.list_jobs` (narrowed by user, status and type where the filters allow),
pages through in the store's order (newest first), and filters, sorts and slices here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from jobctl.server.auth import AuthFailed, Principal
from jobctl.server.realtime.filters import Condition, FilterError, parse_condition
from jobctl.server.realtime.protocol import dumps
from jobctl.server.realtime.tables import JOBS, RowView, to_wire
from jobctl.server.records import JobRow
from jobctl.server.store.base import ListQuery, Store

router = APIRouter(include_in_schema=False)
OBJECT_TYPE = "application/vnd.pgrst.object+json"
PAGE = 500
RESERVED = {"select", "order", "limit", "offset"}


class PgrstError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self) -> JSONResponse:
        body = {"message": self.message, "code": self.code, "hint": None, "details": self.details}
        return JSONResponse(body, status_code=self.status)


@dataclass
class Order:
    column: str
    desc: bool
    nulls_first: bool


@dataclass
class TableQuery:
    columns: tuple[str, ...]
    conditions: list[Condition]
    orders: list[Order]
    limit: int | None
    offset: int


def _filter_error(exc: FilterError) -> PgrstError:
    text = str(exc)
    if text.startswith("invalid column for filter "):
        column = text.rsplit(" ", 1)[1]
        return PgrstError(400, "42703", f"column jobs.{column} does not exist")
    if text.startswith("invalid input syntax"):
        return PgrstError(400, "22P02", text)
    return PgrstError(400, "PGRST100", f'"failed to parse filter ({text})"')


def _column(name: str) -> str:
    name = name.strip()
    if name not in JOBS.column_names:
        raise PgrstError(400, "42703", f"column jobs.{name} does not exist")
    return name


def _int(name: str, value: str) -> int:
    if not value.isdigit():
        raise PgrstError(400, "PGRST100", f'"failed to parse {name} ({value[:40]})"')
    return int(value)


def parse_query(params: list[tuple[str, str]]) -> TableQuery:
    columns: tuple[str, ...] = JOBS.column_names
    conditions: list[Condition] = []
    orders: list[Order] = []
    limit: int | None = None
    offset = 0
    for key, value in params:
        if key == "select":
            if value.strip() not in ("", "*"):
                columns = tuple(_column(part) for part in value.split(","))
        elif key == "order":
            for part in value.split(","):
                column, *mods = part.strip().split(".")
                desc, nulls_first = False, None
                for mod in mods:
                    if mod in ("asc", "desc"):
                        desc = mod == "desc"
                    elif mod in ("nullsfirst", "nullslast"):
                        nulls_first = mod == "nullsfirst"
                    else:
                        raise PgrstError(400, "PGRST100", f'"failed to parse order ({part})"')
                # PostgreSQL's default: NULLs sort as if larger than every value.
                orders.append(
                    Order(_column(column), desc, desc if nulls_first is None else nulls_first)
                )
        elif key == "limit":
            limit = _int(key, value)
        elif key == "offset":
            offset = _int(key, value)
        elif key in ("and", "or", "not"):
            raise PgrstError(400, "PGRST100", f"logical operator {key!r} is not supported here")
        else:
            try:
                conditions.append(parse_condition(JOBS, key, value))
            except FilterError as exc:
                raise _filter_error(exc) from None
    return TableQuery(columns, conditions, orders, limit, offset)


def _principal(request: Request) -> Principal:
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    token = token or request.headers.get("apikey", "") or request.query_params.get("apikey", "")
    if not token:
        raise PgrstError(401, "PGRST302", "Anonymous access is disabled")
    try:
        who: Principal = request.app.state.auth.authenticate(token)
    except AuthFailed as exc:
        if "expired" in str(exc):
            raise PgrstError(401, "PGRST303", "JWT expired") from None
        raise PgrstError(401, "PGRST301", f"JWT invalid: {exc}") from None
    return who


def _narrow(query: TableQuery, scope: str | None) -> ListQuery | None:
    """What the store can filter on its own; None when nothing can match."""
    narrowed = ListQuery(user_id=scope, limit=PAGE)
    for cond in query.conditions:
        if cond.negate:
            continue
        if cond.column == "status" and cond.op in ("eq", "in"):
            wanted = {cond.value} if cond.op == "eq" else set(cond.value)
            if narrowed.statuses:
                wanted &= set(narrowed.statuses)
            if not wanted:
                return None
            narrowed.statuses = sorted(wanted)
        elif cond.column == "type" and cond.op == "eq":
            if narrowed.type not in (None, cond.value):
                return None
            narrowed.type = cond.value
    return narrowed


async def _scan(store: Store, narrowed: ListQuery) -> AsyncIterator[JobRow]:
    while True:
        rows, cursor = await store.list_jobs(narrowed)
        for row in rows:
            yield row
        if cursor is None:
            return
        narrowed.cursor = cursor


def _sort(rows: list[tuple[JobRow, RowView]], orders: list[Order]) -> list[tuple[JobRow, RowView]]:
    for order in reversed(orders):  # stable sorts, last key first
        nulls = [r for r in rows if r[1].get(order.column) is None]
        values = [r for r in rows if r[1].get(order.column) is not None]
        values.sort(key=lambda r: _sortable(r[1].get(order.column)), reverse=order.desc)
        rows = nulls + values if order.nulls_first else values + nulls
    return rows


def _sortable(value: Any) -> Any:
    return value if isinstance(value, int | str) else dumps(value)


async def run_query(
    store: Store, who: Principal, query: TableQuery, count: bool
) -> tuple[list[dict[str, Any]], int | None]:
    if who.user_id is None and not who.is_service:
        return [], 0 if count else None  # row-level security: anon reads nothing
    narrowed = _narrow(query, who.scope)
    if narrowed is None:
        return [], 0 if count else None
    # The store's own order is newest first; then the scan can stop at offset + limit.
    natural = not query.orders or [(o.column, o.desc) for o in query.orders] == [
        ("created_at", True)
    ]
    enough = None if count or not natural or query.limit is None else query.offset + query.limit
    matched: list[tuple[JobRow, RowView]] = []
    async for row in _scan(store, narrowed):
        view = RowView(JOBS, row, None)
        if all(cond.matches(view.get) for cond in query.conditions):
            matched.append((row, view))
            if enough is not None and len(matched) >= enough:
                break
    if not natural:
        matched = _sort(matched, query.orders)
    total = len(matched) if count else None
    end = None if query.limit is None else query.offset + query.limit
    page = matched[query.offset : end]
    out = []
    for row, _ in page:
        wire = to_wire(JOBS, row.to_api())
        out.append({name: wire[name] for name in query.columns})
    return out, total


@router.api_route("/rest/v1/{table}", methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"])
async def read_table(table: str, request: Request) -> Response:
    try:
        return await _read_table(table, request)
    except PgrstError as exc:
        return exc.response()


async def _read_table(table: str, request: Request) -> Response:
    profile = request.headers.get("accept-profile", "public")
    if profile != "public":
        raise PgrstError(406, "PGRST106", "The schema must be one of the following: public")
    if table != JOBS.name:
        message = f"Could not find the table 'public.{table}' in the schema cache"
        raise PgrstError(404, "PGRST205", message)
    if request.method not in ("GET", "HEAD"):
        raise PgrstError(405, "PGRST000", f"{request.method}: this endpoint is read-only")
    who = _principal(request)
    query = parse_query(list(request.query_params.multi_items()))
    prefer = request.headers.get("prefer", "")
    count = any(p.strip().startswith("count=") for p in prefer.split(","))
    store: Store = request.app.state.engine.store
    rows, total = await run_query(store, who, query, count)
    if total is not None and query.offset > 0 and query.offset >= total:
        raise PgrstError(
            416,
            "PGRST103",
            "Requested range not satisfiable",
            f"An offset of {query.offset} was requested, but there are only {total} rows.",
        )
    shown = "*" if total is None else str(total)
    span = f"{query.offset}-{query.offset + len(rows) - 1}" if rows else "*"
    headers = {"Content-Range": f"{span}/{shown}"}
    status = 206 if total is not None and query.offset + len(rows) < total else 200
    if OBJECT_TYPE in request.headers.get("accept", ""):
        if len(rows) != 1:
            raise PgrstError(
                406,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                f"The result contains {len(rows)} rows",
            )
        body, media = dumps(rows[0]), OBJECT_TYPE + "; charset=utf-8"
        status = 200
    else:
        body, media = dumps(rows), "application/json; charset=utf-8"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body.encode()))
        return Response(status_code=status, headers=headers, media_type=media)
    return Response(body, status_code=status, headers=headers, media_type=media)
