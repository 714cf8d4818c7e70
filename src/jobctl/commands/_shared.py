"""Helpers shared by the command modules."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import typer

from jobctl.commands.context import Context
from jobctl.errors import ExitCode, JobctlError, UsageError

T = TypeVar("T")

JSON_HELP = "Print JSON; optionally only these comma-separated fields (--json id,status)."
JsonOption = Annotated[
    str | None, typer.Option("--json", metavar="[FIELDS]", help=JSON_HELP, show_default=False)
]
JsonlOption = Annotated[bool, typer.Option("--jsonl", help="Print one JSON object per line.")]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed off a terminal).")
]


def get_ctx(typer_ctx: typer.Context) -> Context:
    ctx = typer_ctx.find_root().obj
    if not isinstance(ctx, Context):  # pragma: no cover - main() always sets it
        raise RuntimeError("jobctl context missing")
    return ctx


def terminal_width(ctx: Context) -> int:
    return shutil.get_terminal_size((100, 24)).columns if ctx.stdout_tty else 100


def confirm_bulk(ctx: Context, action: str, count: int, yes: bool) -> bool:
    """Bulk actions ask on a terminal, and need --yes when there is none to ask."""
    if yes or count == 0:
        return True
    jobs = f"{count} job{'s' if count != 1 else ''}"
    if not (ctx.stdin_tty and ctx.stderr_tty):
        raise UsageError(f"{action} {jobs}: add --yes to confirm (not on a terminal)")
    ctx.stderr.write(f"{action} {jobs}? [y/N] ")
    ctx.stderr.flush()
    answer = ctx.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def for_each(
    ctx: Context, items: Sequence[str], action: Callable[[str], T], on_done: Callable[[T], None]
) -> ExitCode:
    """Run `action` on every item; report failures on stderr and return the first one's code."""
    first_error: ExitCode | None = None
    for item in items:
        try:
            result = action(item)
        except JobctlError as exc:
            ctx.info(exc.message if item in exc.message else f"{item}: {exc.message}")
            first_error = first_error or exc.exit_code
            continue
        on_done(result)
    return first_error or ExitCode.OK


def quiet_libraries(ctx: Context) -> None:
    """The realtime client logs every failed connect at ERROR; with no handler Python prints
    those on stderr, which would also tear a live view or the dashboard. The command says
    what matters itself (JOBCTL_DEBUG=1 shows them)."""
    import logging  # here: only the live commands pay for it

    if ctx.debug:
        logging.basicConfig(level=logging.DEBUG)
        return
    for name in ("realtime", "websockets", "jobctl"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())  # found before Python's last resort
