"""The root Typer app: global options, every command, and main() -> exit code.

main() is the only place that turns exceptions into exit codes and messages:
one line on stderr, the code of DESIGN.md section 6, never a traceback unless
JOBCTL_DEBUG=1, and never a token.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Annotated, Any

import typer

from jobctl import __version__
from jobctl.commands import (
    auth,
    cancel,
    completion,
    config,
    events,
    help,
    logs,
    retry,
    schedule,
    schema,
    server,
    show,
)
from jobctl.commands import list as list_cmd
from jobctl.commands import stats as stats_cmd
from jobctl.commands import submit as submit_cmd
from jobctl.commands import tui as tui_cmd
from jobctl.commands import watch as watch_cmd
from jobctl.commands.context import Context
from jobctl.errors import EXIT_CODE_HELP, ExitCode, JobctlError, exit_code_for

# "\b" keeps Click from re-wrapping the table.
EPILOG = "\b\nExit codes (also: jobctl help exit-codes):\n" + "\n".join(
    f"  {int(code):>3}  {text}" for code, text in EXIT_CODE_HELP.items()
)

app = typer.Typer(
    name="jobctl",
    help="Submit, watch and run background jobs.\n\nFirst run: `jobctl submit examples/journal.txt "
    "--watch` starts a local server in the background by itself.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: readable at any width, and Rich stays unloaded
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"jobctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    typer_ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile to use (default: JOBCTL_PROFILE or the config's).",
            show_default=False,
        ),
    ] = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="Job API URL for this run.", show_default=False)
    ] = None,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour (also: NO_COLOR).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx = typer_ctx.obj
    if isinstance(ctx, Context):
        ctx.flags.update(profile=profile, api_url=api_url)
        ctx.no_color = ctx.no_color or no_color


app.command("submit")(submit_cmd.submit)
app.command("list")(list_cmd.list_jobs)
app.command("show")(show.show)
app.command("watch")(watch_cmd.watch)
app.command("logs")(logs.logs)
app.command("retry")(retry.retry)
app.command("cancel")(cancel.cancel)
app.command("stats")(stats_cmd.stats)
app.command("tui")(tui_cmd.tui)
app.add_typer(schedule.app, name="schedule")
app.add_typer(events.app, name="events")
app.add_typer(server.app, name="server")
app.add_typer(config.app, name="config")
app.add_typer(auth.app, name="auth")
app.add_typer(schema.app, name="schema")
app.command("completion")(completion.completion)
app.add_typer(help.app, name="help")

# Global options may be given after the command too (`jobctl list --profile prod`).
GLOBAL_WITH_VALUE = frozenset({"--profile", "-p", "--api-url"})
GLOBAL_FLAGS = frozenset({"--no-color"})
FIELD_LIST = re.compile(r"^[a-z_]+(,[a-z_]+)*$")


def _json_field_names() -> frozenset[str]:
    from jobctl.commands.config import CONFIG_FIELDS
    from jobctl.jobshape import LIST_FIELDS

    return frozenset(
        [
            *LIST_FIELDS,
            "raw",  # app profiles: the app's own row
            *show.SHOW_FIELDS,
            *stats_cmd.STATS_FIELDS,
            *server.STATUS_FIELDS,
            *CONFIG_FIELDS,
            *schedule.SCHEDULE_FIELDS,
            *events.EVENT_FIELDS,
        ]
    )


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Move global options to the front, and give a bare `--json` an empty value.

    `--json` takes an optional field list (as gh's does), which Click cannot
    express: a following word is the field list only when it names a known
    field, so `jobctl show --json 3fa2` still reads 3fa2 as the job, and
    `--json id,nope` reports the unknown field.
    """
    front: list[str] = []
    rest: list[str] = []
    fields = _json_field_names()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_WITH_VALUE:
            take = 1 if "=" in arg or i + 1 >= len(argv) else 2
            front.extend(argv[i : i + take])
            i += take
            continue
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg == "--json":
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if FIELD_LIST.match(nxt) and set(nxt.split(",")) & fields:
                rest.extend([arg, nxt])
                i += 1
            else:
                rest.append("--json=")
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _redact(text: str, ctx: Context | None) -> str:
    if ctx is None:
        return text
    try:
        secrets = ctx.secrets()
    except Exception:  # never let redaction itself fail the error report
        secrets = []
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _usage_line(exc: Any) -> str:
    sub = getattr(exc, "ctx", None)
    where = f" (see `{sub.command_path} --help`)" if sub is not None else ""
    return f"{exc.format_message()}{where}"


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
    ctx: Context | None = None,
) -> int:
    from typer._click.exceptions import NoArgsIsHelpError, UsageError  # Typer vendors Click

    if argv is None and stdout is None and hasattr(signal, "SIGPIPE"):
        # A reader that goes away (`jobctl watch | head -1`) ends us as it ends any Unix
        # filter (141 under `set -o pipefail`), not as "a watched job failed" (1).
        # Client commands only: `jobctl server run` ignores SIGPIPE again as it starts
        # (server/main.py run()), since a client hanging up must not end a server.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if ctx is None:
        ctx = Context.from_process(env)
        ctx.stdout, ctx.stderr, ctx.stdin = (
            stdout or sys.stdout,
            stderr or sys.stderr,
            stdin or sys.stdin,
        )
    args = normalize_argv(sys.argv[1:] if argv is None else argv)
    err = ctx.stderr
    try:
        result = app(args=args, prog_name="jobctl", standalone_mode=False, obj=ctx)
        code = int(result) if isinstance(result, int) else 0
        if code == ExitCode.INTERRUPTED:  # Typer turns ^C into a silent exit 130
            print("\njobctl: interrupted", file=err)
    except NoArgsIsHelpError as exc:
        print(exc.format_message(), file=ctx.stdout)
        code = ExitCode.OK
    except UsageError as exc:
        print(f"jobctl: {_redact(_usage_line(exc), ctx)}", file=err)
        code = ExitCode.USAGE
    except typer.Abort:
        print("jobctl: interrupted", file=err)
        code = ExitCode.INTERRUPTED
    except typer.TyperException as exc:  # other Click errors (e.g. a file option it could not open)
        print(f"jobctl: {_redact(exc.format_message(), ctx)}", file=err)
        code = ExitCode.USAGE
    except JobctlError as exc:
        print(f"jobctl: {_redact(exc.message, ctx)}", file=err)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("\njobctl: interrupted", file=err)
        code = ExitCode.INTERRUPTED
    except SystemExit as exc:  # Typer exits this way when the reader of a pipe goes away
        code = exc.code if isinstance(exc.code, int) else ExitCode.SERVER_ERROR
    except Exception as exc:
        if ctx.debug:
            import traceback

            print(_redact("".join(traceback.format_exception(exc)), ctx), file=err)
        message = " ".join(str(exc).split()) or "no details"
        print(
            f"jobctl: unexpected error: {type(exc).__name__}: {_redact(message, ctx)}"
            f"{'' if ctx.debug else ' (JOBCTL_DEBUG=1 shows the traceback)'}",
            file=err,
        )
        code = exit_code_for(exc)
    finally:
        ctx.close()
    return int(code)
