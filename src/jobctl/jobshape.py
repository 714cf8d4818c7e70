"""The job's shape, declared once: every field of a job as the API, Realtime and a Supabase
table carry it (DESIGN.md section 2).

Each side derives what it needs from `JOB_FIELDS` rather than listing the fields
again: the client's `models.Job` (parsing and `--json` field names), the API's
`JobOut` (server/api.py), the Realtime and PostgREST `jobs` table
(server/realtime/tables.py), the stores' row (server/records.py) and the Supabase
migration's column list (supabase_migration.py). Standard library only, so both
the command line and the server import it without cost.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class Kind(StrEnum):
    """What a field holds, independent of how one side spells its type."""

    UUID = "uuid"
    TEXT = "text"
    STATUS = "status"  # one of models.JobStatus
    INT = "int"
    OBJECT = "object"  # a JSON object
    JSON = "json"  # any JSON value
    TIME = "time"  # an instant: ISO-8601 UTC on the wire


# PostgreSQL's typname for each kind, as Realtime's `columns` and `to_jsonb` show them.
PG_TYPES: dict[Kind, str] = {
    Kind.UUID: "uuid",
    Kind.TEXT: "text",
    Kind.STATUS: "text",
    Kind.INT: "int4",
    Kind.OBJECT: "jsonb",
    Kind.JSON: "jsonb",
    Kind.TIME: "timestamptz",
}

# The Python type of each kind in the API's JSON (a time is its ISO-8601 text there).
JSON_TYPES: dict[Kind, Any] = {
    Kind.UUID: str,
    Kind.TEXT: str,
    Kind.STATUS: str,
    Kind.INT: int,
    Kind.OBJECT: dict[str, Any],
    Kind.JSON: Any,
    Kind.TIME: str,
}


class JobField(NamedTuple):  # not a dataclass: cheaper to define at every start-up
    name: str
    kind: Kind
    nullable: bool = False
    default: Any = None  # what a reader assumes when a record lacks the field (or it is null)

    @property
    def pg_type(self) -> str:
        return PG_TYPES[self.kind]

    @property
    def json_type(self) -> Any:
        """The field's type in the API's JSON, `| None` when it may be null."""
        base = JSON_TYPES[self.kind]
        return base | None if self.nullable and base is not Any else base


JOB_FIELDS: tuple[JobField, ...] = (
    JobField("id", Kind.UUID),
    JobField("type", Kind.TEXT, default=""),
    JobField("status", Kind.STATUS, default="pending"),
    JobField("progress", Kind.INT, default=0),  # 0-100, written by the job
    JobField("message", Kind.TEXT, nullable=True),  # short progress text
    JobField("input", Kind.OBJECT, default={}),  # what was submitted
    JobField("output", Kind.JSON, nullable=True),  # the result
    JobField("error", Kind.TEXT, nullable=True),  # last error, human-readable
    JobField("attempt", Kind.INT, default=1),  # whole-job attempts (retries of the job)
    JobField("max_attempts", Kind.INT, default=1),
    JobField("user_id", Kind.TEXT, default=""),  # the owner: reads and writes are scoped to it
    JobField("concurrency_key", Kind.TEXT, nullable=True),
    JobField("idempotency_key", Kind.TEXT, nullable=True),  # same key + same user = same job
    JobField("created_at", Kind.TIME),
    JobField("updated_at", Kind.TIME),
    JobField("started_at", Kind.TIME, nullable=True),
    JobField("completed_at", Kind.TIME, nullable=True),
    JobField("schedule_id", Kind.TEXT, nullable=True),  # made by this schedule, for its tick
    JobField("schedule_tick", Kind.TIME, nullable=True),
)
JOB_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in JOB_FIELDS)
PRIMARY_KEY = ("id",)

# A listing's rows (GET /api/jobs) are summaries unless `fields=` asks for more: the job's
# fields without the two that can be big, plus the stored input's size in bytes.
HEAVY_FIELDS: tuple[str, ...] = ("input", "output")
INPUT_BYTES = "input_bytes"
LIST_FIELDS: tuple[str, ...] = (*JOB_FIELD_NAMES, INPUT_BYTES)  # what `fields=` may name
SUMMARY_FIELDS: tuple[str, ...] = (
    *(name for name in JOB_FIELD_NAMES if name not in HEAVY_FIELDS),
    INPUT_BYTES,
)
