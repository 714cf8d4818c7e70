"""The official realtime client against the real server: every transition, in order, only yours."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from realtime import AsyncRealtimeClient

from tests.conftest import ServerProcess, wait_job
from tests.server.realtime.conftest import jwt_for, submit, subscribe, ws_url

STEPS = 3
# demo with 3 steps: created, claimed, three progress updates, finished.
EXPECTED = [
    ("INSERT", "pending", 0),
    ("UPDATE", "running", 0),
    ("UPDATE", "running", 33),
    ("UPDATE", "running", 66),
    ("UPDATE", "running", 100),
    ("UPDATE", "completed", 100),
]


def by_job(events: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, int]]]:
    seen: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for event in events:
        data = event["data"]
        record = data["record"]
        seen[record["id"]].append((data["type"].value, record["status"], record["progress"]))
    return seen


async def test_official_client_receives_every_transition_of_100_jobs(server: ServerProcess) -> None:
    client = AsyncRealtimeClient(ws_url(server.url), server.token)
    try:
        everything = await subscribe(client, "all-jobs", [{"event": "*"}])
        finished = await subscribe(
            client, "finished", [{"event": "UPDATE", "filter": "status=eq.completed"}]
        )
        assert everything.system[0].message == "Subscribed to PostgreSQL"
        ids = [
            submit(server.url, server.token, steps=STEPS, step_seconds=0)["id"] for _ in range(100)
        ]
        await finished.wait(lambda: len(finished.events) >= 100, timeout=90)
        await everything.wait(lambda: len(everything.events) >= 100 * len(EXPECTED))
        await asyncio.sleep(0.2)  # nothing more may arrive
        seen = by_job(everything.events)
        assert sorted(seen) == sorted(ids)
        for job_id in ids:
            assert seen[job_id] == EXPECTED, job_id
        assert sorted(e["data"]["record"]["id"] for e in finished.events) == sorted(ids)
        # The record is the API shape in to_jsonb formats, and commit times never go backwards.
        last = everything.events[-1]["data"]
        assert last["record"]["output"] == {"steps": STEPS}
        assert last["record"]["completed_at"].endswith("+00:00")
        assert last["old_record"] == {"id": last["record"]["id"]}
        assert [c["name"] for c in last["columns"]][:3] == ["id", "type", "status"]
        stamps = [e["data"]["commit_timestamp"] for e in everything.events]
        assert stamps == sorted(stamps)
    finally:
        await client.close()


async def test_users_never_see_each_others_rows(server: ServerProcess) -> None:
    alice, bob = jwt_for(server.config_dir, "alice"), jwt_for(server.config_dir, "bob")
    admin = jwt_for(server.config_dir, None, role="service_role")
    anon = jwt_for(server.config_dir, None, role="anon")
    bob_job = submit(server.url, bob, steps=1, step_seconds=0)
    with server.client(bob) as http:  # finished before anyone subscribes: no stray events
        wait_job(http, bob_job["id"])
    tokens = {"alice": alice, "bob": bob, "admin": admin, "anon": anon}
    clients = {name: AsyncRealtimeClient(ws_url(server.url), t) for name, t in tokens.items()}
    try:
        a_all = await subscribe(clients["alice"], "a", [{"event": "*"}])
        a_peek = await subscribe(clients["alice"], "a-peek", [
            {"event": "*", "filter": "user_id=eq.bob"},
            {"event": "*", "filter": f"id=eq.{bob_job['id']}"},
            {"event": "*", "table": "job_logs"},
        ])  # fmt: skip
        b_all = await subscribe(clients["bob"], "b", [{"event": "*"}])
        everyone = await subscribe(clients["admin"], "admin", [{"event": "*"}])
        nobody = await subscribe(clients["anon"], "anon", [{"event": "*"}])
        bob_jobs = [submit(server.url, bob, steps=2, step_seconds=0)["id"] for _ in range(5)]
        alice_jobs = [submit(server.url, alice, steps=2, step_seconds=0)["id"] for _ in range(3)]
        await b_all.wait(lambda: sum(r["status"] == "completed" for r in b_all.records()) >= 5)
        # A barrier: Alice's last job ends after Bob's; each socket gets changes in commit order,
        # so once Alice has seen it end she has been sent everything committed before it.
        await everyone.wait(
            lambda: sum(r["status"] == "completed" for r in everyone.records()) >= 8
        )
        barrier = submit(server.url, alice, steps=0, step_seconds=0)["id"]
        await a_all.wait(
            lambda: any(r["id"] == barrier and r["status"] == "completed" for r in a_all.records())
        )
        assert {r["user_id"] for r in a_all.records()} == {"alice"}
        assert {r["id"] for r in a_all.records()} == {*alice_jobs, barrier}
        assert {r["user_id"] for r in b_all.records()} == {"bob"}
        assert {r["id"] for r in b_all.records()} == set(bob_jobs)
        assert a_peek.events == []
        assert {r["user_id"] for r in everyone.records()} == {"alice", "bob"}
        assert nobody.events == []
    finally:
        for client in clients.values():
            await client.close()


async def test_job_logs_reach_the_owner_only(make_server: Any) -> None:
    server = make_server("--functions", "realtime_jobs")
    carol, dave = jwt_for(server.config_dir, "carol"), jwt_for(server.config_dir, "dave")
    c_client = AsyncRealtimeClient(ws_url(server.url), carol)
    d_client = AsyncRealtimeClient(ws_url(server.url), dave)
    try:
        c_logs = await subscribe(c_client, "c-logs", [{"event": "INSERT", "table": "job_logs"}])
        c_late = await subscribe(
            c_client, "c-late", [{"event": "INSERT", "table": "job_logs", "filter": "seq=gte.3"}]
        )
        d_logs = await subscribe(d_client, "d-logs", [{"event": "*", "table": "job_logs"}])
        first = submit(server.url, carol, "chatty", lines=4)["id"]
        second = submit(server.url, carol, "chatty", lines=3)["id"]
        await c_logs.wait(lambda: len(c_logs.events) >= 7)
        lines = defaultdict(list)
        for record in c_logs.records("job_logs"):
            assert set(record) == {"job_id", "seq", "ts", "level", "step", "message"}
            lines[record["job_id"]].append((record["seq"], record["message"]))
        assert lines[first] == [(i, f"line {i} of 4") for i in range(1, 5)]
        assert lines[second] == [(i, f"line {i} of 3") for i in range(1, 4)]
        await c_late.wait(lambda: len(c_late.events) >= 3)
        late = sorted((r["job_id"], r["seq"]) for r in c_late.records("job_logs"))
        assert late == sorted([(first, 3), (first, 4), (second, 3)])
        own = submit(server.url, dave, "chatty", lines=1)["id"]  # a barrier, as above
        await d_logs.wait(lambda: d_logs.events)
        assert [r["job_id"] for r in d_logs.records("job_logs")] == [own]
    finally:
        await c_client.close()
        await d_client.close()
