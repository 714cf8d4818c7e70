"""Helpers for the Realtime tests: tokens, the official client, a raw Phoenix V1 socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from jobctl.server.auth import Authenticator

WAIT = 20.0  # the bound on every wait in these tests


def jwt_for(
    config_dir: Path, sub: str | None, role: str = "authenticated", ttl: float = 3600
) -> str:
    secret = (config_dir / "jwt-secret").read_text().strip()
    return Authenticator("unused", secret).make_jwt(sub, role, ttl)


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/realtime/v1"


@dataclass
class Sink:
    """What one official-client channel received, plus its subscribe states."""

    events: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, str | None]] = field(default_factory=list)
    system: list[Any] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_change(self, payload: dict[str, Any]) -> None:
        self.events.append(payload)
        self.changed.set()

    def on_state(self, state: RealtimeSubscribeStates, error: Exception | None) -> None:
        self.states.append((state.value, None if error is None else str(error)))
        self.changed.set()

    def records(self, table: str = "jobs") -> list[dict[str, Any]]:
        return [e["data"]["record"] for e in self.events if e["data"]["table"] == table]

    async def wait(self, predicate: Callable[[], Any], timeout: float = WAIT) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


async def subscribe(
    client: AsyncRealtimeClient,
    topic: str,
    bindings: list[dict[str, Any]],
    *,
    expect: str = "SUBSCRIBED",
) -> Sink:
    """Join `topic` with postgres_changes bindings and wait for the first subscribe state."""
    sink = Sink()
    channel = client.channel(topic)
    for b in bindings:
        channel.on_postgres_changes(
            b.get("event", "*"),
            callback=sink.on_change,
            table=b.get("table", "jobs"),
            filter=b.get("filter"),
        )
    channel.on_system(sink.system.append)
    await channel.subscribe(sink.on_state)
    await sink.wait(lambda: sink.states)
    assert sink.states[0][0] == expect, sink.states
    return sink


async def subscribe_table(
    client: AsyncRealtimeClient, topic: str, schema: str, table: str, event: str = "*",
    filter: str | None = None,
) -> Sink:  # fmt: skip
    """Join `topic` with one postgres_changes binding on `schema.table`; wait for SUBSCRIBED."""
    sink = Sink()
    channel = client.channel(topic)
    channel.on_postgres_changes(
        event, callback=sink.on_change, table=table, schema=schema, filter=filter
    )
    await channel.subscribe(sink.on_state)
    await sink.wait(lambda: sink.states)
    assert sink.states[0][0] == "SUBSCRIBED", sink.states
    return sink


def submit(url: str, token: str, job_type: str = "demo", **job_input: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/api/jobs",
        headers={"Authorization": f"Bearer {token}"},
        json={"type": job_type, "input": job_input},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def asubmit(url: str, token: str, job_type: str = "demo", **job_input: Any) -> dict[str, Any]:
    """submit() without blocking the event loop, for tests whose clients must keep reading."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{url}/api/jobs",
            headers={"Authorization": f"Bearer {token}"},
            json={"type": job_type, "input": job_input},
        )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


class RawSocket:
    """A bare Phoenix V1 client over `websockets`, for frames the official client never sends."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.ref = 0

    @classmethod
    async def connect(cls, url: str, apikey: str, **kwargs: Any) -> RawSocket:
        ws = await websockets.connect(
            f"{ws_url(url)}/websocket?apikey={apikey}&vsn=1.0.0", open_timeout=WAIT, **kwargs
        )
        return cls(ws)

    async def send(self, topic: str, event: str, payload: Any, ref: str | None = "auto") -> str:
        if ref == "auto":
            self.ref += 1
            ref = str(self.ref)
        msg = {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": ref}
        await self.ws.send(json.dumps(msg))
        return ref or ""

    async def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: dict[str, Any] = json.loads(text)
        assert set(frame) == {"topic", "event", "payload", "ref"}, frame
        return frame

    async def recv_until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            while True:
                frame = await self.recv()
                if predicate(frame):
                    return frame

        return await asyncio.wait_for(loop(), WAIT)

    async def request(self, topic: str, event: str, payload: Any) -> dict[str, Any]:
        """Send and return the phx_reply to it."""
        ref = await self.send(topic, event, payload)
        return await self.recv_until(lambda f: f["event"] == "phx_reply" and f["ref"] == ref)

    async def join(
        self, topic: str, bindings: list[dict[str, Any]], **extra: Any
    ) -> dict[str, Any]:
        config = {
            "broadcast": {"ack": False, "self": False},
            "presence": {"key": "", "enabled": False},
            "private": False,
            "postgres_changes": bindings,
        }
        return await self.request(topic, "phx_join", {"config": config, **extra})

    async def close(self) -> None:
        await self.ws.close()
