"""The engine's promises, against a real server process on loopback (issue #2)."""

from __future__ import annotations

import collections
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, ServerProcess, wait_for, wait_job

# Every test here runs twice: on SQLite, then with every server on one PostgreSQL database.
pytestmark = pytest.mark.both_stores


def db_of(server: ServerProcess) -> str:
    """The server's database: its JOBCTL_DB (PostgreSQL run) or its default SQLite file."""
    return server.env.get("JOBCTL_DB") or str(server.data_dir / "jobctl.db")


def outside_store(server: ServerProcess) -> Any:
    """A second, write-only connection to the server's database, as another process has."""
    from jobctl.server.store import open_store
    from jobctl.server.store.postgres import PostgresStore
    from jobctl.server.store.sqlite import SQLiteStore

    db = db_of(server)
    if db.startswith("postgresql://"):
        return PostgresStore(db, listen=False)
    store = open_store(db)
    assert isinstance(store, SQLiteStore)
    store.open_sync(lock=False)
    return store


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.log"


@pytest.fixture
def fn_server(make_server: Any, effects: Path) -> ServerProcess:
    server: ServerProcess = make_server(
        "--functions", "jobfns", "--backoff", "0.05,0.1", env={"JOBCTL_TEST_EFFECTS": str(effects)}
    )
    return server


def count_effects(path: Path) -> collections.Counter[tuple[str, str]]:
    if not path.exists():
        return collections.Counter()
    return collections.Counter(
        tuple(line.split(" ", 1))
        for line in path.read_text().splitlines()
        if line  # type: ignore[misc]
    )


