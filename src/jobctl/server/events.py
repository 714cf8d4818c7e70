"""The event history: every event received on /e/{key} and every API submit, with the
jobs it started, kept with the jobs' retention rules.

The service's submit path (server/service.py) records one `new_event(...)` row per
submission after creating its jobs, and replays an event by submitting it again with
`replay_of` set (new jobs, no de-duplication).
"""

from __future__ import annotations

import logging
from typing import Any

from jobctl.server.records import dumps, new_id, now_us
from jobctl.server.schedule_records import EventRow
from jobctl.server.store.base import Store

log = logging.getLogger("jobctl.events")

SOURCE_EVENT, SOURCE_API, SOURCE_REPLAY = "event", "api", "replay"


def new_event(
    *,
    user_id: str,
    name: str,
    data: Any,
    source: str,
    job_ids: list[str],
    event_id: str | None = None,
    replay_of: str | None = None,
    received_at: int | None = None,
    data_text: str | None = None,
) -> EventRow:
    """`data_text`: the data as JSON text already (a submit's canonical input), else
    `data` is encoded."""
    return EventRow(
        id=new_id(),
        user_id=user_id,
        name=name,
        data=dumps(data) if data_text is None else data_text,
        event_id=event_id,
        source=source,
        replay_of=replay_of,
        received_at=received_at if received_at is not None else now_us(),
        job_ids=list(job_ids),
    )


async def record_events(store: Store, events: list[EventRow]) -> bool:
    """Keep events in the history (one transaction). Never fails the submit that calls
    it: its jobs are committed already, and a lost history row is better than a 500."""
    if not events:
        return True
    try:
        await store.record_events(events)
    except Exception:
        log.exception("could not record %d event(s) in the history", len(events))
        return False
    return True
