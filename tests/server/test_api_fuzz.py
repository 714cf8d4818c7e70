"""Schema-driven fuzz of the OpenAPI contract against a real server, bounded (25 cases
per operation and mode): no request gets a 5xx, every status and body is one the contract
declares, and a request the schema forbids is refused (4xx). Whether a schema-valid
request is accepted is not checked: job types, input schemas and cursors are only known
to the server (an unknown type is a documented 400)."""

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
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

ROOT = Path(__file__).resolve().parents[2]
# A request the schema forbids may be refused with any documented 4xx: 413 is how an
# event list over its 5,000 items (and the body limit) is refused.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {
        "expected-statuses": ["400", "401", "403", "404", "409", "413", "422"]}}}
)  # fmt: skip
CONTRACT = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


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
    schema = schemathesis.openapi.from_url(live_server["url"] + "/openapi.json", config=CONFIG)
    headers = {"Authorization": f"Bearer {live_server['token']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    fuzzed: set[str] = set()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def call(case: Any) -> None:
            response = case.call(base_url=live_server["url"], headers=headers, timeout=10)
            assert response.status_code < 500, (case.method, case.path, response.text)
            extra = [negative_data_rejection] if mode is GenerationMode.NEGATIVE else []
            case.validate_response(response, checks=[*CONTRACT, *extra])
            if response.status_code >= 400 and not case.path.startswith("/e/"):
                assert set(response.json()) == {"error"}, response.text

        try:
            call()
            fuzzed.add(operation.label)
        except Unsatisfiable:
            # nothing invalid to send (free-form path strings, no body): positive run only
            assert mode is GenerationMode.NEGATIVE
    assert {"POST /api/jobs", "GET /api/jobs", "GET /api/jobs/{job_id}/logs"} <= fuzzed
