"""Row filters in PostgREST syntax (`column=op.value`), parsed once and matched per change.

Used by Realtime bindings (`filter: "status=in.(pending,running)"`, several conditions joined
by commas, as Realtime v2.100+ accepts) and by the PostgREST subset (one query parameter each).
Literals are cast to the column's type when parsed, so comparisons are type-aware: `progress=gt.9`
compares integers, `created_at=gte.2026-01-01T00:00:00Z` compares instants, `id=eq.<UUID>`
ignores case. SQL semantics for NULL: only `is` matches a NULL value.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobctl.server.realtime.tables import MISSING, Table, parse_timestamp

OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "is")
MAX_IN_VALUES = 100
INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
ORDERED = {"int4", "int8", "timestamptz", "text", "uuid"}


class FilterError(ValueError):
    """A filter that cannot be parsed or does not fit the table; the message says why."""


def _cast(table: Table, column: str, kind: str, text: str) -> Any:
    if kind in ("int4", "int8"):
        if not INT_RE.match(text):
            raise FilterError(f'invalid input syntax for type integer: "{text}"')
        return int(text)
    if kind == "timestamptz":
        try:
            return parse_timestamp(text)
        except ValueError:
            raise FilterError(
                f'invalid input syntax for type timestamp with time zone: "{text}"'
            ) from None
    if kind == "uuid":
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise FilterError(f'invalid input syntax for type uuid: "{text}"') from None
    if kind == "jsonb":
        try:
            return _canonical(json.loads(text))
        except ValueError:
            raise FilterError(f'invalid input syntax for type json: "{text}"') from None
    return text


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _split_list(text: str) -> list[str]:
    """`(a,"b,c",d)` -> ['a', 'b,c', 'd']."""
    if not (text.startswith("(") and text.endswith(")")):
        raise FilterError(f"`in` needs a parenthesised list like in.(a,b), got {text[:60]!r}")
    inner = text[1:-1]
    if not inner:
        return []
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in inner:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items]


@dataclass(frozen=True, slots=True)
class Condition:
    column: str
    op: str
    value: Any
    negate: bool = False
    kind: str = "text"

    def matches(self, get: Callable[[str], Any]) -> bool:
        actual = get(self.column)
        if actual is MISSING:
            # Supabase joins filters to the columns the change carries, so a filter on a column
            # a DELETE's primary-key-only old record lacks is vacuously true.
            return True
        if self.op == "is":
            result = actual is self.value if self.value is None else actual == self.value
            return result != self.negate
        if actual is None:
            return False  # NULL compares as unknown, negated or not
        if self.kind == "uuid":
            actual = str(actual).lower()
        elif self.kind == "jsonb":
            actual = _canonical(actual)
        op = self.op
        if op == "eq":
            result = actual == self.value
        elif op == "neq":
            result = actual != self.value
        elif op == "in":
            result = actual in self.value
        else:
            try:
                result = {
                    "lt": actual < self.value,
                    "lte": actual <= self.value,
                    "gt": actual > self.value,
                    "gte": actual >= self.value,
                }[op]
            except TypeError:
                return False
        return result != self.negate


def parse_condition(table: Table, column: str, expression: str) -> Condition:
    """`status` + `in.(pending,running)` -> a Condition on that column of `table`."""
    kind = table.type_of(column)
    if kind is None:
        raise FilterError(f"invalid column for filter {column}")
    negate = False
    if expression.startswith("not."):
        negate, expression = True, expression[4:]
    op, dot, text = expression.partition(".")
    if not dot or op not in OPERATORS:
        raise FilterError(
            f"unsupported operator {op[:20]!r} in {column}={expression[:60]!r}"
            f" (one of {', '.join(OPERATORS)})"
        )
    if op == "in":
        items = _split_list(text)
        if len(items) > MAX_IN_VALUES:
            raise FilterError(f"too many values for `in` filter. Maximum {MAX_IN_VALUES}")
        value: Any = frozenset(_cast(table, column, kind, item) for item in items)
    elif op == "is":
        values = {"null": None, "true": True, "false": False, "not_null": None}
        if text.lower() not in values:
            raise FilterError(f"`is` takes null, not_null, true or false, got {text[:40]!r}")
        negate = negate != (text.lower() == "not_null")
        value = values[text.lower()]
    else:
        if kind == "jsonb" and op not in ("eq", "neq"):
            raise FilterError(f"operator {op} is not supported on jsonb column {column}")
        if kind not in ORDERED and op not in ("eq", "neq"):
            raise FilterError(f"operator {op} is not supported on {kind} column {column}")
        value = _cast(table, column, kind, text)
    return Condition(column, op, value, negate, kind)


def _split_conditions(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_filter(table: Table, text: str) -> tuple[Condition, ...]:
    """A Realtime binding's `filter`: `col=op.value[,col=op.value...]`; "" means every row."""
    if not text.strip():
        return ()
    conditions = []
    for part in _split_conditions(text):
        column, eq, expression = part.partition("=")
        if not eq or not column.strip():
            raise FilterError(f"expected column=operator.value, got {part[:80]!r}")
        conditions.append(parse_condition(table, column.strip(), expression))
    return tuple(conditions)


def matches_all(conditions: tuple[Condition, ...], get: Callable[[str], Any]) -> bool:
    return all(condition.matches(get) for condition in conditions)
