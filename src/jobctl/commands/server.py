"""`jobctl server run|start|stop|status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run and manage the embedded job server.", no_args_is_help=True)


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
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port (0 picks a free one).", envvar="JOBCTL_PORT")
    ] = 8765,
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
) -> None:
    """Run the server in the foreground, logging to stderr."""
    from jobctl.server.engine import INNGEST_BACKOFF, EngineSettings
    from jobctl.server.main import run as run_server
    from jobctl.server.main import state_path
    from jobctl.server.records import Limits
    from jobctl.server.settings import ServerSettings

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
    raise typer.Exit(run_server(settings))
