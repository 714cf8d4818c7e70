"""`jobctl schema supabase` applied to a real PostgreSQL with stand-ins for Supabase's
`auth` schema and roles: idempotent, and row-level security isolates users."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from jobctl.commands.schema import app as schema_app
from jobctl.supabase_migration import supabase_migration
from tests.pgcluster import PgCluster
from tests.pgfixtures import new_database

pytestmark = pytest.mark.postgres

# What a Supabase project has before any migration of ours: the auth schema with
# auth.users and auth.uid() (reading the JWT claims PostgREST sets per request), and the
# anon / authenticated / service_role roles (the last one bypasses RLS).
SUPABASE_STANDINS = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$$;
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT nullif(
        coalesce(current_setting('request.jwt.claim.sub', true),
                 (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')),
        '')::uuid
$$;
GRANT USAGE ON SCHEMA public, auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
-- Supabase's default: new tables in public are granted to the API roles.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
"""


@pytest.fixture
def supabase_db(pg_cluster: PgCluster) -> str:
    url = new_database(pg_cluster, migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SUPABASE_STANDINS.encode())
    return url


def as_role(conn: psycopg.Connection[tuple[object, ...]], role: str, sub: str | None) -> None:
    conn.execute(f"SET ROLE {role}".encode())
    claims = json.dumps({"sub": sub, "role": role}) if sub else ""
    conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (claims,))


def test_cli_prints_the_migration() -> None:
    result = CliRunner().invoke(schema_app, ["supabase"])
    assert result.exit_code == 0
    assert result.stdout == supabase_migration()
    assert "CREATE TABLE IF NOT EXISTS public.jobs" in result.stdout


def test_migration_applies_twice_and_users_see_only_their_own_jobs(supabase_db: str) -> None:
    sql = supabase_migration()
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(supabase_db, autocommit=True) as conn:
        conn.execute(sql.encode())
        conn.execute(sql.encode())  # idempotent: no error, nothing doubled
        policies = conn.execute(
            "SELECT policyname FROM pg_policies WHERE tablename = 'jobs'"
        ).fetchall()
        assert policies == [("users see their own jobs",)]
        triggers = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.jobs'::regclass"
            " AND NOT tgisinternal"
        ).fetchall()
        assert triggers == [("jobs_set_updated_at",)]
        published = conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
        ).fetchall()
        assert published == [("jobs",)]
        enum = conn.execute("SELECT enum_range(NULL::public.job_status)::text").fetchone()
        assert enum == ("{pending,running,completed,failed,cancelled}",)

        conn.execute("INSERT INTO auth.users (id) VALUES (%s), (%s)", (alice, bob))
        # the job API writes with the service role, which bypasses RLS
        as_role(conn, "service_role", None)
        for user, n in ((alice, 3), (bob, 2)):
            for i in range(n):
                conn.execute(
                    "INSERT INTO public.jobs (type, user_id, input) VALUES ('demo', %s, %s)",
                    (user, json.dumps({"i": i})),
                )
        assert conn.execute("SELECT count(*) FROM public.jobs").fetchone() == (5,)
        before = conn.execute("SELECT max(updated_at) FROM public.jobs").fetchone()
        conn.execute("UPDATE public.jobs SET status = 'running', progress = 10")
        after = conn.execute("SELECT min(updated_at) FROM public.jobs").fetchone()
        assert before is not None and after is not None and after[0] >= before[0]
        bob_job = conn.execute(
            "SELECT id FROM public.jobs WHERE user_id = %s LIMIT 1", (bob,)
        ).fetchone()
        assert bob_job is not None
        conn.execute("RESET ROLE")

        as_role(conn, "authenticated", alice)
        mine = conn.execute("SELECT user_id::text, status::text FROM public.jobs").fetchall()
        assert len(mine) == 3 and {u for u, _ in mine} == {alice}
        assert (
            conn.execute("SELECT count(*) FROM public.jobs WHERE id = %s", (bob_job[0],))
        ).fetchone() == (0,)
        conn.execute("RESET ROLE")

        as_role(conn, "authenticated", bob)
        theirs = conn.execute("SELECT user_id::text FROM public.jobs").fetchall()
        assert theirs == [(bob,), (bob,)]
        # reading is all a user may do: no writes, not even to their own rows
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE public.jobs SET status = 'cancelled' WHERE user_id = %s", (bob,))
        conn.execute("RESET ROLE")

        as_role(conn, "anon", None)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM public.jobs")
        conn.execute("RESET ROLE")

        as_role(conn, "authenticated", str(uuid.uuid4()))  # a user with no jobs
        assert conn.execute("SELECT count(*) FROM public.jobs").fetchone() == (0,)
        conn.execute("RESET ROLE")


# Where the Supabase table is stricter than what the embedded server's Realtime reports:
# the status enum, and owners that are Supabase users (uuid) rather than any text id.
SUPABASE_TYPES = {"status": "job_status", "user_id": "uuid"}


def test_migration_columns_match_the_job_shape_and_the_realtime_table(supabase_db: str) -> None:
    from jobctl.jobshape import JOB_FIELD_NAMES, JOB_FIELDS
    from jobctl.server.realtime.tables import JOBS

    with psycopg.connect(supabase_db, autocommit=True) as conn:
        conn.execute(supabase_migration().encode())
        rows = conn.execute(
            "SELECT a.attname, t.typname, a.attnotnull FROM pg_attribute a"
            " JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = 'public.jobs'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum"
        ).fetchall()
    names = tuple(name for name, _, _ in rows)
    assert names == JOB_FIELD_NAMES == JOBS.column_names
    realtime = dict(JOBS.columns)
    for (name, typname, not_null), field in zip(rows, JOB_FIELDS, strict=True):
        assert typname == SUPABASE_TYPES.get(name, realtime[name]), name
        assert not_null == (not field.nullable), name
