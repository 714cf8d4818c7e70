"""Error classes and the exit-code table (DESIGN.md section 6): one place."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1
    USAGE = 2
    JOB_CANCELLED = 3
    NOT_FOUND = 4
    AUTH = 5
    UNREACHABLE = 6
    WATCH_TIMEOUT = 7
    REJECTED = 8
    SERVER_ERROR = 9
    INTERRUPTED = 130


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "ok; a watched job completed",
    ExitCode.JOB_FAILED: "a watched job failed",
    ExitCode.USAGE: (
        "usage error: bad flag or argument, unreadable or invalid input, unknown job type"
    ),
    ExitCode.JOB_CANCELLED: "a watched job was cancelled",
    ExitCode.NOT_FOUND: "not found",
    ExitCode.AUTH: "not authenticated or not allowed",
    ExitCode.UNREACHABLE: "backend unreachable, or the connection was lost for good",
    ExitCode.WATCH_TIMEOUT: "watch timed out while the job was still running",
    ExitCode.REJECTED: "rejected: conflict (409) or a limit reached (429 after retries)",
    ExitCode.SERVER_ERROR: "server error after retries, or an unexpected error",
    ExitCode.INTERRUPTED: "interrupted",
}


class JobctlError(Exception):
    """Base class: carries a one-line, user-facing message and an exit code."""

    exit_code: ExitCode = ExitCode.SERVER_ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UsageError(JobctlError):
    exit_code = ExitCode.USAGE


class NotFoundError(JobctlError):
    exit_code = ExitCode.NOT_FOUND


class AuthError(JobctlError):
    exit_code = ExitCode.AUTH


class UnreachableError(JobctlError):
    exit_code = ExitCode.UNREACHABLE


class ConflictError(JobctlError):
    exit_code = ExitCode.REJECTED


class RateLimitedError(JobctlError):
    exit_code = ExitCode.REJECTED

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ServerError(JobctlError):
    exit_code = ExitCode.SERVER_ERROR


class WatchTimeoutError(JobctlError):
    exit_code = ExitCode.WATCH_TIMEOUT


def exit_code_for(exc: BaseException) -> ExitCode:
    if isinstance(exc, JobctlError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.SERVER_ERROR
