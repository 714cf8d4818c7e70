"""Helpers for the `jobctl watch` tests: jobs on the real server, the real command, its output."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.clirun import SCRIPT
from tests.conftest import ServerProcess

TERMINAL = ("completed", "failed", "cancelled")


def demo(http: httpx.Client, **input_: Any) -> str:
    r = http.post("/api/jobs", json={"type": "demo", "input": input_})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


class Burst:
    """Jobs that run until the test ends them (the `burst` type of tests/jobfns.py): for a
    server made with `Burst.server(make_server, tmp_path)`. A watch started after them
    sees them active however slow its start-up; `end()` lets them all finish."""

    def __init__(self, gate: Path) -> None:
        self.gate = gate

    @classmethod
    def server(cls, make_server: Any, tmp_path: Path) -> tuple[ServerProcess, Burst]:
        gate = tmp_path / "burst-at"
        server = make_server("--functions", "jobfns", env={"JOBCTL_TEST_BURST": str(gate)})
        return server, cls(gate)

    @staticmethod
    def submit(http: httpx.Client) -> str:
        r = http.post("/api/jobs", json={"type": "burst", "input": {}})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def end(self, after: float = 0.0) -> None:
        tmp = self.gate.with_suffix(".tmp")
        tmp.write_text(repr(time.time() + after))
        tmp.replace(self.gate)


def mint(server: ServerProcess, sub: str | None, role: str = "authenticated") -> str:
    """A JWT signed with the server's secret, as a Supabase project issues them."""
    secret = (server.config_dir / "jwt-secret").read_text().strip()
    claims: dict[str, Any] = {"role": role, "exp": int(time.time()) + 3600}
    if sub is not None:
        claims["sub"] = sub
    return jwt.encode(claims, secret, algorithm="HS256")


def status_of(http: httpx.Client, job_id: str) -> str:
    return str(http.get(f"/api/jobs/{job_id}").json()["status"])


def seen_as(text: str, status: str) -> set[str]:
    """The jobs a --jsonl watch has reported moving to `status` so far (whole lines only:
    the process may be writing the next one)."""
    ids = set()
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "transition" and event.get("to") == status:
            ids.add(event["job_id"])
    return ids


@dataclass
class Stream:
    transitions: list[dict[str, Any]]
    summary: dict[str, Any]


def parse_jsonl(text: str) -> Stream:
    """Every line is one JSON object: transitions, then exactly one summary, last."""
    objects = [json.loads(line) for line in text.splitlines()]
    assert objects, "no output"
    assert objects[-1]["type"] == "summary", objects[-1]
    transitions = objects[:-1]
    assert all(o["type"] == "transition" for o in transitions), "one summary, at the end"
    chains: dict[str, str | None] = {}
    for t in transitions:  # each transition starts where the job's previous one ended
        assert t["from"] == chains.get(t["job_id"]), t
        assert t["from"] != t["to"], t
        chains[t["job_id"]] = t["to"]
    return Stream(transitions, objects[-1])


class Watch:
    """`jobctl watch ...` in the background, its output in files (a pipe could fill up)."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out_path, self.err_path = tmp / "watch.out", tmp / "watch.err"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                [str(SCRIPT), "watch", *args],
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
            )

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
