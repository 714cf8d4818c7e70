"""One job: its fields, the step timeline, the output as JSON, the error, and live logs.

The screen's own workers fetch the steps and follow the logs; they end with
the screen. The app hands it newer snapshots of the job (`job` attribute) and
a tick each second, so ages and running steps' times stay live.

Attempts are shown as `jobctl show` shows them: the job's attempt N of M
(M is the per-step budget, `retries + 1`), and each step's own attempt.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from jobctl.backends.feed import FeedMode
from jobctl.errors import JobctlError
from jobctl.models import Job, JobStatus, LogLine, Step, format_time
from jobctl.tui.format import job_time, progress_bar, status_label
from jobctl.tui.messages import DetailLoaded, LogsLoaded
from jobctl.tui.screens.main import JobsRequested, hide_bindings, key_binding
from jobctl.tui.settings import KEYS, MUTATING_ACTIONS, TuiSettings
from jobctl.tui.widgets.scrolling import VimLog, VimScroll
from jobctl.tui.widgets.status_header import StatusHeader
from jobctl.tui.widgets.step_timeline import StepTimeline

if TYPE_CHECKING:
    from jobctl.tui.ports import JobApi

MAX_LOG_LINES = 2000  # a bounded tail: a chatty job never freezes the view
LEVEL_STYLE = {
    "debug": "dim",
    "info": "",
    "warn": "yellow",
    "warning": "yellow",
    "error": "bold red",
}
STATUS_STYLE = {
    JobStatus.PENDING: "dim",
    JobStatus.RUNNING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.CANCELLED: "yellow",
}


def _stamp(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def render_fields(job: Job, settings: TuiSettings) -> Table:
    """Compact enough that the steps still show on an 80x24 terminal."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold", ratio=1)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    took = job_time(job, settings.clock()) or "-"
    grid.add_row("id", job.id, "attempt", f"{job.attempt} of {job.max_attempts}")
    grid.add_row("type", job.type, "duration" if job.status.is_terminal else "age", took)
    status = Text(status_label(job.status), style=STATUS_STYLE[job.status])
    grid.add_row("status", status, "", "")
    progress = f"{progress_bar(job.progress, 20)}  {job.message or ''}".rstrip()
    grid.add_row("progress", progress, "", "")
    grid.add_row("created", _stamp(job.created_at), "", "")
    if job.started_at or job.completed_at:
        ended = f" · ended {_stamp(job.completed_at)[11:]}" if job.completed_at else ""
        grid.add_row("started", f"{_stamp(job.started_at)}{ended}", "", "")
    shown_input = {k: v for k, v in job.input.items() if k != "text"}
    if "text" in job.input:
        shown_input["text"] = f"<{len(str(job.input['text']))} characters>"
    grid.add_row("input", json.dumps(shown_input, ensure_ascii=False)[:400], "", "")
    keys = [
        f"{n} {v}"
        for n, v in (("idempotency", job.idempotency_key), ("concurrency", job.concurrency_key))
        if v
    ]
    if keys:
        grid.add_row("keys", " · ".join(keys), "", "")
    return grid


def output_note(job: Job) -> str | None:
    """What to say instead of the output when there is none; None hides the section
    (a failed or cancelled job without output: its error says what happened)."""
    if job.output is not None:
        return ""
    if job.status == JobStatus.COMPLETED:
        return "The job returned no output."
    if job.status.is_terminal:
        return None
    return "No output yet."


def render_output(output: Any) -> Syntax | Text:
    if output is None:
        return Text("No output yet.", style="italic")
    text = json.dumps(output, indent=2, ensure_ascii=False, sort_keys=False)
    return Syntax(text, "json", theme="ansi_dark", word_wrap=True, background_color="default")


def render_log_line(line: LogLine) -> Text:
    """`12:00:01.250 info  [parse] text`, the level coloured (and always written out)."""
    level = line.level.lower()
    text = Text(f"{(format_time(line.ts) or '')[11:23]} ", style="dim")
    text.append(f"{level:<5}", style=LEVEL_STYLE.get(level, ""))
    text.append(" ")
    if line.step:
        text.append(f"[{line.step}] ", style="bold")
    text.append(line.message, style="red" if level == "error" else "")
    return text


