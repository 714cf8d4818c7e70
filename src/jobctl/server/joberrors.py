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
    """An error with an HTTP status and a code, rendered as the API's error shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class JobNotFound(ApiError):
    def __init__(self, job_id: str) -> None:
        super().__init__(404, "not_found", f"job {job_id} not found")


class JobConflict(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(409, "conflict", message)
