"""The hub: hears every committed change on the store's bus and hands it to each connection.

It runs as a synchronous bus listener, in the publishing task, so changes are handed out
exactly in commit order and never queue up in front of the hub. The work per change is small:
the change's `data` is encoded once (lazily, only if some channel wants it) and every connection
only appends finished frames to its own bounded outbox; the sending happens in each connection's
writer task, so a slow subscriber holds up nobody else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobctl.server.auth import Authenticator
from jobctl.server.changes import ChangeBus
from jobctl.server.realtime import protocol
from jobctl.server.realtime.tables import (
    TABLES,
    RowView,
    Table,
    old_record_of,
    to_wire,
    view_of,
)
from jobctl.server.records import Change

if TYPE_CHECKING:
    from jobctl.server.realtime.connection import Connection

log = logging.getLogger("jobctl.server.realtime")


@dataclass(frozen=True)
class RealtimeSettings:
    idle_timeout: float = 60.0  # Phoenix closes a socket that sent nothing for this long
    max_channels: int = 100  # per connection, as on every Supabase plan
    max_queue_frames: int = 10_000  # per connection, before it counts as too slow
    max_queue_bytes: int = 32 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RealtimeSettings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            idle_timeout=float(env.get("JOBCTL_REALTIME_IDLE_TIMEOUT", defaults.idle_timeout)),
            max_channels=int(env.get("JOBCTL_REALTIME_MAX_CHANNELS", defaults.max_channels)),
            max_queue_frames=int(
                env.get("JOBCTL_REALTIME_QUEUE_FRAMES", defaults.max_queue_frames)
            ),
            max_queue_bytes=int(env.get("JOBCTL_REALTIME_QUEUE_BYTES", defaults.max_queue_bytes)),
        )


class PreparedChange:
    """One change, with what every channel shares computed at most once."""

    __slots__ = ("_data", "_view", "change", "kind", "table")

    def __init__(self, change: Change, table: Table) -> None:
        self.change = change
        self.table = table
        self.kind = change.type
        self._view: RowView | None = None
        self._data: str | None = None

    @property
    def view(self) -> RowView:
        if self._view is None:
            self._view = view_of(self.change, self.table)
        return self._view

    @property
    def data_json(self) -> str:
        if self._data is None:
            change, table = self.change, self.table
            record = None
            if self.kind != "DELETE" and change.record is not None:
                record = to_wire(table, change.record)
            self._data = protocol.change_data(
                table=table.name,
                kind=self.kind,
                commit_us=change.commit_us,
                columns=table.columns_json(),
                record=record,
                old_record=None if self.kind == "INSERT" else old_record_of(change, table),
            )
        return self._data


class Hub:
    def __init__(self, bus: ChangeBus, auth: Authenticator, settings: RealtimeSettings) -> None:
        self.auth = auth
        self.settings = settings
        self.connections: set[Connection] = set()
        self.delivered = 0  # frames queued since start (a counter for operators and tests)
        bus.add_listener(self.publish)

    def publish(self, change: Change) -> None:
        """Bus listener: must never raise into the store that published."""
        if not self.connections:
            return
        table = TABLES.get(change.table)
        if table is None:
            return
        prepared = PreparedChange(change, table)
        for connection in tuple(self.connections):
            try:
                self.delivered += connection.deliver(prepared)
            except Exception:
                log.exception("realtime: delivering a change failed; closing that connection")
                connection.abort(1011, "internal error")

    def close_connections(self, code: int, reason: str, user_id: str | None = None) -> int:
        """Close sockets from the server side (all, or one user's); they will reconnect."""
        closing = [c for c in self.connections if user_id is None or c.principal.user_id == user_id]
        for connection in closing:
            connection.abort(code, reason)
        return len(closing)
