"""The root Typer app: global options, every command, and main() -> exit code."""

from __future__ import annotations

import typer

from jobctl.commands import server

app = typer.Typer(
    name="jobctl",
    help="Submit, watch and run background jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(server.app, name="server")


def main() -> int:
    try:
        app(standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0
