"""Keep secrets out of the server's log lines.

The event intake carries its key in the URL (`POST /e/<key>`, as the Inngest SDK sends
it), and that key is a token: the server's own, or a user's JWT. uvicorn's access log
and error log print the path, so every handler of the server's loggers gets a filter
that shows such a path as `/e/***`, and the server's own token as `***` wherever else
it might appear (a message, an exception's text).
"""

from __future__ import annotations

import logging
import re

EVENT_PATH = re.compile(r"(/e/)[^\s?\"'/]+")
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "jobctl")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    text = EVENT_PATH.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and its exception text) with secrets replaced."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__("jobctl-redact")
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def install_redaction(*secrets: str) -> None:
    """Put the filter on every handler of the loggers a server writes through (handlers,
    not loggers: a logger's filters do not see records its children propagate)."""
    redactor = RedactSecrets(tuple(s for s in secrets if s))
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, RedactSecrets)]
            handler.addFilter(redactor)
