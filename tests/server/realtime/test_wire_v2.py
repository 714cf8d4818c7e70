"""Protocol 2.0.0 byte for byte (supabase/realtime's v2_serializer.ex, realtime-js's serializer.ts),
and hostile frames on either version: answered, never a traceback per frame."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import websockets

from tests.conftest import ServerProcess
from tests.server.realtime.conftest import WAIT, jwt_for, submit, ws_url


class V2Socket:
    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.ref = 0

    @classmethod
    async def connect(cls, url: str, apikey: str) -> V2Socket:
        address = f"{ws_url(url)}/websocket?apikey={apikey}&vsn=2.0.0"
        # No permessage-deflate: the server then frames fan-out itself (writer.ws_frame); the
        # 1.0.0 tests' sockets negotiate it, and go through uvicorn's own framing.
        return cls(await websockets.connect(address, open_timeout=WAIT, compression=None))

    async def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> str:
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        return ref

    async def recv(self) -> Any:
        frame = await asyncio.wait_for(self.ws.recv(), WAIT)
        return frame if isinstance(frame, bytes) else json.loads(frame)

    async def join(self, topic: str, config: dict[str, Any], **extra: Any) -> tuple[str, Any]:
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send(json.dumps([ref, ref, topic, "phx_join", {"config": config, **extra}]))
        return ref, await self.recv()


def user_broadcast_push(
    join_ref: str, ref: str, topic: str, event: str, body: bytes, is_json: bool
) -> bytes:
    """Kind 3, as realtime-js's serializer encodes a broadcast push."""
    parts = [join_ref.encode(), ref.encode(), topic.encode(), event.encode(), b""]
    header = bytes([3, *(len(p) for p in parts), 1 if is_json else 0])
    return header + b"".join(parts) + body


def parse_user_broadcast(frame: bytes) -> tuple[str, str, Any, bytes, bool]:
    """Kind 4: topic, event, metadata, payload, is_json."""
    kind, topic_n, event_n, meta_n, encoding = struct.unpack("5B", frame[:5])
    assert kind == 4
    at = 5
    topic = frame[at : at + topic_n].decode()
    at += topic_n
    event = frame[at : at + event_n].decode()
    at += event_n
    meta = json.loads(frame[at : at + meta_n]) if meta_n else None
    return topic, event, meta, frame[at + meta_n :], encoding == 1


async def test_v2_frames_are_arrays_with_join_refs(server: ServerProcess) -> None:
    sock = await V2Socket.connect(server.url, server.token)
    try:
        ref = await sock.push("phoenix", "heartbeat", {})
        assert await sock.recv() == [
            None,
            ref,
            "phoenix",
            "phx_reply",
            {"status": "ok", "response": {}},
        ]
        binding = {"event": "*", "schema": "public", "table": "jobs"}
        ref, reply = await sock.join("realtime:v2", {"postgres_changes": [binding]})
        [bound] = reply[4]["response"]["postgres_changes"]
        assert reply[:4] == [ref, ref, "realtime:v2", "phx_reply"]
        assert reply[4]["status"] == "ok" and bound == {**binding, "id": bound["id"]}
        system = await sock.recv()
        assert system == [ref, None, "realtime:v2", "system", {
            "channel": "v2", "extension": "postgres_changes",
            "message": "Subscribed to PostgreSQL", "status": "ok"}]  # fmt: skip
        job = submit(server.url, server.token, steps=0, step_seconds=0)
        change = await sock.recv()
        assert change[:4] == [None, None, "realtime:v2", "postgres_changes"]
        assert change[4]["ids"] == [bound["id"]]
        assert change[4]["data"]["record"]["id"] == job["id"]
        leave = await sock.push("realtime:v2", "phx_leave", {}, join_ref=ref)
        frames = []
        while len(frames) < 2:
            frame = await sock.recv()
            if frame[3] in ("phx_reply", "phx_close"):
                frames.append(frame)
        assert frames == [
            [ref, leave, "realtime:v2", "phx_reply", {"status": "ok", "response": {}}],
            [ref, ref, "realtime:v2", "phx_close", {}],
        ]
    finally:
        await sock.ws.close()


