"""`jobctl schema supabase`: print SQL that sets up a database for jobctl."""

from __future__ import annotations

import typer

app = typer.Typer(help="Print database schemas for jobctl.", no_args_is_help=True)


@app.callback()
def schema() -> None:
    """Print database schemas for jobctl (a group, so that `supabase` stays a sub-command)."""


@app.command("supabase")
def supabase() -> None:
    """Print a migration for a Supabase project: the jobs table, its enum and indexes,
    an updated_at trigger, row-level security (users see their own jobs) and Realtime.
    Idempotent. Apply it with `jobctl schema supabase | psql "$DATABASE_URL"`, or save
    it under supabase/migrations/."""
    from jobctl.supabase_migration import supabase_migration

    typer.echo(supabase_migration(), nl=False)
