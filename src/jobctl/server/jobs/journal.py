"""`journal_extraction`: dated events and action items from a journal entry."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from jobctl.server.jobcontext import JobContext
from jobctl.server.joberrors import NonRetriableError
from jobctl.server.jobs import extract
from jobctl.server.registry import registry

INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "the journal entry"},
        "filename": {"type": "string"},
        "date": {"type": "string", "format": "date", "description": "the entry's date"},
    },
    "required": ["text"],
}


@registry.job(
    "journal_extraction",
    description="Extract dated events and action items from a journal entry",
    retries=2,
    input_schema=INPUT_SCHEMA,
)
async def journal_extraction(ctx: JobContext) -> dict[str, Any]:
    text = ctx.input.get("text")
    if not isinstance(text, str) or not text.strip():
        raise NonRetriableError("input.text must be a non-empty string (the journal entry)")
    given = ctx.input.get("date")
    await ctx.progress(5, "Reading the entry...")

    def parse() -> dict[str, Any]:
        fallback = datetime.now(UTC).date()
        if isinstance(given, str):
            try:
                fallback = date.fromisoformat(given)
            except ValueError as exc:
                raise NonRetriableError(f"input.date is not a date: {given!r}") from exc
        ref = extract.find_reference_date(text, fallback)
        sentences = extract.split_sentences(text)
        dated_header = extract._absolute_date(sentences[0], ref) is not None if sentences else False
        return {"ref": ref.isoformat(), "sentences": sentences, "skip_first": dated_header}

    parsed = await ctx.step.run("parse", parse)
    ref = date.fromisoformat(parsed["ref"])
    ctx.log(f"{len(parsed['sentences'])} sentences, entry dated {parsed['ref']}")
    await ctx.progress(25, "Finding dated events...")

    events = await ctx.step.run(
        "extract-events",
        lambda: extract.extract_events(parsed["sentences"], ref, parsed["skip_first"]),
    )
    await ctx.progress(55, f"Found {len(events)} events; finding action items...")

    items = await ctx.step.run(
        "extract-action-items", lambda: extract.extract_action_items(parsed["sentences"], ref)
    )
    await ctx.progress(85, f"Found {len(items)} action items; saving...")

    def save() -> dict[str, Any]:
        return {
            "events_created": len(events),
            "action_items_created": len(items),
            "event_ids": [e["id"] for e in events],
            "events": events,
            "action_items": items,
        }

    output: dict[str, Any] = await ctx.step.run("save", save)
    ctx.log(f"extracted {len(events)} events and {len(items)} action items")
    await ctx.progress(100, f"{len(events)} events, {len(items)} action items")
    return output
