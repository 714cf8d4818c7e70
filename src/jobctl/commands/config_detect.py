"""`jobctl config detect --profile P [--write]`: propose an app profile from the project's
PostgREST OpenAPI document and its newest rows (backends/appdetect.py), print it, and
save it to <config dir>/apps/P.toml (0600) with --write."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from jobctl import paths
from jobctl.commands._shared import get_ctx
from jobctl.commands.context import Context
from jobctl.errors import AuthError, ExitCode, ServerError, UnreachableError, UsageError

ROWS_READ = 100


def _get(ctx: Context, url: str, headers: dict[str, str], params: Any = None) -> Any:
    from jobctl.backends._httpx import httpx

    try:
        with httpx.Client(timeout=ctx.settings.timeout, transport=ctx.transport) as http:
            response = http.get(url, headers=headers, params=params)
    except httpx.TransportError as exc:
        raise UnreachableError(f"{url} cannot be reached ({type(exc).__name__})") from None
    if response.status_code in (401, 403):
        raise AuthError(f"{url} answered {response.status_code}: not allowed; check the token")
    if response.status_code >= 400:
        raise ServerError(f"{url} answered {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise ServerError(f"{url} did not answer JSON") from None


def run_detect(ctx: Context, supabase_url: str | None, table: str | None, write: bool) -> int:
    import tomlkit

    from jobctl.backends.appdetect import (
        find_jobs_table,
        profile_document,
        propose,
        seen_text,
        table_columns,
    )
    from jobctl.config import dump_toml, load_settings

    s = load_settings(ctx.env, ctx.flags, check_profile=False)
    if s.is_local:
        raise UsageError("give the app's profile: `jobctl config detect --profile NAME`")
    url = (supabase_url or s.get("supabase_url") or "").rstrip("/")
    if not url:
        raise UsageError(
            f"profile {s.profile!r} has no supabase_url; give --supabase-url URL or "
            f"`jobctl config set supabase_url URL --profile {s.profile}`"
        )
    key = s.get("supabase_anon_key")
    if not key:
        raise UsageError(
            f"profile {s.profile!r} has no supabase_anon_key (PostgREST's apikey); set it with "
            f"`jobctl config set supabase_anon_key KEY --profile {s.profile}`"
        )
    token = s.get("token")
    headers = {"apikey": key, "Authorization": f"Bearer {token or key}"}
    tables = table_columns(
        _get(ctx, f"{url}/rest/v1/", {**headers, "Accept": "application/openapi+json"})
    )
    name = find_jobs_table(tables, table)
    props = tables[name]
    rows: list[dict[str, Any]] = []
    if token:
        order = next((c for c in ("created_at", "inserted_at", "id") if c in props), None)
        params = {"select": "*", "limit": str(ROWS_READ)}
        if order:
            params["order"] = f"{order}.desc"
        data = _get(ctx, f"{url}/rest/v1/{name}", headers, params)
        rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    else:
        ctx.info(
            f"not logged in to profile {s.profile!r}: no rows read, so no status values seen "
            f"(`jobctl auth login --profile {s.profile} --email EMAIL` first)"
        )
    proposal = propose(name, props, rows)
    path = paths.app_profile_file(s.profile)
    existing = None
    if path.is_file():
        try:
            existing = tomlkit.parse(path.read_text(encoding="utf-8"))
        except Exception as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
    doc = profile_document(
        proposal,
        supabase_url=url,
        api_url=s.explicit_api_url,
        default_type=name.rstrip("s") if name != "jobs" else s.profile,
        existing=existing,
    )
    ctx.info(f"table {name}: columns {', '.join(proposal.all_columns)}")
    ctx.info(f"status values seen in the newest {len(rows)} rows: {seen_text(proposal.seen)}")
    for note in proposal.notes:
        ctx.info(f"note: {note}")
    text = dump_toml(doc)
    if not write:
        ctx.out(text.rstrip("\n"))
        ctx.info(f"save it with `jobctl config detect --profile {s.profile} --write` ({path})")
        return ExitCode.OK
    from jobctl.backends.appprofile import parse_profile

    parse_profile(s.profile, path, doc.unwrap())  # never save a profile that cannot load
    paths.write_secret(path, text)
    ctx.info(f"wrote {path}")
    return ExitCode.OK


def detect(
    typer_ctx: typer.Context,
    supabase_url: Annotated[
        str | None,
        typer.Option(help="The Supabase project (default: the profile's).", show_default=False),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            help="The jobs table (default: found by name and columns).", show_default=False
        ),
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Save it as <config dir>/apps/PROFILE.toml (0600).")
    ] = False,
) -> None:
    """Propose an app profile from the project's PostgREST OpenAPI document (GET /rest/v1/):
    the jobs table, the mapping of its columns, the status values in its newest rows.

    Example: jobctl config detect --profile journal-app --write
    """
    raise typer.Exit(run_detect(get_ctx(typer_ctx), supabase_url, table, write))
