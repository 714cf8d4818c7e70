"""One Realtime WebSocket: its channels and the messages it sends us.

Everything the socket will receive goes through its one SocketWriter (writer.py), in order: join
replies, the "Subscribed to PostgreSQL" message, presence, broadcasts and changes, so a change
committed after a join is never sent before that join's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.websockets import WebSocket

from jobctl.server.auth import AuthFailed, Principal
from jobctl.server.realtime import protocol, rules
from jobctl.server.realtime.bindings import Binding, BindingError, parse_bindings
from jobctl.server.realtime.hub import Hub, Outgoing, PreparedChange, TopicKey
from jobctl.server.realtime.presence import random_key
from jobctl.server.realtime.protocol import Codec, Frame, Inbound, MalformedMessage, UserBroadcast
from jobctl.server.realtime.writer import SocketWriter

log = logging.getLogger("jobctl.server.realtime")
_JOINS = itertools.count()


def flexible_bool(value: Any) -> bool:
    """Supabase's FlexibleBoolean: true/false, or the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.lower() == "true"


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


@dataclass(eq=False)
class Channel:
    connection: Connection
    topic: str
    join_ref: str | None
    principal: Principal
    token: str | None
    bindings: list[Binding]
    private: bool = False
    self_broadcast: bool = False
    ack_broadcast: bool = False
    presence_key: str = ""
    presence_ref: str | None = None  # the meta this channel tracks, if any
    topic_json: str = ""
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)
    seq: int = field(default_factory=lambda: next(_JOINS))  # join order, across sockets

    @property
    def name(self) -> str:
        return self.topic.removeprefix("realtime:")

    @property
    def key(self) -> TopicKey:
        return (self.private, self.name)

    def stop_timer(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None


class Connection:
    def __init__(
        self,
        hub: Hub,
        websocket: WebSocket,
        principal: Principal,
        apikey: str,
        codec: Codec = protocol.V1,
    ) -> None:
        self.hub = hub
        self.ws = websocket
        self.principal = principal
        self.apikey = apikey
        self.codec = codec
        self.channels: dict[str, Channel] = {}
        self.writer = SocketWriter(websocket, hub.settings, hub.flusher)
        self.send = self.writer.send
        self._logged_crash = False

    # lifecycle --------------------------------------------------------------
    async def run(self) -> None:
        self.hub.connections.add(self)
        writer = asyncio.create_task(self.writer.run())
        reader = asyncio.create_task(self._read_loop())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            went_idle = not writer.done() and reader.exception() is None and reader.result()
            if went_idle:  # let the writer close politely
                self.writer.close(1000, "idle timeout")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), 5)
        finally:
            self.hub.connections.discard(self)
            for channel in self.channels.values():
                channel.stop_timer()
                self.hub.leave(channel)
            self.channels.clear()
            self.writer.stop()
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    def abort(self, code: int, reason: str) -> None:
        self.writer.abort(code, reason)

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
            try:
                await self.handle(message.get("text"), message.get("bytes"))
            except Exception:
                self._log_crash("handling a frame")
                self.send(self._error("phoenix", None, "InternalError: see server log"))

    def _log_crash(self, what: str) -> None:
        """A traceback once per socket; after that one line, so no client can flood the log."""
        if not self._logged_crash:
            self._logged_crash = True
            log.exception("realtime: unexpected error %s", what)
        else:
            log.debug("realtime: unexpected error %s (again on this socket)", what)

    # delivery (called by the hub, synchronously, in commit order) -----------
    def deliver(self, change: PreparedChange, channel: Channel) -> bool:
        """One of this socket's channels that the hub's index found for a change; the index
        has already decided it may read the row. True if a frame was queued."""
        ids = [b.id for b in channel.bindings if b.matches(change.kind, change.table, change.view)]
        if not ids:
            return False
        if len(ids) > 1:
            ids = list(dict.fromkeys(ids))
        frame, wire = change.frame(self.codec, channel.topic_json, ids)
        return self.send(frame, wire)

    # inbound frames ---------------------------------------------------------
    def _reply(self, channel: Channel | None, topic: str, ref: str | None, response: Any) -> Frame:
        join_ref = channel.join_ref if channel is not None else None
        return protocol.reply(self.codec, topic, ref, response, True, join_ref)

    def _error(
        self, topic: str, ref: str | None, reason: str, join_ref: str | None = None
    ) -> Frame:
        return protocol.error_reply(self.codec, topic, ref, reason, join_ref)

    async def handle(self, text: str | None, data: bytes | None = None) -> None:
        try:
            message = self.codec.decode(text, data)
        except MalformedMessage as exc:
            self.send(self._error("phoenix", None, f"MalformedMessage: {exc}"))
            return
        topic, event, ref = message.topic, message.event, message.ref
        if topic == "phoenix":
            if event == "heartbeat":
                self.send(self._reply(None, topic, ref, {}))
            else:
                self.send(self._error(topic, ref, "unmatched topic"))
        elif event == "phx_join":
            await self.join(message)
        elif (channel := self.channels.get(topic)) is None:
            self.send(self._error(topic, ref, "unmatched topic", message.join_ref))
        else:
            try:
                await self.on_channel_event(channel, message)
            except Exception:
                self._log_crash(f"in channel {topic[:80]!r}")
                self.drop(channel)
                self.send(protocol.channel_error(self.codec, topic, channel.join_ref))

    async def on_channel_event(self, channel: Channel, message: Inbound) -> None:
        event, ref, payload = message.event, message.ref, message.payload
        if event == "phx_leave":
            self.drop(channel)
            self.send(self._reply(channel, channel.topic, ref, {}))
            self.send(protocol.close(self.codec, channel.topic, channel.join_ref))
        elif event == "broadcast":
            self.on_broadcast(channel, ref, payload)
        elif isinstance(payload, UserBroadcast):
            return  # a binary frame is only ever a broadcast
        elif event == "access_token":
            await self.refresh_token(channel, payload.get("access_token"))
        elif event == "presence":
            self.on_presence(channel, ref, payload)
        # Anything else on a joined topic is ignored, as Supabase does.

    def on_broadcast(
        self, channel: Channel, ref: str | None, payload: dict[str, Any] | UserBroadcast
    ) -> None:
        if isinstance(payload, UserBroadcast):
            size = len(payload.body)
            outgoing = Outgoing("broadcast", user=payload)
        else:
            encoded = protocol.dumps(payload)
            size = len(encoded)
            outgoing = Outgoing("broadcast", payload_json=encoded)
        if size > self.hub.settings.max_broadcast_bytes:
            if channel.ack_broadcast:  # Supabase: {:reply, {:error, :payload_size_exceeded}}
                self.send(protocol.reply(self.codec, channel.topic, ref, "payload_size_exceeded",
                                         False, channel.join_ref))  # fmt: skip
            return
        self.hub.broadcast(channel.key, outgoing, channel, channel.self_broadcast)
        if channel.ack_broadcast:
            self.send(self._reply(channel, channel.topic, ref, {}))

    def on_presence(self, channel: Channel, ref: str | None, payload: dict[str, Any]) -> None:
        kind = payload.get("event")
        if not isinstance(kind, str):
            self.send(self._reply(channel, channel.topic, ref, {}))
            return
        kind = kind.lower()
        if kind == "track":
            meta = payload.get("payload", {})
            if not isinstance(meta, dict):
                reason = "Presence track payload must be a map"
                self.send(self._error(channel.topic, ref, reason, channel.join_ref))
                return
            if len(protocol.dumps(meta)) > self.hub.settings.max_broadcast_bytes:
                self.shut_down(channel, "Track message size exceeded")
                return
            self.hub.track(channel, meta)
        elif kind == "untrack":
            self.hub.untrack(channel)
        else:
            self.send(protocol.reply(self.codec, channel.topic, ref, {}, False, channel.join_ref))
            return
        self.send(self._reply(channel, channel.topic, ref, {}))

    # joins and tokens -------------------------------------------------------
    async def join(self, message: Inbound) -> None:
        topic, ref, payload = message.topic, message.ref, message.payload
        join_ref = message.join_ref if message.join_ref is not None else ref

        def refuse(reason: str) -> None:
            self.send(self._error(topic, ref, reason, join_ref))

        if isinstance(payload, UserBroadcast):
            return refuse("InvalidJoinPayload: a join is a JSON frame")
        if not topic.startswith("realtime:"):
            return refuse("unmatched topic")
        name = topic.removeprefix("realtime:")
        if not name:
            return refuse("TopicNameRequired: You must provide a topic name")
        if len(topic.encode()) > protocol.MAX_TOPIC:
            return refuse(f"TopicNameTooLong: at most {protocol.MAX_TOPIC} bytes")
        raw_config = payload.get("config")
        if raw_config is not None and not isinstance(raw_config, dict):
            return refuse("InvalidJoinPayload: `config` must be an object")
        config: dict[str, Any] = raw_config or {}
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
            bindings = parse_bindings(config, self.hub.catalog)
        except BindingError as exc:
            return refuse(str(exc))
        private = flexible_bool(config.get("private"))
        if private:
            allowed = await self._may_use(who, name)
            if allowed is None:
                return refuse("UnableToConnectToProject: the job store is not answering")
            if not allowed:
                return refuse(rules.denied(name))
        broadcast = _section(config, "broadcast")
        presence = _section(config, "presence")
        key = presence.get("key")
        presence_key = str(key) if key not in (None, "") else random_key()
        old = self.channels.pop(topic, None)
        if old is not None:  # a rejoin replaces the subscription silently (no phx_close)
            old.stop_timer()
            self.hub.leave(old)
        channel = Channel(
            self,
            topic,
            join_ref,
            who,
            token,
            bindings,
            private=private,
            self_broadcast=flexible_bool(broadcast.get("self")),
            ack_broadcast=flexible_bool(broadcast.get("ack")),
            presence_key=presence_key,
            topic_json=protocol.dumps(topic),
        )
        self.channels[topic] = channel  # live from here: later commits reach it
        self.hub.enter(channel)
        self.send(
            self._reply(channel, topic, ref, {"postgres_changes": [b.echo for b in bindings]})
        )
        if bindings:
            self.send(
                protocol.system(
                    self.codec, topic, "postgres_changes", protocol.SUBSCRIBED, join_ref=join_ref
                )
            )
        if flexible_bool(presence.get("enabled")):
            state = self.hub.presence_state(channel.key)
            self.send(self.codec.push(topic, "presence_state", state, None, join_ref))
        self._arm_expiry(channel)
        return None

    async def _may_use(self, who: Principal, name: str) -> bool | None:
        store = self.hub.store
        if store is None:
            return who.is_service
        try:
            return await rules.may_use(store, who, name)
        except Exception:
            log.warning("realtime: authorising %r failed", name[:80], exc_info=True)
            return None

    async def refresh_token(self, channel: Channel, token: Any) -> None:
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
        if channel.private:
            allowed = await self._may_use(who, channel.name)
            if self.channels.get(channel.topic) is not channel:
                return  # left (or rejoined) while we looked
            if allowed is None:
                self.shut_down(channel, "Realtime was unable to connect to the project database")
                return
            if not allowed:
                message = (
                    f"You no longer have permission to read from this Channel topic: {channel.name}"
                )
                self.shut_down(channel, message)
                return
        channel.principal, channel.token = who, token
        self.hub.refile(channel)  # the rows it may read follow the token's user
        self._arm_expiry(channel)

    def shut_down(self, channel: Channel, message: str) -> None:
        self.drop(channel)
        self.send(
            protocol.system(
                self.codec, channel.topic, "system", message, ok=False, join_ref=channel.join_ref
            )
        )
        self.send(protocol.close(self.codec, channel.topic, channel.join_ref))

    def drop(self, channel: Channel) -> None:
        channel.stop_timer()
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]
            self.hub.leave(channel)

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
