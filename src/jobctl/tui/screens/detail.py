"""One job: its fields, the step timeline, the output as JSON, the error, and live logs.

The screen's own workers fetch the steps and follow the logs; they end with
the screen. The app hands it newer snapshots of the job (`job` attribute).
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
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from jobctl.backends.feed import FeedMode
from jobctl.errors import JobctlError
from jobctl.models import Job, Step, format_time
from jobctl.tui.format import job_time, progress_bar, status_label
from jobctl.tui.messages import DetailLoaded, LogsLoaded
from jobctl.tui.screens.main import JobsRequested, key_binding
from jobctl.tui.settings import MUTATING_ACTIONS, TuiSettings
from jobctl.tui.widgets.status_header import StatusHeader
from jobctl.tui.widgets.step_timeline import StepTimeline

if TYPE_CHECKING:
    from jobctl.tui.ports import JobApi

MAX_LOG_LINES = 2000  # a bounded tail: a chatty job never freezes the view


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
    grid.add_row("status", status_label(job.status), "", "")
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


def render_output(output: Any) -> Syntax | Text:
    if output is None:
        return Text("No output yet.", style="italic")
    text = json.dumps(output, indent=2, ensure_ascii=False, sort_keys=False)
    return Syntax(text, "json", theme="ansi_dark", word_wrap=True, background_color="default")


class DetailScreen(Screen[None]):
    BINDINGS = [
        key_binding("back", "back", "Back"),
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
        self.mode = mode
        self.client = client
        self.settings = settings
        self.job_id = job.id
        self.steps: list[Step] = []
        self.after = 0  # last log seq shown
        self._first = job

    def compose(self) -> ComposeResult:
        header = StatusHeader()
        header.title = f"job {self._first.short_id}"
        header.target = self.settings.target
        header.readonly = self.settings.readonly
        header.mode = self.mode
        yield header
        with VerticalScroll(id="detail-body"):
            yield Static(id="fields")
            yield Static("Steps", classes="section")
            yield StepTimeline(self.settings.clock, id="steps")
            yield Static("Output", classes="section")
            yield Static(id="output")
            yield Static("Error", classes="section error-title")
            yield Static(id="error")
        yield Static("Logs (following)", classes="section", id="logs-title")
        yield Log(max_lines=MAX_LOG_LINES, id="logs")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.job = self._first
        self.load_detail()
        self.follow_logs()
        self.query_one("#detail-body").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in MUTATING_ACTIONS and self.settings.readonly)

    # drawing ------------------------------------------------------------------
    def watch_job(self, old: Job | None, job: Job | None) -> None:
        if job is None:
            return
        self.query_one("#fields", Static).update(render_fields(job, self.settings))
        self.query_one("#output", Static).update(render_output(job.output))
        has_error = bool(job.error)
        self.query_one("#error", Static).update(Text(job.error or ""))
        self.query_one("#error").display = has_error
        self.query_one(".error-title").display = has_error
        if old is not None and (old.status, old.progress, old.attempt) != (
            job.status,
            job.progress,
            job.attempt,
        ):
            self.load_steps()
            if old.status.is_terminal and not job.status.is_terminal:
                self.follow_logs()  # retried: there will be new lines

    @on(DetailLoaded)
    def detail_loaded(self, message: DetailLoaded) -> None:
        self.steps = message.steps
        self.query_one(StepTimeline).show(message.steps)
        if self.job is None or message.job.updated_at != self.job.updated_at:
            self.job = message.job

    @on(LogsLoaded)
    def logs_loaded(self, message: LogsLoaded) -> None:
        log = self.query_one(Log)
        log.write_lines(
            f"{(format_time(line.ts) or '')[11:23]} {line.level:<5} "
            f"{('[' + line.step + '] ') if line.step else ''}{line.message}"
            for line in message.lines
        )

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

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def follow_logs(self) -> None:
        """Poll for new log lines until the job has ended and none are left."""
        while True:
            try:
                page = await self.client.get_logs(self.job_id, after=self.after)
            except JobctlError:
                await asyncio.sleep(self.settings.log_interval * 2)  # offline: keep trying
                continue
            if page.logs:
                self.after = max(self.after, page.next_after, page.logs[-1].seq)
                self.post_message(LogsLoaded(self.job_id, page.logs))
                continue
            if page.job_status in ("completed", "failed", "cancelled"):
                return
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
