"""`jobctl auth login|logout|status|token`."""

from __future__ import annotations

from typing import Annotated

import typer

from jobctl.commands._shared import get_ctx
from jobctl.commands.context import Context
from jobctl.config import LOCAL_PROFILE, mask, set_value, unset_value
from jobctl.errors import AuthError, ExitCode, UsageError

app = typer.Typer(help="Log in to a job server and inspect the token in use.", no_args_is_help=True)


def token_source(ctx: Context) -> str:
    s = ctx.settings
    if s.get("token"):
        return s.sources["token"]
    if s.is_local and ctx.local_token():
        return "the local server's token file"
    return "none"


def _read_token(ctx: Context, token: str | None) -> str:
    if token is not None and token != "-":
        return token.strip()
    if ctx.stdin_tty and token is None:
        import getpass

        return getpass.getpass("token: ").strip()  # prompts on the terminal itself
    if ctx.stdin_tty:
        raise UsageError("--token -: stdin is a terminal; pipe the token in")
    return ctx.stdin.readline().strip()


def run_login(ctx: Context, token: str | None, verify: bool) -> int:
    from jobctl.backends.jobapi import JobClient

    value = _read_token(ctx, token)
    if not value or any(c.isspace() for c in value):
        raise UsageError("empty or malformed token")
    s = ctx.settings
    if verify and s.supabase_only:
        from jobctl.backends.supabase_reader import SupabaseReader

        reader = SupabaseReader(s.get("supabase_url"), ctx.supabase_key(), value, timeout=s.timeout)
        try:
            next(reader.iter_jobs(limit=1), None)  # a JWT PostgREST rejects -> exit 5
        finally:
            reader.close()
    elif verify:
        url = ctx.api_url()
        with JobClient(
            url,
            value,
            timeout=s.timeout,
            retries=s.retries,
            transport=ctx.transport,
            unreachable_hint=ctx.unreachable_hint(),
        ) as client:
            client.list_jobs(limit=1)  # 401 -> AuthError (exit 5), nothing saved
    path, _ = set_value("token", value, s.profile)
    ctx.info(f"logged in (profile {s.profile}); token {mask(value)} saved in {path}")
    return ExitCode.OK


def run_status(ctx: Context) -> int:
    s = ctx.settings
    endpoint = ctx.endpoint()
    ctx.out(f"profile:  {s.profile}")
    ctx.out(f"server:   {endpoint.url}")
    ctx.out(f"token:    {mask(endpoint.token)} (from {token_source(ctx)})")
    if endpoint.token is None:
        why = "; the local server makes its token when it first starts" if s.is_local else ""
        raise AuthError(f"not logged in (profile {s.profile}){why}")
    ctx.client(autostart=False).list_jobs(limit=1)
    ctx.out("status:   token accepted")
    return ExitCode.OK


@app.command("login")
def login(
    typer_ctx: typer.Context,
    token: Annotated[
        str | None,
        typer.Option(
            help="The token; '-' or omitted with a pipe: read from stdin.", show_default=False
        ),
    ] = None,
    verify: Annotated[bool, typer.Option(help="Check the token with the server first.")] = True,
) -> None:
    """Save a token for the active profile (or --profile NAME), in the config file (0600).

    Example: echo "$JOBCTL_PROD_TOKEN" | jobctl auth login --profile prod
    """
    raise typer.Exit(run_login(get_ctx(typer_ctx), token, verify))


@app.command("logout")
def logout(typer_ctx: typer.Context) -> None:
    """Remove the active profile's saved token."""
    ctx = get_ctx(typer_ctx)
    profile = ctx.settings.profile
    if not unset_value("token", profile):
        ctx.info(f"no token saved for profile {profile}")
    else:
        ctx.info(f"removed the token of profile {profile}")


@app.command("status")
def status(typer_ctx: typer.Context) -> None:
    """Show the profile, server and (masked) token, and check the token with the server."""
    raise typer.Exit(run_status(get_ctx(typer_ctx)))


@app.command("token")
def token(typer_ctx: typer.Context) -> None:
    """Print the active token, for scripts: curl -H "Authorization: Bearer $(jobctl auth token)"."""
    ctx = get_ctx(typer_ctx)
    value = ctx.endpoint().token
    if not value:
        hint = (
            " (the local server makes one on first start)"
            if ctx.settings.profile == LOCAL_PROFILE
            else ""
        )
        raise AuthError(f"no token for profile {ctx.settings.profile}{hint}")
    ctx.out(value)
