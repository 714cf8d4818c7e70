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

from jobctl.server.realtime.protocol import MalformedMessage, load_json
from jobctl.server.realtime.tables import MISSING, Table, parse_timestamp

OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "is", "like", "ilike", "isdistinct")
REFUSED = {  # Supabase accepts these; here a client's regex would run on the event loop
    "match": "regular expressions (match, imatch) are not supported here; use like or ilike",
    "imatch": "regular expressions (match, imatch) are not supported here; use like or ilike",
}
MAX_PATTERN = 256
MAX_IN_VALUES = 100
INT_RE = re.compile(r"^\s*[+-]?\d+\s*$", re.ASCII)
INT_RANGE = {"int4": ("integer", 2**31), "int8": ("bigint", 2**63)}
ORDERED = {"int4", "int8", "float8", "timestamptz", "text", "uuid"}


class FilterError(ValueError):
    """A filter that cannot be parsed or does not fit the table; the message says why."""


def _cast(table: Table, column: str, kind: str, text: str) -> Any:
    if kind in ("int4", "int8"):
        name, bound = INT_RANGE[kind]
        if not INT_RE.match(text):
            raise FilterError(f'invalid input syntax for type {name}: "{_clip(text)}"')
        digits = text.strip().lstrip("+-")
        if len(digits) > 20 or not -bound <= int(text) < bound:  # int() of 4,300+ digits raises
            raise FilterError(f'value "{_clip(text)}" is out of range for type {name}')
        return int(text)
    if kind == "float8":
        try:
            number = float(text)
        except ValueError:
            raise FilterError(f'invalid input syntax for type numeric: "{_clip(text)}"') from None
        if number != number or number in (float("inf"), float("-inf")):
            raise FilterError(f'invalid input syntax for type numeric: "{_clip(text)}"')
        return number
    if kind == "bool":
        truth = {"true": True, "t": True, "yes": True, "on": True, "1": True,
                 "false": False, "f": False, "no": False, "off": False, "0": False}  # fmt: skip
        if text.strip().lower() not in truth:
            raise FilterError(f'invalid input syntax for type boolean: "{_clip(text)}"')
        return truth[text.strip().lower()]
    if kind == "timestamptz":
        try:
            return parse_timestamp(text)
        except ValueError:
            raise FilterError(
                f'invalid input syntax for type timestamp with time zone: "{_clip(text)}"'
            ) from None
    if kind == "uuid":
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise FilterError(f'invalid input syntax for type uuid: "{_clip(text)}"') from None
    if kind == "jsonb":
        try:
            return _canonical(load_json(text))
        except MalformedMessage as exc:
            raise FilterError(f"invalid input syntax for type json: {exc}") from None
    return text


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:60] + "..."


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


class LikePattern:
    """SQL LIKE (`%` any run, `_` one character; `*` too, as PostgREST reads it), matched
    segment by segment: leftmost-first search between wildcards, so the cost is linear in the
    value for each segment and no pattern can backtrack catastrophically."""

    __slots__ = ("fold", "segments", "source", "tail_len")

    def __init__(self, source: str, fold: bool) -> None:
        self.source, self.fold = source, fold
        text = source.replace("*", "%")
        if fold:
            text = text.casefold()
        parts = text.split("%")
        self.tail_len = len(parts[-1])  # every part matches exactly as many characters
        self.segments = [
            re.compile("".join("." if c == "_" else re.escape(c) for c in part), re.DOTALL)
            for part in parts
        ]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LikePattern) and (other.source, other.fold) == (
            self.source,
            self.fold,
        )

    def __hash__(self) -> int:
        return hash((self.source, self.fold))

    def matches(self, value: str) -> bool:
        if self.fold:
            value = value.casefold()
        first, *middle = self.segments
        if not middle:
            return first.fullmatch(value) is not None
        *middle, last = middle
        head = first.match(value)
        if head is None:
            return False
        pos = head.end()
        for segment in middle:
            found = segment.search(value, pos)
            if found is None:
                return False
            pos = found.end()
        start = len(value) - self.tail_len
        return start >= pos and last.fullmatch(value, start) is not None


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
        if self.op == "isdistinct":
            if self.kind == "uuid" and actual is not None:
                actual = str(actual).lower()
            elif self.kind == "jsonb" and actual is not None:
                actual = _canonical(actual)
            distinct: bool = actual != self.value
            return distinct != self.negate
        if actual is None:
            return False  # NULL compares as unknown, negated or not
        if self.kind == "uuid":
            actual = str(actual).lower()
        elif self.kind == "jsonb":
            actual = _canonical(actual)
        op = self.op
        if op in ("like", "ilike"):
            pattern: LikePattern = self.value
            return (isinstance(actual, str) and pattern.matches(actual)) != self.negate
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


def parse_condition(
    table: Table, column: str, expression: str, kind: str | None = None
) -> Condition:
    """`status` + `in.(pending,running)` -> a Condition on that column of `table` (or, with
    `kind`, on a value of that type derived from the column: a JSON path's)."""
    kind = kind or table.type_of(column)
    if kind is None:
        raise FilterError(f"invalid column for filter {column}")
    negate = False
    if expression.startswith("not."):
        negate, expression = True, expression[4:]
    op, dot, text = expression.partition(".")
    if op in REFUSED:
        raise FilterError(REFUSED[op])
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
    elif op in ("like", "ilike"):
        if kind != "text":
            raise FilterError(f"operator {op} is not supported on {kind} column {column}")
        if len(text) > MAX_PATTERN:
            raise FilterError(f"a {op} pattern is at most {MAX_PATTERN} characters")
        value = LikePattern(text, fold=op == "ilike")
    elif op == "isdistinct":
        value = None if text.lower() == "null" else _cast(table, column, kind, text)
    else:
        if kind == "jsonb" and op not in ("eq", "neq"):
            raise FilterError(f"operator {op} is not supported on jsonb column {column}")
        if kind not in ORDERED and op not in ("eq", "neq"):
            raise FilterError(f"operator {op} is not supported on {kind} column {column}")
        value = _cast(table, column, kind, text)
    return Condition(column, op, value, negate, kind)


def split_top_level(text: str) -> list[str]:
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
    for part in split_top_level(text):
        column, eq, expression = part.partition("=")
        if not eq or not column.strip():
            raise FilterError(f"expected column=operator.value, got {part[:80]!r}")
        conditions.append(parse_condition(table, column.strip(), expression))
    return tuple(conditions)


def matches_all(conditions: tuple[Condition, ...], get: Callable[[str], Any]) -> bool:
    return all(condition.matches(get) for condition in conditions)
