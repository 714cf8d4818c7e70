"""One Realtime WebSocket: its channels, the messages it sends us, and its bounded outbox.

Everything the socket will receive goes through the outbox, in order: join replies, the
"Subscribed to PostgreSQL" message and changes, so a change committed after a join is never
sent before that join's reply. A client that does not read fast enough is disconnected once its
outbox is full (close code 1013) rather than slowing the hub; realtime-py then reconnects and
rejoins, and the feed re-reads current state over HTTP as it does after every (re)subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.websockets import WebSocket

from jobctl.server.auth import AuthFailed, Principal
from jobctl.server.realtime import protocol
from jobctl.server.realtime.bindings import Binding, BindingError, parse_bindings
from jobctl.server.realtime.hub import Hub, PreparedChange
from jobctl.server.realtime.tables import can_read

log = logging.getLogger("jobctl.server.realtime")
TOO_SLOW = 1013  # "try again later"


@dataclass
class Channel:
    topic: str
    join_ref: str | None
    principal: Principal
    token: str | None
    bindings: list[Binding]
    topic_json: str = ""
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)

    def stop_timer(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None


class Outbox:
    """Frames waiting to be written, bounded in count and bytes."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.frames: deque[str] = deque()
        self.size = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.ready = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    def put(self, text: str) -> bool:
        if self.close_code is not None:
            return False
        if len(self.frames) >= self.max_frames or self.size + len(text) > self.max_bytes:
            self.frames.clear()
            self.size = 0
            self.close(TOO_SLOW, "subscriber too slow: outbox full")
            return False
        self.frames.append(text)
        self.size += len(text)
        self.ready.set()
        return True

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to close the socket once what is queued has been sent."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.ready.set()