async def test_binary_broadcast_and_database_broadcast_frames(server: ServerProcess) -> None:
    alice = jwt_for(server.config_dir, "alice")
    a, b = await V2Socket.connect(server.url, alice), await V2Socket.connect(server.url, alice)
    try:
        for sock in (a, b):
            _, reply = await sock.join("realtime:room", {"broadcast": {"self": False}})
            assert reply[4]["status"] == "ok"
        # A binary push (kind 3) reaches the other socket as kind 4, payload untouched.
        await a.ws.send(
            user_broadcast_push("1", "2", "realtime:room", "blob", b"\x00\xffraw", False)
        )
        frame = await b.recv()
        assert parse_user_broadcast(frame) == ("realtime:room", "blob", None, b"\x00\xffraw", False)
        await a.ws.send(user_broadcast_push("1", "3", "realtime:room", "j", b'{"k": [1]}', True))
        assert parse_user_broadcast(await b.recv())[3:] == (b'{"k": [1]}', True)
        # A text broadcast push is relayed as a JSON array frame with the payload as sent.
        await a.push(
            "realtime:room", "broadcast", {"type": "broadcast", "event": "t", "payload": {}}
        )
        assert await b.recv() == [None, None, "realtime:room", "broadcast",
                                  {"type": "broadcast", "event": "t", "payload": {}}]  # fmt: skip

        # Broadcast from the database: kind 4 with metadata {"id"}, on the private user topic.
        _, reply = await a.join("realtime:jobs:alice", {"private": True})
        assert reply[4]["status"] == "ok"
        job = submit(server.url, alice, steps=0, step_seconds=0)
        topic, event, meta, body, is_json = parse_user_broadcast(await a.recv())
        payload = json.loads(body)
        assert (topic, event, is_json) == ("realtime:jobs:alice", "INSERT", True)
        assert meta == {"id": payload["id"]} and payload["record"]["id"] == job["id"]
        assert payload["old_record"] is None and payload["operation"] == "INSERT"
        assert (payload["schema"], payload["table"]) == ("public", "jobs")
    finally:
        await a.ws.close()
        await b.ws.close()


async def test_hostile_frames_are_refused_without_a_traceback(server: ServerProcess) -> None:
    """Issue 10: deep JSON or a lone surrogate in a join logged a full traceback per frame."""
    url = f"{ws_url(server.url)}/websocket?apikey={server.token}"
    deep = "[" * 5000 + "]" * 5000
    v1 = await websockets.connect(url + "&vsn=1.0.0", open_timeout=WAIT)
    v2 = await V2Socket.connect(server.url, server.token)
    try:
        for _ in range(20):
            await v1.send(deep)
            await v1.send(
                '{"topic":"realtime:x","event":"phx_join","ref":"1","payload":'
                '{"config":{"postgres_changes":[{"event":"*","filter":"status=eq.\\ud800"}]}}}'
            )
            await v1.send('{"topic":"realtime:\\udfff","event":"phx_join","ref":"2","payload":{}}')
            await v2.ws.send(deep)
            await v2.ws.send(b"\x03\xff\xff")  # a kind 3 header that lies about its lengths
            await v2.ws.send(b"\x09")
        reasons = []
        for _ in range(60):
            reasons.append(json.loads(await asyncio.wait_for(v1.recv(), WAIT))["payload"])
        for _ in range(60):
            reasons.append((await v2.recv())[4])
        texts = {r["response"]["reason"].split(" (")[0] for r in reasons}
        assert all(r["status"] == "error" for r in reasons)
        assert texts == {
            "MalformedMessage: JSON nested deeper than 64 levels",
            "MalformedMessage: a string holds a lone UTF-16 surrogate",
            "MalformedMessage: binary frame shorter than its header says",
            "MalformedMessage: binary frame of kind 9",
        }, texts
        # Still serving: a heartbeat is answered on both.
        await v1.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"h"}')
        assert json.loads(await asyncio.wait_for(v1.recv(), WAIT))["ref"] == "h"
    finally:
        await v1.close()
        await v2.ws.close()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-2000:]


def test_server_framing_matches_websockets_own() -> None:
    from websockets.frames import OP_BINARY, OP_TEXT, Frame

    from jobctl.server.realtime.writer import ws_frame

    for size in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte: the length is in bytes
        assert ws_frame(text) == Frame(OP_TEXT, text.encode()).serialize(mask=False)
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        assert ws_frame(data) == Frame(OP_BINARY, data).serialize(mask=False)
