"""The hub in-process, on a real uvicorn socket, fed straight from a ChangeBus.

For what the stores do not publish today (DELETE) and for ordering under a burst."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
import websockets
from fastapi import FastAPI

from jobctl.server.auth import Authenticator
from jobctl.server.changes import ChangeBus
from jobctl.server.realtime import RealtimeSettings, mount_realtime
from jobctl.server.records import Change, LogRow
from tests.server.realtime.test_filters import JOB_ID, T0, job

SECRET = "s" * 40


@dataclass
class FakeStore:
    """Only what mount_realtime uses: the change bus (the hub never reads the store)."""

    changes: ChangeBus


@dataclass
class Served:
    url: str
    bus: ChangeBus
    auth: Authenticator
    direct: bool  # frames written by the hub's writers to the transport (no deflate)

    async def connect(self, token: str) -> websockets.ClientConnection:
        return await websockets.connect(
            f"{self.url}/realtime/v1/websocket?apikey={token}&vsn=1.0.0",
            open_timeout=10,
            compression=None if self.direct else "deflate",
        )


@pytest.fixture(params=["uvicorn", "direct"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """`uvicorn`: frames through uvicorn's send (permessage-deflate, no transport in the scope);
    `direct`: the app wrapped as the server wraps it, sockets without deflate, so frames are
    framed here and written (batched per loop turn) to the transport."""
    direct = request.param == "direct"
    bus = ChangeBus()
    auth = Authenticator("local-token", SECRET)
    app = FastAPI()
    # A 1,000-change burst in one loop pass is ~1 MB: more than the default outbox bound.
    settings = RealtimeSettings(max_queue_bytes=8 * 1024 * 1024)
    mount_realtime(app, FakeStore(bus), auth, settings)  # type: ignore[arg-type]
    served_app: Any = app
    if direct:
        for wrap in app.state.outer_middleware:
            served_app = wrap(served_app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(served_app, log_level="warning", ws="websockets-sansio", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = sock.getsockname()[1]
    yield Served(f"ws://127.0.0.1:{port}", bus, auth, direct)
    server.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(task, 10)


async def join(
    ws: websockets.ClientConnection, topic: str, bindings: list[dict[str, Any]]
) -> list[int]:
    payload = {"config": {"postgres_changes": bindings}}
    await ws.send(json.dumps({"topic": topic, "event": "phx_join", "payload": payload, "ref": "1"}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["payload"]["status"] == "ok", reply
    system = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert system["payload"]["message"] == "Subscribed to PostgreSQL"
    return [b["id"] for b in reply["payload"]["response"]["postgres_changes"]]


async def frames(ws: websockets.ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]


async def test_delete_goes_to_the_owner_with_a_pk_only_old_record(served: Served) -> None:
    owner = await served.connect(served.auth.make_jwt("alice"))
    other = await served.connect(served.auth.make_jwt("bob"))
    try:
        ids = await join(owner, "realtime:a", [
            {"event": "DELETE", "schema": "public", "table": "jobs", "filter": "user_id=eq.alice"},
            {"event": "DELETE", "schema": "public", "table": "jobs", "filter": "status=eq.done"},
            {"event": "INSERT", "schema": "public", "table": "jobs"},
        ])  # fmt: skip
        await join(other, "realtime:b", [{"event": "*", "schema": "public"}])
        bus = served.bus
        bus.publish(Change(bus.next_seq(), "jobs", "DELETE", None, {"id": JOB_ID}, T0, "alice"))
        bus.publish(Change(bus.next_seq(), "steps", "INSERT", None, None, T0, "alice"))  # unknown
        line = LogRow(JOB_ID, 1, T0, "info", None, "hi")
        bus.publish(Change(bus.next_seq(), "job_logs", "INSERT", line, None, T0, "bob"))
        [delete] = await frames(owner, 1)
        data = delete["payload"]["data"]
        assert delete["ref"] is None and data["type"] == "DELETE"
        # Filters on columns the PK-only old record lacks pass, as on Supabase.
        assert sorted(delete["payload"]["ids"]) == sorted(ids[:2])
        assert "record" not in data and data["old_record"] == {"id": JOB_ID}
        [log_line] = await frames(other, 1)  # bob saw his log line, and not alice's delete
        assert log_line["payload"]["data"]["table"] == "job_logs"
        assert log_line["payload"]["data"]["record"]["message"] == "hi"
    finally:
        await owner.close()
        await other.close()


async def test_a_burst_arrives_in_commit_order(served: Served) -> None:
    ws = await served.connect("local-token")
    try:
        await join(ws, "realtime:all", [{"event": "*", "schema": "public", "table": "jobs"}])
        bus = served.bus
        for i in range(1000):
            row = job(user_id="local", progress=i % 101, updated_at=T0 + i)
            bus.publish(
                Change(bus.next_seq(), "jobs", "UPDATE", row, {"id": row.id}, T0 + i, "local")
            )
        got = await frames(ws, 1000)
        assert [f["payload"]["data"]["record"]["progress"] for f in got] == [
            i % 101 for i in range(1000)
        ]
    finally:
        await ws.close()


async def _reply_to_heartbeat(ws: websockets.ClientConnection) -> dict[str, Any]:
    """The next frame after a heartbeat sent now: its reply, unless something came first."""
    await ws.send(
        json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "hb"})
    )
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def test_changes_go_to_the_sockets_that_may_read_them(served: Served) -> None:
    """The hub files channels by the rows they may read (#15): a user's channel gets that
    user's rows, service_role every row, anon none, and a refreshed token moves the channel
    to its new user's rows."""
    auth = served.auth
    alice = await served.connect(auth.make_jwt("alice"))
    service = await served.connect(auth.make_jwt(None, "service_role"))
    anon = await served.connect(auth.make_jwt(None, "anon"))
    every_job = [{"event": "*", "schema": "public", "table": "jobs"}]
    bus = served.bus

    def publish(user: str, progress: int) -> None:
        row = job(user_id=user, progress=progress)
        bus.publish(Change(bus.next_seq(), "jobs", "UPDATE", row, {"id": row.id}, T0, user))

    def progress(frame: dict[str, Any]) -> int:
        assert frame["event"] == "postgres_changes", frame
        return int(frame["payload"]["data"]["record"]["progress"])

    try:
        for ws in (alice, service, anon):
            await join(ws, "realtime:jobs", every_job)
        publish("bob", 1)
        publish("alice", 2)
        assert progress((await frames(alice, 1))[0]) == 2
        assert [progress(f) for f in await frames(service, 2)] == [1, 2]
        assert (await _reply_to_heartbeat(anon))["event"] == "phx_reply"  # nothing before it
        await alice.send(json.dumps({"topic": "realtime:jobs", "event": "access_token",
                                     "payload": {"access_token": auth.make_jwt("bob")},
                                     "ref": "2"}))  # fmt: skip
        assert (await _reply_to_heartbeat(alice))["event"] == "phx_reply"  # token taken
        publish("alice", 3)
        publish("bob", 4)
        assert progress((await frames(alice, 1))[0]) == 4  # bob's now, not alice's
        assert [progress(f) for f in await frames(service, 2)] == [3, 4]
        for ws in (alice, anon):
            assert (await _reply_to_heartbeat(ws))["event"] == "phx_reply"
    finally:
        for ws in (alice, service, anon):
            await ws.close()


async def test_a_new_access_token_moves_the_channel_to_its_users_rows(served: Served) -> None:
    """The hub files a channel under the rows its token may read; a refreshed token refiles it."""
    ws = await served.connect(served.auth.make_jwt("alice"))
    try:
        await join(ws, "realtime:mine", [{"event": "*", "schema": "public", "table": "jobs"}])
        bus = served.bus

        def change(user: str, progress: int) -> Change:
            row = job(user_id=user, progress=progress)
            return Change(bus.next_seq(), "jobs", "UPDATE", row, {"id": row.id}, T0, user)

        bus.publish(change("bob", 1))
        bus.publish(change("alice", 2))
        [first] = await frames(ws, 1)
        assert first["payload"]["data"]["record"]["progress"] == 2
        token = {"access_token": served.auth.make_jwt("bob")}
        await ws.send(json.dumps({"topic": "realtime:mine", "event": "access_token",
                                  "payload": token, "ref": "2"}))  # fmt: skip
        # No reply to access_token: a heartbeat's reply says the server has read it.
        await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {},
                                  "ref": "3"}))  # fmt: skip
        [beat] = await frames(ws, 1)
        assert beat["ref"] == "3"
        bus.publish(change("alice", 3))
        bus.publish(change("bob", 4))
        [second] = await frames(ws, 1)
        assert second["payload"]["data"]["record"]["progress"] == 4
    finally:
        await ws.close()


async def test_channels_of_a_socket_hear_a_change_in_join_order(served: Served) -> None:
    ws = await served.connect("local-token")
    other = await served.connect("local-token")
    try:
        topics = ["realtime:z", "realtime:a", "realtime:m"]
        filters = [f"id=eq.{JOB_ID.upper()}", "status=eq.running", ""]
        for topic, text in zip(topics, filters, strict=True):
            binding = {"event": "UPDATE", "schema": "public", "table": "jobs", "filter": text}
            await join(ws, topic, [binding])
        await join(other, "realtime:a", [{"event": "*", "schema": "public", "table": "jobs"}])
        bus = served.bus
        row = job(user_id="local")
        bus.publish(Change(bus.next_seq(), "jobs", "UPDATE", row, {"id": row.id}, T0, "local"))
        got = await frames(ws, 3)
        assert [f["topic"] for f in got] == topics
        [same_topic] = await frames(other, 1)  # one topic on two sockets: its own ids
        assert same_topic["topic"] == "realtime:a"
        assert same_topic["payload"]["ids"] != got[1]["payload"]["ids"]
    finally:
        await ws.close()
        await other.close()