class DetailScreen(Screen[None]):
    BINDINGS = [
        key_binding("back", "back", "Back"),
        # The quit key goes back from here (k9s); ctrl+c still quits.
        Binding(KEYS["quit"][0], "back", "Back", show=False, id="quit"),
        key_binding("retry", "retry", "Retry"),
        key_binding("cancel", "cancel", "Cancel"),
        key_binding("copy_id", "copy_id", "Copy id"),
    ]

    job: reactive[Job | None] = reactive(None, always_update=True, init=False)

    def __init__(
        self,
        job: Job,
        client: JobApi,
        settings: TuiSettings,
        mode: FeedMode = FeedMode.CONNECTING,
    ) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.job_id = job.id
        self.steps: list[Step] = []
        self.after = 0  # last log seq shown
        self._first = job
        self.following = False
        self.log_state = "loading"  # loading | following | ended | offline
        self.header = StatusHeader()
        self.header.title = f"job {job.short_id}"
        self.header.target = settings.target
        self.header.readonly = settings.readonly
        self.header.mode = mode
        self.fields = Static(id="fields")
        self.timeline = StepTimeline(settings.clock, id="steps")
        self.output_title = Static("Output", classes="section", id="output-title")
        self.output = Static(id="output")
        self.error_title = Static("Error", classes="section error-title")
        self.error = Static(id="error")
        self.logs_title = Static("Logs", classes="section", id="logs-title")
        self.logs = VimLog(max_lines=MAX_LOG_LINES, id="logs", wrap=True)
        if settings.readonly:
            hide_bindings(self, MUTATING_ACTIONS)

    def compose(self) -> ComposeResult:
        yield self.header
        with VimScroll(id="detail-body"):
            yield self.fields
            yield Static("Steps", classes="section")
            yield self.timeline
            yield self.output_title
            yield self.output
            yield self.error_title
            yield self.error
        yield self.logs_title
        yield self.logs
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.job = self._first
        self.load_detail()
        self.follow_logs()
        self.query_one("#detail-body").focus()

    def tick(self) -> None:
        """Once a second: the age and the running steps' times move on."""
        if self.job is not None and not self.job.status.is_terminal:
            self.fields.update(render_fields(self.job, self.settings))
            self.timeline.show(self.steps)

    # drawing ------------------------------------------------------------------
    def watch_job(self, old: Job | None, job: Job | None) -> None:
        if job is None:
            return
        self.fields.update(render_fields(job, self.settings))
        if self.timeline.budget != job.max_attempts:
            self.timeline.budget = job.max_attempts
            self.timeline.show(self.steps)
        note = output_note(job)
        self.output.display = self.output_title.display = note is not None
        self.output.update(render_output(job.output) if not note else Text(note, style="italic"))
        has_error = bool(job.error)
        self.error.update(Text(job.error or ""))
        self.error.display = self.error_title.display = has_error
        if old is not None and (old.status, old.progress, old.attempt) != (
            job.status,
            job.progress,
            job.attempt,
        ):
            self.load_steps()
            if old.status.is_terminal and not job.status.is_terminal:
                self.follow_logs()  # retried: there will be new lines
        self._show_log_state()

    def _show_log_state(self) -> None:
        job = self.job
        state = self.log_state
        if state == "following" and job is not None and job.status.is_terminal:
            state = "ending"  # the last lines are being read
        title = {
            "loading": "Logs (loading…)",
            "following": "Logs (following: new lines appear as the job writes them)",
            "ending": "Logs (the job has ended; reading the last lines)",
            "ended": "Logs (the job has ended; every line is shown)",
            "offline": "Logs (the server does not answer; retrying)",
        }[state]
        self.logs_title.update(title)

    def validate_job(self, job: Job | None) -> Job | None:
        """A snapshot without the input or output (a listing's, a poll's) keeps the ones
        of the whole job shown, until load_detail fetches it again."""
        current = self.job
        if job is None or current is None or not job.missing:
            return job
        return job.filled_from(current)

    @on(DetailLoaded)
    def detail_loaded(self, message: DetailLoaded) -> None:
        self.steps = message.steps
        self.timeline.show(message.steps)
        job = self.job
        if job is None or job.missing or message.job.updated_at != job.updated_at:
            self.job = message.job

    @on(LogsLoaded)
    def logs_loaded(self, message: LogsLoaded) -> None:
        for line in message.lines:
            self.logs.write(render_log_line(line))

    # workers --------------------------------------------------------------------
    @work(exclusive=True, group="detail", exit_on_error=False)
    async def load_detail(self) -> None:
        try:
            job = await self.client.get_job(self.job_id)
            steps = await self.client.get_steps(self.job_id)
        except JobctlError as exc:
            self.notify(f"Could not load job {self.job_id[:8]}: {exc.message}", severity="error")
            return
        self.post_message(DetailLoaded(job, steps))

    def load_steps(self) -> None:
        self.load_detail()

    def _set_log_state(self, state: str) -> None:
        if state != self.log_state:
            self.log_state = state
            self._show_log_state()

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def follow_logs(self) -> None:
        """Poll for new log lines until the job has ended and none are left."""
        while True:
            try:
                page = await self.client.get_logs(self.job_id, after=self.after)
            except JobctlError:
                self._set_log_state("offline")
                await asyncio.sleep(self.settings.log_interval * 2)  # offline: keep trying
                continue
            if page.logs:
                self.after = max(self.after, page.next_after, page.logs[-1].seq)
                self.post_message(LogsLoaded(self.job_id, page.logs))
                continue
            if page.job_status in ("completed", "failed", "cancelled"):
                self._set_log_state("ended")
                return
            self._set_log_state("following")
            await asyncio.sleep(self.settings.log_interval)

    # actions ------------------------------------------------------------------
    def action_back(self) -> None:
        self.dismiss(None)

    def action_retry(self) -> None:
        self.post_message(JobsRequested("retry", [self.job_id]))

    def action_cancel(self) -> None:
        self.post_message(JobsRequested("cancel", [self.job_id]))

    def action_copy_id(self) -> None:
        self.post_message(JobsRequested("copy_id", [self.job_id]))
