"""The migration that sets up a Supabase project for jobctl (`jobctl schema supabase`).

The `public.jobs` columns are written from the job's shape (jobshape.JOB_FIELDS);
the rest of the migration (enum, indexes, trigger, row-level security, Realtime)
is plain SQL in supabase_migration.sql. No server code is needed to print it.
"""

from __future__ import annotations

from importlib import resources

from jobctl.jobshape import JOB_FIELDS, PRIMARY_KEY, JobField, Kind

MARKER_PREFIX = "    -- @columns@"

# Each kind's type in the Supabase table (stricter than the embedded server's text ids).
SQL_TYPES: dict[Kind, str] = {
    Kind.UUID: "uuid",
    Kind.TEXT: "text",
    Kind.STATUS: "public.job_status",
    Kind.INT: "integer",
    Kind.OBJECT: "jsonb",
    Kind.JSON: "jsonb",
    Kind.TIME: "timestamptz",
}
# What this table adds to a column: defaults for rows written by other apps, checks, and
# the owner as a Supabase user (uuid, from the caller's JWT).
SQL_TYPE_OF = {"user_id": "uuid"}
SQL_EXTRAS = {
    "id": "DEFAULT gen_random_uuid()",
    "status": "DEFAULT 'pending'",
    "progress": "DEFAULT 0 CHECK (progress BETWEEN 0 AND 100)",
    "input": "DEFAULT '{}'::jsonb",
    "attempt": "DEFAULT 1 CHECK (attempt >= 1)",
    "max_attempts": "DEFAULT 1 CHECK (max_attempts >= 1)",
    "user_id": "DEFAULT auth.uid() REFERENCES auth.users (id) ON DELETE CASCADE",
    "created_at": "DEFAULT now()",
    "updated_at": "DEFAULT now()",
}


def column_sql(f: JobField) -> str:
    """`name type [PRIMARY KEY | NOT NULL] [extras]` for one field."""
    kind = SQL_TYPE_OF.get(f.name, SQL_TYPES[f.kind])
    constraint = " PRIMARY KEY" if f.name in PRIMARY_KEY else "" if f.nullable else " NOT NULL"
    extra = f" {SQL_EXTRAS[f.name]}" if f.name in SQL_EXTRAS else ""
    return f"{f.name:<15} {kind}{constraint}{extra}"


def supabase_migration() -> str:
    """SQL for a Supabase project: the jobs table and its status enum, indexes, the
    updated_at trigger, row-level security (users see their own jobs) and the table in
    the supabase_realtime publication. Idempotent: it can be applied again."""
    template = (resources.files("jobctl") / "supabase_migration.sql").read_text()
    columns = ",\n".join(f"    {column_sql(f)}" for f in JOB_FIELDS)
    lines = [columns if ln.startswith(MARKER_PREFIX) else ln for ln in template.split("\n")]
    return "\n".join(lines)
