"""The documented example module works as its docstring says."""

from __future__ import annotations

import os
from typing import Any

from tests.conftest import ROOT, ServerProcess, wait_job


def test_competitor_example_runs_with_functions_flag(make_server: Any) -> None:
    pythonpath = f"{ROOT / 'examples'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    server: ServerProcess = make_server(
        "--functions", "competitor_jobs", env={"PYTHONPATH": pythonpath}
    )
    with server.client() as c:
        r = c.post(
            "/api/jobs",
            json={"type": "competitor_analysis",
                  "input": {"company": "Acme", "reviews": 40, "rate_limited_once": True}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        done = wait_job(c, r.json()["id"])
        assert done["status"] == "completed", done
        assert done["output"]["company"] == "Acme" and done["output"]["reviews"] == 40
        assert done["message"].startswith("Acme: ")
        steps = {s["name"]: s for s in c.get(f"/api/jobs/{done['id']}/steps").json()["steps"]}
        assert steps["gather-reviews"]["attempt"] == 2  # the RetryAfterError cost one attempt
        assert set(steps) == {"gather-reviews", "summarise", "cool-down"}
        bad = c.post("/api/jobs", json={"type": "competitor_analysis", "input": {"company": " "}})
        failed = wait_job(c, bad.json()["id"])
        assert failed["status"] == "failed" and "must not be empty" in failed["error"]
        logs = c.get(f"/api/jobs/{failed['id']}/logs").json()["logs"]
        assert any("failed: input.company" in ln["message"] for ln in logs)  # on_failure ran
