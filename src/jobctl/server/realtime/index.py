"""Which `postgres_changes` channels a change may reach, found without looking at the others.

A channel is filed when it joins (and again when its token changes) under each table its
bindings watch and under the rows it may read: a user's channel under that user, a service
channel under every row (the "users see their own jobs" rule, decided once rather than per
change). A binding with an `eq` condition on a column (`id=eq.<job>`, `user_id=eq.<u>`) is filed
under that value too, so a change to one job looks up the channels that follow that job instead
of scanning every socket. The index only narrows: each candidate's bindings are still matched in
full (events, the other conditions), so what it returns never decides delivery by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobctl.server.realtime.filters import Condition
from jobctl.server.realtime.tables import MISSING, RowView

if TYPE_CHECKING:
    from jobctl.server.realtime.connection import Channel

TableKey = tuple[str, str]
Anchor = tuple[str, bool]  # (column, its values are UUIDs: compared lower-cased)
# Column types whose `eq` compares values that hash alike exactly when they are equal.
ANCHORED_KINDS = frozenset({"uuid", "text", "int4", "int8", "float8", "bool", "timestamptz"})


def anchor_of(conditions: tuple[Condition, ...]) -> Condition | None:
    """The first plain `col=eq.value` condition of a binding's filter, if any."""
    for condition in conditions:
        if (
            condition.op == "eq"
            and not condition.negate
            and condition.kind in ANCHORED_KINDS
            and condition.value is not None
        ):
            return condition
    return None


class _Bucket:
    """The channels of one table and one reader scope."""

    __slots__ = ("eq", "every")

    def __init__(self) -> None:
        self.every: dict[Channel, None] = {}  # no anchor: every change of the table is a candidate
        # (column, compared as a UUID) -> value -> channels
        self.eq: dict[Anchor, dict[Any, dict[Channel, None]]] = {}

    def __bool__(self) -> bool:
        return bool(self.every or self.eq)


Place = tuple[tuple[TableKey, str | None], Anchor | None, Any]  # (bucket key, anchor, value)


class ChangeIndex:
    def __init__(self) -> None:
        self._buckets: dict[tuple[TableKey, str | None], _Bucket] = {}
        self._places: dict[Channel, list[Place]] = {}

    def __len__(self) -> int:
        return len(self._places)

    def add(self, channel: Channel) -> None:
        """File a channel with bindings (replacing its entries if it was filed already)."""
        self.remove(channel)
        who = channel.principal
        if not channel.bindings or not (who.is_service or who.user_id is not None):
            return  # no bindings, or a reader who may read no row (anon)
        scope = who.scope
        places: list[Place] = []
        for binding in channel.bindings:
            for table_key, conditions in binding.filters.items():
                key = (table_key, scope)
                bucket = self._buckets.setdefault(key, _Bucket())
                anchor = anchor_of(conditions)
                if anchor is None:
                    bucket.every[channel] = None
                    places.append((key, None, None))
                else:
                    column = (anchor.column, anchor.kind == "uuid")
                    by_value = bucket.eq.setdefault(column, {})
                    by_value.setdefault(anchor.value, {})[channel] = None
                    places.append((key, column, anchor.value))
        self._places[channel] = places

    def remove(self, channel: Channel) -> None:
        for key, column, value in self._places.pop(channel, ()):
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            if column is None:
                bucket.every.pop(channel, None)
            else:
                by_value = bucket.eq.get(column, {})
                members = by_value.get(value)
                if members is not None:
                    members.pop(channel, None)
                    if not members:
                        del by_value[value]
                if not by_value:
                    bucket.eq.pop(column, None)
            if not bucket:
                del self._buckets[key]

    def candidates(self, table_key: TableKey, owner: str | None, view: RowView) -> list[Channel]:
        """The channels that may hear a change to `table_key` of a row `owner` owns."""
        found: dict[Channel, None] = {}
        scopes = (None,) if not owner else (None, owner)
        for scope in scopes:
            bucket = self._buckets.get((table_key, scope))
            if bucket is None:
                continue
            found.update(bucket.every)
            for (column, is_uuid), by_value in bucket.eq.items():
                actual = view.get(column)
                if actual is MISSING:
                    # A DELETE's primary-key-only old record: the filter is vacuously true.
                    for members in by_value.values():
                        found.update(members)
                    continue
                if actual is None:
                    continue  # NULL equals nothing
                if is_uuid:
                    actual = str(actual).lower()
                try:
                    hit = by_value.get(actual)
                except TypeError:  # an unhashable value cannot equal a filed literal
                    continue
                if hit:
                    found.update(hit)
        return list(found)
