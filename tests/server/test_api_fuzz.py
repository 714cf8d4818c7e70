"""Schema-driven fuzz of the OpenAPI contract against a real server: no request gets a 500."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("fuzz")
    env = dict(os.environ, JOBCTL_CONFIG_DIR=str(home / "c"), JOBCTL_DATA_DIR=str(home / "d"))
    state = home / "state.json"
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobctl", "server", "run", "--port", "0", "--state-file", str(state)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not state.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        import json

        url = json.loads(state.read_text())["url"]
        token = (home / "c" / "server-token").read_text().strip()
        yield {"url": url, "token": token}
        assert "Traceback" not in (home / "server.log").read_text(), "the server logged a crash"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(15)
        log.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(live_server: dict[str, str], mode: GenerationMode) -> None:
    # Driven through Hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.
    schema = schemathesis.openapi.from_url(live_server["url"] + "/openapi.json")
    headers = {"Authorization": f"Bearer {live_server['token']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    fuzzed: set[str] = set()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def call(case: Any) -> None:
            response = case.call(base_url=live_server["url"], headers=headers, timeout=10)
            assert response.status_code < 500, (case.method, case.path, response.text)
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400 and not case.path.startswith("/e/"):
                assert set(response.json()) == {"error"}, response.text

        try:
            call()
            fuzzed.add(operation.label)
        except Unsatisfiable:
            # nothing invalid to send (free-form path strings, no body): positive run only
            assert mode is GenerationMode.NEGATIVE
    assert {"POST /api/jobs", "GET /api/jobs", "GET /api/jobs/{job_id}/logs"} <= fuzzed
