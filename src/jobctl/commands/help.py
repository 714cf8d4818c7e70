"""`jobctl help exit-codes` (and friends): reference topics."""

from __future__ import annotations

import typer

from jobctl.commands._shared import get_ctx
from jobctl.config import DEFAULT_PORT
from jobctl.errors import EXIT_CODE_HELP

app = typer.Typer(help="Reference topics: exit-codes, environment.", no_args_is_help=True)

ENVIRONMENT = f"""\
JOBCTL_PROFILE            the active profile (default: local)
JOBCTL_API_URL            the job API's URL (default for local: the running local server)
JOBCTL_TOKEN              the token to send (default for local: the server's token file)
JOBCTL_SUPABASE_URL       Supabase project URL (live updates)
JOBCTL_SUPABASE_ANON_KEY  Supabase anon key
JOBCTL_AUTOSTART=0        do not start the local server on demand (also JOBCTL_NO_AUTOSTART=1)
JOBCTL_PORT               port of the local server (default {DEFAULT_PORT})
JOBCTL_TIMEOUT            seconds per HTTP request (default 30)
JOBCTL_RETRIES            retries of a failed request (default 3)
JOBCTL_RECONNECT_SECONDS  how long a watch keeps retrying a lost server (default 60)
JOBCTL_CONFIG_DIR         config dir (token file, config.toml); default XDG
JOBCTL_DATA_DIR           data dir (database, server.json, server.pid, server.log)
JOBCTL_CONFIG_FILE        the config file itself
JOBCTL_DEBUG=1            show tracebacks of unexpected errors
NO_COLOR                  no colour (as does --no-color)"""


def exit_code_table() -> str:
    return "\n".join(f"{int(code):>3}  {text}" for code, text in EXIT_CODE_HELP.items())


@app.command("exit-codes")
def exit_codes(typer_ctx: typer.Context) -> None:
    """The exit codes of every jobctl command."""
    get_ctx(typer_ctx).out(exit_code_table())


@app.command("environment")
def environment(typer_ctx: typer.Context) -> None:
    """The environment variables jobctl reads."""
    get_ctx(typer_ctx).out(ENVIRONMENT)
