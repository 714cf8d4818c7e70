"""Schedules on real server processes: --every 1s makes one job per tick, a server killed
for 5 s catches up as its policy says, and three servers on one PostgreSQL (one killed
midway) still make exactly one job per tick."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.clirun import invoke
from tests.conftest import ServerProcess, wait_for

US = 1_000_000
QUICK = {"steps": 1, "step_seconds": 0.01}


def create(http: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "type": "counted",
        "every": "1s",
        "input": QUICK,
        "overlap": "allow",
        **fields,
    }
    answer = http.post("/api/schedules", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def runs_of(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    answer = http.get(f"/api/schedules/{name}", params={"runs": 1000})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["runs"])


def sqlite_rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def assert_one_run_per_tick(runs: list[dict[str, Any]]) -> list[str]:
    """Every tick from the first to the last has exactly one run; returns the outcomes."""
    ticks = sorted(r["tick"] for r in runs)
    assert len(ticks) == len(set(ticks)), "a tick ran twice"
    seconds = [int(_us(t) // US) for t in ticks]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), "a tick is missing"
    return [r["outcome"] for r in sorted(runs, key=lambda r: r["tick"])]


def _us(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * US)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_every_second_makes_one_job_per_tick_and_catches_up_after_a_kill(
    make_server: Any, tmp_path: Path
) -> None:
    db = tmp_path / "jobctl.db"
    server: ServerProcess = make_server("--db", str(db), "--functions", "jobfns")
    with server.client() as http:
        create(http, "each", catchup="1m")  # missed ticks of the last minute run, each
        create(http, "recent", catchup="0s")  # only ticks within the 2 s grace run
        create(http, "once", catchup="1m", catchup_policy="once")
        wait_for(lambda: len(runs_of(http, "each")) >= 4, timeout=30)
        n_jobs = sqlite_rows(db, "SELECT COUNT(*) FROM jobs")[0][0]
        n_runs = sum(len(runs_of(http, n)) for n in ("each", "recent", "once"))
        assert n_jobs == n_runs  # N ticks, N jobs (nothing missed yet)
    server.kill()
    killed_at = time.time()
    time.sleep(5)
    server.start()
    restarted_at = time.time()
    with server.client() as http:
        wait_for(lambda: runs_of(http, "each")[0]["tick"] > _iso(restarted_at + 2), timeout=30)
        each = runs_of(http, "each")
        recent = runs_of(http, "recent")
        once = runs_of(http, "once")
    down = [t for t in range(int(killed_at) + 1, int(restarted_at))]
    assert len(down) >= 4

    # each: every tick, through the downtime too, has a job
    assert set(assert_one_run_per_tick(each)) == {"started"}
    # recent: the downtime's older ticks are recorded as skipped, the rest ran
    outcomes = assert_one_run_per_tick(recent)
    assert "skipped_missed" in outcomes and outcomes[-1] == "started"
    # once: the missed ticks ran once in all (the latest), the others are coalesced
    outcomes = assert_one_run_per_tick(once)
    assert "coalesced" in outcomes and outcomes[-1] == "started"
    by_tick = {r["tick"]: r for r in once}
    missed = [_iso(t) for t in down if _iso(t) in by_tick]
    assert sum(by_tick[t]["outcome"] == "started" for t in missed) <= 1

    # one job per started run, carrying its schedule and tick; no tick made two jobs
    rows = sqlite_rows(db, "SELECT schedule_id, schedule_tick, idempotency_key FROM jobs")
    started = sum(r["outcome"] == "started" for r in [*each, *recent, *once])
    assert len(rows) == started
    assert len({(r[0], r[1]) for r in rows}) == len(rows)
    assert all(key == f"schedule:{sid}:{tick}" for sid, tick, key in rows)


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    whole = datetime.fromtimestamp(int(seconds), UTC)
    return whole.isoformat(timespec="microseconds").replace("+00:00", "Z")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_three_servers_on_postgres_make_exactly_one_job_per_tick(
    make_server: Any, pg_url: str
) -> None:
    args = ["--db", pg_url, "--functions", "jobfns"]
    env = {"JOBCTL_LEASE_SECONDS": "3"}
    servers = [make_server(*args, env=env) for _ in range(3)]
    with servers[0].client() as http:
        made = create(http, "every-second", catchup="1m")

    def ticks() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT COUNT(DISTINCT schedule_tick) FROM jobs WHERE schedule_id = %s",
                (made["id"],),
            ).fetchone()
        return int(row[0]) if row else 0

    # Ticks, not seconds, are waited for: a loaded machine fires late ticks by catch-up.
    wait_for(lambda: ticks() >= 8, timeout=60, interval=0.25)
    servers[1].kill()  # midway: the others go on, and nothing of its is run twice
    after_kill = ticks()
    wait_for(lambda: ticks() >= after_kill + 8, timeout=60, interval=0.25)
    with servers[2].client() as http:
        assert http.post(f"/api/schedules/{made['id']}/pause").status_code == 200
    time.sleep(1)  # a tick being fired as the pause committed
    with psycopg.connect(pg_url, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT schedule_tick, COUNT(*) FROM jobs WHERE schedule_id = %s GROUP BY 1 ORDER BY 1",
            (made["id"],),
        ).fetchall()
        runs = conn.execute(
            "SELECT tick, outcome, job_id FROM schedule_runs WHERE schedule_id = %s ORDER BY 1",
            (made["id"],),
        ).fetchall()
    assert len(jobs) >= 16, len(jobs)
    assert all(n == 1 for _, n in jobs), [t for t, n in jobs if n > 1]
    seconds = [t // US for t, _ in jobs]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), "a tick is missing"
    assert [t for t, _, _ in runs] == [t for t, _ in jobs]
    assert {o for _, o, _ in runs} == {"started"}


# CLI: schedules, bad input, delete ---------------------------------------------------------
@pytest.mark.both_stores
def test_schedule_commands_and_bad_input(server: ServerProcess) -> None:
    cases = [
        (["--cron", "61 * * * *"], "cron: invalid expression"),
        (["--cron", "* * *"], "expected 5 fields"),
        (["--cron", "@hourly", "--tz", "Nowhere/Land"], "unknown time zone"),
        (["--every", "0"], "at least 1s"),
        (["--every", "1s", "--input", '{"steps": "three"}'], "input.steps must be integer"),
        (["--every", "1s", "--overlap", "sometimes"], "--overlap"),
    ]
    for extra, message in cases:
        invoke("schedule", "create", "bad", "--type", "demo", *extra).one_line_error(2, message)
    invoke("schedule", "create", "bad", "--type", "nope", "--every", "1s").one_line_error(
        2, "unknown job type"
    )
    with server.client() as http:
        assert http.get("/api/schedules").json()["schedules"] == []  # nothing saved

    made = invoke(
        "schedule",
        "create",
        "nightly",
        "--type",
        "demo",
        "--cron",
        "@daily",
        "--tz",
        "Europe/Berlin",
        "--input",
        '{"steps": 1, "step_seconds": 0}',
    )
    assert made.code == 0, made.stderr
    invoke("schedule", "create", "nightly", "--type", "demo", "--every", "1h").one_line_error(
        8, "exists already"
    )
    listed = invoke("schedule", "list")
    assert listed.code == 0
    cells = listed.stdout.strip().split("\t")
    assert cells[1:5] == ["nightly", "demo", "0 0 * * *", "Europe/Berlin"]
    trig = invoke("schedule", "trigger", "nightly")
    assert trig.code == 0, trig.stderr
    job_id = trig.stdout.strip().split("\t")[2]
    assert invoke("schedule", "pause", "nightly", "--note", "holiday").code == 0
    shown = json.loads(invoke("schedule", "show", "nightly", "--json").stdout)
    assert shown["paused"] is True and shown["note"] == "holiday"
    assert shown["runs"][0]["kind"] == "trigger" and shown["runs"][0]["job_id"] == job_id
    assert invoke("schedule", "resume", "nightly").code == 0
    assert invoke("schedule", "delete", "nightly").code == 0
    invoke("schedule", "show", "nightly").one_line_error(4, "not found")
    with server.client() as http:
        job = http.get(f"/api/jobs/{job_id}").json()  # deleting a schedule keeps its jobs
    assert job["schedule_id"] == made.stdout.strip()


@pytest.mark.both_stores
def test_backfill_runs_each_missing_tick_once(server: ServerProcess) -> None:
    made = invoke(
        "schedule",
        "create",
        "hourly",
        "--type",
        "demo",
        "--cron",
        "0 * * * *",
        "--input",
        '{"steps": 0}',
        "--paused",
    )
    assert made.code == 0, made.stderr
    first = invoke("schedule", "backfill", "hourly", "--from", "5h", "--to", "1m", "--json")
    assert first.code == 0, first.stderr
    runs = json.loads(first.stdout)["runs"]
    assert len(runs) in (4, 5) and {r["outcome"] for r in runs} == {"started"}
    again = json.loads(
        invoke("schedule", "backfill", "hourly", "--from", "5h", "--to", "1m", "--json").stdout
    )["runs"]
    assert {r["outcome"] for r in again} == {"duplicate"}
    assert [r["tick"] for r in again] == [r["tick"] for r in runs]
    with server.client() as http:
        jobs = http.get("/api/jobs", params={"limit": 50}).json()["jobs"]
    assert sorted(j["schedule_tick"] for j in jobs) == sorted(r["tick"] for r in runs)


def test_schedules_and_events_are_per_user(server: ServerProcess) -> None:
    from tests.server.test_api_errors import token_for

    alice, bob = token_for(server, "alice"), token_for(server, "bob")
    with server.client(alice) as as_alice, server.client(bob) as as_bob:
        made = as_alice.post(
            "/api/schedules",
            json={"name": "mine", "type": "demo", "every": 3600, "input": {"steps": 0}},
        )
        assert made.status_code == 201, made.text
        job = as_alice.post("/api/jobs", json={"type": "demo", "input": {"steps": 0}}).json()
        [event] = as_alice.get("/api/events").json()["events"]
        assert event["job_ids"] == [job["id"]]
        # bob may use the same name; he sees, pauses, triggers and deletes none of alice's
        assert (
            as_bob.post(
                "/api/schedules", json={"name": "mine", "type": "demo", "every": "1h"}
            ).status_code
            == 201
        )
        assert [s["user_id"] for s in as_bob.get("/api/schedules").json()["schedules"]] == ["bob"]
        sid = made.json()["id"]
        for method, path in [
            ("GET", f"/api/schedules/{sid}"),
            ("POST", f"/api/schedules/{sid}/pause"),
            ("POST", f"/api/schedules/{sid}/trigger"),
            ("DELETE", f"/api/schedules/{sid}"),
            ("GET", f"/api/events/{event['id']}"),
            ("POST", f"/api/events/{event['id']}/replay"),
        ]:
            assert as_bob.request(method, path).status_code == 404, (method, path)
        assert as_bob.get("/api/events").json()["events"] == []
        assert as_alice.get(f"/api/schedules/{sid}").json()["paused"] is False
    with server.client() as service:  # the server's own token is user `local`
        assert service.get("/api/schedules").json()["schedules"] == []
