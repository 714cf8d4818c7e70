"""The hub: hears every committed change on the store's bus and hands it to the channels that want
it; keeps the topics (for broadcast and presence) and relays what is sent on them.

It runs as a synchronous bus listener, in the publishing task, so changes are handed out
exactly in commit order and never queue up in front of the hub. The work per change is small and
grows with the channels that hear it, not with the sockets: `postgres_changes` channels are found
in the ChangeIndex (index.py), broadcasts by topic; the change's `data` is encoded once (lazily,
only if some channel wants it), each frame once per topic and protocol version, with its
WebSocket framing; each socket's writer appends it to what the Flusher writes at the loop's turn
(writer.py), or queues it in its bounded outbox, so a slow subscriber holds up nobody else.

Broadcast from the database: every change to `jobs` also goes, as a broadcast, to the private
topics `job:<id>` and `jobs:<user_id>` (two dict look-ups per change; nothing is built while
nobody listens there).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobctl.server.auth import Authenticator
from jobctl.server.changes import ChangeBus
from jobctl.server.realtime import protocol
from jobctl.server.realtime.index import ChangeIndex
from jobctl.server.realtime.presence import TopicPresence
from jobctl.server.realtime.rules import JobLookup, job_topic, user_topic
from jobctl.server.realtime.tables import (
    DEFAULT_CATALOG,
    Catalog,
    RowView,
    Table,
    old_record_of,
    to_wire,
    view_of,
)
from jobctl.server.realtime.writer import Flusher, ws_frame
from jobctl.server.records import Change

if TYPE_CHECKING:
    from jobctl.server.realtime.connection import Channel, Connection

log = logging.getLogger("jobctl.server.realtime")
TopicKey = tuple[bool, str]  # (private, name without `realtime:`): the two namespaces of Supabase


@dataclass(frozen=True)
class RealtimeSettings:
    idle_timeout: float = 60.0  # Phoenix closes a socket that sent nothing for this long
    max_channels: int = 100  # per connection, as on every Supabase plan
    max_queue_frames: int = 10_000  # per connection, before it counts as too slow
    max_queue_bytes: int = 1024 * 1024  # per connection (one frame of any size always fits)
    close_grace: float = 5.0  # how long a too-slow socket has to take its 1013 close frame
    max_sockets_per_user: int = 200  # Supabase's free-plan limit of concurrent connections
    max_broadcast_bytes: int = 256 * 1024  # a broadcast payload, as Supabase's free plan

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RealtimeSettings:
        env = os.environ if env is None else env
        d = cls()

        def num(name: str, default: float) -> float:
            return float(env.get(f"JOBCTL_REALTIME_{name}", default))

        return cls(
            idle_timeout=num("IDLE_TIMEOUT", d.idle_timeout),
            max_channels=int(num("MAX_CHANNELS", d.max_channels)),
            max_queue_frames=int(num("QUEUE_FRAMES", d.max_queue_frames)),
            max_queue_bytes=int(num("QUEUE_BYTES", d.max_queue_bytes)),
            close_grace=num("CLOSE_GRACE", d.close_grace),
            max_sockets_per_user=int(num("MAX_SOCKETS_PER_USER", d.max_sockets_per_user)),
            max_broadcast_bytes=int(num("MAX_BROADCAST_BYTES", d.max_broadcast_bytes)),
        )


def _join_order(channel: Channel) -> int:
    return channel.seq


class PreparedChange:
    """One change, with what every channel shares computed at most once."""

    __slots__ = ("_data", "_frames", "_record", "_view", "change", "kind", "table")

    def __init__(self, change: Change, table: Table) -> None:
        self.change = change
        self.table = table
        self.kind = change.type
        self._view: RowView | None = None
        self._data: str | None = None
        self._record: dict[str, Any] | None = None
        self._frames: dict[tuple[protocol.Codec, str, tuple[int, ...]], tuple[str, bytes]] = {}

    def frame(self, codec: protocol.Codec, topic_json: str, ids: list[int]) -> tuple[str, bytes]:
        """The `postgres_changes` frame for a channel, and its wire bytes: made once for every
        channel of the same topic and bindings (browsers of one app join the same topic)."""
        key = (codec, topic_json, tuple(ids))
        made = self._frames.get(key)
        if made is None:
            text = codec.fanout(topic_json, "postgres_changes",
                                protocol.change_payload(ids, self.data_json))  # fmt: skip
            made = self._frames[key] = (text, ws_frame(text))
        return made

    @property
    def view(self) -> RowView:
        if self._view is None:
            self._view = view_of(self.change, self.table)
        return self._view

    @property
    def record(self) -> dict[str, Any] | None:
        if self.kind == "DELETE" or self.change.record is None:
            return None
        if self._record is None:
            self._record = to_wire(self.table, self.change.record)
        return self._record

    @property
    def old_record(self) -> dict[str, Any] | None:
        return None if self.kind == "INSERT" else old_record_of(self.change, self.table)

    @property
    def data_json(self) -> str:
        if self._data is None:
            self._data = protocol.change_data(
                schema=self.table.schema,
                table=self.table.name,
                kind=self.kind,
                commit_us=self.change.commit_us,
                columns=self.table.columns_json(),
                record=self.record,
                old_record=self.old_record,
            )
        return self._data


class Outgoing:
    """One message for a topic's channels, encoded at most once per protocol version."""

    __slots__ = ("_frames", "event", "payload_json", "user")

    def __init__(
        self,
        event: str,
        payload_json: str | None = None,
        user: protocol.UserBroadcast | None = None,
    ) -> None:
        self.event = event
        self.payload_json = payload_json
        self.user = user
        # per protocol version: the frame and its wire bytes, or None (not sent to that version)
        self._frames: dict[protocol.Codec, tuple[protocol.Frame, bytes] | None] = {}

    def frame(self, channel: Channel) -> tuple[protocol.Frame, bytes] | None:
        codec = channel.connection.codec
        try:
            return self._frames[codec]
        except KeyError:
            pass
        made: protocol.Frame | None
        if self.user is not None:
            made = codec.user_broadcast(channel.topic, channel.topic_json, self.user)
        else:
            assert self.payload_json is not None
            made = codec.fanout(channel.topic_json, self.event, self.payload_json)
        encoded = None if made is None else (made, ws_frame(made))
        self._frames[codec] = encoded
        return encoded


