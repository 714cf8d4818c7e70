"""The hub's ChangeIndex against the rule it stands for: a channel hears a change when its reader
may read the row (`can_read`) and one of its bindings matches. The index may only narrow the
search, never change the answer, so every channel is checked against every change by brute force.
"""

from __future__ import annotations

import itertools
from typing import Any

from jobctl.server.auth import Principal
from jobctl.server.realtime.bindings import parse_bindings
from jobctl.server.realtime.connection import Channel
from jobctl.server.realtime.index import ChangeIndex
from jobctl.server.realtime.tables import DEFAULT_CATALOG, can_read, view_of
from jobctl.server.records import Change, LogRow
from tests.server.realtime.test_filters import JOB_ID, T0, job

OTHER_ID = "9f1e2d3c-4b5a-4968-8776-655443322110"
READERS = [
    Principal("alice", "authenticated"),
    Principal("bob", "authenticated"),
    Principal(None, "service_role"),
    Principal(None, "anon"),
]
BINDINGS: list[list[dict[str, Any]]] = [
    [{"event": "*", "schema": "public", "table": "jobs"}],
    [{"event": "*", "schema": "public", "table": "jobs", "filter": f"id=eq.{JOB_ID}"}],
    [{"event": "*", "schema": "public", "table": "jobs", "filter": f"id=eq.{JOB_ID.upper()}"}],
    [{"event": "UPDATE", "schema": "public", "table": "jobs", "filter": f"id=eq.{OTHER_ID}"}],
    [{"event": "*", "schema": "public", "table": "jobs", "filter": "status=eq.done,progress=gt.5"}],
    [{"event": "*", "schema": "public", "table": "jobs", "filter": "progress=eq.10"}],
    [{"event": "*", "schema": "public", "table": "jobs", "filter": "status=in.(running,done)"}],
    [{"event": "*", "schema": "public", "table": "jobs", "filter": "user_id=eq.bob"}],
    [{"event": "*", "schema": "public", "table": "jobs", "filter": "message=eq.hello"}],
    [{"event": "DELETE", "schema": "public", "table": "jobs", "filter": "status=eq.done"}],
    [{"event": "*", "schema": "public"}],  # every table of the schema
    [{"event": "INSERT", "schema": "public", "table": "job_logs", "filter": f"job_id=eq.{JOB_ID}"}],
    [  # two bindings, anchored on different columns
        {"event": "*", "schema": "public", "table": "jobs", "filter": f"id=eq.{OTHER_ID}"},
        {"event": "*", "schema": "public", "table": "jobs", "filter": "status=eq.running"},
    ],
]


def channels() -> list[Channel]:
    made = []
    for who, raw in itertools.product(READERS, BINDINGS):
        config = {"postgres_changes": raw}
        made.append(Channel(None, "realtime:t", "1", who, None, parse_bindings(config)))  # type: ignore[arg-type]
    return made


def changes() -> list[Change]:
    out = []
    for user, job_id, status, progress, message in itertools.product(
        ("alice", "bob"), (JOB_ID, OTHER_ID), ("running", "done"), (10, 50), (None, "hello")
    ):
        row = job(id=job_id, user_id=user, status=status, progress=progress, message=message)
        for kind in ("INSERT", "UPDATE"):
            out.append(Change(0, "jobs", kind, row, {"id": job_id}, T0, user))
        out.append(Change(0, "jobs", "DELETE", None, {"id": job_id}, T0, user))  # PK only
    upper = job(id=JOB_ID.upper(), user_id="alice")  # a UUID compares case-insensitively
    out.append(Change(0, "jobs", "UPDATE", upper, {"id": upper.id}, T0, "alice"))
    line = LogRow(JOB_ID, 1, T0, "info", None, "hi")
    out.append(Change(0, "job_logs", "INSERT", line, None, T0, "alice"))
    return out


def expected(channel: Channel, change: Change) -> bool:
    table = DEFAULT_CATALOG.for_change(change)
    assert table is not None
    view = view_of(change, table)
    return can_read(channel.principal, change.user_id) and any(
        b.matches(change.type, table, view) for b in channel.bindings
    )


def heard(index: ChangeIndex, change: Change) -> set[int]:
    table = DEFAULT_CATALOG.for_change(change)
    assert table is not None
    view = view_of(change, table)
    found = index.candidates(table.key, change.user_id, view)
    assert len(found) == len(set(found)), "a channel found twice"
    return {id(c) for c in found if any(b.matches(change.type, table, view) for b in c.bindings)}


def test_the_index_finds_exactly_the_channels_the_rule_allows() -> None:
    index = ChangeIndex()
    all_channels = channels()
    for channel in all_channels:
        index.add(channel)
    for change in changes():
        want = {id(c) for c in all_channels if expected(c, change)}
        assert heard(index, change) == want, change


def test_removed_and_refiled_channels() -> None:
    index = ChangeIndex()
    all_channels = channels()
    for channel in all_channels:
        index.add(channel)
    gone = all_channels[::2]
    for channel in gone:
        index.remove(channel)
    kept = all_channels[1::2]
    for channel in kept[:5]:  # a new token for another user: filed again under bob's rows
        channel.principal = Principal("bob", "authenticated")
        index.add(channel)
    for change in changes():
        want = {id(c) for c in kept if expected(c, change)}
        assert heard(index, change) == want, change
    for channel in kept:
        index.remove(channel)
    assert len(index) == 0
    assert not index._buckets  # nothing left behind for channels that are gone
