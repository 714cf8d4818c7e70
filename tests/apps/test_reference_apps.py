"""The two reference apps (examples/apps/), each a real uvicorn process on a real PostgreSQL with
its own migration, beside the jobctl stand-in publishing the app's `jobs` table: a user signs in
at the stand-in's /auth/v1, submits through the app's API with that access token, the app's
worker moves the row to its end, and Realtime delivers the app's UPDATEs (realtime-py, anon
key + the user's token as Supabase frontends use them); /rest/v1/jobs shows the row to its owner.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from realtime import AsyncRealtimeClient
from supabase_auth import SyncGoTrueClient

from jobctl.server.auth import Authenticator
from tests.conftest import EXAMPLES, ServerProcess, wait_for
from tests.pgcluster import PgCluster
from tests.pgfixtures import new_database
from tests.server.realtime.conftest import Sink, subscribe_table, ws_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APPS = EXAMPLES / "apps"
PASSWORD = "reference app password"
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class AppProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@dataclass
class Stack:
    app: AppProcess
    server: ServerProcess
    secret: str
    db: str

    def sign_in(self, email: str) -> str:
        """A user of the stand-in, signed in through supabase-py's auth client: the access token."""
        added = subprocess.run(
            [sys.executable, "-m", "jobctl", "server", "user", "add", email],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        auth = SyncGoTrueClient(
            url=f"{self.server.url}/auth/v1",
            headers={"apikey": self.anon_key},
            auto_refresh_token=False,
            persist_session=False,
        )
        session = auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
        assert session is not None
        return str(session.access_token)

    @property
    def anon_key(self) -> str:
        return Authenticator("unused", self.secret).make_jwt(None, "anon")

    def api(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.app.url, headers=headers, timeout=10)


@pytest.fixture
def stack(
    make_server: Any, pg_cluster: PgCluster, tmp_path: Path
) -> Iterator[Callable[..., Stack]]:
    started: list[AppProcess] = []

    def start(name: str, **env: str) -> Stack:
        db = new_database(pg_cluster, migrated=False)
        secret = secrets.token_urlsafe(32)
        log_path = tmp_path / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(APPS / name / "app.py"), "--port", "0"],
                env={**os.environ, "DATABASE_URL": db, "SUPABASE_JWT_SECRET": secret, **env},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        app = AppProcess(proc, log_path)
        started.append(app)
        deadline = time.monotonic() + 30
        while not app.url:  # ready once its migration ran and it listens
            found = READY.search(app.log)
            if found:
                app.url = f"http://127.0.0.1:{found[1]}"
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{app.log}")
            else:
                time.sleep(0.05)
        server: ServerProcess = make_server(
            "--db", db, "--publish", "public.jobs", "--owner-column", "user_id",
            env={"JOBCTL_JWT_SECRET": secret},
        )  # fmt: skip
        return Stack(app, server, secret, db)

    yield start
    for app in started:
        app.stop()


async def follow(stack: Stack, token: str, user_id: str) -> tuple[AsyncRealtimeClient, Sink, Sink]:
    """Two channels as a frontend would open them: every UPDATE of the user's jobs (row-level
    security narrows it), and one filtered on the user's id."""
    client = AsyncRealtimeClient(ws_url(stack.server.url), stack.anon_key)
    await client.set_auth(token)
    everything = await subscribe_table(client, "jobs", "public", "jobs", "UPDATE")
    mine = await subscribe_table(
        client, "mine", "public", "jobs", "UPDATE", f"user_id=eq.{user_id}"
    )
    return client, everything, mine


def updates(sink: Sink, job_id: str) -> list[dict[str, Any]]:
    return [e["data"]["record"] for e in sink.events if e["data"]["record"]["id"] == job_id]