class Hub:
    def __init__(
        self,
        bus: ChangeBus,
        auth: Authenticator,
        settings: RealtimeSettings,
        store: JobLookup | None = None,
        catalog: Catalog = DEFAULT_CATALOG,
    ) -> None:
        self.auth = auth
        self.catalog = catalog
        self.settings = settings
        self.store = store
        self.connections: set[Connection] = set()
        self.sockets_per_user: dict[str, int] = {}
        self.topics: dict[TopicKey, set[Channel]] = {}
        self.presence: dict[TopicKey, TopicPresence] = {}
        self.delivered = 0  # frames queued since start (a counter for operators and tests)
        self.index = ChangeIndex()  # postgres_changes channels by table, reader and eq filter
        self.flusher = Flusher()  # one write per socket per turn of the loop
        bus.add_listener(self.publish)

    # sockets and channels ---------------------------------------------------------
    def admit(self, who: str) -> bool:
        """Count a new socket against its user's cap; False (and nothing counted) when full."""
        count = self.sockets_per_user.get(who, 0)
        if count >= self.settings.max_sockets_per_user:
            return False
        self.sockets_per_user[who] = count + 1
        return True

    def release(self, who: str) -> None:
        count = self.sockets_per_user.get(who, 0) - 1
        if count > 0:
            self.sockets_per_user[who] = count
        else:
            self.sockets_per_user.pop(who, None)

    def enter(self, channel: Channel) -> None:
        self.topics.setdefault(channel.key, set()).add(channel)
        self.index.add(channel)

    def refile(self, channel: Channel) -> None:
        """A channel's principal changed (a new access token): file it under its rows again."""
        if channel in self.topics.get(channel.key, ()):
            self.index.add(channel)

    def leave(self, channel: Channel) -> None:
        """A channel stops: off its topic and the index, and its presence (if any) leaves."""
        self.index.remove(channel)
        members = self.topics.get(channel.key)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.topics[channel.key]
        self.untrack(channel)

    # presence ---------------------------------------------------------------------------
    def presence_state(self, key: TopicKey) -> dict[str, Any]:
        presence = self.presence.get(key)
        return presence.state() if presence is not None else {}

    def track(self, channel: Channel, payload: dict[str, Any]) -> None:
        presence = self.presence.setdefault(channel.key, TopicPresence())
        ref, diff = presence.track(channel.presence_key, channel.presence_ref, payload)
        channel.presence_ref = ref
        self._presence_diff(channel.key, diff)

    def untrack(self, channel: Channel) -> None:
        ref, channel.presence_ref = channel.presence_ref, None
        presence = self.presence.get(channel.key)
        if ref is None or presence is None:
            return
        diff = presence.untrack(channel.presence_key, ref)
        if not presence:
            del self.presence[channel.key]
        if diff is not None:
            self._presence_diff(channel.key, diff)

    def _presence_diff(self, key: TopicKey, diff: dict[str, Any]) -> None:
        # Every channel on the topic hears it, the one that tracked included (Phoenix.Presence).
        self.relay(key, Outgoing("presence_diff", protocol.dumps(diff)), self.topics.get(key, ()))

    # broadcast ----------------------------------------------------------------------------
    def broadcast(
        self, key: TopicKey, message: Outgoing, sender: Channel | None = None, to_self: bool = True
    ) -> int:
        members: Iterable[Channel] = self.topics.get(key, ())
        if sender is not None and not to_self:
            members = [c for c in members if c is not sender]
        return self.relay(key, message, members)

    def relay(self, key: TopicKey, message: Outgoing, members: Iterable[Channel]) -> int:
        sent = 0
        for channel in tuple(members):
            encoded = message.frame(channel)
            if encoded is not None and channel.connection.send(*encoded):
                sent += 1
        self.delivered += sent
        return sent

    # changes from the store -----------------------------------------------------------------
    def publish(self, change: Change) -> None:
        """Bus listener: must never raise into the store that published."""
        if not self.connections:
            return
        table = self.catalog.for_change(change)
        if table is None:
            return
        prepared = PreparedChange(change, table)
        try:
            self._deliver_change(prepared)
        except Exception:
            log.exception("realtime: delivering a change failed")
        if change.table == "jobs" and self.topics:  # ours, not a published table
            try:
                self._broadcast_change(prepared)
            except Exception:
                log.exception("realtime: broadcasting a change failed")

    def _deliver_change(self, prepared: PreparedChange) -> None:
        """postgres_changes: only the channels the index finds, in join order (so each socket
        hears its channels in the order it joined them)."""
        candidates = self.index.candidates(
            prepared.table.key, prepared.change.user_id, prepared.view
        )
        if len(candidates) > 1:
            candidates.sort(key=_join_order)
        for channel in candidates:
            try:
                if channel.connection.deliver(prepared, channel):
                    self.delivered += 1
            except Exception:
                log.exception("realtime: delivering a change failed; closing that connection")
                channel.connection.abort(1011, "internal error")

    def _broadcast_change(self, prepared: PreparedChange) -> None:
        keys = [(True, job_topic(prepared.change.job_id))]
        if prepared.change.user_id:
            keys.append((True, user_topic(prepared.change.user_id)))
        wanted = [key for key in keys if key in self.topics]
        if not wanted:
            return
        message = protocol.database_broadcast(
            message_id=str(uuid.uuid4()),
            kind=prepared.kind,
            schema=prepared.table.schema,
            table=prepared.table.name,
            record=prepared.record,
            old_record=prepared.old_record,
        )
        for key in wanted:  # one Outgoing per topic: the topic is part of each frame
            self.broadcast(key, Outgoing("broadcast", user=message))

    def close_connections(self, code: int, reason: str, user_id: str | None = None) -> int:
        """Close sockets from the server side (all, or one user's); they will reconnect."""
        closing = [c for c in self.connections if user_id is None or c.principal.user_id == user_id]
        for connection in closing:
            connection.abort(code, reason)
        return len(closing)
