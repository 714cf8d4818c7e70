"""`jobctl events list|show|replay`: the events received (/e/{key} and API submits)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobctl.commands._shared import JsonlOption, JsonOption, for_each, get_ctx, terminal_width
from jobctl.commands.context import Context
from jobctl.errors import ExitCode, UsageError

EVENT_FIELDS = (
    "id",
    "name",
    "data",
    "event_id",
    "source",
    "replay_of",
    "received_at",
    "job_ids",
    "user_id",
    "jobs",
)

app = typer.Typer(
    help="The event history: what came in, the jobs it started, replay.", no_args_is_help=True
)


def run_list(
    name: str | None,
    since: str | None,
    limit: int,
    json_fields: str | None,
    jsonl: bool,
    ctx: Context,
) -> int:
    from jobctl.commands import render, render_history

    if json_fields is not None and jsonl:
        raise UsageError("give --json or --jsonl, not both")
    fields = render.parse_fields(json_fields, EVENT_FIELDS)
    client = ctx.client()
    events: list[dict[str, object]] = []
    cursor: str | None = None
    while len(events) < limit:
        page, cursor = client.list_events(name, since, min(500, limit - len(events)), cursor)
        events.extend(page)
        if not cursor or not page:
            break
    if json_fields is not None:
        ctx.out(render.to_json([render.select(e, fields) for e in events]))
    elif jsonl:
        for event in events:
            ctx.out(render.to_json(event, pretty=False))
    elif not events:
        ctx.info("no events match")
    elif ctx.stdout_tty:
        ctx.out(render_history.render_events_table(events, ctx.clock(), terminal_width(ctx)))
    else:
        ctx.out(render_history.render_events_tsv(events))
    return ExitCode.OK


def run_show(ref: str, json_fields: str | None, ctx: Context) -> int:
    from jobctl.commands import render, render_history

    fields = render.parse_fields(json_fields, EVENT_FIELDS)
    client = ctx.client()
    event = client.get_event(client.resolve_event_id(ref))
    if json_fields is not None:
        ctx.out(render.to_json(render.select(event, fields)))
    else:
        ctx.out(render_history.render_event_detail(event, ctx.clock(), ctx.color))
    return ExitCode.OK


def run_replay(refs: list[str], json_out: str | None, ctx: Context) -> int:
    from jobctl.commands import render

    client = ctx.client()

    def replay(ref: str) -> dict[str, object]:
        return client.replay_event(client.resolve_event_id(ref))

    def done(answer: dict[str, object]) -> None:
        if json_out is not None:
            ctx.out(render.to_json(answer, pretty=False))
            return
        event = answer["event"]
        assert isinstance(event, dict)
        for job_id in answer.get("job_ids") or []:  # type: ignore[attr-defined]
            ctx.out(str(job_id))
        ctx.info(f"replayed event {str(event['replay_of'])[:8]} as {str(event['id'])[:8]}")

    return for_each(ctx, refs, replay, done)


@app.command("list")
def list_(
    typer_ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Only events of this name.", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Received since: 30m, 2h, 7d or an ISO time.", show_default=False),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-L", help="At most this many.", min=1, max=10_000)
    ] = 20,
    json_fields: JsonOption = None,
    jsonl: JsonlOption = False,
) -> None:
    """Events, newest first. Piped: id, name, source, received_at, job ids, replay_of."""
    raise typer.Exit(run_list(name, since, limit, json_fields, jsonl, get_ctx(typer_ctx)))


@app.command("show")
def show(
    typer_ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="Event id or a unique prefix.", show_default=False)],
    json_fields: JsonOption = None,
) -> None:
    """One event: its data and the jobs it started."""
    raise typer.Exit(run_show(event, json_fields, get_ctx(typer_ctx)))


@app.command("replay")
def replay(
    typer_ctx: typer.Context,
    events: Annotated[
        list[str], typer.Argument(help="Event ids or unique prefixes.", show_default=False)
    ],
    json_out: JsonOption = None,
) -> None:
    """Send events again: new jobs, linked to the original. Prints the new job ids."""
    raise typer.Exit(run_replay(events, json_out, get_ctx(typer_ctx)))
