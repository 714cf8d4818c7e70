"""Presence per topic, as Phoenix.Presence keeps it: keys, each with a list of metas.

A channel tracks at most one meta under its presence key (`config.presence.key`, or a random
one). Every change goes to the topic's channels as `presence_diff`
`{"joins": {key: {"metas": [...]}}, "leaves": {...}}`; a channel that joins with presence
enabled first gets `presence_state` `{key: {"metas": [...]}}`. Each meta carries its `phx_ref`
(and `phx_ref_prev` when it replaced an earlier one), which realtime-js uses to tell them apart.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

Meta = dict[str, Any]
Diff = dict[str, dict[str, dict[str, list[Meta]]]]


def new_ref() -> str:
    return secrets.token_urlsafe(12)


def random_key() -> str:
    """The presence key of a channel that gave none (Supabase: UUID.uuid1())."""
    return str(uuid.uuid1())


class TopicPresence:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Meta]] = {}  # key -> phx_ref -> meta

    def __bool__(self) -> bool:
        return bool(self.entries)

    def state(self) -> dict[str, dict[str, list[Meta]]]:
        return {key: {"metas": list(refs.values())} for key, refs in self.entries.items()}

    def track(self, key: str, old_ref: str | None, payload: dict[str, Any]) -> tuple[str, Diff]:
        """Add (or replace) a meta; returns its phx_ref and the diff to send."""
        ref = new_ref()
        meta: Meta = {**payload, "phx_ref": ref}
        leaves: dict[str, dict[str, list[Meta]]] = {}
        if old_ref is not None:
            old = self.entries.get(key, {}).pop(old_ref, None)
            if old is not None:
                meta["phx_ref_prev"] = old_ref
                leaves[key] = {"metas": [old]}
        self.entries.setdefault(key, {})[ref] = meta
        return ref, {"joins": {key: {"metas": [meta]}}, "leaves": leaves}

    def untrack(self, key: str, ref: str) -> Diff | None:
        refs = self.entries.get(key)
        if refs is None or ref not in refs:
            return None
        meta = refs.pop(ref)
        if not refs:
            del self.entries[key]
        return {"joins": {}, "leaves": {key: {"metas": [meta]}}}