class Connection:
    def __init__(self, hub: Hub, websocket: WebSocket, principal: Principal, apikey: str) -> None:
        self.hub = hub
        self.ws = websocket
        self.principal = principal
        self.apikey = apikey
        self.channels: dict[str, Channel] = {}
        settings = hub.settings
        self.outbox = Outbox(settings.max_queue_frames, settings.max_queue_bytes)

    # lifecycle --------------------------------------------------------------
    async def run(self) -> None:
        self.hub.connections.add(self)
        writer = asyncio.create_task(self._write_loop())
        reader = asyncio.create_task(self._read_loop())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            went_idle = not writer.done() and reader.exception() is None and reader.result()
            if went_idle:  # let the writer close politely
                self.outbox.close(1000, "idle timeout")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), 5)
        finally:
            self.hub.connections.discard(self)
            for channel in self.channels.values():
                channel.stop_timer()
            self.channels.clear()
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    def abort(self, code: int, reason: str) -> None:
        self.outbox.frames.clear()
        self.outbox.size = 0
        self.outbox.close(code, reason)

    async def _read_loop(self) -> bool:
        """Returns True when the socket went idle, False when the peer disconnected."""
        idle = self.hub.settings.idle_timeout
        while True:
            try:
                message = await asyncio.wait_for(self.ws.receive(), idle)
            except TimeoutError:
                return True
            if message["type"] == "websocket.disconnect":
                return False
            text = message.get("text")
            if text is None:
                self.send(protocol.error_reply("phoenix", None, "MalformedMessage: binary frame"))
                continue
            try:
                self.handle(text)
            except Exception:
                log.exception("realtime: unexpected error handling a frame")
                self.send(protocol.error_reply("phoenix", None, "InternalError: see server log"))

    async def _write_loop(self) -> None:
        try:
            await self._write_frames()
        except Exception as exc:  # the peer is gone: the reader sees the disconnect too
            log.debug("realtime: send failed: %r", exc)

    async def _write_frames(self) -> None:
        box = self.outbox
        while True:
            await box.ready.wait()
            box.ready.clear()
            while box.frames:
                text = box.frames.popleft()
                box.size -= len(text)
                await self.ws.send({"type": "websocket.send", "text": text})
            if box.close_code is not None:
                await self.ws.send(
                    {"type": "websocket.close", "code": box.close_code, "reason": box.close_reason}
                )
                return

    def send(self, text: str) -> None:
        self.outbox.put(text)

    # delivery (called by the hub, synchronously, in commit order) -----------
    def deliver(self, change: PreparedChange) -> int:
        sent = 0
        for channel in self.channels.values():
            if not can_read(channel.principal, change.change.user_id):
                continue
            ids = [
                b.id for b in channel.bindings if b.matches(change.kind, change.table, change.view)
            ]
            if ids:
                ids = list(dict.fromkeys(ids))
                if not self.outbox.put(
                    protocol.change_frame(channel.topic_json, ids, change.data_json)
                ):
                    return sent
                sent += 1
        return sent

    # inbound frames ---------------------------------------------------------
    def handle(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self.send(protocol.error_reply("phoenix", None, "MalformedMessage: not valid JSON"))
            return
        if not isinstance(message, dict):
            reason = "MalformedMessage: expected a JSON object (this server speaks vsn 1.0.0)"
            self.send(protocol.error_reply("phoenix", None, reason))
            return
        topic, event = message.get("topic"), message.get("event")
        payload, ref = message.get("payload", {}), message.get("ref")
        join_ref = message.get("join_ref")
        if isinstance(ref, int) and not isinstance(ref, bool):
            ref = str(ref)
        problem = None
        if ref is not None and not isinstance(ref, str):
            problem, ref = "`ref` must be a string or null", None
        elif not isinstance(topic, str) or not topic:
            problem = "`topic` must be a non-empty string"
        elif not isinstance(event, str) or not event:
            problem = "`event` must be a non-empty string"
        elif not isinstance(payload, dict):
            problem = "`payload` must be an object"
        if problem is not None:
            where = topic if isinstance(topic, str) and topic else "phoenix"
            self.send(protocol.error_reply(where, ref, f"MalformedMessage: {problem}"))
            return
        assert isinstance(topic, str) and isinstance(event, str) and isinstance(payload, dict)
        if topic == "phoenix":
            if event == "heartbeat":
                self.send(protocol.reply(topic, ref, {}))
            else:
                self.send(protocol.error_reply(topic, ref, "unmatched topic"))
        elif event == "phx_join":
            self.join(topic, ref, join_ref if isinstance(join_ref, str) else ref, payload)
        elif (channel := self.channels.get(topic)) is None:
            self.send(protocol.error_reply(topic, ref, "unmatched topic"))
        else:
            try:
                self.on_channel_event(channel, event, ref, payload)
            except Exception:
                log.exception("realtime: channel %s crashed", topic)
                self.drop(channel)
                self.send(protocol.channel_error(topic, channel.join_ref))

    def on_channel_event(
        self, channel: Channel, event: str, ref: str | None, payload: dict[str, Any]
    ) -> None:
        if event == "phx_leave":
            self.drop(channel)
            self.send(protocol.reply(channel.topic, ref, {}))
            self.send(protocol.close(channel.topic, channel.join_ref))
        elif event == "access_token":
            self.refresh_token(channel, payload.get("access_token"))
        elif event == "presence" or (event == "broadcast" and ref is not None):
            self.send(protocol.reply(channel.topic, ref, {}))
        # Anything else on a joined topic is ignored, as Supabase does.

    # joins and tokens -------------------------------------------------------
    def join(
        self, topic: str, ref: str | None, join_ref: str | None, payload: dict[str, Any]
    ) -> None:
        def refuse(reason: str) -> None:
            self.send(protocol.error_reply(topic, ref, reason))

        if not topic.startswith("realtime:"):
            return refuse("unmatched topic")
        name = topic.removeprefix("realtime:")
        if not name:
            return refuse("TopicNameRequired: You must provide a topic name")
        if len(topic.encode()) > protocol.MAX_TOPIC:
            return refuse(f"TopicNameTooLong: at most {protocol.MAX_TOPIC} bytes")
        config = payload.get("config")
        if isinstance(config, dict) and config.get("private") is True:
            return refuse(
                "Unauthorized: You do not have permissions to read from this Channel topic: " + name
            )
        if topic not in self.channels and len(self.channels) >= self.hub.settings.max_channels:
            return refuse("ChannelRateLimitReached: Too many channels")
        token = payload.get("access_token") or payload.get("user_token")
        if not isinstance(token, str) or token.startswith("sb_"):
            token = self.apikey
        try:
            who = self.hub.auth.authenticate(token)
        except AuthFailed as exc:
            return refuse(f"InvalidJWTToken: {self._auth_message(token, exc)}")
        try:
            bindings = parse_bindings(config)
        except BindingError as exc:
            return refuse(str(exc))
        old = self.channels.pop(topic, None)
        if old is not None:  # a rejoin replaces the subscription silently (no phx_close)
            old.stop_timer()
        channel = Channel(topic, join_ref, who, token, bindings, protocol.dumps(topic))
        self.channels[topic] = channel  # live from here: later commits reach it
        self.send(protocol.reply(topic, ref, {"postgres_changes": [b.echo for b in bindings]}))
        if bindings:
            self.send(protocol.system(topic, "postgres_changes", protocol.SUBSCRIBED))
        self._arm_expiry(channel)
        return None

    def refresh_token(self, channel: Channel, token: Any) -> None:
        """`access_token` push: no reply; a bad token shuts the channel down, as Supabase does."""
        if not isinstance(token, str) or not token or token.startswith("sb_"):
            return
        if token == channel.token:
            return
        try:
            who = self.hub.auth.authenticate(token)
        except AuthFailed as exc:
            self.shut_down(channel, self._auth_message(token, exc))
            return
        channel.principal, channel.token = who, token
        self._arm_expiry(channel)

    def shut_down(self, channel: Channel, message: str) -> None:
        self.drop(channel)
        self.send(protocol.system(channel.topic, "system", message, ok=False))
        self.send(protocol.close(channel.topic, channel.join_ref))

    def drop(self, channel: Channel) -> None:
        channel.stop_timer()
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]

    def _arm_expiry(self, channel: Channel) -> None:
        channel.stop_timer()
        expires_at = channel.principal.expires_at
        if expires_at is None:
            return
        delay = max(0.0, expires_at - time.time()) + 0.001
        channel.expiry = asyncio.get_running_loop().call_later(delay, self._expire, channel)

    def _expire(self, channel: Channel) -> None:
        channel.expiry = None
        if self.channels.get(channel.topic) is channel:
            self.shut_down(channel, protocol.expired_message(channel.principal.expires_at))

    @staticmethod
    def _auth_message(token: str, exc: AuthFailed) -> str:
        if "expired" in str(exc):
            with contextlib.suppress(jwt.PyJWTError, KeyError, TypeError, ValueError):
                claims = jwt.decode(token, options={"verify_signature": False})
                return protocol.expired_message(float(claims["exp"]))
        text = str(exc)
        return text[:1].upper() + text[1:]
