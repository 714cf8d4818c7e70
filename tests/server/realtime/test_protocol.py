"""Protocol errors, tokens, leave and idle: each gets the documented answer, others keep going."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt
import pytest
import websockets
from realtime import AsyncRealtimeClient

from tests.conftest import ServerProcess
from tests.server.realtime.conftest import WAIT, RawSocket, jwt_for, submit, subscribe, ws_url

JOBS = [{"event": "*", "schema": "public", "table": "jobs"}]


def reason(frame: dict[str, Any]) -> str:
    assert frame["event"] == "phx_reply", frame
    assert frame["payload"]["status"] == "error", frame
    text: str = frame["payload"]["response"]["reason"]
    return text


async def test_bad_frames_get_errors_and_everyone_else_is_served(server: ServerProcess) -> None:
    watcher = AsyncRealtimeClient(ws_url(server.url), server.token)
    raw = await RawSocket.connect(server.url, server.token)
    try:
        sink = await subscribe(watcher, "watcher", [{"event": "*"}])
        before = submit(server.url, server.token, steps=1, step_seconds=0)["id"]

        for text, expected in [
            ("not json", "MalformedMessage: not valid JSON"),
            ('[null,"1","realtime:x","phx_join",{}]', "MalformedMessage: expected a JSON object"),
            ('{"topic": 5, "event": "phx_join", "payload": {}, "ref": "9"}', "MalformedMessage"),
            (
                '{"topic": "realtime:x", "event": "phx_join", "payload": [], "ref": "9"}',
                "Malformed",
            ),
        ]:
            await raw.ws.send(text)
            assert reason(await raw.recv()).startswith(expected)
        await raw.ws.send(b"\x00\x01binary")
        assert reason(await raw.recv()).startswith("MalformedMessage: binary frame")

        assert reason(await raw.join("jobs", JOBS)) == "unmatched topic"
        assert reason(await raw.join("realtime:", JOBS)).startswith("TopicNameRequired")
        leave = await raw.request("realtime:never-joined", "phx_leave", {})
        assert reason(leave) == "unmatched topic"
        config = {"private": True, "postgres_changes": JOBS}
        denied = await raw.request("realtime:p", "phx_join", {"config": config})
        assert reason(denied).startswith("Unauthorized: ")

        bad_filters = {
            "nope=eq.1": "invalid column for filter nope",
            "status=fts.run": "unsupported operator",
            "progress=like.1*": "operator like is not supported on int4 column progress",
            "progress=gt.abc": 'invalid input syntax for type integer: "abc"',
            "created_at=gte.yesterday": "invalid input syntax for type timestamp with time zone",
            "id=eq.not-a-uuid": "invalid input syntax for type uuid",
            "status=in.(" + ",".join(["x"] * 101) + ")": "too many values for `in` filter",
            "status=in.pending": "parenthesised list",
            "status": "expected column=operator.value",
        }
        for text, expected in bad_filters.items():
            answer = reason(await raw.join("realtime:f", [{**JOBS[0], "filter": text}]))
            assert answer.startswith("InvalidFilter: Error parsing `filter` params: "), answer
            assert expected in answer, answer
        for binding in ({"event": "*", "schema": "auth", "table": "users"},
                        {"event": "*", "schema": "public", "table": "secrets"}):  # fmt: skip
            assert reason(await raw.join("realtime:t", [binding])).startswith("Unable to subscribe")

        secret = (server.config_dir / "jwt-secret").read_text().strip()
        expired = jwt.encode({"sub": "u", "role": "authenticated", "exp": 1}, secret, "HS256")
        forged = jwt.encode(
            {"sub": "u", "role": "service_role", "exp": 2**40}, "not-the-secret" * 4, "HS256"
        )
        answer = reason(await raw.join("realtime:e", JOBS, access_token=expired))
        assert answer.startswith("InvalidJWTToken: Token has expired ") and "seconds ago" in answer
        assert reason(await raw.join("realtime:e", JOBS, access_token=forged)).startswith(
            "InvalidJWTToken: Invalid token"
        )

        # The same socket still works, and so does the other client.
        assert (await raw.request("phoenix", "heartbeat", {}))["payload"] == {
            "status": "ok",
            "response": {},
        }
        joined = await raw.join("realtime:ok", JOBS)
        assert joined["payload"]["status"] == "ok"
        after = submit(server.url, server.token, steps=1, step_seconds=0)["id"]
        change = await raw.recv_until(lambda f: f["event"] == "postgres_changes")
        assert change["payload"]["data"]["record"]["id"] == after
        await sink.wait(lambda: {before, after} <= {r["id"] for r in sink.records()})
    finally:
        await raw.close()
        await watcher.close()


async def test_connect_time_rejections(server: ServerProcess) -> None:
    base = ws_url(server.url) + "/websocket"
    for query, status in [
        ("apikey=wrong&vsn=1.0.0", 401),
        ("vsn=1.0.0", 401),
        (f"apikey={server.token}&vsn=3.0.0", 400),
        (f"apikey={server.token}&vsn=2.1.0", 400),  # Phoenix's `~> 2.0.0`: 2.0.x only
        (f"apikey={server.token}&vsn=banana", 400),
    ]:
        with pytest.raises(websockets.InvalidStatus) as caught:
            await websockets.connect(f"{base}?{query}", open_timeout=WAIT)
        assert caught.value.response.status_code == status
        error = json.loads(caught.value.response.body or b"{}")["error"]
        if status == 400:  # a reason the client can show
            assert "unsupported vsn" in error and "1.0.0 and 2.0.0" in error, error
    # A refused upgrade is an answer, not an error: nothing logged per attempt.
    assert "without completing handshake" not in server.log_path.read_text()
    # Also at the path the Realtime server itself uses behind Supabase's gateway.
    socket = await websockets.connect(
        f"{server.url.replace('http', 'ws')}/socket/websocket?apikey={server.token}&vsn=1.0.0"
    )
    await socket.close()


async def test_official_client_sees_a_bad_filter_as_channel_error(server: ServerProcess) -> None:
    client = AsyncRealtimeClient(ws_url(server.url), server.token)
    try:
        sink = await subscribe(
            client, "bad", [{"event": "*", "filter": "progress=gt.lots"}], expect="CHANNEL_ERROR"
        )
        assert "InvalidFilter" in (sink.states[0][1] or "")
    finally:
        await client.close()


async def test_oversized_inbound_frame_closes_only_that_socket(server: ServerProcess) -> None:
    other = await RawSocket.connect(server.url, server.token)
    big = await RawSocket.connect(server.url, server.token)
    try:
        await big.ws.send("x" * 6_000_000)
        with pytest.raises(websockets.ConnectionClosed) as caught:
            await big.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
        assert (await other.request("phoenix", "heartbeat", {}))["payload"]["status"] == "ok"
    finally:
        await other.close()
        await big.close()


async def test_expired_token_closes_the_channel(server: ServerProcess) -> None:
    short = jwt_for(server.config_dir, "erin", ttl=2)
    client = AsyncRealtimeClient(ws_url(server.url), short)
    raw = await RawSocket.connect(server.url, short)
    try:
        sink = await subscribe(client, "short", [{"event": "*"}])
        joined = await raw.join("realtime:short", JOBS)
        assert joined["payload"]["status"] == "ok"
        system = await raw.recv_until(
            lambda f: f["event"] == "system" and f["payload"]["status"] == "error"
        )
        assert system["ref"] is None
        assert system["payload"]["extension"] == "system"
        assert system["payload"]["channel"] == "short"
        assert system["payload"]["message"].startswith("Token has expired ")
        closed = await raw.recv()
        assert closed == {
            "topic": "realtime:short",
            "event": "phx_close",
            "payload": {},
            "ref": joined["ref"],
        }
        await sink.wait(lambda: any(s == "CLOSED" for s, _ in sink.states))
        assert [s for s, _ in sink.states] == ["SUBSCRIBED", "CHANNEL_ERROR", "CLOSED"]
        assert "Token has expired" in (sink.states[1][1] or "")
    finally:
        await raw.close()
        await client.close()


async def test_access_token_renews_and_a_bad_one_shuts_the_channel(server: ServerProcess) -> None:
    short = jwt_for(server.config_dir, "fay", ttl=2)
    client = AsyncRealtimeClient(ws_url(server.url), short)
    raw = await RawSocket.connect(server.url, short)
    try:
        sink = await subscribe(client, "renewed", [{"event": "*"}])
        await client.set_auth(jwt_for(server.config_dir, "fay", ttl=3600))
        await raw.join("realtime:keep", JOBS)
        await raw.join("realtime:doomed", JOBS)
        await raw.send(
            "realtime:keep", "access_token", {"access_token": jwt_for(server.config_dir, "fay")}
        )
        await raw.send("realtime:doomed", "access_token", {"access_token": "bad.token.here"})
        shut = await raw.recv_until(
            lambda f: f["event"] == "system" and f["payload"]["status"] == "error"
        )
        assert shut["topic"] == "realtime:doomed" and shut["payload"]["message"] == "Invalid token"
        assert (await raw.recv())["event"] == "phx_close"
        await asyncio.sleep(2.5)  # past the first token's expiry
        job = submit(server.url, jwt_for(server.config_dir, "fay"), steps=0, step_seconds=0)["id"]
        await sink.wait(lambda: any(r["id"] == job for r in sink.records()))
        assert [s for s, _ in sink.states] == ["SUBSCRIBED"]
        change = await raw.recv_until(lambda f: f["event"] == "postgres_changes")
        assert change["topic"] == "realtime:keep"
        heartbeat = await raw.request("phoenix", "heartbeat", {})  # nothing else came for doomed
        assert heartbeat["payload"]["status"] == "ok"
    finally:
        await raw.close()
        await client.close()


async def test_leave_and_silent_rejoin(server: ServerProcess) -> None:
    raw = await RawSocket.connect(server.url, server.token)
    try:
        first = await raw.join("realtime:a", JOBS)
        await raw.recv_until(lambda f: f["event"] == "system")
        again = await raw.join("realtime:a", JOBS)  # replaces the first join, no phx_close
        assert again["payload"] == first["payload"]
        await raw.join("realtime:b", JOBS)
        left = await raw.request("realtime:b", "phx_leave", {})
        assert left["payload"] == {"status": "ok", "response": {}}
        closed = await raw.recv_until(lambda f: f["event"] == "phx_close")
        assert closed["topic"] == "realtime:b"
        job = submit(server.url, server.token, steps=0, step_seconds=0)["id"]
        frames = []
        while len([f for f in frames if f["event"] == "postgres_changes"]) < 3:
            frames.append(await raw.recv())
        changes = [f for f in frames if f["event"] == "postgres_changes"]
        assert {f["topic"] for f in changes} == {"realtime:a"}  # once per change, only on a
        assert [f["payload"]["data"]["type"] for f in changes] == ["INSERT", "UPDATE", "UPDATE"]
        assert all(f["payload"]["data"]["record"]["id"] == job for f in changes)
        assert not [f for f in frames if f["event"] == "phx_close"]
    finally:
        await raw.close()


async def test_idle_sockets_are_closed(make_server: Any) -> None:
    server = make_server(env={"JOBCTL_REALTIME_IDLE_TIMEOUT": "1"})
    silent = await RawSocket.connect(server.url, server.token)
    chatty = await RawSocket.connect(server.url, server.token)
    try:
        for _ in range(8):  # 2.4 s of heartbeats keep a socket open
            await chatty.request("phoenix", "heartbeat", {})
            await asyncio.sleep(0.3)
        with pytest.raises(websockets.ConnectionClosed) as caught:
            await silent.recv(timeout=5)
        assert caught.value.rcvd is not None
        assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (1000, "idle timeout")
        assert (await chatty.request("phoenix", "heartbeat", {}))["payload"]["status"] == "ok"
    finally:
        await silent.close()
        await chatty.close()
