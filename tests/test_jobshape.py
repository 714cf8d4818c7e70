"""One job shape (jobshape.JOB_FIELDS): every side that carries a job derives its fields from
it, so none can drift. The Supabase table itself is checked on PostgreSQL in
tests/server/test_supabase_schema.py."""

from __future__ import annotations

import dataclasses
import re

from jobctl.jobshape import JOB_FIELD_NAMES, JOB_FIELDS, PRIMARY_KEY
from jobctl.models import Job, JobStatus
from jobctl.supabase_migration import supabase_migration

RECORD = {
    "id": "3fa2c0de-0000-4000-8000-000000000001",
    "type": "demo",
    "status": "failed",
    "progress": 40,
    "message": "Step 2/3",
    "input": {"steps": 3},
    "output": None,
    "error": "boom",
    "attempt": 2,
    "max_attempts": 3,
    "user_id": "local",
    "concurrency_key": "org:acme",
    "idempotency_key": "k1",
    "created_at": "2026-03-02T09:30:00.000000Z",
    "updated_at": "2026-03-02T09:30:04.000000Z",
    "started_at": "2026-03-02T09:30:01.000000Z",
    "completed_at": "2026-03-02T09:30:04.000000Z",
    "schedule_id": None,
    "schedule_tick": None,
}


def test_the_client_model_has_the_shapes_fields_and_defaults() -> None:
    fields = dataclasses.fields(Job)
    # the shape's fields, then what a listing's summary carries beside them
    assert tuple(f.name for f in fields) == (*JOB_FIELD_NAMES, "input_bytes", "missing")
    fields = fields[: len(JOB_FIELD_NAMES)]
    shape = {f.name: f for f in JOB_FIELDS}
    for f in fields:
        if f.default is not dataclasses.MISSING:
            assert f.default == shape[f.name].default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert f.default_factory() == shape[f.name].default, f.name


def test_a_record_round_trips_and_missing_fields_take_the_shapes_defaults() -> None:
    assert tuple(RECORD) == JOB_FIELD_NAMES
    assert Job.from_dict(RECORD).to_dict() == RECORD
    bare = Job.from_dict({"id": RECORD["id"], "status": "processing"})
    assert bare.status == JobStatus.RUNNING  # some Supabase apps' word for it
    assert (bare.type, bare.progress, bare.attempt, bare.input, bare.created_at) == (
        "",
        0,
        1,
        {},
        None,
    )
    assert Job.from_dict({"id": "a"}).input is not Job.from_dict({"id": "b"}).input


def test_the_server_row_api_model_and_realtime_table_are_the_shape() -> None:
    from jobctl.server.api import JobOut
    from jobctl.server.realtime.tables import JOBS
    from jobctl.server.records import JOB_COLUMNS, JobRow

    assert tuple(JobOut.model_fields) == JOB_FIELD_NAMES
    assert all(f.is_required() for f in JobOut.model_fields.values())
    assert JOBS.column_names == JOB_FIELD_NAMES and JOBS.primary_key == PRIMARY_KEY
    assert JOB_COLUMNS[: len(JOB_FIELD_NAMES)] == JOB_FIELD_NAMES
    assert tuple(f.name for f in dataclasses.fields(JobRow)) == (*JOB_COLUMNS, "input_bytes")
    row = JobRow(
        RECORD["id"], "demo", "failed", 40, "Step 2/3", '{"steps": 3}', None, "boom", 2, 3,
        "local", "org:acme", "k1", 1772443800000000, 1772443804000000, 1772443801000000,
        1772443804000000, None, None, 0, None, None,
    )  # fmt: skip
    assert row.to_api() == RECORD
    assert JobOut.model_validate(row.to_api()).model_dump() == RECORD


def test_the_supabase_migration_creates_the_shapes_columns_in_order() -> None:
    sql = supabase_migration()
    body = sql[sql.index("CREATE TABLE IF NOT EXISTS public.jobs (") :].split(");", 1)[0]
    columns = re.findall(r"^\s{4}([a-z_]+)\s", body, flags=re.MULTILINE)
    assert tuple(columns) == JOB_FIELD_NAMES
    assert "@columns@" not in sql
