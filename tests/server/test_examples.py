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


def test_job_types_load_from_an_entry_point(make_server: Any, tmp_path: Any) -> None:
    """A package that declares `jobctl.functions` is loaded with no flag."""
    dist = tmp_path / "site" / "acme_jobs-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-jobs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[jobctl.functions]\nacme = competitor_jobs\n")
    pythonpath = os.pathsep.join([str(tmp_path / "site"), str(ROOT / "examples"),
                                  os.environ.get("PYTHONPATH", "")])  # fmt: skip
    server: ServerProcess = make_server(env={"PYTHONPATH": pythonpath})
    with server.client() as c:
        names = {t["name"] for t in c.get("/api/types").json()["types"]}
    assert "competitor_analysis" in names
