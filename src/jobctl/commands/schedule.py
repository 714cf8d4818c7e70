"""`jobctl schedule create|list|show|pause|resume|trigger|backfill|delete`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from jobctl.commands._shared import JsonlOption, JsonOption, get_ctx, terminal_width
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UsageError
from jobctl.jobinput import Stdin, job_input

app = typer.Typer(
    help="Run a job type on a clock: cron in a time zone, or every N seconds.", no_args_is_help=True
)

SCHEDULE_FIELDS = (
    "id",
    "name",
    "type",
    "cron",
    "tz",
    "every_seconds",
    "input",
    "overlap",
    "catchup_seconds",
    "catchup_policy",
    "jitter_seconds",
    "paused",
    "note",
    "next_run_at",
    "buffered_tick",
    "last_tick",
    "last_job_id",
    "last_status",
    "user_id",
    "created_at",
    "updated_at",
    "runs",
)
OVERLAPS = ("skip", "buffer-one", "allow")
POLICIES = ("each", "once")


@dataclass
class CreateOptions:
    name: str
    type: str
    cron: str | None
    tz: str | None
    every: str | None
    input_json: str | None
    input_file: Path | None
    overlap: str
    catchup: str
    catchup_policy: str
    jitter: str
    paused: bool
    json_fields: str | None


def run_create(opts: CreateOptions, ctx: Context) -> int:
    from jobctl.commands import render

    if opts.overlap not in OVERLAPS:
        raise UsageError(f"--overlap: one of {', '.join(OVERLAPS)}")
    if opts.catchup_policy not in POLICIES:
        raise UsageError(f"--catchup-policy: one of {', '.join(POLICIES)}")
    # The cron expression, zone and durations are checked by the server (the one place
    # that knows them), which answers 400: exit 2, nothing saved.
    data: dict[str, Any] = {}
    if opts.input_json is not None or opts.input_file is not None:
        stdin = Stdin(ctx.stdin, ctx.stdin_tty)
        data = job_input(None, opts.input_json, opts.input_file, stdin=stdin)
    body: dict[str, Any] = {
        "name": opts.name,
        "type": opts.type,
        "input": data,
        "overlap": opts.overlap,
        "catchup": opts.catchup,
        "catchup_policy": opts.catchup_policy,
        "jitter": opts.jitter,
        "paused": opts.paused,
    }
    for key, value in (("cron", opts.cron), ("tz", opts.tz), ("every", opts.every)):
        if value is not None:
            body[key] = value
    fields = render.parse_fields(opts.json_fields, SCHEDULE_FIELDS)
    created = ctx.client().create_schedule(body)
    if opts.json_fields is not None:
        ctx.out(render.to_json(render.select(created, fields)))
    else:
        ctx.out(str(created["id"]))
        nxt = "paused" if created.get("paused") else f"next run {created.get('next_run_at')}"
        ctx.info(f"created schedule {created['name']} ({nxt})")
    return ExitCode.OK


def run_list(json_fields: str | None, jsonl: bool, ctx: Context) -> int:
    from jobctl.commands import render, render_history

    fields = render.parse_fields(json_fields, SCHEDULE_FIELDS)
    schedules = ctx.client().list_schedules()
    if json_fields is not None:
        ctx.out(render.to_json([render.select(s, fields) for s in schedules]))
    elif jsonl:
        for s in schedules:
            ctx.out(render.to_json(s, pretty=False))
    elif not schedules:
        ctx.info("no schedules")
    elif ctx.stdout_tty:
        width = terminal_width(ctx)
        ctx.out(render_history.render_schedules_table(schedules, ctx.clock(), ctx.color, width))
    else:
        ctx.out(render_history.render_schedules_tsv(schedules))
    return ExitCode.OK


def run_show(ref: str, runs: int, json_fields: str | None, ctx: Context) -> int:
    from jobctl.commands import render, render_history

    fields = render.parse_fields(json_fields, SCHEDULE_FIELDS)
    data = ctx.client().get_schedule(ref, runs)
    if json_fields is not None:
        ctx.out(render.to_json(render.select(data, fields)))
    else:
        ctx.out(render_history.render_schedule_detail(data, ctx.clock(), ctx.color))
    return ExitCode.OK


def run_action(
    ref: str, action: str, body: dict[str, Any] | None, json_out: str | None, ctx: Context
) -> int:
    from jobctl.commands import render, render_history

    data = ctx.client().schedule_action(ref, action, body)
    if json_out is not None:
        ctx.out(render.to_json(data))
    elif "runs" in data:
        runs = data["runs"]
        if runs:
            ctx.out(render_history.render_runs_result(runs))
        started = sum(1 for r in runs if r["outcome"] == "started")
        ctx.info(
            f"{action}: {started} job{'s' if started != 1 else ''} started"
            + (f", {len(runs) - started} tick(s) had run already" if len(runs) > started else "")
        )
    else:
        ctx.info(f"schedule {data['name']} {'paused' if data['paused'] else 'resumed'}")
    return ExitCode.OK


Ref = Annotated[str, typer.Argument(help="Schedule name or id.", show_default=False)]
NoteOpt = Annotated[
    str | None, typer.Option("--note", help="Why (shown in list and show).", show_default=False)
]
JsonFlag = JsonOption  # a bare --json (main() gives it an empty field list): the whole answer


@app.command("create")
def create(
    typer_ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name, unique among yours.", show_default=False)],
    type: Annotated[str, typer.Option("--type", "-t", help="Job type to run.", show_default=False)],
    cron: Annotated[
        str | None, typer.Option(help="5-field cron, or @hourly, @daily, ...", show_default=False)
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(help="Time zone for --cron (IANA, default UTC).", show_default=False),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="Or an interval: 1s, 5m, 1h (at least 1s).", show_default=False),
    ] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="Input as a JSON object.", show_default=False)
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input-file", help="Input from a JSON file.", show_default=False),
    ] = None,
    overlap: Annotated[
        str, typer.Option(help="While the last run is active: skip, buffer-one or allow.")
    ] = "skip",
    catchup: Annotated[
        str, typer.Option(help="After downtime, run missed ticks this recent.")
    ] = "1m",
    catchup_policy: Annotated[
        str, typer.Option(help="Missed ticks run each, or once in all.")
    ] = "each",
    jitter: Annotated[
        str, typer.Option(help="Delay each run by up to this (spreads load).")
    ] = "0s",
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    json_fields: JsonOption = None,
) -> None:
    """Create a schedule. Prints its id. Bad cron, zone, interval, type or input: exit 2."""
    opts = CreateOptions(
        name,
        type,
        cron,
        tz,
        every,
        input_json,
        input_file,
        overlap,
        catchup,
        catchup_policy,
        jitter,
        paused,
        json_fields,
    )
    raise typer.Exit(run_create(opts, get_ctx(typer_ctx)))


@app.command("list")
def list_(
    typer_ctx: typer.Context, json_fields: JsonOption = None, jsonl: JsonlOption = False
) -> None:
    """Schedules with their next run and last outcome. Piped: id, name, type, cron or
    every, tz, next run (or paused), last status."""
    raise typer.Exit(run_list(json_fields, jsonl, get_ctx(typer_ctx)))


@app.command("show")
def show(
    typer_ctx: typer.Context,
    schedule: Ref,
    runs: Annotated[int, typer.Option(help="Recent runs to show.", min=0, max=1000)] = 20,
    json_fields: JsonOption = None,
) -> None:
    """One schedule and its recent runs (started, skipped, buffered, with their jobs)."""
    raise typer.Exit(run_show(schedule, runs, json_fields, get_ctx(typer_ctx)))


@app.command("pause")
def pause(
    typer_ctx: typer.Context, schedule: Ref, note: NoteOpt = None, json_out: JsonFlag = None
) -> None:
    """Stop running ticks until resumed (ticks while paused are not run later)."""
    body = {"note": note} if note is not None else None
    raise typer.Exit(run_action(schedule, "pause", body, json_out, get_ctx(typer_ctx)))


@app.command("resume")
def resume(
    typer_ctx: typer.Context, schedule: Ref, note: NoteOpt = None, json_out: JsonFlag = None
) -> None:
    """Run ticks again, from the next one after now."""
    body = {"note": note} if note is not None else None
    raise typer.Exit(run_action(schedule, "resume", body, json_out, get_ctx(typer_ctx)))


@app.command("trigger")
def trigger(typer_ctx: typer.Context, schedule: Ref, json_out: JsonFlag = None) -> None:
    """Run it now, once (whatever the overlap policy). Prints the tick, outcome, job id."""
    raise typer.Exit(run_action(schedule, "trigger", None, json_out, get_ctx(typer_ctx)))


@app.command("backfill")
def backfill(
    typer_ctx: typer.Context,
    schedule: Ref,
    start: Annotated[
        str, typer.Option("--from", help="ISO time or 2h, 1d (ago).", show_default=False)
    ],
    end: Annotated[str, typer.Option("--to", help="ISO time or 30m (ago).", show_default=False)],
    json_out: JsonFlag = None,
) -> None:
    """Run the ticks between --from and --to that never ran (at most 1000)."""
    body = {"from": start, "to": end}
    raise typer.Exit(run_action(schedule, "backfill", body, json_out, get_ctx(typer_ctx)))


@app.command("delete")
def delete(typer_ctx: typer.Context, schedule: Ref) -> None:
    """Delete a schedule and its run history; the jobs it made stay."""
    ctx = get_ctx(typer_ctx)
    ctx.client().delete_schedule(schedule)
    ctx.info(f"deleted schedule {schedule}")
    raise typer.Exit(ExitCode.OK)
