"""`GET /rest/v1/`: the OpenAPI (Swagger 2.0) document PostgREST serves for a schema, for the
tables this server exposes there (Accept-Profile picks the schema, as PostgREST does).

Shaped like PostgREST 12's: `definitions.<table>` with `required` (the NOT NULL columns) and
`properties.<column>` = {format: PostgreSQL's type name, type: the JSON type (none for json and
jsonb), default, enum, and "Note:\\nThis is a Primary Key.<pk/>" in `description`};
`paths./<table>` with a GET whose parameters refer to `#/parameters/rowFilter.<table>.<column>`
and the common ones (select, order, range, offset, limit, preferCount). Only GET: every table
here is read-only. Needs a valid key (any role). What `jobctl config detect` reads to propose a profile's mapping.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response

from jobctl import __version__
from jobctl.jobshape import JOB_FIELDS
from jobctl.server.realtime.pgquery import PgrstError
from jobctl.server.realtime.protocol import dumps
from jobctl.server.realtime.rest import catalog_of, principal_of, schema_of
from jobctl.server.realtime.tables import JOBS, ColumnInfo, Table

router = APIRouter(include_in_schema=False)

# format_type() names of the typnames our own tables use
OWN_FORMATS = {
    "uuid": "uuid", "text": "text", "int4": "integer", "int8": "bigint",
    "timestamptz": "timestamp with time zone", "jsonb": "jsonb", "bool": "boolean",
}  # fmt: skip
INTEGERS = {"smallint", "integer", "bigint"}
NUMBERS = {"numeric", "real", "double precision"}
LITERAL = re.compile(r"^'((?:[^']|'')*)'::[\w .\"\[\]]+$")
MEDIA = [
    "application/json",
    "application/vnd.pgrst.object+json;nulls=stripped",
    "application/vnd.pgrst.object+json",
    "text/csv",
]
COMMON_PARAMETERS: dict[str, Any] = {
    "select": {"name": "select", "description": "Filtering Columns", "required": False,
               "in": "query", "type": "string"},
    "order": {"name": "order", "description": "Ordering", "required": False, "in": "query",
              "type": "string"},
    "range": {"name": "Range", "description": "Limiting and Pagination", "required": False,
              "in": "header", "type": "string"},
    "rangeUnit": {"name": "Range-Unit", "description": "Limiting and Pagination",
                  "required": False, "default": "items", "in": "header", "type": "string"},
    "offset": {"name": "offset", "description": "Limiting and Pagination", "required": False,
               "in": "query", "type": "string"},
    "limit": {"name": "limit", "description": "Limiting and Pagination", "required": False,
              "in": "query", "type": "string"},
    "preferCount": {"name": "Prefer", "description": "Preference", "required": False,
                    "enum": ["count=none"], "in": "header", "type": "string"},
}  # fmt: skip


def swagger_type(fmt: str) -> dict[str, Any]:
    """PostgREST's mapping of a PostgreSQL type to a Swagger type (json and jsonb: none)."""
    if fmt.endswith("[]"):
        return {"type": "array", "items": swagger_type(fmt[:-2]) or {"type": "string"}}
    if fmt in ("json", "jsonb"):
        return {}
    if fmt == "boolean":
        return {"type": "boolean"}
    if fmt in INTEGERS:
        return {"type": "integer"}
    if fmt in NUMBERS:
        return {"type": "number"}
    return {"type": "string"}


def _default(expression: str, fmt: str) -> Any:
    """A column default as PostgREST shows it: a literal's value, else the expression."""
    match = LITERAL.match(expression)
    if match:
        return match.group(1).replace("''", "'")
    if fmt in INTEGERS and re.fullmatch(r"-?\d+", expression):
        return int(expression)
    if fmt == "boolean" and expression in ("true", "false"):
        return expression == "true"
    return expression


def column_details(table: Table) -> tuple[ColumnInfo, ...]:
    if table.details:
        return table.details
    nullable = {f.name: f.nullable for f in JOB_FIELDS} if table.name == JOBS.name else {}
    return tuple(
        ColumnInfo(name, OWN_FORMATS.get(kind, kind), not nullable.get(name, True))
        for name, kind in table.columns
    )


def definition(table: Table) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for column in column_details(table):
        prop: dict[str, Any] = {}
        if column.default is not None:
            prop["default"] = _default(column.default, column.format)
        if column.name in table.primary_key:
            prop["description"] = "Note:\nThis is a Primary Key.<pk/>"
        if column.enum:
            prop["enum"] = list(column.enum)
        prop["format"] = column.format
        prop.update(swagger_type(column.format))
        properties[column.name] = prop
        if column.not_null:
            required.append(column.name)
    out: dict[str, Any] = {}
    if required:
        out["required"] = required
    out["properties"] = properties
    out["type"] = "object"
    return out


def document(tables: list[Table], schema: str, host: str) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "produces": ["application/openapi+json", "application/json"],
                "responses": {"200": {"description": "OK"}},
                "summary": "OpenAPI description (this document)",
                "tags": ["Introspection"],
            }
        }
    }
    definitions: dict[str, Any] = {}
    parameters: dict[str, Any] = dict(COMMON_PARAMETERS)
    for table in tables:
        refs = []
        for column in column_details(table):
            key = f"rowFilter.{table.name}.{column.name}"
            parameters[key] = {
                "name": column.name,
                "required": False,
                "format": column.format,
                "in": "query",
                "type": "string",
            }
            refs.append({"$ref": f"#/parameters/{key}"})
        refs += [{"$ref": f"#/parameters/{name}"} for name in COMMON_PARAMETERS]
        paths[f"/{table.name}"] = {
            "get": {
                "parameters": refs,
                "responses": {
                    "200": {
                        "description": "OK",
                        "schema": {"items": {"$ref": f"#/definitions/{table.name}"},
                                   "type": "array"},
                    },
                    "206": {"description": "Partial Content"},
                },
                "tags": [table.name],
            }
        }  # fmt: skip
        definitions[table.name] = definition(table)
    return {
        "swagger": "2.0",
        "info": {
            "description": "",
            "title": "standard public schema" if schema == "public" else f"{schema} schema",
            "version": f"jobctl {__version__}",
        },
        "host": host,
        "basePath": "/",
        "schemes": ["http"],
        "consumes": MEDIA,
        "produces": MEDIA,
        "paths": paths,
        "definitions": definitions,
        "parameters": parameters,
        "externalDocs": {
            "description": "PostgREST Documentation",
            "url": "https://postgrest.org/en/v12/references/api.html",
        },
    }


def served_tables(tables: list[Table]) -> list[Table]:
    """Those `/rest/v1/<table>` answers for (rest._served): published ones, and our jobs."""
    return [t for t in tables if t.published or t.name == JOBS.name]


@router.get("/rest/v1/")
@router.get("/rest/v1")
async def openapi(request: Request) -> Response:
    try:
        principal_of(request)  # any valid key: anon, a user's, service_role
        catalog = catalog_of(request)
        schema = schema_of(request, catalog)
    except PgrstError as exc:
        return Response(dumps(exc.body()), status_code=exc.status, media_type="application/json")
    doc = document(served_tables(catalog.in_schema(schema)), schema, request.url.netloc)
    return Response(dumps(doc), media_type="application/openapi+json; charset=utf-8")
