"""PostgREST query strings for `/rest/v1/jobs`, parsed into what the reader needs.

- `select`: `*`, columns, `*` mixed with columns, aliases (`jobId:id`), JSON paths
  (`input->steps`, `input->>name`, `output->items->0`; the key is the last path element, as
  PostgREST names it). Aggregates (`count()`) answer PGRST123 as PostgREST does with aggregates
  off (Supabase's default); embedded resources PGRST200 (jobs has no relationships).
- filters: `col=[not.]op.value`, also on JSON paths (`input->>name=eq.x` compares text,
  `input->steps=eq.3` compares JSON); `or=(...)`, `and=(...)`, `not.or=(...)`, nesting inside
  (`or=(status.eq.failed,and(progress.gt.50,attempt.gte.2))`).
- `order`, `limit`, `offset` (ASCII digits, at most 18: anything else is PGRST100, never a
  500).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobctl.server.realtime.filters import (
    Condition,
    FilterError,
    parse_condition,
    split_top_level,
)
from jobctl.server.realtime.protocol import MalformedMessage, load_json
from jobctl.server.realtime.tables import JOBS, Table

RESERVED = {"select", "order", "limit", "offset", "columns", "on_conflict"}
LOGIC = ("or", "and", "not.or", "not.and")
MAX_DIGITS = 18  # below 2**63: what PostgreSQL's bigint would take
MAX_PATH = 16


class PgrstError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.hint = details, hint

    def body(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "code": self.code,
            "hint": self.hint,
            "details": self.details,
        }


def syntax(message: str, details: str | None = None) -> PgrstError:
    return PgrstError(400, "PGRST100", message, details)


@dataclass(frozen=True)
class Path:
    """A column, or a JSON path into one: (key, as_text) steps, `->` then `->>` last."""

    column: str
    steps: tuple[tuple[str, bool], ...] = ()

    @property
    def as_text(self) -> bool:
        return bool(self.steps) and self.steps[-1][1]

    @property
    def default_name(self) -> str:
        return self.steps[-1][0] if self.steps else self.column

    def extract(self, value: Any) -> Any:
        for key, as_text in self.steps:
            if isinstance(value, dict):
                value = value.get(key)
            elif (
                isinstance(value, list) and _is_index(key) and -len(value) <= int(key) < len(value)
            ):
                value = value[int(key)]
            else:
                value = None
            if as_text and value is not None and not isinstance(value, str):
                value = json.dumps(value, separators=(", ", ": "))
            if value is None:
                return None
        return value


def _is_index(key: str) -> bool:
    digits = key[1:] if key.startswith("-") else key
    return digits.isascii() and digits.isdigit() and len(digits) <= MAX_DIGITS


def parse_path(text: str, table: Table = JOBS) -> Path:
    """`input->a->>b` -> Path('input', (('a', False), ('b', True)))."""
    text = text.strip()
    if "->" not in text:
        return Path(_column(text, table))
    head, rest = text.split("->", 1)
    column = _column(head, table)
    if table.type_of(column) != "jsonb":
        raise PgrstError(
            400, "42883", f"operator does not exist: {table.type_of(column)} -> unknown",
            hint="No operator matches the given name and argument types.",
        )  # fmt: skip
    steps: list[tuple[str, bool]] = []
    rest = "->" + rest
    while rest:
        as_text = rest.startswith("->>")
        rest = rest[3:] if as_text else rest[2:]
        key, sep, tail = rest.partition("->")
        if not key or (steps and steps[-1][1]):
            raise syntax(f"failed to parse JSON path ({text[:80]})")
        steps.append((key.strip("'\""), as_text))
        rest = sep + tail
        if len(steps) > MAX_PATH:
            raise syntax(f"a JSON path has at most {MAX_PATH} steps")
    return Path(column, tuple(steps))


def _column(name: str, table: Table) -> str:
    name = name.strip()
    if name not in table.column_names:
        raise PgrstError(400, "42703", f"column {table.name}.{name} does not exist")
    return name


@dataclass(frozen=True)
class SelectItem:
    name: str
    path: Path


def parse_select(text: str, table: Table = JOBS) -> list[SelectItem]:
    items: list[SelectItem] = []
    for raw in split_top_level(text):
        part = raw.strip()
        if not part:
            raise syntax(f"failed to parse select parameter ({text[:80]})")
        if part == "*":
            items += [SelectItem(c, Path(c)) for c in table.column_names]
            continue
        alias, colon, target = part.partition(":")
        if colon and target.startswith(":"):  # `col::type`, no alias
            alias, colon, target = "", "", part
        if not colon:
            alias, target = "", part
        if "::" in target:
            raise syntax(f"casts are not supported here ({part[:80]})")
        if "(" in target:
            name = target.split("(", 1)[0].split(".")[-1].strip()
            if name in ("count", "sum", "avg", "max", "min"):
                raise PgrstError(400, "PGRST123", "Use of aggregate functions is not allowed")
            relation = target.split("(", 1)[0].split("!")[0].strip()
            raise PgrstError(
                400,
                "PGRST200",
                f"Could not find a relationship between '{table.name}' and '{relation}' in the schema cache",
                f"Searched for a foreign key relationship between '{table.name}' and '{relation}'"
                f" in the schema '{table.schema}', but no matches were found.",
            )
        path = parse_path(target, table)
        items.append(SelectItem(alias.strip() or path.default_name, path))
    return items


@dataclass(frozen=True)
class PathCondition:
    """A condition on a JSON path: the column's value is extracted, then compared."""

    path: Path
    condition: Condition

    def matches(self, get: Callable[[str], Any]) -> bool:
        value = self.path.extract(get(self.path.column))
        return self.condition.matches(lambda _: value)


