"""Secrets never reach a log line: the /e/<key> path is redacted in access and error logs,
and a reused idempotency key is a clear 409 that the CLI turns into exit 8."""

from __future__ import annotations

import io
import logging
from typing import Any

from jobctl.server.logredact import RedactSecrets, install_redaction
from tests.clirun import jobctl
from tests.conftest import ServerProcess


def test_event_key_is_redacted_in_the_access_log(make_server: Any) -> None:
    server: ServerProcess = make_server("--access-log")
    with server.client() as c:
        ok = c.post(f"/e/{server.token}", json={"name": "demo", "data": {"steps": 0}})
        assert ok.status_code == 200, ok.text
        bad = c.post(f"/e/{server.token}?x=1", content=b"{nope", headers={"content-type": "x"})
        assert bad.status_code == 400
        assert c.get("/api/jobs").status_code == 200
    log = server.log
    assert '"POST /e/*** HTTP/1.1" 200' in log, log
    assert '"POST /e/***?x=1 HTTP/1.1" 400' in log, log
    assert '"GET /api/jobs HTTP/1.1" 200' in log  # other paths are shown as they are
    assert server.token not in log


def test_error_log_lines_and_tracebacks_are_redacted() -> None:
    token = "jctl_secret_token_value"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("jobctl.server.test_redaction")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_redaction(token)
        assert any(isinstance(f, RedactSecrets) for f in handler.filters)
        try:
            raise RuntimeError(f"cannot reach http://127.0.0.1/e/{token} with {token}")
        except RuntimeError:
            logger.exception("unhandled error on %s %s", "POST", f"/e/{token}")
        logger.warning("a JWT in a path: /e/eyJhbGciOi.eyJzdWIi.c2ln done")
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert "unhandled error on POST /e/***" in text
    assert "RuntimeError: cannot reach http://127.0.0.1/e/*** with ***" in text
    assert "a JWT in a path: /e/*** done" in text
    assert token not in text and "eyJ" not in text


def test_reused_idempotency_key_is_exit_8_with_a_clear_message(server: ServerProcess) -> None:
    env = {"JOBCTL_API_URL": server.url, "JOBCTL_TOKEN": server.token}
    args = ("submit", "--type", "demo", "--idempotency-key", "nightly-1", "-q")
    first = jobctl(*args, "--input", '{"steps": 0}', env=env)
    assert first.code == 0, first.stderr
    same = jobctl(*args, "--input", '{"steps": 0}', env=env)
    assert (same.code, same.stdout) == (0, first.stdout)
    line = jobctl(*args, "--input", '{"steps": 1}', env=env).one_line_error(
        8, "idempotency key 'nightly-1' was already used for job", "with a different input"
    )
    assert first.stdout.strip() in line