def submit(
    client: httpx.Client, type_: str, input_: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    r = client.post("/api/jobs", json={"type": type_, "input": input_, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_create_answers_pending_at_once(server: ServerProcess) -> None:
    with server.client() as c:
        started = time.monotonic()
        job = submit(c, "demo", {"steps": 2, "step_seconds": 1})
        elapsed = time.monotonic() - started
        assert job["status"] == "pending"
        assert job["progress"] == 0 and job["started_at"] is None
        assert elapsed < 1.0, "the handler must not wait for the work"
        wait_job(c, job["id"], ("running",))


def test_journal_extraction_finds_events_and_action_items(server: ServerProcess) -> None:
    text = (EXAMPLES / "journal.txt").read_text()
    with server.client() as c:
        job = submit(c, "journal_extraction", {"text": text, "filename": "journal.txt"})
        done = wait_job(c, job["id"])
        assert done["status"] == "completed", done
        out = done["output"]
        assert out["events_created"] == 5
        assert out["action_items_created"] == 5
        events = {(e["date"], e["time"]) for e in out["events"]}
        assert events == {
            ("2026-03-06", "19:00"),  # dinner on Friday at 7pm
            ("2026-03-12", "14:15"),  # dentist, March 12 at 2:15pm
            ("2026-03-08", None),  # Mum's birthday
            ("2026-03-03", "11:00"),  # design review tomorrow at 11am
            ("2026-03-10", "16:00"),  # all-hands next Tuesday at 4pm
        }
        assert out["event_ids"] == [e["id"] for e in out["events"]]
        titles = " | ".join(a["title"].lower() for a in out["action_items"])
        for task in ("headcount forecast", "passport", "flowers", "landlord", "slides"):
            assert task in titles
        due = {a["title"].split()[0].lower(): a["due"] for a in out["action_items"]}
        assert due["send"] == "2026-03-04" and due["order"] == "2026-03-05"
        steps = c.get(f"/api/jobs/{job['id']}/steps").json()["steps"]
        assert [s["name"] for s in steps] == [
            "parse", "extract-events", "extract-action-items", "save"
        ]  # fmt: skip
        assert all(s["status"] == "completed" for s in steps)
        assert done["progress"] == 100 and "5 events" in done["message"]


def test_failing_step_fails_after_retries_and_steps_run_once(
    fn_server: ServerProcess, effects: Path
) -> None:
    with fn_server.client() as c:
        job = submit(c, "counted", {"steps": 4, "step_seconds": 0, "fail_at": 3, "fail_times": 9})
        done = wait_job(c, job["id"])
        assert done["status"] == "failed"
        assert "planned failure at step 3" in done["error"]
        seen = count_effects(effects)
        assert seen[(job["id"], "step-1")] == 1
        assert seen[(job["id"], "step-2")] == 1
        assert seen[(job["id"], "fail-3")] == 3  # retries=2: three attempts
        assert seen[(job["id"], "step-4")] == 0
        steps = {s["name"]: s for s in c.get(f"/api/jobs/{job['id']}/steps").json()["steps"]}
        assert steps["step-3"]["status"] == "failed" and steps["step-3"]["attempt"] == 3
        logs = c.get(f"/api/jobs/{job['id']}/logs").json()["logs"]
        assert sum("retrying in" in ln["message"] for ln in logs) == 2


def test_demo_job_fails_after_its_retries(server: ServerProcess) -> None:
    with server.client() as c:
        job = submit(c, "demo", {"steps": 3, "step_seconds": 0, "fail_at": 2, "fail_times": 5})
        done = wait_job(c, job["id"])
        assert done["status"] == "failed" and "demo failure at step 2" in done["error"]
        steps = {s["name"]: s for s in c.get(f"/api/jobs/{job['id']}/steps").json()["steps"]}
        assert steps["step-1"]["attempt"] == 1 and steps["step-1"]["status"] == "completed"
        assert steps["step-2"]["attempt"] == 3 and "step-3" not in steps
        # fewer failures than attempts: it recovers
        ok = wait_job(c, submit(c, "demo", {"steps": 3, "step_seconds": 0, "fail_at": 2,
                                            "fail_times": 2})["id"])  # fmt: skip
        assert ok["status"] == "completed"


def test_non_retriable_error_fails_at_once(fn_server: ServerProcess, effects: Path) -> None:
    with fn_server.client() as c:
        job = submit(c, "fatal", {})
        done = wait_job(c, job["id"])
        assert done["status"] == "failed" and "cannot go on" in done["error"]
        assert count_effects(effects)[(job["id"], "boom")] == 1


def test_on_failure_hook_runs(fn_server: ServerProcess, effects: Path) -> None:
    with fn_server.client() as c:
        job = submit(c, "hooked", {})
        assert wait_job(c, job["id"])["status"] == "failed"
        wait_for(lambda: any(k[1].startswith("on_failure:") for k in count_effects(effects)))
        hooks = [k for k in count_effects(effects) if k[0] == job["id"]]
        assert len(hooks) == 1 and "bad things" in hooks[0][1]


def _completed_steps_in_db(db: str) -> dict[str, set[str]]:
    query = "SELECT job_id, name FROM steps WHERE status = 'completed'"
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as pg:
            rows = pg.execute(query).fetchall()
    else:
        conn = sqlite3.connect(db)
        try:
            rows = conn.execute(query).fetchall()
        finally:
            conn.close()
    done: dict[str, set[str]] = collections.defaultdict(set)
    for job_id, name in rows:
        done[job_id].add(name)
    return done


@pytest.mark.parametrize("round_", range(2))
def test_sigkill_mid_run_loses_nothing_and_repeats_no_completed_step(
    make_server: Any, effects: Path, round_: int
) -> None:
    env = {"JOBCTL_TEST_EFFECTS": str(effects)}
    first: ServerProcess = make_server("--functions", "jobfns", "--slots", "8", env=env)
    steps = 6
    with first.client() as c:
        ids = [
            submit(c, "counted", {"steps": steps, "step_seconds": 0.15})["id"] for _ in range(12)
        ]
        # wait until work is in flight: some steps done, nothing finished
        wait_for(lambda: sum(count_effects(effects).values()) >= 10, timeout=20)
    first.kill()
    done_before = _completed_steps_in_db(db_of(first))
    assert any(done_before.values()), "the kill should land after some steps completed"

    second: ServerProcess = make_server("--functions", "jobfns", "--slots", "8", env=env)
    with second.client() as c:
        finals = [wait_job(c, job_id, timeout=60) for job_id in ids]
        assert [j["status"] for j in finals] == ["completed"] * len(ids)
        listed = c.get("/api/jobs", params={"limit": 100}).json()["jobs"]
        assert {j["id"] for j in listed} == set(ids), "every accepted job is still there"
    seen = count_effects(effects)
    for job_id in ids:
        for i in range(1, steps + 1):
            name = f"step-{i}"
            assert seen[(job_id, name)] >= 1
            if name in done_before.get(job_id, set()):
                assert seen[(job_id, name)] == 1, f"{job_id} {name} ran again after restart"
    rerun = sum(
        seen[(j, f"step-{i}")] - 1 for j in ids for i in range(1, steps + 1)
    )  # only steps cut short by the kill may run twice: at most one per job in flight
    assert rerun <= 8


def test_cancel_running_job_stops_before_next_step(fn_server: ServerProcess, effects: Path) -> None:
    with fn_server.client() as c:
        job = submit(c, "counted", {"steps": 10, "step_seconds": 0.3})
        wait_for(lambda: count_effects(effects)[(job["id"], "step-1")] == 1)
        r = c.post(f"/api/jobs/{job['id']}/cancel")
        assert r.status_code == 202 and r.json()["status"] == "cancelled"
        done_at_cancel = max(int(k[1].split("-")[1]) for k in count_effects(effects)
                             if k[0] == job["id"])  # fmt: skip
        time.sleep(1.5)  # uncancelled, three more steps would have run by now
        ran = {int(k[1].split("-")[1]) for k in count_effects(effects) if k[0] == job["id"]}
        # the step running at the cancel may finish (it is told, and ends early); none starts
        assert max(ran) <= done_at_cancel + 1, ran
        steps = c.get(f"/api/jobs/{job['id']}/steps").json()["steps"]
        assert len(steps) <= done_at_cancel + 1
        final = c.get(f"/api/jobs/{job['id']}").json()
        assert final["status"] == "cancelled" and final["completed_at"]
        assert c.post(f"/api/jobs/{job['id']}/cancel").status_code == 409


def test_cancel_pending_job(server: ServerProcess) -> None:
    with server.client() as c:
        # five long jobs fill the per-user limit of 3; the others wait as pending
        ids = [submit(c, "demo", {"steps": 1, "step_seconds": 30})["id"] for _ in range(4)]
        pending = wait_for(
            lambda: next(
                (j for j in c.get("/api/jobs", params={"status": "pending"}).json()["jobs"]), None
            )
        )
        r = c.post(f"/api/jobs/{pending['id']}/cancel")  # type: ignore[index]
        assert r.status_code == 202 and r.json()["status"] == "cancelled"
        for job_id in ids:
            c.post(f"/api/jobs/{job_id}/cancel")


def test_retry_resumes_from_failed_step_or_from_start(
    fn_server: ServerProcess, effects: Path
) -> None:
    with fn_server.client() as c:
        job = submit(c, "counted", {"steps": 4, "step_seconds": 0, "fail_at": 3,
                                    "fail_job_attempts": 1})  # fmt: skip
        assert wait_job(c, job["id"])["status"] == "failed"
        assert count_effects(effects)[(job["id"], "fail-3")] == 3
        r = c.post(f"/api/jobs/{job['id']}/retry")
        assert r.status_code == 202 and r.json()["status"] == "pending"
        assert r.json()["attempt"] == 2
        done = wait_job(c, job["id"])
        assert done["status"] == "completed", done
        seen = count_effects(effects)
        assert seen[(job["id"], "step-1")] == 1 and seen[(job["id"], "step-2")] == 1
        assert seen[(job["id"], "step-3")] == 1 and seen[(job["id"], "step-4")] == 1
        assert c.post(f"/api/jobs/{job['id']}/retry").status_code == 409  # completed

        job2 = submit(c, "counted", {"steps": 3, "step_seconds": 0, "fail_at": 2,
                                     "fail_job_attempts": 1})  # fmt: skip
        assert wait_job(c, job2["id"])["status"] == "failed"
        r = c.post(f"/api/jobs/{job2['id']}/retry", json={"from_start": True})
        assert r.status_code == 202
        assert wait_job(c, job2["id"])["status"] == "completed"
        assert count_effects(effects)[(job2["id"], "step-1")] == 2  # ran again from the start


def test_per_user_limit_of_three(fn_server: ServerProcess) -> None:
    with fn_server.client() as c:
        ids = [submit(c, "counted", {"steps": 2, "step_seconds": 0.2})["id"] for _ in range(10)]
        finals = [wait_job(c, job_id, timeout=60) for job_id in ids]
    assert all(j["status"] == "completed" for j in finals)
    events = []
    for j in finals:
        events.append((datetime.fromisoformat(j["started_at"]), 1))
        events.append((datetime.fromisoformat(j["completed_at"]), -1))
    running = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    assert peak == 3, f"expected the limit (3) to be reached and never passed, peak {peak}"


def test_concurrency_key_limit(server: ServerProcess) -> None:
    jwt_secret = (server.config_dir / "jwt-secret").read_text().strip()
    import jwt

    def token(user: str) -> str:
        return jwt.encode({"sub": user, "role": "authenticated", "exp": time.time() + 600},
                          jwt_secret, algorithm="HS256")  # fmt: skip

    finals = []
    for user in ("u1", "u2", "u3"):  # three users, one decision: at most 2 at once
        with server.client(token(user)) as c:
            for _ in range(2):
                finals.append((user, submit(c, "demo", {"steps": 1, "step_seconds": 0.4},
                                            concurrency_key="decision:42")["id"]))  # fmt: skip
    rows = []
    for user, job_id in finals:
        with server.client(token(user)) as c:
            rows.append(wait_job(c, job_id, timeout=60))
    events = sorted(
        [(datetime.fromisoformat(j["started_at"]), 1) for j in rows]
        + [(datetime.fromisoformat(j["completed_at"]), -1) for j in rows],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2


def test_reject_when_limited_answers_429(fn_server: ServerProcess) -> None:
    with fn_server.client() as c:
        for _ in range(3):
            submit(c, "limited", {"seconds": 3})
        wait_for(lambda: len(c.get("/api/jobs", params={"status": "running"}).json()["jobs"]) == 3)
        r = c.post("/api/jobs", json={"type": "limited", "input": {}})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "5"
        assert r.json()["error"]["code"] == "limit_reached"


def test_timeout_fails_with_clear_error(fn_server: ServerProcess) -> None:
    with fn_server.client() as c:
        job = submit(c, "slow", {})
        done = wait_job(c, job["id"], timeout=15)
        assert done["status"] == "failed"
        assert done["error"].startswith("timed out: running longer than 1s")


def test_cancel_interrupts_a_step_that_ignores_it(make_server: Any, effects: Path) -> None:
    env = {"JOBCTL_TEST_EFFECTS": str(effects)}
    srv: ServerProcess = make_server("--functions", "jobfns", "--cancel-grace", "0.5", env=env)
    with srv.client() as c:
        job = submit(c, "stubborn", {"seconds": 30})
        wait_job(c, job["id"], ("running",))
        time.sleep(0.2)
        assert c.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
        wait_for(lambda: c.get("/api/health").json()["workers"]["running"] == 0, timeout=10)
        assert count_effects(effects)[(job["id"], "two")] == 0


def test_idempotency_key_gives_one_job(server: ServerProcess) -> None:
    with server.client() as c:
        body = {"type": "demo", "input": {"steps": 0}, "idempotency_key": "k-1"}
        first = c.post("/api/jobs", json=body)
        again = c.post("/api/jobs", json=body)
        assert first.status_code == 201 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        other = c.post("/api/jobs", json={**body, "idempotency_key": "k-2"})
        assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
        assert len(c.get("/api/jobs").json()["jobs"]) == 2


def test_inngest_event_intake(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        events = [
            {"name": "app/demo", "data": {"steps": 0}, "id": "evt-1"},
            {"name": "demo", "data": {"steps": 0}, "id": "evt-1"},  # same id: same job
            {"name": "journal_extraction", "data": {"text": "Dinner on Friday at 7pm."}},
        ]
        r = anon.post(f"/e/{server.token}", json=events)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == 200 and len(body["ids"]) == 3
        assert body["ids"][0] == body["ids"][1] != body["ids"][2]
        bad = anon.post("/e/not-a-key", json={"name": "demo"})
        assert bad.status_code == 401 and bad.json()["status"] == 401
        unknown = anon.post(f"/e/{server.token}", json={"name": "nope"})
        assert unknown.status_code == 400 and "no job type" in unknown.json()["error"]
    with server.client() as c:
        assert wait_job(c, body["ids"][2])["output"]["events_created"] == 1


def test_jobs_written_by_another_process_are_picked_up(server: ServerProcess) -> None:
    """Rows committed by another writer (no wake-up call) still get claimed and run."""
    import uuid

    from jobctl.server.records import NewJob, dumps, now_us

    other = outside_store(server)
    try:
        ids = []
        for _ in range(30):
            new = NewJob(
                str(uuid.uuid4()), "demo", dumps({"steps": 1, "step_seconds": 0}), "local", 1
            )
            other.create_job_sync(new, now_us(), 0)
            ids.append(new.id)
    finally:
        other.close_sync()
    with server.client() as c:
        assert all(wait_job(c, job_id)["status"] == "completed" for job_id in ids)