ORDERING = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class JsonCompare:
    """`input->n=gt.3`: jsonb ordering, for numbers against numbers and strings against strings
    (values of other kinds, or of different kinds, do not match)."""

    path: Path
    op: str
    value: Any
    negate: bool

    def matches(self, get: Callable[[str], Any]) -> bool:
        actual = self.path.extract(get(self.path.column))
        if _kind(actual) is None or _kind(actual) != _kind(self.value):
            return False
        result: bool = ORDERING[self.op](actual, self.value)
        return result != self.negate


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def _json_compare(path: Path, expression: str) -> JsonCompare | None:
    negate = expression.startswith("not.")
    op, dot, text = expression.removeprefix("not.").partition(".")
    if not dot or op not in ORDERING:
        return None
    try:
        value = load_json(text)
    except MalformedMessage as exc:
        raise PgrstError(400, "22P02", f"invalid input syntax for type json: {exc}") from None
    return JsonCompare(path, op, value, negate)


@dataclass(frozen=True)
class Group:
    """`or(...)` / `and(...)`, possibly negated."""

    any_of: bool
    items: tuple[Node, ...]
    negate: bool = False

    def matches(self, get: Callable[[str], Any]) -> bool:
        results = (item.matches(get) for item in self.items)
        result = any(results) if self.any_of else all(results)
        return result != self.negate


Node = Condition | PathCondition | JsonCompare | Group


def parse_filter_param(column: str, expression: str, table: Table = JOBS) -> Node:
    """One query parameter `column=expression` (column may be a JSON path)."""
    try:
        path = parse_path(column, table)
        if not path.steps:
            return parse_condition(table, path.column, expression)
        kind = "text" if path.as_text else "jsonb"
        if kind == "jsonb" and (ordered := _json_compare(path, expression)) is not None:
            return ordered
        return PathCondition(path, parse_condition(table, path.column, expression, kind=kind))
    except FilterError as exc:
        raise filter_error(exc, expression, table) from None


def parse_logic(key: str, value: str, depth: int = 0, table: Table = JOBS) -> Group:
    """`or` + `(a.eq.1,and(b.gt.2,c.lt.3))` -> a Group."""
    negate = key.startswith("not.")
    any_of = key.removeprefix("not.") == "or"
    if depth > 8:
        raise syntax("logic trees are at most 8 levels deep")
    if not (value.startswith("(") and value.endswith(")")):
        raise syntax(f"failed to parse logic tree ({value[:80]})", 'expected "(" and ")"')
    items: list[Node] = []
    for raw in split_top_level(value[1:-1]):
        part = raw.strip()
        head = part.split("(", 1)[0]
        if head in LOGIC and "(" in part:
            items.append(parse_logic(head, part[len(head) :], depth + 1, table))
            continue
        column, dot, expression = part.partition(".")
        if not dot:
            raise syntax(f"failed to parse logic tree ({value[:80]})")
        items.append(parse_filter_param(column, expression, table))
    if not items:
        raise syntax(f"failed to parse logic tree ({value[:80]})", "empty")
    return Group(any_of, tuple(items), negate)


def filter_error(exc: FilterError, expression: str, table: Table = JOBS) -> PgrstError:
    text = str(exc)
    if text.startswith("invalid column for filter "):
        column = text.rsplit(" ", 1)[1]
        return PgrstError(400, "42703", f"column {table.name}.{column} does not exist")
    if text.startswith("invalid input syntax"):
        return PgrstError(400, "22P02", text)
    if "out of range" in text:
        return PgrstError(400, "22003", text)
    return syntax(f"failed to parse filter ({expression[:80]})", text)


@dataclass
class Order:
    path: Path
    desc: bool
    nulls_first: bool


def parse_order(value: str, table: Table = JOBS) -> list[Order]:
    orders = []
    for part in split_top_level(value):
        target, *mods = part.strip().split(".")
        desc, nulls_first = False, None
        for mod in mods:
            if mod in ("asc", "desc"):
                desc = mod == "desc"
            elif mod in ("nullsfirst", "nullslast"):
                nulls_first = mod == "nullsfirst"
            else:
                raise syntax(f"failed to parse order ({part[:80]})")
        # PostgreSQL's default: NULLs sort as if larger than every value.
        orders.append(
            Order(parse_path(target, table), desc, desc if nulls_first is None else nulls_first)
        )
    return orders


def parse_count(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_DIGITS:
        shown = value[:40] + ("..." if len(value) > 40 else "")
        raise syntax(
            f"failed to parse {name} parameter ({shown})", "expected a non-negative integer"
        )
    return int(value)


@dataclass
class TableQuery:
    select: list[SelectItem]
    conditions: list[Node] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0

    @property
    def plain(self) -> list[Condition]:
        """Top-level conditions on whole columns: what the store can be asked to narrow by."""
        return [c for c in self.conditions if isinstance(c, Condition)]


def parse_query(params: list[tuple[str, str]], table: Table = JOBS) -> TableQuery:
    query = TableQuery(parse_select("*", table))
    for key, value in params:
        if key == "select":
            if value.strip() not in ("", "*"):
                query.select = parse_select(value, table)
        elif key == "order":
            query.orders += parse_order(value, table)
        elif key == "limit":
            query.limit = parse_count(key, value)
        elif key == "offset":
            query.offset = parse_count(key, value)
        elif key in LOGIC:
            query.conditions.append(parse_logic(key, value, table=table))
        elif key in RESERVED or key == "apikey":
            continue
        else:
            query.conditions.append(parse_filter_param(key, value, table))
    return query
