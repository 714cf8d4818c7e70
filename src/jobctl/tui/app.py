"""The dashboard app: `make_app(client, feed, settings)` for `jobctl tui` and the tests.

The app owns the client and the feed. Network work runs in workers that end
by posting a message (tui/messages.py); handlers here keep the job store and
pass what changed down to the screens. Screens and widgets never call the
client, except the detail screen's own workers (which end with the screen).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from jobctl.backends.feed import FeedMode, JobChanged
from jobctl.errors import JobctlError
from jobctl.models import Job
from jobctl.tui.format import finish_notice, ids_label
from jobctl.tui.messages import (
    ActionDone,
    ActionFailed,
    ConnectionChanged,
    JobsLoaded,
    JobUpdated,
    StatsLoaded,
)
from jobctl.tui.screens.confirm import ConfirmScreen
from jobctl.tui.screens.detail import DetailScreen
from jobctl.tui.screens.help import HelpScreen
from jobctl.tui.screens.main import JobsRequested, MainScreen, TableReady
from jobctl.tui.screens.submit import Submission, SubmitScreen
from jobctl.tui.settings import KEYS, MUTATING_ACTIONS, TuiSettings
from jobctl.tui.widgets.status_header import StatusHeader
from jobctl.tui.widgets.summary_strip import SummaryStrip

if TYPE_CHECKING:
    from jobctl.tui.ports import JobApi, LiveFeed

PAGE = 500
W = TypeVar("W", bound=Widget)


class JobctlApp(App[int]):
    CSS_PATH = "jobctl.tcss"
    TITLE = "jobctl"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding(KEYS["quit"][0], "quit", "Quit", id="quit"),
        Binding(KEYS["help"][0], "help", "Keys", id="help"),
        Binding(KEYS["open_last"][0], "open_last", "Open last", show=False, id="open_last"),
    ]

    def __init__(self, client: JobApi, feed: LiveFeed, settings: TuiSettings) -> None:
        super().__init__()
        self.client = client
        self.feed = feed
        self.settings = settings
        self.jobs: dict[str, Job] = {}
        self.mode = feed.mode
        self.mode_detail = ""
        self.stats: dict[str, object] | None = None
        self.started_at: datetime = settings.clock()
        self.last_finished: str | None = None
        self.job_types: list[str] = ["journal_extraction", "demo"]
        self.terminal_notices: list[str] = []  # OSC 9 texts sent (read by the tests)
        self._stats_due = False
        self.main_screen = MainScreen(settings)

    # lifecycle ----------------------------------------------------------------
    def on_mount(self) -> None:
        if self.settings.keys:
            self.set_keymap(self.settings.keys)
        self.push_screen(self.main_screen)
        self.load_jobs()
        self.load_stats()
        self.load_types()
        self.run_feed()
        self.set_interval(self.settings.stats_interval, self.load_stats)
        self.set_interval(self.settings.tick_interval, self._tick)

    def _tick(self) -> None:
        if table := self.main_screen.mounted_table:
            table.refresh()

    # workers ------------------------------------------------------------------
    @work(exclusive=True, group="feed", exit_on_error=False)
    async def run_feed(self) -> None:
        async with self.feed:
            self.post_message(ConnectionChanged(self.feed.mode))
            async for event in self.feed.events():
                if isinstance(event, JobChanged):
                    self.post_message(JobUpdated(event.job))
                else:
                    self.post_message(ConnectionChanged(event.mode, event.detail))

    @work(exclusive=True, group="load", exit_on_error=False)
    async def load_jobs(self) -> None:
        """The newest jobs, page by page, up to settings.max_jobs."""
        cursor: str | None = None
        loaded = 0
        first = True
        while loaded < self.settings.max_jobs:
            want = min(PAGE, self.settings.max_jobs - loaded)
            try:
                page = await self.client.list_jobs(limit=want, cursor=cursor)
            except JobctlError:
                return  # the feed reports offline; we load again when it is back
            loaded += len(page.jobs)
            cursor = page.next_cursor
            done = not cursor or not page.jobs or loaded >= self.settings.max_jobs
            self.post_message(JobsLoaded(page.jobs, first=first, done=done))
            first = False
            if done:
                return

    @work(exclusive=True, group="stats", exit_on_error=False)
    async def load_stats(self) -> None:
        self._stats_due = False
        try:
            stats = await self.client.stats()
        except JobctlError:
            for strip in self._all(SummaryStrip):
                strip.stale = True
            return
        self.post_message(StatsLoaded(stats))

    @work(exclusive=True, group="types", exit_on_error=False)
    async def load_types(self) -> None:
        try:
            types = await self.client.types()
        except JobctlError:
            return
        self.job_types = [str(t.get("name")) for t in types if t.get("name")]

    # Actions are not exclusive: a second retry must not cancel the first one's requests.
    @work(group="actions", exit_on_error=False)
    async def submit_job(self, submission: Submission) -> None:
        try:
            job = await self.client.create_job(submission.type, submission.input, str(uuid.uuid4()))
        except JobctlError as exc:
            self.post_message(ActionFailed("submit", submission.label, exc.message))
            return
        self.post_message(ActionDone("submit", [job]))

    @work(group="actions", exit_on_error=False)
    async def act_on_jobs(self, verb: str, job_ids: Sequence[str]) -> None:
        done: list[Job] = []
        for job_id in job_ids:
            try:
                if verb == "retry":
                    done.append(await self.client.retry_job(job_id))
                else:
                    done.append(await self.client.cancel_job(job_id))
            except JobctlError as exc:
                self.post_message(ActionFailed(verb, job_id[:8], exc.message))
        if done:
            self.post_message(ActionDone(verb, done))

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place an unexpected worker error surfaces (the app keeps running)."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.name}: {error}", title="Unexpected error", severity="error")

    # messages from the workers --------------------------------------------------
    @on(JobUpdated)
    def job_updated(self, message: JobUpdated) -> None:
        self._apply(message.job)

    def _apply(self, job: Job, *, quiet: bool = False) -> None:
        old = self.jobs.get(job.id)
        if old is not None and _older(job, old):
            return
        self.jobs[job.id] = job
        if table := self.main_screen.mounted_table:
            table.upsert(job)
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen) and screen.job_id == job.id:
                screen.job = job
        if job.status.is_terminal and not quiet:
            ended_now = old is not None and not old.status.is_terminal
            first_seen_ended = old is None and _after(job.completed_at, self.started_at)
            if ended_now or first_seen_ended:
                self._announce_end(job)
            self._stats_soon()

    @on(JobsLoaded)
    def jobs_loaded(self, message: JobsLoaded) -> None:
        # Jobs we knew (a reload after being offline) go through _apply, which notifies
        # the ones that ended meanwhile; new ones are added to the table in one go.
        new = [j for j in message.jobs if j.id not in self.jobs]
        for job in message.jobs:
            if job.id in self.jobs:
                self._apply(job)
        for job in new:
            self.jobs[job.id] = job
        if table := self.main_screen.mounted_table:
            table.set_jobs(new)

    @on(TableReady)
    def table_ready(self) -> None:
        if table := self.main_screen.mounted_table:
            table.set_jobs(self.jobs.values(), replace=True)

    @on(ConnectionChanged)
    def connection_changed(self, message: ConnectionChanged) -> None:
        back = self.mode == FeedMode.OFFLINE and message.mode != FeedMode.OFFLINE
        self.mode, self.mode_detail = message.mode, message.detail
        for header in self._all(StatusHeader):
            header.mode, header.detail = message.mode, message.detail
        if message.mode == FeedMode.OFFLINE:
            self.notify(
                message.detail or "the job server does not answer",
                title="✖ offline",
                severity="warning",
            )
        elif back:
            self.notify("Connected again; catching up.", title=f"{message.mode.value}")
            self.load_jobs()
            self.load_stats()

    @on(StatsLoaded)
    def stats_loaded(self, message: StatsLoaded) -> None:
        self.stats = message.stats
        for strip in self._all(SummaryStrip):
            strip.stats, strip.stale = message.stats, False

    @on(ActionDone)
    def action_done(self, message: ActionDone) -> None:
        for job in message.jobs:
            self._apply(job, quiet=True)
        self.feed.add_jobs([j.id for j in message.jobs])
        self.feed.refresh()
        self._stats_soon()
        if message.verb == "submit":
            job = message.jobs[0]
            if table := self.main_screen.mounted_table:
                table.select(job.id)
            self.notify(f"Submitted {job.type} job {job.short_id}.", title="○ pending")
        else:
            past = {"retry": "Retried", "cancel": "Cancel requested for"}[message.verb]
            self.notify(f"{past} {ids_label(j.id for j in message.jobs)}.")

    @on(ActionFailed)
    def action_failed(self, message: ActionFailed) -> None:
        self.notify(
            f"{message.verb} {message.target}: {message.error}",
            title=f"✖ {message.verb} failed",
            severity="error",
        )

    # requests from the screens --------------------------------------------------
    @on(JobsRequested)
    def jobs_requested(self, message: JobsRequested) -> None:
        verb, ids = message.verb, message.job_ids
        if verb in MUTATING_ACTIONS and self.settings.readonly:
            self.notify("Read-only: actions are turned off.", severity="warning")
            return
        if verb == "open":
            self.open_job(ids[0])
        elif verb == "copy_id":
            self.copy_to_clipboard(ids[0])
            self.notify(f"Copied {ids[0]}", timeout=3)
        elif verb == "submit":
            self.push_screen(SubmitScreen(self.job_types), self._submit_answer)
        elif verb == "cancel":
            self._confirm_cancel(ids)
        elif verb == "retry":
            self._confirm_retry(ids)

    def _submit_answer(self, submission: Submission | None) -> None:
        if submission is not None:
            self.submit_job(submission)

    def _confirm_cancel(self, ids: list[str]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.act_on_jobs("cancel", ids)

        listed = ", ".join(i[:8] for i in ids[:6]) + (" …" if len(ids) > 6 else "")
        self.push_screen(
            ConfirmScreen(
                f"Cancel {ids_label(ids)}?",
                f"{listed}\nA running step is told to stop; the job ends cancelled.",
                yes_label="Cancel jobs" if len(ids) > 1 else "Cancel job",
            ),
            answered,
        )

    def _confirm_retry(self, ids: list[str]) -> None:
        if len(ids) == 1:
            self.act_on_jobs("retry", ids)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act_on_jobs("retry", ids)

        self.push_screen(ConfirmScreen(f"Retry {ids_label(ids)}?", yes_label="Retry"), answered)

    def open_job(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            self.notify(f"Job {job_id[:8]} is not loaded.", severity="warning")
            return
        while isinstance(self.screen, DetailScreen):
            self.pop_screen()
        self.push_screen(DetailScreen(job, self.client, self.settings, self.mode))

    def action_open_last(self) -> None:
        if self.last_finished:
            self.open_job(self.last_finished)

    def action_open_job(self, job_id: str) -> None:
        self.open_job(job_id)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self._screen_title(), self._key_rows()))

    # notifications ------------------------------------------------------------
    def _announce_end(self, job: Job) -> None:
        title, text, severity = finish_notice(job)
        self.last_finished = job.id
        key = self._key_label("open_last")
        self.notify(
            f"{_escape(text)}\n[@click=app.open_job('{job.id}')]Open[/] (or press {key})",
            title=title,
            severity=severity,  # type: ignore[arg-type]
            timeout=8 if severity == "information" else 15,
        )
        if self.settings.bell:
            self.bell()
        if self.settings.osc9:
            self.terminal_notices.append(text)
            # OSC 9: a desktop notification in iTerm2, kitty, WezTerm, Windows Terminal.
            if self._driver is not None:
                self._driver.write(f"\x1b]9;jobctl: {text}\x07")

    def _stats_soon(self) -> None:
        """Refresh the figures a second after jobs end (at most once a second)."""
        if not self._stats_due:
            self._stats_due = True
            self.set_timer(1.0, self.load_stats)

    # keys, help and the command palette ---------------------------------------------
    def _key_label(self, binding_id: str) -> str:
        key = self.settings.key_for(binding_id).split(",")[0]
        return self.get_key_display(Binding(key, ""))

    def _screen_title(self) -> str:
        return "job details" if isinstance(self.screen, DetailScreen) else "jobs"

    def _key_rows(self) -> list[tuple[str, str]]:
        screen = self.screen
        ids = ["help", "quit", "open_last"]
        if isinstance(screen, DetailScreen):
            ids = ["back", "retry", "cancel", "copy_id", *ids]
        else:
            ids = ["open", "submit", "retry", "cancel", "copy_id", "filter", "mark", "mark_all"]
            ids += ["back", "help", "quit", "open_last"]
        rows = []
        for binding_id in ids:
            if binding_id in MUTATING_ACTIONS and self.settings.readonly:
                continue
            keys = self.settings.key_for(binding_id).split(",")
            label = ", ".join(self.get_key_display(Binding(k.strip(), "")) for k in keys)
            rows.append((label, KEYS[binding_id][1]))
        rows.append(("↑ ↓ j k, PgUp PgDn, g G", "Move; Home and End too"))
        rows.append(("ctrl+p", "Command palette"))
        return rows

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        commands = [
            ("Submit a job", "Send a file to a job type", "submit", main.action_submit),
            ("Retry", "Retry the marked jobs, or the selected one", "retry", main.action_retry),
            ("Cancel", "Cancel the marked jobs, or the selected one", "cancel", main.action_cancel),
        ]
        for title, help_text, verb, callback in commands:
            if not (self.settings.readonly and verb in MUTATING_ACTIONS):
                yield SystemCommand(title, help_text, callback)
        for status in ("failed", "running", "pending"):
            yield SystemCommand(
                f"Show {status} jobs",
                f"Filter the table to status:{status}",
                lambda s=status: self._set_filter(f"status:{s}"),
            )
        yield SystemCommand("Show all jobs", "Clear the filter", lambda: self._set_filter(""))
        yield SystemCommand("Copy the job id", "Copy the selected job's id", main.action_copy_id)

    def _set_filter(self, text: str) -> None:
        from jobctl.tui.widgets.filter_bar import FilterBar

        bar = self.main_screen.query_one(FilterBar)
        bar.value = text
        bar.post_message(FilterBar.Applied(text, done=True))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in MUTATING_ACTIONS and self.settings.readonly)

    def _all(self, kind: type[W]) -> list[W]:
        """Widgets of a kind on every screen in the stack (attributes go down to each)."""
        found: list[W] = []
        for screen in self.screen_stack:
            found.extend(screen.query(kind))
        return found


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def _older(new: Job, old: Job) -> bool:
    if new.updated_at is None or old.updated_at is None:
        return False
    return new.updated_at < old.updated_at


def _after(stamp: datetime | None, start: datetime) -> bool:
    return stamp is not None and stamp >= start


def make_app(client: JobApi, feed: LiveFeed, settings: TuiSettings) -> JobctlApp:
    """The dashboard, for `jobctl tui` and for the tests (which pass fakes or a real server)."""
    return JobctlApp(client, feed, settings)
