"""`jobctl server run|start|stop|status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobctl.commands._shared import JsonOption, get_ctx
from jobctl.commands.context import Context
from jobctl.config import DEFAULT_HOST, DEFAULT_PORT, load_settings
from jobctl.errors import ExitCode

app = typer.Typer(help="Run and manage the embedded job server.", no_args_is_help=True)
STATUS_FIELDS = ("running", "url", "pid", "version", "store", "db", "data_dir")
PortOption = Annotated[
    int | None,
    typer.Option(
        help=f"Port (default: the `port` setting, {DEFAULT_PORT}; 0 picks a free one).",
        show_default=False,
    ),
]


def _parse_pairs(values: list[str], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(number)
        except ValueError:
            raise typer.BadParameter(f"{what}: expected NAME=NUMBER, got {value!r}") from None
    return out


@app.command("run")
def run(
    typer_ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = DEFAULT_HOST,
    port: PortOption = None,
    db: Annotated[
        str, typer.Option(help="SQLite file or postgresql:// URL.", envvar="JOBCTL_DB")
    ] = "",
    functions: Annotated[
        list[str] | None,
        typer.Option("--functions", help="Module with job types to load (repeatable)."),
    ] = None,
    slots: Annotated[int, typer.Option(help="Jobs run at once by this server.", min=1)] = 8,
    backoff: Annotated[
        str | None,
        typer.Option(help="Retry delays in seconds, comma-separated, or 'inngest' for 15s..2h."),
    ] = None,
    timeout: Annotated[
        list[str] | None, typer.Option(help="Running timeout per type: TYPE=SECONDS (repeatable).")
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            help="Concurrency limit: user=3, org=5, decision=2, key=5 (repeatable; 0 = none)."
        ),
    ] = None,
    cancel_grace: Annotated[
        float,
        typer.Option(help="Seconds a cancelled job's running step gets before it is interrupted."),
    ] = 10.0,
    state_file: Annotated[
        Path | None, typer.Option(help="Write pid and URL here once listening.")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    publish: Annotated[
        list[str] | None,
        typer.Option(
            help="PostgreSQL: serve an app's table over Realtime and /rest/v1 (read-only),"
            " e.g. public.jobs (repeatable; the server's own tables move to schema jobctl)."
        ),
    ] = None,
    owner_column: Annotated[
        str, typer.Option(help="The published tables' column holding the owner's user id.")
    ] = "user_id",
) -> None:
    """Run the server in the foreground, logging to stderr."""
    from jobctl.server.engine import INNGEST_BACKOFF, EngineSettings
    from jobctl.server.main import run as run_server
    from jobctl.server.main import state_path
    from jobctl.server.records import Limits
    from jobctl.server.settings import ServerSettings

    if port is None:
        # The same layering as every other setting (flag > JOBCTL_PORT > config file > 8765);
        # a server may run for a profile that does not exist yet.
        ctx = get_ctx(typer_ctx)
        port = load_settings(ctx.env, ctx.flags, check_profile=False).port
    settings = ServerSettings(host=host, port=port, db=db, functions=functions or [])
    engine = EngineSettings(slots=slots, cancel_grace=cancel_grace)
    if backoff:
        if backoff == "inngest":
            engine.backoff = INNGEST_BACKOFF
        else:
            try:
                engine.backoff = tuple(float(x) for x in backoff.split(","))
            except ValueError:
                raise typer.BadParameter("--backoff: numbers separated by commas") from None
    if limit:
        pairs = _parse_pairs(limit, "--limit")
        defaults = Limits()
        per_key = dict(defaults.per_key)
        per_user = defaults.per_user
        default_key = defaults.default_key
        for name, value in pairs.items():
            number = int(value) or None
            if name == "user":
                per_user = number
            elif name == "key":
                default_key = number
            elif number is None:
                per_key.pop(name, None)
            else:
                per_key[name] = number
        engine.limits = Limits(per_user, tuple(per_key.items()), default_key)
    settings.engine = engine
    settings.timeouts = _parse_pairs(timeout or [], "--timeout")
    settings.state_file = state_file or state_path(settings.data_dir)
    settings.access_log = access_log
    settings.publish = publish or []
    settings.owner_column = owner_column
    raise typer.Exit(run_server(settings))


def _print_state(ctx: Context, data: dict[str, object], json_fields: str | None) -> None:
    from jobctl.commands import render

    if json_fields is not None:
        ctx.out(
            render.to_json(render.select(data, render.parse_fields(json_fields, STATUS_FIELDS)))
        )
        return
    for key in STATUS_FIELDS:
        value = data.get(key)
        if key == "running":
            value = "yes" if value else "no"
        ctx.out(f"{key + ':':<10}{'-' if value is None else value}")


def run_start(ctx: Context, port: int | None, json_fields: str | None) -> int:
    from jobctl.backends.localserver import log_file, start_server

    data_dir = ctx.data_dir
    state, started = start_server(data_dir, ctx.settings.port if port is None else port)
    if started:
        ctx.info(
            f"started the local job server at {state.url} (pid {state.pid}; "
            f"data: {data_dir}; log: {log_file(data_dir)})"
        )
    else:
        ctx.info(f"already running at {state.url} (pid {state.pid})")
    _print_state(ctx, state.to_dict(), json_fields)
    return ExitCode.OK


def run_status(ctx: Context, json_fields: str | None) -> int:
    from jobctl.backends.localserver import running_server

    state = running_server(ctx.data_dir)
    if state is None:
        data: dict[str, object] = dict.fromkeys(STATUS_FIELDS)
        data.update(running=False, data_dir=str(ctx.data_dir))
        _print_state(ctx, data, json_fields)
        if json_fields is None:
            ctx.info("no server running for this data dir; start one with `jobctl server start`")
        return ExitCode.UNREACHABLE
    _print_state(ctx, state.to_dict(), json_fields)
    return ExitCode.OK


def run_stop(ctx: Context) -> int:
    from jobctl.backends.localserver import stop_server

    state = stop_server(ctx.data_dir)
    if state is None:
        ctx.info("no server running for this data dir")
    else:
        ctx.info(f"stopped the server at {state.url} (pid {state.pid})")
    return ExitCode.OK


@app.command("start")
def start(
    typer_ctx: typer.Context,
    port: PortOption = None,
    json_fields: JsonOption = None,
) -> None:
    """Start the server in the background (pid and log files in the data dir).

    Does nothing when one already runs for this data dir.
    """
    raise typer.Exit(run_start(get_ctx(typer_ctx), port, json_fields))


@app.command("status")
def status(typer_ctx: typer.Context, json_fields: JsonOption = None) -> None:
    """Whether the local server runs: URL, pid, version, store, data path. Exit 6 if not."""
    raise typer.Exit(run_status(get_ctx(typer_ctx), json_fields))


@app.command("stop")
def stop(typer_ctx: typer.Context) -> None:
    """Stop the background server of this data dir (SIGTERM, then SIGKILL after 15 s)."""
    raise typer.Exit(run_stop(get_ctx(typer_ctx)))


user_app = typer.Typer(
    help="Users the server's /auth/v1 signs in (password sign-in, as Supabase Auth).",
    no_args_is_help=True,
)
app.add_typer(user_app, name="user")


def _users_file(ctx: Context) -> Path:
    from jobctl.server.authusers import USERS_FILE

    return ctx.data_dir / USERS_FILE


def _read_password(ctx: Context) -> str:
    from jobctl.errors import UsageError

    if ctx.stdin_tty:
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the passwords do not match")
        return first
    return ctx.stdin.readline().rstrip("\r\n")


def run_user_add(ctx: Context, email: str, replace: bool) -> int:
    from jobctl.errors import UsageError
    from jobctl.server.authusers import UserError, UserStore

    password = _read_password(ctx)
    path = _users_file(ctx)
    try:
        user = UserStore(path).add_user(email, password, replace=replace)
    except UserError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        from jobctl.errors import UnreachableError

        raise UnreachableError(f"cannot write {path}: {exc.strerror}") from None
    ctx.info(f"{'updated' if replace else 'added'} {user.email} (id {user.id}) in {path}")
    ctx.out(user.id)
    return ExitCode.OK


def run_user_list(ctx: Context) -> int:
    from jobctl.errors import UsageError
    from jobctl.server.authusers import UserError, UserStore

    try:
        users = UserStore(_users_file(ctx)).list_users()
    except UserError as exc:
        raise UsageError(str(exc)) from None
    for user in users:
        ctx.out(f"{user.id}  {user.email}")
    return ExitCode.OK


def run_user_remove(ctx: Context, email: str) -> int:
    from jobctl.errors import NotFoundError, UsageError
    from jobctl.server.authusers import UserError, UserStore

    try:
        removed = UserStore(_users_file(ctx)).remove_user(email)
    except UserError as exc:
        raise UsageError(str(exc)) from None
    if not removed:
        raise NotFoundError(f"no user {email}")
    ctx.info(f"removed {email} and ended its sessions")
    return ExitCode.OK


@user_app.command("add")
def user_add(
    typer_ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The user's email (their login).")],
    replace: Annotated[
        bool, typer.Option(help="Set a new password for an existing user (ends its sessions).")
    ] = False,
) -> None:
    """Add a user (the password from a hidden prompt, or the first line of stdin).

    Prints the user's id (the `sub` of their access tokens). Takes effect at once, also
    for a server that is running."""
    raise typer.Exit(run_user_add(get_ctx(typer_ctx), email, replace))


@user_app.command("list")
def user_list(typer_ctx: typer.Context) -> None:
    """The users: id and email."""
    raise typer.Exit(run_user_list(get_ctx(typer_ctx)))


@user_app.command("remove")
def user_remove(
    typer_ctx: typer.Context, email: Annotated[str, typer.Argument(help="The user's email.")]
) -> None:
    """Remove a user; their refresh tokens stop working (access tokens run out on their own)."""
    raise typer.Exit(run_user_remove(get_ctx(typer_ctx), email))


def run_key(ctx: Context, role: str, days: float) -> int:
    from jobctl.errors import UsageError
    from jobctl.paths import jwt_secret_file
    from jobctl.server.auth import Authenticator, load_or_create_secret

    if role not in ("anon", "service_role"):
        raise UsageError(f"role: anon or service_role, not {role!r}")
    if not 0 < days <= 3650 * 2:
        raise UsageError("--days: more than 0, at most 7300")
    secret = ctx.env.get("JOBCTL_JWT_SECRET")  # what `server run` uses first, too
    if not secret:
        path = jwt_secret_file()
        try:
            secret, created = load_or_create_secret(path)
        except OSError as exc:
            from jobctl.errors import UnreachableError

            raise UnreachableError(f"cannot read or create {path}: {exc.strerror}") from None
        if created:
            ctx.info(f"created the server's JWT secret {path}")
    ctx.out(Authenticator("unused", secret).make_jwt(None, role, days * 86400))
    return ExitCode.OK


@app.command("key")
def key(
    typer_ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="anon (an app's public key) or service_role.")],
    days: Annotated[float, typer.Option(help="Days until it expires.")] = 3650,
) -> None:
    """Print an API key (a JWT) signed with this server's JWT secret, as Supabase's anon and
    service_role keys are: the `supabase_anon_key` of a profile that uses this server."""
    raise typer.Exit(run_key(get_ctx(typer_ctx), role, days))
