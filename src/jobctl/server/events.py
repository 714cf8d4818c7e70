"""The event history: every event received on /e/{key} and every API submit, with the
jobs it started, and replay (the same event again: new jobs, linked to the original).

A submit path calls `record_events` with `new_event(...)` rows after creating its
jobs (the API's submit and the /e/ intake do); `replay_event` submits through
`submit_event_jobs`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobctl.server.joberrors import ApiError
from jobctl.server.records import NewJob, dumps, now_us
from jobctl.server.schedule_records import EventRow

if TYPE_CHECKING:
    from jobctl.server.engine import Engine
    from jobctl.server.registry import JobType

log = logging.getLogger("jobctl.events")

SOURCE_EVENT, SOURCE_API, SOURCE_REPLAY = "event", "api", "replay"


def type_for_event(engine: Engine, name: str) -> JobType | None:
    """An event named after a type (`demo`), or `anything/<type>`, starts that type."""
    return engine.registry.get(name) or engine.registry.get(name.rsplit("/", 1)[-1])


def new_event(
    *,
    user_id: str,
    name: str,
    data: dict[str, Any],
    source: str,
    job_ids: list[str],
    event_id: str | None = None,
    replay_of: str | None = None,
    received_at: int | None = None,
) -> EventRow:
    return EventRow(
        id=str(uuid.uuid4()),
        user_id=user_id,
        name=name,
        data=dumps(data),
        event_id=event_id,
        source=source,
        replay_of=replay_of,
        received_at=received_at if received_at is not None else now_us(),
        job_ids=list(job_ids),
    )


async def record_events(engine: Engine, events: list[EventRow]) -> bool:
    """Keep events in the history (one transaction). Never fails the submit that calls
    it: its jobs are committed already, and a lost history row is better than a 500."""
    try:
        await engine.store.record_events(events)
    except Exception:
        log.exception("could not record %d event(s) in the history", len(events))
        return False
    return True


@dataclass
class Submitted:
    event: EventRow
    job_ids: list[str]


async def submit_event_jobs(
    engine: Engine,
    *,
    user_id: str,
    name: str,
    data: dict[str, Any],
    source: str,
    event_id: str | None = None,
    replay_of: str | None = None,
) -> Submitted:
    """Start the job an event names and record the event. An event with an id starts its
    job once in 24 h (a repeat is recorded, linked to no new job). Raises ApiError 400
    for a name no type answers to."""
    job_type = type_for_event(engine, name)
    if job_type is None:
        raise ApiError(400, "unknown_type", f"no job type for event {name!r}")
    ttl = int(engine.settings.idempotency_hours * 3600 * 1_000_000)
    new = NewJob(
        id=str(uuid.uuid4()),
        type=job_type.name,
        input=dumps(data),
        user_id=user_id,
        max_attempts=job_type.retries + 1,
        idempotency_key=f"event:{event_id}" if event_id and source != SOURCE_REPLAY else None,
    )
    row, created = await engine.store.create_job(new, now_us(), ttl)
    job_ids = [row.id] if created else []
    event = new_event(
        user_id=user_id,
        name=name,
        data=data,
        source=source,
        job_ids=job_ids,
        event_id=event_id,
        replay_of=replay_of,
    )
    await record_events(engine, [event])
    return Submitted(event, [row.id])


async def replay_event(engine: Engine, event_id: str, user_id: str | None) -> Submitted:
    """The same event again: new jobs (no de-duplication), a new history row whose
    `replay_of` is the original. Raises ApiError 404 for an unknown event."""
    original = await engine.store.get_event(event_id, user_id)
    if original is None:
        raise ApiError(404, "not_found", f"event {event_id} not found")
    from jobctl.server.api import validate_input  # the door's checks, as for a new submit

    job_type = type_for_event(engine, original.name)
    if job_type is None:
        raise ApiError(
            400, "unknown_type", f"no job type for event {original.name!r} on this server"
        )
    data = original.to_api()["data"] or {}
    validate_input(job_type, data)
    done = await submit_event_jobs(
        engine,
        user_id=original.user_id,
        name=original.name,
        data=data,
        source=SOURCE_REPLAY,
        event_id=original.event_id,
        replay_of=original.id,
    )
    engine.wake()
    return done
