"""Errors that job functions raise, and the server's own error types."""

from __future__ import annotations

from datetime import datetime, timedelta


class NonRetriableError(Exception):
    """Raise from a job or a step to fail at once, without further retries."""


class RetryAfterError(Exception):
    """Raise to retry the step after a delay you choose (it still uses an attempt)."""

    def __init__(self, message: str, retry_after: float | timedelta | datetime) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def delay_seconds(self, now: datetime) -> float:
        if isinstance(self.retry_after, timedelta):
            return self.retry_after.total_seconds()
        if isinstance(self.retry_after, datetime):
            return (self.retry_after - now).total_seconds()
        return float(self.retry_after)


class StepError(Exception):
    """A step failed for good; raised in the job function, which may catch it."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step {step!r} failed: {message}")
        self.step = step
        self.error_message = message


class ApiError(Exception):
    """An HTTP answer the API layer gives by itself (auth, a malformed id or parameter),
    rendered as the API's error shape. The service never raises these: its errors are
    the domain errors below, which `jobctl.server.api.http_error` maps to HTTP."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# Domain errors: what the job service (and the stores under it) refuse, in words a
# person can act on. They know nothing of HTTP; the API maps each class in one table.
class DomainError(Exception):
    """A rule of the job service said no. `code` is the machine-readable reason."""

    code = "rejected"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """The submission is not acceptable as sent: a type's input schema, nesting, text."""

    code = "invalid_input"


class UnknownType(InvalidInput):
    code = "unknown_type"


class TooLarge(InvalidInput):
    code = "too_large"


class JobMissing(DomainError):
    """No such job, or not the caller's (the two are not told apart)."""

    code = "not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class EventMissing(DomainError):
    """No such event in the history, or not the caller's."""

    code = "not_found"

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} not found")
        self.event_id = event_id


class StateConflict(DomainError):
    """The job is not in a state that allows this (cancel a finished job, retry a running one)."""

    code = "conflict"


class IdempotencyConflict(DomainError):
    """An idempotency key reused for a different request (another type, input or key)."""

    code = "idempotency_conflict"

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class LimitReached(DomainError):
    """A concurrency limit refuses the job now (types with reject_when_limited)."""

    code = "limit_reached"

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# The names the stores raise.
JobNotFound = JobMissing
JobConflict = StateConflict