def check_profile_mapping(stack: Stack, app: str, token: str) -> None:
    """Every column the app's profile.toml maps is one the stand-in's OpenAPI document lists."""
    profile = tomllib.loads((APPS / app / "profile.toml").read_text())
    doc = httpx.get(
        f"{stack.server.url}/rest/v1/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    columns = doc["definitions"][profile["table"]["name"]]["properties"]
    for field, target in profile["table"].items():
        if field != "name":
            assert target.split(".")[0] in columns, (app, field, target)


def sub_of(token: str, secret: str) -> str:
    import jwt

    return str(jwt.decode(token, secret, algorithms=["HS256"], audience="authenticated")["sub"])


async def test_journal_app_submit_reaches_completed_over_realtime(stack: Any) -> None:
    s: Stack = stack("journal-app", JOURNAL_STEP_SECONDS="0.3")
    token = await asyncio.to_thread(s.sign_in, "writer@example.com")
    user_id = sub_of(token, s.secret)
    check_profile_mapping(s, "journal-app", token)
    client, everything, mine = await follow(s, token, user_id)
    try:
        text = (EXAMPLES / "journal.txt").read_text()
        with s.api(token) as api:
            answer = api.post(
                "/api/journal/submit", json={"eventText": text, "evidenceIds": ["ev1", "ev2"]}
            )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"journalEntryId", "jobId", "message"}
        job_id = body["jobId"]

        def ended(sink: Sink) -> bool:
            return any(r["status"] in ("completed", "failed") for r in updates(sink, job_id))

        await everything.wait(lambda: ended(everything))
        await mine.wait(lambda: ended(mine))
        rows = updates(everything, job_id)
        assert [r["status"] for r in rows] == ["processing", "completed"]
        assert [r["status"] for r in updates(mine, job_id)] == ["processing", "completed"]
        done = rows[-1]
        summary = done["result_summary"]
        assert summary["events_created"] == 5 and len(summary["event_ids"]) == 5
        assert summary["evidence_processed"] == 2
        assert summary["action_items_created"] == 5
        assert done["journal_entry_id"] == body["journalEntryId"]
        assert done["error_message"] is None and done["user_id"] == user_id
        assert "progress" not in done  # the app's table has none

        # Its owner reads the row through PostgREST; another user does not.
        other = await asyncio.to_thread(s.sign_in, "other@example.com")
        for who, expected in ((token, 1), (other, 0)):
            got = httpx.get(
                f"{s.server.url}/rest/v1/jobs", params={"id": f"eq.{job_id}"},
                headers={"Authorization": f"Bearer {who}", "apikey": s.anon_key}, timeout=10,
            )  # fmt: skip
            assert got.status_code == 200 and len(got.json()) == expected

        # An entry the extraction cannot read fails with the app's error_message.
        with s.api(token) as api:
            failing = api.post("/api/journal/submit", json={"eventText": "Please FAIL today."})
        failed_id = failing.json()["jobId"]
        await everything.wait(lambda: any(r["status"] == "failed"
                                          for r in updates(everything, failed_id)))  # fmt: skip
        failed = updates(everything, failed_id)[-1]
        assert failed["error_message"].startswith("the event extraction failed")
        assert failed["result_summary"] is None
    finally:
        await client.close()

    with s.api(None) as api:
        assert api.post("/api/journal/submit", json={"eventText": "x"}).status_code == 401
    with s.api(token) as api:
        empty = api.post("/api/journal/submit", json={"eventText": "   "})
        assert empty.status_code == 400 and empty.json()["message"] == "eventText is required"
        assert api.post("/api/journal/submit", content=b"{nope").status_code == 400
        assert api.post("/api/journal/submit", json={"text": "x"}).status_code == 400


async def test_decision_app_jobs_report_progress_and_end(stack: Any) -> None:
    s: Stack = stack("decision-app", DECISION_STEP_SECONDS="0.2")
    token = await asyncio.to_thread(s.sign_in, "decider@example.com")
    user_id = sub_of(token, s.secret)
    check_profile_mapping(s, "decision-app", token)
    client, everything, _ = await follow(s, token, user_id)
    try:
        with s.api(token) as api:
            made = api.post("/api/jobs", json={"type": "option_analysis", "decision_id": "d-1",
                                               "input": {"options": ["a", "b"]}})  # fmt: skip
            assert made.status_code == 201, made.text
            job = made.json()
            assert job["status"] == "pending" and job["progress"] == 0
            assert job["org_id"] == f"personal-{user_id}" and job["decision_id"] == "d-1"
            again = api.post("/api/jobs", json={"type": "option_analysis", "decision_id": "d-1"})
            assert again.status_code == 409

            # The frontend's way: poll GET /api/jobs/{id} until it ends.
            def polled() -> dict[str, Any] | None:
                row: dict[str, Any] = api.get(f"/api/jobs/{job['id']}").json()
                return row if row["status"] in ("completed", "failed", "cancelled") else None

            final = await asyncio.to_thread(wait_for, polled, 30)
            assert isinstance(final, dict)
            assert final["status"] == "completed" and final["progress"] == 100
            assert final["output"]["status_message"] == "Done"

            await everything.wait(
                lambda: any(r["status"] == "completed" for r in updates(everything, job["id"]))
            )
            seen = updates(everything, job["id"])
            assert seen[0]["status"] == "running"
            progress = [r["progress"] for r in seen]
            assert progress == sorted(progress) and progress[-1] == 100
            messages = [r["output"]["status_message"] for r in seen if r["status"] == "running"]
            assert messages == ["Starting...", "Scoring options...", "Weighing trade-offs..."]

            failing = api.post("/api/jobs", json={"type": "brief_generation",
                                                  "decision_id": "d-2", "input": {"fail": True}})  # fmt: skip
            cancelled = api.post("/api/jobs", json={"type": "market_research",
                                                    "decision_id": "d-3"}).json()  # fmt: skip
            stop = api.post(f"/api/jobs/{cancelled['id']}/cancel")
            assert stop.status_code == 200 and stop.json()["status"] == "cancelled"
            later = api.post("/api/jobs", json={"type": "option_analysis", "decision_id": "d-4"})
            # The worker takes jobs in order: once the later one is done, the others are too.
            await everything.wait(
                lambda: any(r["status"] == "completed"
                            for r in updates(everything, later.json()["id"]))
            )  # fmt: skip
            broken = api.get(f"/api/jobs/{failing.json()['id']}").json()
            assert broken["status"] == "failed"
            assert broken["error"] == "Polishing failed: the data source refused the request"
            assert api.get(f"/api/jobs/{cancelled['id']}").json()["status"] == "cancelled"
            assert api.post(f"/api/jobs/{cancelled['id']}/cancel").status_code == 409

            assert (
                api.post("/api/jobs", json={"type": "poem", "decision_id": "x"}).status_code == 400
            )
            assert api.get("/api/jobs/not-a-uuid").status_code == 404
        other = await asyncio.to_thread(s.sign_in, "rival@example.com")
        with s.api(other) as api:
            assert api.get(f"/api/jobs/{job['id']}").status_code == 404
        with s.api(None) as api:
            assert api.get(f"/api/jobs/{job['id']}").status_code == 401
    finally:
        await client.close()
