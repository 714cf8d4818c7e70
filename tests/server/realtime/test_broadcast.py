"""Broadcast and presence through realtime-py (vsn 1.0.0), and the HTTP broadcast API's answers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from tests.conftest import ServerProcess
from tests.server.realtime.conftest import WAIT, RawSocket, jwt_for, submit, ws_url


async def until(predicate: Any, timeout: float = WAIT) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout)


async def joined(channel: Any) -> None:
    states: list[RealtimeSubscribeStates] = []
    await channel.subscribe(lambda state, _error: states.append(state))
    await until(lambda: states)
    assert states[0] == RealtimeSubscribeStates.SUBSCRIBED, states


async def test_realtime_py_broadcast_and_presence(server: ServerProcess) -> None:
    one = AsyncRealtimeClient(ws_url(server.url), server.token)
    two = AsyncRealtimeClient(ws_url(server.url), server.token)
    heard: list[dict[str, Any]] = []
    try:
        a = one.channel("room", {"config": {"presence": {"key": "a"}}})
        b = two.channel("room", {"config": {"broadcast": {"self": True}, "presence": {"key": "b"}}})
        b.on_broadcast("hi", heard.append)
        for channel in (a, b):
            channel.on_presence_sync(lambda: None)
            await joined(channel)
        await a.send_broadcast("hi", {"n": 1})
        await until(lambda: len(heard) == 1)  # two sockets keep no order between them
        await b.send_broadcast("hi", {"n": 2})  # self: b hears its own
        await until(lambda: len(heard) == 2)
        assert [m["payload"] for m in heard] == [{"n": 1}, {"n": 2}]
        assert heard[0]["event"] == "hi"
        await a.track({"online": True})
        await b.track({"online": False})
        await until(lambda: set(a.presence_state()) == {"a", "b"})
        await until(lambda: set(b.presence_state()) == {"a", "b"})
        await b.untrack()
        await until(lambda: set(a.presence_state()) == {"a"})
        await two.close()  # a socket that goes takes its presence with it
        await a.track({"online": "again"})
        await until(lambda: [m["online"] for m in a.presence_state()["a"]] == ["again"])
    finally:
        await one.close()
        await two.close()


def test_http_broadcast_answers(server: ServerProcess) -> None:
    base = f"{server.url}/realtime/v1/api/broadcast"
    alice = {"Authorization": f"Bearer {jwt_for(server.config_dir, 'alice')}"}
    assert httpx.post(base, json={"messages": []}).status_code == 401
    for body, status in [
        ({"messages": []}, 422),
        ({"messages": [{"topic": "t", "event": "e"}]}, 422),
        ({"messages": [{"topic": "", "event": "e", "payload": {}}]}, 422),
        ({"messages": [{"topic": "t", "event": "e", "payload": {"x": "y" * 300_000}}]}, 422),
        ({"messages": [{"topic": "t", "event": "e", "payload": {}}]}, 202),
        ({"messages": [{"topic": "jobs:bob", "event": "e", "payload": {}, "private": True}]}, 202),
    ]:
        answer = httpx.post(base, json=body, headers=alice)
        assert answer.status_code == status, (body, answer.text)
        if status == 422:
            assert "errors" in answer.json()
    deep = "[" * 100 + "]" * 100
    bad = httpx.post(base, content=deep, headers={**alice, "Content-Type": "application/json"})
    assert bad.status_code == 400 and "message" in bad.json()
    one = f"{base}/jobs:bob/events/e"
    assert httpx.post(one + "?private=true", json={}, headers=alice).status_code == 403
    assert httpx.post(one, json={}, headers=alice).status_code == 202  # public: anyone
    xml = httpx.post(one, content=b"<x/>", headers={**alice, "Content-Type": "text/xml"})
    assert xml.status_code == 415
    assert httpx.post(f"{base}/no-events-part", json={}, headers=alice).status_code == 404


async def test_http_broadcast_reaches_sockets_and_private_needs_the_rule(
    server: ServerProcess,
) -> None:
    alice = jwt_for(server.config_dir, "alice")
    job = submit(server.url, alice, steps=0, step_seconds=0)
    raw = await RawSocket.connect(server.url, alice)
    try:
        for topic, private in (("realtime:pub", False), (f"realtime:job:{job['id']}", True)):
            reply = await raw.request(topic, "phx_join", {"config": {"private": private}})
            assert reply["payload"]["status"] == "ok", reply
        base = f"{server.url}/realtime/v1/api/broadcast"
        bob = {"Authorization": f"Bearer {jwt_for(server.config_dir, 'bob')}"}
        owner = {"apikey": alice}
        messages = [
            {"topic": f"job:{job['id']}", "event": "from-bob", "payload": {}, "private": True},
            {"topic": f"job:{job['id']}", "event": "public-same-name", "payload": {}},
            {"topic": "pub", "event": "hello", "payload": {"n": 1}, "id": "m-1"},
        ]
        assert httpx.post(base, json={"messages": messages}, headers=bob).status_code == 202
        private = [{**messages[0], "event": "from-alice"}]
        assert httpx.post(base, json={"messages": private}, headers=owner).status_code == 202
        frames = [await raw.recv_until(lambda f: f["event"] == "broadcast") for _ in range(2)]
        assert [(f["topic"], f["payload"]["event"]) for f in frames] == [
            ("realtime:pub", "hello"),
            (f"realtime:job:{job['id']}", "from-alice"),
        ]
        assert frames[0]["payload"] == {
            "event": "hello",
            "payload": {"n": 1},
            "type": "broadcast",
            "meta": {"id": "m-1"},
        }
    finally:
        await raw.close()
