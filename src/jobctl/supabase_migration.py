"""The migration that sets up a Supabase project for jobctl (`jobctl schema supabase`)."""

from __future__ import annotations

from importlib import resources


def supabase_migration() -> str:
    """SQL for a Supabase project: the jobs table and its status enum, indexes, the
    updated_at trigger, row-level security (users see their own jobs) and the table in
    the supabase_realtime publication. Idempotent: it can be applied again."""
    return (resources.files("jobctl") / "supabase_migration.sql").read_text()
