"""Filter parsing and matching, binding ids and echoes, and the change `data` encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobctl.server.realtime import protocol
from jobctl.server.realtime.bindings import BindingError, parse_binding, parse_bindings
from jobctl.server.realtime.filters import FilterError, matches_all, parse_filter
from jobctl.server.realtime.tables import JOB_LOGS, JOBS, RowView
from jobctl.server.records import JobRow

JOB_ID = "2b5c3a4e-8f7d-4d61-9a0b-1c2d3e4f5a6b"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


def job(**changes: Any) -> JobRow:
    fields: dict[str, Any] = dict(
        id=JOB_ID, type="demo", status="running", progress=10, message=None, input='{"a":1}',
        output=None, error=None, attempt=1, max_attempts=3, user_id="alice",
        concurrency_key=None, idempotency_key=None, created_at=T0, updated_at=T0 + 5_000_000,
        started_at=T0 + 1_000_000, completed_at=None, schedule_id=None, schedule_tick=None,
        run_at=T0, lease_owner=None,
        lease_expires_at=None,
    )  # fmt: skip
    fields.update(changes)
    return JobRow(**fields)


def matches(text: str, row: JobRow | None = None, record: dict[str, Any] | None = None) -> bool:
    view = RowView(JOBS, row if row is not None or record is not None else job(), record)
    return matches_all(parse_filter(JOBS, text), view.get)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("status=eq.running", True),
        ("status=neq.running", False),
        ("status=in.(pending,running)", True),
        ('status=in.("completed","failed")', False),
        ("status=in.()", False),
        ("progress=gt.9", True),  # integers, not strings: "10" < "9" as text
        ("progress=lt.9", False),
        ("progress=gte.10", True),
        ("progress=lte.10", True),
        ("progress=in.(1,10,100)", True),
        (f"id=eq.{JOB_ID.upper()}", True),  # uuids ignore case
        ("created_at=eq.2026-01-01T01:00:00+01:00", True),  # the same instant
        ("created_at=gte.2026-01-01T00:00:00Z", True),
        ("created_at=gt.2026-01-01", False),
        ("started_at=lt.2026-01-01T00:00:02.5Z", True),
        ("message=eq.x", False),  # NULL never equals ...
        ("message=neq.x", False),  # ... nor differs
        ("message=is.null", True),
        ("message=not.is.null", False),
        ("message=is.not_null", False),
        ("status=not.eq.running", False),
        ("status=not.in.(failed)", True),
        ('input=eq.{"a": 1}', True),  # jsonb compares as JSON
        ("status=eq.running,progress=gt.50", False),  # comma = AND
        ("status=eq.running,user_id=eq.alice", True),
        ("status=like.run%", True),
        ("status=like.run*", True),  # PostgREST's `*` for `%`
        ("status=like.r_nning", True),
        ("status=like.RUN%", False),
        ("status=ilike.RUN%", True),
        ("status=not.like.run%", False),
        ("status=like.%ing", True),
        ("status=like.%x%", False),
        ("message=like.%", False),  # NULL matches no pattern
        ("message=isdistinct.x", True),  # NULL is distinct from a value ...
        ("message=isdistinct.null", False),  # ... and not from NULL
        ("status=isdistinct.running", False),
        ("status=not.isdistinct.running", True),
        (f"id=isdistinct.{JOB_ID.upper()}", False),
    ],
)
def test_filters_match_with_sql_semantics(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_filters_on_columns_a_delete_lacks_are_vacuous() -> None:
    pk_only = {"id": JOB_ID}
    assert matches("user_id=eq.bob", record=pk_only)  # as Supabase: DELETEs are not filterable
    assert matches(f"id=eq.{JOB_ID}", record=pk_only)
    assert not matches("id=eq.00000000-0000-0000-0000-000000000000", record=pk_only)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope=eq.1", "invalid column for filter nope"),
        ("status=fts.run", "unsupported operator"),
        ("status=match.^run", "regular expressions"),
        ("progress=like.1%", "operator like is not supported on int4"),
        ("status=like." + "x" * 300, "at most 256 characters"),
        ("status", "expected column=operator.value"),
        ("progress=eq.ten", 'invalid input syntax for type integer: "ten"'),
        ("id=eq.123", "invalid input syntax for type uuid"),
        ("created_at=lt.soon", "invalid input syntax for type timestamp with time zone"),
        ("status=in.pending", "parenthesised list"),
        ("status=in.(" + ",".join("x" * 101) + ")", "Maximum 100"),
        ("input=gt.{}", "not supported on jsonb"),
        ("message=is.maybe", "`is` takes null"),
    ],
)
def test_bad_filters_say_why(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace("`", ".")):
        parse_filter(JOBS, text)


def test_job_logs_columns_are_typed() -> None:
    from jobctl.server.records import LogRow

    line = LogRow(JOB_ID, 12, T0, "info", "step-1", "hello")
    view = RowView(JOB_LOGS, line, None)
    assert matches_all(parse_filter(JOB_LOGS, f"job_id=eq.{JOB_ID},seq=gt.9"), view.get)
    assert not matches_all(parse_filter(JOB_LOGS, "seq=lt.9"), view.get)


def test_binding_ids_are_deterministic_and_echo_is_verbatim() -> None:
    raw = {"event": "UPDATE", "schema": "public", "table": "jobs", "filter": f"id=eq.{JOB_ID}"}
    first, again = parse_binding(dict(raw)), parse_binding(dict(raw))
    assert first.id == again.id and 0 < first.id < 2**27
    assert first.echo == {**raw, "id": first.id}
    other = parse_binding({**raw, "filter": "status=eq.running"})
    assert other.id != first.id
    bare = parse_binding({"event": "*", "schema": "public"})  # no table: no table echoed
    assert set(bare.echo) == {"event", "schema", "id"}
    assert set(bare.filters) == {("public", "jobs"), ("public", "job_logs")}
    assert parse_binding({"event": "update", "schema": "public"}).events == {"UPDATE"}
    assert parse_binding({"event": "weird", "schema": "public"}).events == {
        "INSERT",
        "UPDATE",
        "DELETE",
    }


def test_bad_bindings_are_refused() -> None:
    for config, reason in [
        ({"postgres_changes": "x"}, "InvalidJoinPayload"),
        ({"postgres_changes": [{"event": "*"}] * 101}, "InvalidJoinPayload"),
        ({"postgres_changes": [1]}, "InvalidBinding"),
        ({"postgres_changes": [{"event": 1}]}, "InvalidBinding"),
        ({"postgres_changes": [{"event": "*", "schema": "auth"}]}, "Unable to subscribe"),
        ({"postgres_changes": [{"event": "*", "table": "steps"}]}, "Unable to subscribe"),
        ({"postgres_changes": [{"event": "*", "filter": "id=eq.1"}]}, "InvalidFilter"),
    ]:
        with pytest.raises(BindingError, match=reason):
            parse_bindings(config)
    assert parse_bindings({}) == [] and parse_bindings(None) == []


def test_change_data_keys_per_type() -> None:
    columns = JOBS.columns_json()
    common = dict(table="jobs", commit_us=T0 + 123_456, columns=columns)
    insert = json.loads(
        protocol.change_data(kind="INSERT", record={"id": 1}, old_record=None, **common)
    )
    assert "old_record" not in insert and insert["record"] == {"id": 1}
    assert insert["commit_timestamp"] == "2026-01-01T00:00:00.123Z"
    delete = json.loads(
        protocol.change_data(kind="DELETE", record=None, old_record={"id": 1}, **common)
    )
    assert "record" not in delete and delete["old_record"] == {"id": 1}
    assert delete["errors"] is None and delete["schema"] == "public"


def test_change_data_over_the_limit_drops_long_values() -> None:
    record = {"id": JOB_ID, "status": "completed", "output": {"blob": "x" * 2_000_000}, "n": 5}
    text = protocol.change_data(
        table="jobs",
        kind="UPDATE",
        commit_us=T0,
        columns=[],
        record=record,
        old_record={"id": JOB_ID},
    )
    assert len(text.encode()) < protocol.MAX_DATA_BYTES
    data = json.loads(text)
    assert data["errors"] == ["Error 413: Payload Too Large"]
    assert data["record"] == {"id": JOB_ID, "status": "completed", "n": 5}
    assert data["old_record"] == {"id": JOB_ID}
