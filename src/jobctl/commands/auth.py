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


def _read_password(ctx: Context) -> str:
    if ctx.stdin_tty:
        import getpass

        return getpass.getpass("password: ")  # prompts on the terminal itself, not echoed
    return ctx.stdin.readline().rstrip("\r\n")


def run_email_login(ctx: Context, email: str) -> int:
    """Sign in to the profile's Supabase project (`<supabase_url>/auth/v1`) as the app's
    frontend does; save the access and refresh tokens (0600)."""
    from jobctl.backends.apptokens import expires_at, sign_in

    s = ctx.settings
    url = s.get("supabase_url")
    if not url:
        raise UsageError(
            f"profile {s.profile!r} has no supabase_url to sign in at; set [app] supabase_url "
            f"in its app file or `jobctl config set supabase_url URL --profile {s.profile}`"
        )
    email = email.strip()
    if "@" not in email or any(c.isspace() for c in email):
        raise UsageError(f"--email: not an email address: {email[:60]!r}")
    password = _read_password(ctx)
    if not password:
        raise UsageError("empty password (give it at the prompt, or on stdin)")
    tokens = sign_in(url, ctx.supabase_key(), email, password, timeout=s.timeout)
    path, _ = set_value("token", tokens.access, s.profile)
    if tokens.refresh:
        set_value("refresh_token", tokens.refresh, s.profile)
    else:
        unset_value("refresh_token", s.profile)
    exp = expires_at(tokens.access)
    until = ""
    if exp is not None:
        from datetime import UTC, datetime

        until = (
            f", valid until {datetime.fromtimestamp(exp, UTC):%H:%M:%S} UTC (refreshed as needed)"
        )
    ctx.info(f"logged in as {email} (profile {s.profile}{until}); tokens saved in {path}")
    return ExitCode.OK


def run_login(ctx: Context, token: str | None, verify: bool, email: str | None = None) -> int:
    from jobctl.backends.jobapi import JobClient

    if email is not None:
        if token is not None:
            raise UsageError("give --email (to sign in) or --token, not both")
        return run_email_login(ctx, email)
    value = _read_token(ctx, token)
    if not value or any(c.isspace() for c in value):
        raise UsageError("empty or malformed token")
    s = ctx.settings
    if verify and ctx.app is not None:
        from jobctl.backends.appbackend import AppBackend
        from jobctl.backends.appprofile import replace_urls
        from jobctl.backends.apptokens import Tokens, TokenSession

        key = ctx.supabase_key()
        app = replace_urls(ctx.app, s.explicit_api_url, s.get("supabase_url"))
        session = TokenSession(
            Tokens(value, None), supabase_url=app.supabase_url or "", anon_key=key
        )
        backend = AppBackend(app, session, key, timeout=s.timeout, transport=ctx.transport)
        try:
            next(backend.iter_jobs(limit=1), None)  # a JWT PostgREST rejects -> exit 5
        finally:
            backend.close()
    elif verify and s.supabase_only:
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
    unset_value("refresh_token", s.profile)  # it belonged to another session
    ctx.info(f"logged in (profile {s.profile}); token {mask(value)} saved in {path}")
    return ExitCode.OK


def run_app_status(ctx: Context) -> int:
    from datetime import UTC, datetime

    from jobctl.backends.apptokens import expires_at

    s = ctx.settings
    ctx.out(f"profile:  {s.profile} (app: {s.app_file})")
    ctx.out(f"supabase: {s.get('supabase_url')}")
    token = s.get("token")
    ctx.out(f"token:    {mask(token)} (from {token_source(ctx)})")
    exp = expires_at(token) if token else None
    if exp is not None:
        refresh = "a refresh token" if s.get("refresh_token") else "no refresh token"
        ctx.out(f"expires:  {datetime.fromtimestamp(exp, UTC):%Y-%m-%d %H:%M:%S} UTC ({refresh})")
    backend = ctx.app_backend()
    next(backend.iter_jobs(limit=1), None)
    ctx.out("status:   token accepted (the app's jobs table answers)")
    return ExitCode.OK


def run_status(ctx: Context) -> int:
    s = ctx.settings
    if ctx.app is not None:
        return run_app_status(ctx)
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
    email: Annotated[
        str | None,
        typer.Option(
            help="Sign in to the profile's Supabase project with this email; the password "
            "from a hidden prompt or stdin.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Save a token for the active profile (or --profile NAME), in the config file (0600).

    With --email: sign in to the profile's Supabase project (<supabase_url>/auth/v1) as the
    app's users do; the access token is refreshed with the refresh token before it expires.

    Examples:

      echo "$JOBCTL_PROD_TOKEN" | jobctl auth login --profile prod

      jobctl auth login --profile journal-app --email me@example.com
    """
    raise typer.Exit(run_login(get_ctx(typer_ctx), token, verify, email))


@app.command("logout")
def logout(typer_ctx: typer.Context) -> None:
    """Remove the active profile's saved token."""
    ctx = get_ctx(typer_ctx)
    profile = ctx.settings.profile
    unset_value("refresh_token", profile)
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
