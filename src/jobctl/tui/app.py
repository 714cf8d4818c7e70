"""The dashboard app: `make_app(client, feed, settings)` for `jobctl tui` and the tests.

The app owns the client and the feed. Network work runs in workers that end
by posting a message (tui/messages.py); handlers here keep the job store and
pass what changed down to the screens. Screens and widgets never call the
client, except the own workers of the detail, schedules and events screens
(which end with the screen).

Live snapshots are the exception to one message per result: the feed runs on
a thread of its own (`FeedThread`: the Realtime client's parsing never touches
this loop) and gathers them into batches there; the feed worker takes whatever
has gathered at most once per frame and applies it in one pass (table, detail
view, notices, changes of mode in order), so a storm of changes costs a pass
per frame, not a trip through the message queue each.
Ended jobs are announced after a short gathering window: a few get a toast
each, many get one summary ("37 completed, 2 failed") that opens them.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from jobctl.backends.feed import FeedMode
from jobctl.errors import JobctlError
from jobctl.models import Job, JobStatus
from jobctl.tui.format import count_label, ended_summary, finish_notice, ids_label
from jobctl.tui.messages import (
    ActionDone,
    ActionFailed,
    ConnectionChanged,
    JobFetched,
    JobsLoaded,
    JobsStarted,
    ShowJobs,
    StatsLoaded,
)
from jobctl.tui.screens.confirm import ConfirmScreen
from jobctl.tui.screens.detail import DetailScreen
from jobctl.tui.screens.events import EventsScreen
from jobctl.tui.screens.help import HelpScreen
from jobctl.tui.screens.main import JobsRequested, MainScreen, TableReady
from jobctl.tui.screens.records import RecordsScreen
from jobctl.tui.screens.schedules import SchedulesScreen
from jobctl.tui.screens.submit import Submission, SubmitScreen
from jobctl.tui.settings import KEYS, MUTATING_ACTIONS, READONLY_NOTE, TuiSettings
from jobctl.tui.updates import is_new_ending, is_older

if TYPE_CHECKING:
    from jobctl.backends.feedthread import FeedBatch
    from jobctl.tui.ports import JobApi, LiveFeed

PAGE = 500
# What the table shows, filters on and compares snapshots by: a listing asks for these
# only (the detail view fetches the whole job).
TABLE_FIELDS = (
    "id", "type", "status", "progress", "message", "error", "attempt", "max_attempts",
    "created_at", "updated_at", "started_at", "completed_at",
)  # fmt: skip
FRAME = 1 / 60  # live updates are applied at most once per frame
NOTICE_WINDOW = 0.5  # ended jobs gather this long before their toast
BURST_WINDOW = 3.0  # ...and this long while a burst goes on
BURST_HOLD = 10.0  # a summary toast starts a burst that lasts this long after it
NOTICES_KEPT = 20  # summary toasts whose jobs `notice:N` can still show
STATS_QUIET = 0.3  # figures are refreshed this long after the last job ended
OWN_TOASTS = 3  # up to this many jobs ending together each get their own toast


class JobctlApp(App[int]):
    CSS_PATH = "jobctl.tcss"
    TITLE = "jobctl"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding(KEYS["quit"][0], "quit", "Quit", id="quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
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
        self.loaded = False
        self.stats: dict[str, object] | None = None
        self.started_at: datetime = settings.clock()
        self.job_types: list[str] = ["journal_extraction", "demo"]
        self.terminal_notices: deque[str] = deque(maxlen=50)  # OSC 9 texts sent (for tests)
        self.flushes = 0  # frames that applied updates (read by the benchmark)
        self.mode_changes = 0  # changes of mode heard from the feed (read by the benchmark)
        self._last_flush = 0.0
        self._ended: list[Job] = []  # waiting for their toast
        self._notice_timer: Timer | None = None
        self._burst_until = 0.0
        self.notices: dict[int, frozenset[str]] = {}  # summary toast number -> its jobs
        self._notice_count = 0
        self.last_notice: tuple[str, str | int] | None = None  # ("job", id) | ("notice", n)
        self._stats_timer: Timer | None = None
        self._stats_worker: Worker[None] | None = None
        self._stats_again = False
        self._stats_first_due: float | None = None
        self.main_screen = MainScreen(settings, self.notices)

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
        if self.main_screen.mounted_table is not None:
            self.main_screen.tick()
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen):
                screen.tick()
        if isinstance(self.screen, RecordsScreen):
            self.screen.tick()

    # workers ------------------------------------------------------------------
    @work(exclusive=True, group="feed", exit_on_error=False)
    async def run_feed(self) -> None:
        async with self.feed:
            # Applied here, not posted: a change of mode in the first batch must come after.
            self.connection_changed(ConnectionChanged(self.feed.mode))
            async for batches in self.feed.batches():
                self.apply_batches(batches)
                # At most one pass a frame: what comes meanwhile gathers on the feed's thread.
                await asyncio.sleep(max(0.0, self._last_flush + FRAME - time.monotonic()))

    @work(exclusive=True, group="load", exit_on_error=False)
    async def load_jobs(self) -> None:
        """The newest jobs, page by page, up to settings.max_jobs."""
        cursor: str | None = None
        loaded = 0
        first = True
        while loaded < self.settings.max_jobs:
            want = min(PAGE, self.settings.max_jobs - loaded)
            try:
                page = await self.client.list_jobs(limit=want, cursor=cursor, fields=TABLE_FIELDS)
            except JobctlError:
                return  # the feed reports offline; we load again when it is back
            loaded += len(page.jobs)
            cursor = page.next_cursor
            done = not cursor or not page.jobs or loaded >= self.settings.max_jobs
            self.post_message(JobsLoaded(page.jobs, first=first, done=done))
            first = False
            if done:
                return

    def load_stats(self) -> None:
        """Fetch the figures; while a fetch is under way, once more after it (never
        cancelling it: on a busy server, cancelled fetches would never land)."""
        if self._stats_worker is not None and not self._stats_worker.is_finished:
            self._stats_again = True
            return
        self._stats_again = False
        self._stats_worker = self._fetch_stats()

    @work(group="stats", exit_on_error=False)
    async def _fetch_stats(self) -> None:
        while True:
            self._stats_again = False
            try:
                stats = await self.client.stats()
            except JobctlError:
                self.main_screen.strip.stale = True
                return
            self.post_message(StatsLoaded(stats))
            if not self._stats_again:
                return

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

    @work(group="actions", exit_on_error=False)
    async def fetch_and_open(self, job_id: str) -> None:
        """A job the table has not loaded (an old event's, a schedule's last): get it."""
        try:
            job = await self.client.get_job(job_id)
        except JobctlError as exc:
            self.post_message(ActionFailed("open", job_id[:8], exc.message))
            return
        self.post_message(JobFetched(job))

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place an unexpected worker error surfaces (the app keeps running)."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.name}: {error}", title="Unexpected error", severity="error")

    # live updates: gathered on the feed's thread, applied once per frame ----------------
    def apply_batches(self, batches: Sequence[FeedBatch]) -> None:
        """What the feed gathered since the last frame, in order: each batch's changes of
        mode, then its jobs."""
        self._last_flush = time.monotonic()
        self.flushes += 1
        for batch in batches:
            for change in batch.modes:
                self.mode_changes += 1
                self.connection_changed(ConnectionChanged(change.mode, change.detail))
            self._apply(batch.jobs, batch.endings)

    def _apply(self, jobs: Sequence[Job], endings: Sequence[Job], *, quiet: bool = False) -> None:
        state: dict[str, Job | None] = {}
        ended: list[Job] = []
        for job in endings:
            before = state[job.id] if job.id in state else self.jobs.get(job.id)
            if is_new_ending(job, before, self.started_at):
                ended.append(job)
            state[job.id] = job
        changed: list[Job] = []
        for job in jobs:
            old = self.jobs.get(job.id)
            if old is not None and is_older(job, old):
                continue
            self.jobs[job.id] = job
            changed.append(job)
        if not changed and not ended:
            return
        if table := self.main_screen.mounted_table:
            table.apply(changed)
        if len(self.screen_stack) > 1:
            by_id = {job.id: job for job in changed}
            for screen in self.screen_stack:
                if isinstance(screen, DetailScreen) and screen.job_id in by_id:
                    screen.job = by_id[screen.job_id]
        if ended:
            self._stats_soon()
            if not quiet:
                self._notice_later(ended)

    @on(JobsLoaded)
    def jobs_loaded(self, message: JobsLoaded) -> None:
        # Jobs we knew (a reload after being offline) are applied as a batch, so the ones
        # that ended meanwhile are announced; new ones are added to the table in one go.
        new = [j for j in message.jobs if j.id not in self.jobs]
        known = [j for j in message.jobs if j.id in self.jobs]
        if known:
            self._apply(known, [j for j in known if j.status.is_terminal])
        for job in new:
            self.jobs[job.id] = job
        if table := self.main_screen.mounted_table:
            table.set_jobs(new)
        if message.done and not self.loaded:
            self.loaded = True
            self.main_screen.show_mode(self.mode, self.mode_detail, self.loaded)
            self.call_after_refresh(self._settle_memory)

    def _settle_memory(self) -> None:
        """Once the first load is in: what is alive now (the screen, ten thousand jobs) lives
        long, so the collector stops walking it. Without this, each full collection walked
        it all, some 40 ms (200 ms on a loaded machine), a frozen frame in every burst.
        Frozen objects are still freed when nothing refers to them (the jobs have no cycles)."""
        gc.collect()
        gc.freeze()

    @on(TableReady)
    def table_ready(self) -> None:
        if table := self.main_screen.mounted_table:
            table.set_jobs(self.jobs.values(), replace=True)
        self.main_screen.show_mode(self.mode, self.mode_detail, self.loaded)

    @on(ConnectionChanged)
    def connection_changed(self, message: ConnectionChanged) -> None:
        back = self.mode == FeedMode.OFFLINE and message.mode != FeedMode.OFFLINE
        self.mode, self.mode_detail = message.mode, message.detail
        if self.main_screen.is_mounted:
            self.main_screen.show_mode(message.mode, message.detail, self.loaded)
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen | RecordsScreen):
                screen.header.mode, screen.header.detail = message.mode, message.detail
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
        strip = self.main_screen.strip
        strip.stats, strip.stale = message.stats, False

    @on(ActionDone)
    def action_done(self, message: ActionDone) -> None:
        if message.verb == "submit":
            job = message.jobs[0]
            known = self.jobs.get(job.id)
            self._apply(message.jobs, [], quiet=True)
            self.feed.add_jobs([job.id])
            self.feed.refresh()
            if table := self.main_screen.mounted_table:
                table.select(job.id)
            if known is not None and known.status.is_terminal:
                return  # a fast job: its end was announced before the server's answer came
            self.notify(f"Submitted {job.type} job {job.short_id}.", title="○ pending")
            return
        self._apply(message.jobs, [], quiet=True)
        self.feed.add_jobs([j.id for j in message.jobs])
        self.feed.refresh()
        self._stats_soon()
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
    @on(JobsStarted)
    def jobs_started(self, message: JobsStarted) -> None:
        """A trigger's or a replay's jobs: the feed follows them into the table."""
        self.feed.add_jobs(message.job_ids)
        self.feed.refresh()
        self._stats_soon()

    @on(ShowJobs)
    def show_jobs(self, message: ShowJobs) -> None:
        ids = message.job_ids
        if len(ids) > 1:
            self._back_to_main()
            self.main_screen.set_filter_text("id:" + ",".join(i[:8] for i in ids))
        elif ids[0] in self.jobs:
            self._open_over(self.jobs[ids[0]])
        else:
            self.fetch_and_open(ids[0])

    @on(JobFetched)
    def job_fetched(self, message: JobFetched) -> None:
        self._apply([message.job], [], quiet=True)
        self.feed.add_jobs([message.job.id])
        self._open_over(self.jobs.get(message.job.id, message.job))

    def _open_over(self, job: Job) -> None:
        """The job's detail over the view it was opened from (q comes back to it)."""
        self.push_screen(DetailScreen(job, self.client, self.settings, self.mode))

    def action_open_schedules(self) -> None:
        self._open_view(SchedulesScreen)

    def action_open_events(self) -> None:
        self._open_view(EventsScreen)

    def _open_view(self, view: type[RecordsScreen]) -> None:
        if isinstance(self.screen, view):
            return
        self._back_to_main()
        self.push_screen(view(self.client, self.settings, self.mode))

    @on(JobsRequested)
    def jobs_requested(self, message: JobsRequested) -> None:
        verb, ids = message.verb, message.job_ids
        if verb in MUTATING_ACTIONS and self.settings.readonly:
            self.notify(READONLY_NOTE.format(verb=verb).capitalize() + ".", severity="warning")
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

    def _split(self, ids: list[str], can: frozenset[JobStatus]) -> tuple[list[str], str]:
        """The jobs an action can apply to, and a note on the ones it cannot."""
        able = [i for i in ids if i not in self.jobs or self.jobs[i].status in can]
        unable = [self.jobs[i] for i in ids if i in self.jobs and self.jobs[i].status not in can]
        if not unable:
            return able, ""
        if len(unable) == 1:
            return able, f"{unable[0].short_id} is {unable[0].status.value}"
        return able, f"{count_label(len(unable), 'job')} have already ended"

    def _confirm_cancel(self, ids: list[str]) -> None:
        able, note = self._split(ids, frozenset({JobStatus.PENDING, JobStatus.RUNNING}))
        if not able:
            self.notify(f"Nothing to cancel: {note}.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act_on_jobs("cancel", able)

        listed = ", ".join(i[:8] for i in able[:6]) + (" …" if len(able) > 6 else "")
        skipped = f"\n({note}: left out.)" if note else ""
        self.push_screen(
            ConfirmScreen(
                f"Cancel {ids_label(able)}?",
                f"{listed}\nA running step is told to stop; the job ends cancelled.{skipped}",
                yes_label="Cancel jobs" if len(able) > 1 else "Cancel job",
            ),
            answered,
        )

    def _confirm_retry(self, ids: list[str]) -> None:
        able, note = self._split(ids, frozenset({JobStatus.FAILED, JobStatus.CANCELLED}))
        if not able:
            self.notify(
                f"Nothing to retry: {note} (only failed or cancelled jobs are retried).",
                severity="warning",
            )
            return
        if len(able) == 1 and not note:
            self.act_on_jobs("retry", able)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act_on_jobs("retry", able)

        detail = f"({note}: left out.)" if note else ""
        self.push_screen(ConfirmScreen(f"Retry {ids_label(able)}?", detail, "Retry"), answered)

    def open_job(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            self.notify(f"Job {job_id[:8]} is not loaded.", severity="warning")
            return
        self._back_to_main()
        self.push_screen(DetailScreen(job, self.client, self.settings, self.mode))

    def _back_to_main(self) -> None:
        while len(self.screen_stack) > 1 and self.screen is not self.main_screen:
            self.pop_screen()

    def action_open_last(self) -> None:
        if self.last_notice is None:
            self.notify("No job has ended since the dashboard started.", timeout=3)
        elif self.last_notice[0] == "job":
            self.open_job(str(self.last_notice[1]))
        else:
            self.action_show_notice(int(self.last_notice[1]))

    def action_open_job(self, job_id: str) -> None:
        self.open_job(job_id)

    def action_show_notice(self, number: int) -> None:
        """The jobs of a summary toast, as the table filtered to them."""
        self._back_to_main()
        self.main_screen.set_filter_text(f"notice:{number}")

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self._screen_title(), self._key_rows()))

    # notifications ------------------------------------------------------------
    def _notice_later(self, ended: list[Job]) -> None:
        self._ended.extend(ended)
        if self._notice_timer is None:
            burst = time.monotonic() < self._burst_until
            window = BURST_WINDOW if burst else NOTICE_WINDOW
            self._notice_timer = self.set_timer(window, self._raise_notice, name="notice")

    def _raise_notice(self) -> None:
        self._notice_timer = None
        ended, self._ended = self._ended, []
        if len(ended) <= OWN_TOASTS:
            for job in ended:
                self._announce_end(job)
        else:
            self._announce_many(ended)

    def _announce_end(self, job: Job) -> None:
        title, text, severity = finish_notice(job)
        self.last_notice = ("job", job.id)
        key = self._key_label("open_last")
        self.notify(
            f"{_escape(text)}\n[@click=app.open_job('{job.id}')]Open[/] (or press {key})",
            title=title,
            severity=severity,  # type: ignore[arg-type]
            timeout=8 if severity == "information" else 15,
        )
        self._alert(text)

    def _announce_many(self, ended: list[Job]) -> None:
        self._burst_until = time.monotonic() + BURST_HOLD
        self._notice_count += 1
        number = self._notice_count
        self.notices[number] = frozenset(j.id for j in ended)
        for old in [n for n in self.notices if n <= number - NOTICES_KEPT]:
            del self.notices[old]
        self.last_notice = ("notice", number)
        title, text, severity = ended_summary(ended)
        key = self._key_label("open_last")
        self.notify(
            f"{text}\n[@click=app.show_notice({number})]Show them[/] (or press {key})",
            title=title,
            severity=severity,  # type: ignore[arg-type]
            timeout=8 if severity == "information" else 15,
        )
        self._alert(text)

    def _alert(self, text: str) -> None:
        if self.settings.bell:
            self.bell()
        if self.settings.osc9:
            self.terminal_notices.append(text)
            # OSC 9: a desktop notification in iTerm2, kitty, WezTerm, Windows Terminal.
            if self._driver is not None:
                self._driver.write(f"\x1b]9;jobctl: {text}\x07")

    def _stats_soon(self) -> None:
        """Refresh the figures once jobs stop ending for a moment (STATS_QUIET), and at
        least once a second while they go on: the counts catch up just after a burst."""
        now = time.monotonic()
        if self._stats_first_due is None:
            self._stats_first_due = now
        delay = max(0.001, min(STATS_QUIET, self._stats_first_due + 1.0 - now))
        if self._stats_timer is not None:
            self._stats_timer.stop()
        self._stats_timer = self.set_timer(delay, self._stats_now, name="stats soon")

    def _stats_now(self) -> None:
        self._stats_timer = self._stats_first_due = None
        self.load_stats()

    # keys, help and the command palette ---------------------------------------------
    def _key_label(self, binding_id: str) -> str:
        key = self.settings.key_for(binding_id).split(",")[0]
        return self.get_key_display(Binding(key, ""))

    def _screen_title(self) -> str:
        if isinstance(self.screen, RecordsScreen):
            return self.screen.TITLE
        return "job details" if isinstance(self.screen, DetailScreen) else "jobs"

    def _key_rows(self) -> list[tuple[str, str]]:
        screen = self.screen
        sub_view = isinstance(screen, DetailScreen | RecordsScreen)
        texts: dict[str, str] = {}
        if isinstance(screen, DetailScreen):
            ids = ["back", "retry", "cancel", "copy_id", "help", "open_last"]
            moves = "Scroll; ctrl+d ctrl+u half a page, ctrl+f ctrl+b a page; Tab: the next pane"
        elif isinstance(screen, RecordsScreen):
            if isinstance(screen, SchedulesScreen):
                ids = ["pause", "trigger", "open"]
                texts["open"] = "Open the job of the schedule's last run"
            else:
                ids = ["open", "replay"]
                texts["open"] = "Open the event's job (several: the jobs table, filtered)"
            ids += ["refresh", "back", "help", "open_last"]
            moves = "Move; ctrl+d ctrl+u half a page, ctrl+f ctrl+b a page"
        else:
            ids = ["open", "submit", "retry", "cancel", "copy_id", "filter", "mark", "mark_all"]
            ids += ["sort", "sort_back", "sort_invert", "columns", "window"]
            ids += ["schedules", "events", "back", "help", "quit", "open_last"]
            moves = "Move; ctrl+d ctrl+u half a page, ctrl+f ctrl+b a page"
        if sub_view:
            texts["back"] = "Back to the jobs"
        rows = []
        for binding_id in ids:
            keys = self.settings.key_for(binding_id).split(",")
            if binding_id == "back" and sub_view:
                keys += self.settings.key_for("quit").split(",")
            label = ", ".join(self.get_key_display(Binding(k.strip(), "")) for k in keys)
            text = texts.get(binding_id, KEYS[binding_id][1])
            if binding_id in MUTATING_ACTIONS and self.settings.readonly:
                text = f"off: {READONLY_NOTE.format(verb=binding_id)}"
            rows.append((label, text))
        rows.append(("j k g G", f"{moves}; arrows, Home, End, PgUp, PgDn too"))
        rows.append(("ctrl+c", "Quit, from anywhere"))
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
                lambda s=status: main.set_filter_text(f"status:{s}"),
            )
        yield SystemCommand("Show all jobs", "Clear the filter", lambda: main.set_filter_text(""))
        yield SystemCommand("Copy the job id", "Copy the selected job's id", main.action_copy_id)
        yield SystemCommand("Choose columns", "Which columns the table shows", main.action_columns)
        yield SystemCommand(
            "Schedules",
            "Next runs, last outcomes; pause, resume, trigger",
            self.action_open_schedules,
        )
        yield SystemCommand(
            "Events", "Events received and their jobs; replay", self.action_open_events
        )


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def make_app(client: JobApi, feed: LiveFeed, settings: TuiSettings) -> JobctlApp:
    """The dashboard, for `jobctl tui` and for the tests (which pass fakes or a real server)."""
    return JobctlApp(client, feed, settings)
