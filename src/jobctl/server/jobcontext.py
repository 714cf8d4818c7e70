"""What a job function receives: input, attempt, steps, progress, logs, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import json
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobctl.server.joberrors import NonRetriableError, RetryAfterError, StepError
from jobctl.server.records import COMPLETED, FAILED, RUNNING, LogRow, StepRow, dumps, now_us
from jobctl.server.store.base import LeaseLost

if TYPE_CHECKING:
    from jobctl.server.engine import Engine, RunningJob

log = logging.getLogger("jobctl.engine")
MAX_PENDING_LOGS = 10_000  # lines held per job while the store cannot take them


class JobCancelled(BaseException):
    """Raised at a step boundary once the job has been cancelled (BaseException, like
    Inngest's interrupts, so a job's `except Exception` does not swallow it)."""


class JobSuspended(BaseException):
    """Raised by a long `step.sleep`: the job goes back to the queue until it wakes."""

    def __init__(self, until_us: int, name: str) -> None:
        super().__init__(name)
        self.until_us = until_us
        self.name = name


def hash_step_id(name: str) -> str:
    """Inngest's step ids: sha1 of the name, with `:n` appended for the n-th repeat."""
    return hashlib.sha1(name.encode()).hexdigest()


class Steps:
    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._seen: dict[str, int] = {}
        self._position = 0
        self.attempt = 0
        """The attempt (1-based) of the step now running, for steps that care."""

    def _next_id(self, name: str) -> str:
        n = self._seen.get(name, 0)
        self._seen[name] = n + 1
        return hash_step_id(name if n == 0 else f"{name}:{n}")

    async def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` once for this job: a completed step returns its stored result."""
        ctx = self._ctx
        job = ctx._job
        step_id = self._next_id(name)
        position = self._position
        self._position += 1
        memo = job.steps.get(step_id)
        if memo is not None and memo.status == COMPLETED:
            return json.loads(memo.output) if memo.output is not None else None
        engine = ctx._engine
        max_attempts = job.job_type.retries + 1
        attempt = 1
        if memo is not None:
            if memo.status == FAILED and memo.attempt >= max_attempts:
                raise StepError(name, memo.error or "failed")
            attempt = memo.attempt + 1  # a failed try, or one cut short by a crash, counted
        while True:
            ctx.raise_if_cancelled()
            step = StepRow(
                job.row.id, step_id, name, position, RUNNING, attempt, None, None, now_us(), None
            )
            job.steps[step_id] = step
            # With the other jobs' step rows of this tick, in one transaction (StepWriter).
            await engine.step_writer.write(job, step)
            # After a stall (the renewal is overdue), make sure the job is still ours
            # before doing the work: someone else may have done it already.
            await engine.check_lease(job)
            ctx._current_step = name
            self.attempt = attempt
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    result = await result
                output = dumps(result)
            except NonRetriableError as exc:
                await self._save_failure(step, str(exc) or type(exc).__name__)
                raise
            except (JobCancelled, asyncio.CancelledError):
                raise
            except (TypeError, ValueError) as exc:
                if "JSON serializable" in str(exc) or "Circular reference" in str(exc):
                    msg = f"step {name!r} returned a value that is not JSON: {exc}"
                    await self._save_failure(step, msg)
                    raise NonRetriableError(msg) from exc
                delay = await self._failed_try(step, exc, attempt, max_attempts, None)
                await ctx.sleep_or_cancel(delay)
                attempt += 1
                continue
            except Exception as exc:
                retry_after = None
                if isinstance(exc, RetryAfterError):
                    retry_after = exc.delay_seconds(datetime.now(UTC))
                delay = await self._failed_try(step, exc, attempt, max_attempts, retry_after)
                await ctx.sleep_or_cancel(delay)
                attempt += 1
                continue
            finally:
                ctx._current_step = None
            step.status = COMPLETED
            step.output = output
            step.completed_at = now_us()
            await ctx.flush_logs()  # a step's log lines are stored before the step is done
            if job.lost:
                raise LeaseLost(job.row.id)
            await engine.step_writer.write(job, step)
            return json.loads(output)

    async def _save_failure(self, step: StepRow, message: str) -> None:
        step.status = FAILED
        step.error = message
        step.completed_at = now_us()
        engine, job = self._ctx._engine, self._ctx._job
        await engine.step_writer.write(job, step)

    async def _failed_try(
        self,
        step: StepRow,
        exc: BaseException,
        attempt: int,
        max_attempts: int,
        retry_after: float | None,
    ) -> float:
        """Record a failed try; return the delay before the next, or raise StepError."""
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await self._save_failure(step, message)
        if attempt >= max_attempts:
            self._ctx.log(f"step {step.name!r} failed after {attempt} attempts: {message}", "error")
            raise StepError(step.name, message) from exc
        delay = retry_after if retry_after is not None else self._ctx._engine.backoff(attempt)
        delay = max(0.0, delay)
        self._ctx.log(
            f"step {step.name!r} failed (attempt {attempt}/{max_attempts}): {message};"
            f" retrying in {delay:g}s",
            "warning",
        )
        return delay

    async def sleep(self, name: str, seconds: float) -> None:
        """Durable sleep: survives a restart; a long sleep frees the job's slot."""
        ctx = self._ctx
        job = ctx._job
        step_id = self._next_id(name)
        position = self._position
        self._position += 1
        memo = job.steps.get(step_id)
        if memo is not None and memo.status == COMPLETED:
            wake = memo.completed_at or 0
        else:
            start = now_us()
            wake = start + int(seconds * 1_000_000)
            step = StepRow(
                job.row.id, step_id, name, position, COMPLETED, 1, None, None, start, wake
            )
            job.steps[step_id] = step
            await ctx._engine.step_writer.write(job, step)
        remaining = (wake - now_us()) / 1_000_000
        if remaining <= 0:
            return
        if remaining > ctx._engine.settings.suspend_after:
            raise JobSuspended(wake, name)
        await ctx.sleep_or_cancel(remaining)
        ctx.raise_if_cancelled()


class JobContext:
    """Passed to every job function."""

    def __init__(self, engine: Engine, job: RunningJob) -> None:
        self._engine = engine
        self._job = job
        self.step = Steps(self)
        self.cancelled = job.cancel_event
        self._current_step: str | None = None
        self._pending_logs: list[LogRow] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # one write at a time: lines go in order
        self._dropped_logs = 0
        self._seq = job.last_log_seq

    @property
    def job_id(self) -> str:
        return self._job.row.id

    @property
    def input(self) -> dict[str, Any]:
        return self._job.input

    @property
    def attempt(self) -> int:
        """Whole-job attempt, 1 for the first run and +1 for every retry."""
        return self._job.row.attempt

    @property
    def user_id(self) -> str:
        return self._job.row.user_id

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self._job.lost:
            raise LeaseLost(self.job_id)
        if self.cancelled.is_set():
            raise JobCancelled()

    async def sleep_or_cancel(self, seconds: float) -> None:
        """Sleep, waking early (without raising) if the job is cancelled."""
        if seconds <= 0 or math.isnan(seconds):
            return
        # asyncio.timeout, not wait_for: no task per sleep (thousands of jobs sleep at once)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.cancelled.wait()

    async def progress(self, pct: float | None, message: str | None = None) -> None:
        """Report progress (0-100) and a short message; committed, then announced."""
        value = None if pct is None else max(0, min(100, int(pct)))
        await self.flush_logs()
        if self._job.lost:
            raise LeaseLost(self.job_id)
        # With the other jobs' reports of this tick, in one transaction (ProgressWriter).
        row = await self._engine.progress_writer.write(self._job, value, message)
        if row is None and not self.cancelled.is_set():
            # No longer running under us: cancelled, or expired by the sweeper.
            self.cancelled.set()

    def log(self, message: str, level: str = "info") -> None:
        """Append a log line to the job (written shortly after, in order)."""
        if self._job.lost:
            return
        if len(self._pending_logs) >= MAX_PENDING_LOGS:  # the store has been away long
            self._dropped_logs += 1
            return
        self._seq += 1
        self._pending_logs.append(
            LogRow(self.job_id, self._seq, now_us(), level, self._current_step, str(message))
        )
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self.flush_logs())

    async def flush_logs(self) -> None:
        """Write the lines logged so far, in order; while the store cannot take them they
        are kept (up to MAX_PENDING_LOGS) and tried again, and lines logged meanwhile go
        in the next write. Never raises for the job's sake: a lost lease drops them (the
        job stops at its next step)."""
        engine, job = self._engine, self._job
        async with self._flushing:
            while self._pending_logs:
                if self._dropped_logs:
                    log.warning("job %s: dropped %d log lines the store could not take in"
                                " time", self.job_id, self._dropped_logs)  # fmt: skip
                    self._dropped_logs = 0
                lines = list(self._pending_logs)  # taken off only once written
                try:
                    await engine.durable(
                        job,
                        "writing log lines",
                        functools.partial(engine.store.append_logs, lines, job.lease),
                    )
                except LeaseLost:  # logged by durable; the job stops at its next boundary
                    self._pending_logs.clear()
                    return
                except Exception:  # logging must never fail a job
                    log.exception("could not write %d log lines for job %s", len(lines),
                                  self.job_id)  # fmt: skip
                    del self._pending_logs[: len(lines)]
                    return
                del self._pending_logs[: len(lines)]
