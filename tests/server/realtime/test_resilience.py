"""Big rows, slow subscribers, server-side closes and restarts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from realtime import AsyncRealtimeClient

from tests.conftest import ServerProcess
from tests.server.realtime.conftest import (
    WAIT,
    RawSocket,
    asubmit,
    jwt_for,
    submit,
    subscribe,
    ws_url,
)

MIB = 1024 * 1024
JOBS = [{"event": "*", "schema": "public", "table": "jobs"}]
EVERYTHING = [{"event": "*", "schema": "public"}]  # every table: jobs and job_logs


async def test_frames_stay_under_1_mib_with_a_huge_output(make_server: Any) -> None:
    server = make_server("--functions", "realtime_jobs")
    client = AsyncRealtimeClient(ws_url(server.url), server.token)
    # websockets' default max_size is the same 1 MiB that realtime-py lives with.
    raw = await RawSocket.connect(server.url, server.token, max_size=MIB)
    try:
        sink = await subscribe(client, "big", [{"event": "*"}])
        assert (await raw.join("realtime:big", EVERYTHING))["payload"]["status"] == "ok"
        job = submit(server.url, server.token, "big_output", bytes=3 * MIB, log_bytes=2 * MIB)
        frames: list[dict[str, Any]] = []
        while not any(
            f["payload"]["data"].get("record", {}).get("status") == "completed" for f in frames
        ):
            text = await asyncio.wait_for(raw.ws.recv(), WAIT)
            assert len(text.encode()) <= MIB
            frame = json.loads(text)
            if frame["event"] == "postgres_changes":
                frames.append(frame)
        done = frames[-1]["payload"]["data"]
        assert done["errors"] == ["Error 413: Payload Too Large"]
        assert done["record"]["id"] == job["id"] and "output" not in done["record"]
        [log_line] = [
            f["payload"]["data"] for f in frames if f["payload"]["data"]["table"] == "job_logs"
        ]
        assert log_line["errors"] == ["Error 413: Payload Too Large"]
        assert "message" not in log_line["record"] and log_line["record"]["seq"] == 1
        small = [f["payload"]["data"] for f in frames[:2]]  # INSERT and claim: small rows
        assert [d["errors"] for d in small] == [None, None]
        # The official client got the truncated row too, and is still connected and listening.
        await sink.wait(lambda: any(r["status"] == "completed" for r in sink.records()))
        after = submit(server.url, server.token, steps=0, step_seconds=0)["id"]
        await sink.wait(lambda: any(r["id"] == after for r in sink.records()))
    finally:
        await raw.close()
        await client.close()


async def test_a_slow_subscriber_is_dropped_without_stalling_others(make_server: Any) -> None:
    # A long close grace: this reader takes its close frame late, once the others are done.
    server = make_server(
        env={"JOBCTL_REALTIME_QUEUE_BYTES": str(2 * MIB), "JOBCTL_REALTIME_CLOSE_GRACE": "120"}
    )
    fast = AsyncRealtimeClient(ws_url(server.url), server.token)
    # A reader with a tiny receive buffer that stops reading: its outbox on the server fills.
    parts = urlsplit(server.url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    slow = RawSocket(
        await websockets.connect(
            f"{ws_url(server.url)}/websocket?apikey={server.token}&vsn=1.0.0",
            sock=sock,
            max_queue=1,
            max_size=MIB,
            open_timeout=WAIT,
        )
    )
    try:
        sink = await subscribe(fast, "fast", JOBS)
        assert (await slow.join("realtime:slow", JOBS))["payload"]["status"] == "ok"
        await slow.recv()  # "Subscribed to PostgreSQL"; from here on the slow client reads nothing
        pad = base64.b64encode(os.urandom(300_000)).decode()  # ~400 KB frames, incompressible
        # Submitted without blocking this loop: the fast client must keep reading meanwhile, or
        # it too would fill its outbox and be dropped.
        ids = []
        for _ in range(12):
            job = await asubmit(server.url, server.token, steps=1, step_seconds=0, pad=pad)
            ids.append(job["id"])
        await sink.wait(lambda: sum(r["status"] == "completed" for r in sink.records()) == 12)
        records = sink.records()
        order = [(r["id"], r["status"], r["progress"]) for r in records]
        assert len(order) == 12 * 4 and {i for i, _, _ in order} == set(ids)
        received = []
        with pytest.raises(websockets.ConnectionClosed) as caught:
            while True:
                frame = await slow.recv()
                record = frame["payload"]["data"]["record"]
                received.append((record["id"], record["status"], record["progress"]))
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1013
        # What the slow client got is the start of the stream, in order, with no gap.
        assert 0 < len(received) < len(order)
        assert received == order[: len(received)]
    finally:
        await slow.close()
        await fast.close()


async def disconnect(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/realtime/v1/api/disconnect",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


async def test_server_side_close_and_restart_the_client_reconnects(server: ServerProcess) -> None:
    client = AsyncRealtimeClient(ws_url(server.url), server.token, initial_backoff=0.5)
    try:
        sink = await subscribe(client, "mine", JOBS)
        user = jwt_for(server.config_dir, "someone")
        assert (await disconnect(server, user)).status_code == 403
        response = await disconnect(server, server.token)
        assert response.json() == {"closed": 1}
        await sink.wait(lambda: [s for s, _ in sink.states].count("SUBSCRIBED") >= 2)
        first = submit(server.url, server.token, steps=1, step_seconds=0)["id"]
        await sink.wait(
            lambda: any(r["id"] == first and r["status"] == "completed" for r in sink.records())
        )

        server.stop()
        server.start()
        await sink.wait(lambda: [s for s, _ in sink.states].count("SUBSCRIBED") >= 3, timeout=40)
        second = submit(server.url, server.token, steps=1, step_seconds=0)["id"]
        await sink.wait(
            lambda: any(r["id"] == second and r["status"] == "completed" for r in sink.records())
        )
        assert {s for s, _ in sink.states} <= {"SUBSCRIBED", "CHANNEL_ERROR"}
    finally:
        await client.close()
