"""The schedules view: name, type, cron or interval, next run, last run, paused or not.

p pauses or resumes the highlighted schedule (asking for an optional note), t runs it
now, Enter opens the job of its last run, ctrl+r refreshes (it also polls).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from textual import work

from jobctl.errors import JobctlError
from jobctl.tui.format import SCHEDULE_COLUMNS, schedule_cells
from jobctl.tui.messages import ActionFailed, JobsStarted, RecordChanged, ShowJobs
from jobctl.tui.screens.main import key_binding
from jobctl.tui.screens.note import NoteScreen
from jobctl.tui.screens.records import Record, RecordsScreen


class SchedulesScreen(RecordsScreen):
    COLUMNS = SCHEDULE_COLUMNS
    NOUN = "schedule"
    TITLE = "schedules"
    EMPTY = "No schedules yet: `jobctl schedule create NAME --type T --every 1h` makes one."
    OFF_WHEN_READONLY = "pause, resume and trigger are off"

    BINDINGS = [
        key_binding("pause", "pause", "Pause/resume"),
        key_binding("trigger", "trigger", "Trigger"),
        key_binding("open", "open", "Last job", show=False),
        *RecordsScreen.COMMON_BINDINGS,
    ]

    async def fetch(self) -> list[Record]:
        return await self.client.list_schedules()

    def cells(self, record: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
        return schedule_cells(record, now)

    def summary(self) -> str:
        paused = sum(1 for s in self.records.values() if s.get("paused"))
        return super().summary() + (f" ({paused} paused)" if paused else "")

    # keys ------------------------------------------------------------------------------
    def action_pause(self) -> None:
        schedule = self.selected()
        if schedule is None:
            return
        verb = "resume" if schedule.get("paused") else "pause"
        if self.refused(verb):
            return

        def answered(note: str | None) -> None:
            if note is not None:
                self.act(schedule, verb, {"note": note} if note else None)

        name = schedule["name"]
        self.app.push_screen(NoteScreen(f"{verb.capitalize()} schedule {name}?"), answered)

    def action_trigger(self) -> None:
        schedule = self.selected()
        if schedule is not None and not self.refused("trigger"):
            self.act(schedule, "trigger", None)

    def action_open(self) -> None:
        schedule = self.selected()
        if schedule is None:
            return
        if schedule.get("last_job_id"):
            self.post_message(ShowJobs([str(schedule["last_job_id"])]))
        else:
            self.notify(f"Schedule {schedule['name']} has made no job yet.", timeout=4)

    # workers ---------------------------------------------------------------------------
    @work(group="actions", exit_on_error=False)
    async def act(self, schedule: Record, verb: str, body: dict[str, Any] | None) -> None:
        name = str(schedule["name"])
        try:
            answer = await self.client.schedule_action(str(schedule["id"]), verb, body)
        except JobctlError as exc:
            self.post_message(ActionFailed(verb, name, exc.message))
            return
        if verb != "trigger":
            note = f" ({answer['note']})" if answer.get("note") else ""
            self.post_message(RecordChanged(answer, f"{verb.capitalize()}d {name}{note}."))
            return
        runs = answer.get("runs") or []
        started = [str(r["job_id"]) for r in runs if r.get("outcome") == "started"]
        if started:
            self.post_message(JobsStarted(started))
            said = f"job {started[0][:8]} started"
        else:
            said = ", ".join(str(r.get("outcome")) for r in runs) or "nothing ran"
        self.post_message(RecordChanged(None, f"Triggered {name}: {said}."))
        self.load()  # its last run is this one now
