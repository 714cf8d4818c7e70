"""The read-only PostgREST subset for `/rest/v1/jobs` (and the app tables published with
`--publish`) that supabase-py's and supabase-js's table queries use (query syntax: pgquery.py).

GET and HEAD; `Prefer: count=exact` -> `Content-Range`; `Accept`: JSON (default),
`application/vnd.pgrst.object+json` (one object, else 406 PGRST116), `text/csv` (a header row,
then one row per job), anything else 406 PGRST107. `/rest/v1/rpc/<fn>`: 404 PGRST202 (jobctl
exposes no functions). Errors as `{"message","code","hint","details"}`. The token comes from
`Authorization: Bearer` or `apikey`, with the same row-level rule as Realtime.

It reads our jobs through `Store.list_jobs` (narrowed by user, status, type and id where the
filters allow), pages through in the store's order (newest first), and filters, sorts and slices
here; a published table through `PostgresStore.scan_published` (the owner's rows by primary key).
`Accept-Profile` picks the schema: `public` first, `jobctl` for ours beside published tables.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from jobctl.server.auth import AuthFailed, Principal
from jobctl.server.realtime.pgquery import Order, PgrstError, TableQuery, parse_query
from jobctl.server.realtime.protocol import dumps
from jobctl.server.realtime.tables import DEFAULT_CATALOG, JOBS, Catalog, RowView, Table, to_wire
from jobctl.server.records import JobRow
from jobctl.server.store.base import ListQuery, Store

router = APIRouter(include_in_schema=False)
OBJECT_TYPE = "application/vnd.pgrst.object+json"
JSON_TYPES = ("application/json", "application/*", "*/*")
PAGE = 500


def principal_of(request: Request) -> Principal:
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
    for cond in query.plain:
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
        elif cond.column == "id" and cond.op == "eq" and isinstance(cond.value, str):
            # one job: an index look-up (ids are fixed-length, so the prefix is the id)
            if narrowed.id_prefix not in (None, cond.value.lower()):
                return None
            narrowed.id_prefix = cond.value.lower()
    return narrowed


async def _scan(store: Store, narrowed: ListQuery, first: int = PAGE) -> AsyncIterator[JobRow]:
    """The narrowed jobs, newest first: a first page of `first` rows (what the request
    asks for, when the store's order is the request's), then pages of PAGE."""
    narrowed.limit = max(1, min(first, PAGE))
    while True:
        rows, cursor = await store.list_jobs(narrowed)
        for row in rows:
            yield row
        if cursor is None:
            return
        narrowed.cursor = cursor
        narrowed.limit = PAGE


def _sort(rows: list[tuple[Any, RowView]], orders: list[Order]) -> list[tuple[Any, RowView]]:
    for order in reversed(orders):  # stable sorts, last key first
        path = order.path

        def key_of(r: tuple[Any, RowView], path: Any = path) -> Any:
            return path.extract(r[1].get(path.column))

        nulls = [r for r in rows if key_of(r) is None]
        values = [r for r in rows if key_of(r) is not None]
        values.sort(key=lambda r: _sortable(key_of(r)), reverse=order.desc)
        rows = nulls + values if order.nulls_first else values + nulls
    return rows


def _sortable(value: Any) -> Any:
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, int | float):
        return (0, value, "")
    return (1, 0, value if isinstance(value, str) else dumps(value))


async def run_query(
    store: Store, who: Principal, query: TableQuery, count: bool
) -> tuple[list[dict[str, Any]], int | None]:
    if who.user_id is None and not who.is_service:
        return [], 0 if count else None  # row-level security: anon reads nothing
    narrowed = _narrow(query, who.scope)
    if narrowed is None:
        return [], 0 if count else None
    # The store's own order is newest first; then the scan can stop at offset + limit.
    natural = not query.orders or [(o.path.column, o.path.steps, o.desc) for o in query.orders] == [
        ("created_at", (), True)
    ]
    enough = None if count or not natural or query.limit is None else query.offset + query.limit
    matched: list[tuple[Any, RowView]] = []
    async for row in _scan(store, narrowed, PAGE if enough is None else enough):
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
        out.append({item.name: item.path.extract(wire[item.path.column]) for item in query.select})
    return out, total


def _media(accept: str) -> str:
    """The response type for an Accept header, by PostgREST's rules; 406 when none is served."""
    if not accept.strip():
        return "application/json"
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.append((-q, position, media.lower()))
    for _, _, media in sorted(ranked):
        if media in JSON_TYPES:
            return "application/json"
        if media in (OBJECT_TYPE, "text/csv"):
            return media
    raise PgrstError(406, "PGRST107", f"None of these media types are available: {accept[:200]}")


def _csv(rows: list[dict[str, Any]], names: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in names])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"  # PostgreSQL's text form, as PostgREST writes it
    if isinstance(value, str):
        return value
    return dumps(value)


