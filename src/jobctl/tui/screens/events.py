"""The events view: the newest events received (on /e/{key}, API submits, replays), the
jobs each started. r replays the highlighted event (the same event again: new jobs,
linked to it); Enter opens its job (several: the jobs table, filtered to them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from textual import work

from jobctl.errors import JobctlError
from jobctl.tui.format import EVENT_COLUMNS, count_label, event_cells
from jobctl.tui.messages import ActionFailed, JobsStarted, RecordChanged, ShowJobs
from jobctl.tui.screens.main import key_binding
from jobctl.tui.screens.records import Record, RecordsScreen

EVENTS_SHOWN = 100  # the newest; `jobctl events list --limit` reaches further


class EventsScreen(RecordsScreen):
    COLUMNS = EVENT_COLUMNS
    NOUN = "event"
    TITLE = "events"
    EMPTY = "No events yet: events sent to /e/{key} and jobs submitted through the API show here."
    OFF_WHEN_READONLY = "replay is off"

    BINDINGS = [
        key_binding("open", "open", "Open job"),
        key_binding("replay", "replay", "Replay"),
        *RecordsScreen.COMMON_BINDINGS,
    ]

    async def fetch(self) -> list[Record]:
        events, _ = await self.client.list_events(limit=EVENTS_SHOWN)
        return events

    def cells(self, record: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
        return event_cells(record, now)

    def summary(self) -> str:
        shown = count_label(len(self.records), "event")
        return f"the newest {shown}" if len(self.records) >= EVENTS_SHOWN else shown

    # keys ------------------------------------------------------------------------------
    def action_open(self) -> None:
        event = self.selected()
        if event is None:
            return
        job_ids = [str(j) for j in event.get("job_ids") or []]
        if job_ids:
            self.post_message(ShowJobs(job_ids))
        else:
            self.notify(f"Event {str(event['id'])[:8]} started no job.", timeout=4)

    def action_replay(self) -> None:
        event = self.selected()
        if event is not None and not self.refused("replay"):
            self.replay(event)

    # workers ---------------------------------------------------------------------------
    @work(group="actions", exit_on_error=False)
    async def replay(self, event: Record) -> None:
        short = str(event["id"])[:8]
        try:
            answer = await self.client.replay_event(str(event["id"]))
        except JobctlError as exc:
            self.post_message(ActionFailed("replay", f"event {short}", exc.message))
            return
        job_ids = [str(j) for j in answer.get("job_ids") or []]
        if job_ids:
            self.post_message(JobsStarted(job_ids))
        new = answer["event"]
        jobs = f"job {job_ids[0][:8]}" if len(job_ids) == 1 else count_label(len(job_ids), "job")
        self.post_message(
            RecordChanged(new, f"Replayed event {short} as {str(new['id'])[:8]}: {jobs} started.")
        )
