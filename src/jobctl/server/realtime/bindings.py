"""`postgres_changes` bindings of a join: validated, given their ids, matched against changes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from jobctl.server.realtime.filters import Condition, FilterError, matches_all, parse_filter
from jobctl.server.realtime.tables import DEFAULT_CATALOG, Catalog, RowView, Table

EVENTS = ("INSERT", "UPDATE", "DELETE")
MAX_BINDINGS = 100


class BindingError(ValueError):
    """A join the server refuses; str() is the `reason` of the error reply."""


def binding_id(raw: dict[str, Any]) -> int:
    """A deterministic id in 1..2**27-1 (Supabase uses erlang:phash2 of the binding, same range).

    realtime-py ignores a callback whose id is falsy, hence never 0."""
    canonical = repr(sorted((str(k), repr(v)) for k, v in raw.items())).encode()
    value = int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big")
    return (value % (2**27 - 1)) + 1


@dataclass(frozen=True)
class Binding:
    id: int
    events: frozenset[str]
    filters: dict[tuple[str, str], tuple[Condition, ...]]  # (schema, table) -> conditions (AND)
    echo: dict[str, Any]  # the binding as received, plus its id: the join reply's entry

    def matches(self, kind: str, table: Table, view: RowView) -> bool:
        if kind not in self.events:
            return False
        conditions = self.filters.get(table.key)
        if conditions is None:
            return False
        return not conditions or matches_all(conditions, view.get)


def _unavailable(raw: dict[str, Any]) -> BindingError:
    return BindingError(
        "Unable to subscribe to changes with given parameters. Please check Realtime is enabled"
        " for the given connect parameters: [event: {}, schema: {}, table: {}, filters: {}]".format(
            raw.get("event"), raw.get("schema"), raw.get("table"), raw.get("filter")
        )
    )


def parse_binding(raw: Any, catalog: Catalog = DEFAULT_CATALOG) -> Binding:
    if not isinstance(raw, dict):
        raise BindingError("InvalidBinding: each postgres_changes entry must be an object")
    event = raw.get("event", "*")
    schema = raw.get("schema", "public")
    table_name = raw.get("table")
    filter_text = raw.get("filter")
    for key, value in (("event", event), ("schema", schema), ("table", table_name)):
        if value is not None and not isinstance(value, str):
            raise BindingError(f"InvalidBinding: `{key}` must be a string")
    if filter_text is not None and not isinstance(filter_text, str):
        raise BindingError("InvalidFilter: Error parsing `filter` params: not a string")
    # Like Supabase: the event is case-insensitive, and anything unknown means every event.
    upper = str(event).upper()
    events = frozenset([upper]) if upper in EVENTS else frozenset(EVENTS)
    in_schema = catalog.in_schema(str(schema))
    if table_name in (None, "*"):
        tables = in_schema
    else:
        tables = [t for t in in_schema if t.name == table_name]
    if not tables:
        raise _unavailable(raw)
    filters: dict[tuple[str, str], tuple[Condition, ...]] = {}
    for table in tables:
        try:
            filters[table.key] = parse_filter(table, filter_text or "")
        except FilterError as exc:
            raise BindingError(f"InvalidFilter: Error parsing `filter` params: {exc}") from None
    ident = binding_id(raw)
    return Binding(ident, events, filters, {**raw, "id": ident})


def parse_bindings(config: Any, catalog: Catalog = DEFAULT_CATALOG) -> list[Binding]:
    """`payload.config` of a phx_join -> its bindings, in order (raises BindingError)."""
    if config is None:
        return []
    if not isinstance(config, dict):
        raise BindingError("InvalidJoinPayload: `config` must be an object")
    raw = config.get("postgres_changes")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BindingError("InvalidJoinPayload: `config.postgres_changes` must be a list")
    if len(raw) > MAX_BINDINGS:
        raise BindingError(f"InvalidJoinPayload: at most {MAX_BINDINGS} bindings per channel")
    return [parse_binding(item, catalog) for item in raw]