@router.api_route("/rest/v1/rpc/{function:path}", methods=["GET", "HEAD", "POST"])
async def call_function(function: str, request: Request) -> Response:
    """jobctl exposes no database functions: PostgREST's answer for an unknown one."""
    names = sorted(k for k in request.query_params if k not in ("apikey",))
    if request.method == "POST":
        try:
            body = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            names = sorted(str(k) for k in body)
    fn = f"public.{function[:120]}"
    if names:
        listed = ", ".join(names)[:400]
        message = f"Could not find the function {fn}({listed}) in the schema cache"
        details = f"Searched for the function {fn} with parameters {listed}"
    else:
        message = f"Could not find the function {fn} without parameters in the schema cache"
        details = f"Searched for the function {fn} without parameters"
    details += " or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache."
    error = PgrstError(404, "PGRST202", message, details)
    return JSONResponse(error.body(), status_code=error.status)


@router.api_route("/rest/v1/{name}", methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"])
async def read_table(name: str, request: Request) -> Response:
    try:
        return await _read_table(name, request)
    except PgrstError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)


def catalog_of(request: Request) -> Catalog:
    catalog: Catalog = getattr(request.app.state, "catalog", DEFAULT_CATALOG)
    return catalog


def schema_of(request: Request, catalog: Catalog) -> str:
    """The schema a request reads (Accept-Profile; Content-Profile for writes), by PostgREST's
    rule: the first exposed schema when none is named."""
    header = "accept-profile" if request.method in ("GET", "HEAD") else "content-profile"
    schemas = catalog.schemas
    profile = request.headers.get(header, schemas[0])
    if profile not in schemas:
        listed = ", ".join(schemas)
        raise PgrstError(406, "PGRST106", f"The schema must be one of the following: {listed}")
    return profile


def _served(catalog: Catalog, schema: str, name: str) -> Table:
    table = catalog.get(schema, name)
    # Of our own tables, jobs is served (job_logs goes out over Realtime only).
    if table is None or not (table.published or table.name == JOBS.name):
        message = f"Could not find the table '{schema}.{name}' in the schema cache"
        raise PgrstError(404, "PGRST205", message)
    return table


async def run_published_query(
    store: Any, who: Principal, table: Table, query: TableQuery, count: bool
) -> tuple[list[dict[str, Any]], int | None]:
    """An app's published table: its owner's rows (all for service_role), filtered, sorted
    and sliced here; read in pages of PAGE rows by primary key."""
    if who.user_id is None and not who.is_service:
        return [], 0 if count else None
    natural = not query.orders
    enough = None if count or not natural or query.limit is None else query.offset + query.limit
    matched: list[tuple[Any, RowView]] = []
    after: tuple[str, ...] | None = None
    while True:
        page = await store.scan_published(table.change_source, who.scope, after, PAGE)
        for record, _position in page:
            view = RowView(table, None, record)
            if all(cond.matches(view.get) for cond in query.conditions):
                matched.append((record, view))
        if len(page) < PAGE or (enough is not None and len(matched) >= enough):
            break
        after = page[-1][1]
    if not natural:
        matched = _sort(matched, query.orders)
    total = len(matched) if count else None
    end = None if query.limit is None else query.offset + query.limit
    out = []
    for record, _ in matched[query.offset : end]:
        wire = to_wire(table, record)
        out.append({item.name: item.path.extract(wire[item.path.column]) for item in query.select})
    return out, total


async def _read_table(name: str, request: Request) -> Response:
    catalog = catalog_of(request)
    schema = schema_of(request, catalog)
    table = _served(catalog, schema, name)
    if request.method not in ("GET", "HEAD"):
        raise PgrstError(405, "PGRST000", f"{request.method}: this endpoint is read-only")
    who = principal_of(request)
    query = parse_query(list(request.query_params.multi_items()), table)
    media = _media(request.headers.get("accept", ""))
    prefer = request.headers.get("prefer", "")
    count = any(p.strip().startswith("count=") for p in prefer.split(","))
    store: Store = request.app.state.engine.store
    if table.published:
        rows, total = await run_published_query(store, who, table, query, count)
    else:
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
    if media == OBJECT_TYPE:
        if len(rows) != 1:
            raise PgrstError(
                406,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                f"The result contains {len(rows)} rows",
            )
        body, content_type = dumps(rows[0]), OBJECT_TYPE + "; charset=utf-8"
        status = 200
    elif media == "text/csv":
        names = list(dict.fromkeys(item.name for item in query.select))
        body, content_type = _csv(rows, names), "text/csv; charset=utf-8"
    else:
        body, content_type = dumps(rows), "application/json; charset=utf-8"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body.encode()))
        return Response(status_code=status, headers=headers, media_type=content_type)
    return Response(body, status_code=status, headers=headers, media_type=content_type)
