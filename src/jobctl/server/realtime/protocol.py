"""Phoenix V1 frames as the Supabase Realtime server writes them (reference/realtime-protocol.md).

Every frame is a JSON object with exactly `topic`, `event`, `payload` and `ref` (never
`join_ref`); `ref` echoes the request in replies and is null in pushes. realtime-py drops a frame
that lacks `ref` silently, so every builder here sets it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

MAX_FRAME_BYTES = 1024 * 1024  # realtime-py (websockets) closes the socket on a bigger frame
# A change's `data` must leave room for the envelope: a topic (<= MAX_TOPIC) and the ids.
MAX_DATA_BYTES = MAX_FRAME_BYTES - 16 * 1024
MAX_TOPIC = 1024
TRUNCATED_VALUE_BYTES = 64  # Supabase keeps values up to 64 bytes in a 413'd record
PAYLOAD_TOO_LARGE = "Error 413: Payload Too Large"
SUBSCRIBED = "Subscribed to PostgreSQL"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def frame(topic: str, event: str, payload: Any, ref: str | None = None) -> str:
    return dumps({"topic": topic, "event": event, "payload": payload, "ref": ref})


def reply(topic: str, ref: str | None, response: Any, ok: bool = True) -> str:
    status = "ok" if ok else "error"
    return frame(topic, "phx_reply", {"status": status, "response": response}, ref)


def error_reply(topic: str, ref: str | None, reason: str) -> str:
    return reply(topic, ref, {"reason": reason}, ok=False)


def system(topic: str, extension: str, message: str, ok: bool = True) -> str:
    payload = {
        "channel": topic.removeprefix("realtime:"),
        "extension": extension,
        "message": message,
        "status": "ok" if ok else "error",
    }
    return frame(topic, "system", payload)


def close(topic: str, join_ref: str | None) -> str:
    return frame(topic, "phx_close", {}, join_ref)


def channel_error(topic: str, join_ref: str | None) -> str:
    return frame(topic, "phx_error", {}, join_ref)


def change_frame(topic_json: str, ids: list[int], data_json: str) -> str:
    """A `postgres_changes` push from pre-encoded parts (the data is shared by every channel)."""
    ids_json = "[" + ",".join(str(i) for i in ids) + "]"
    return (
        f'{{"topic":{topic_json},"event":"postgres_changes",'
        f'"payload":{{"ids":{ids_json},"data":{data_json}}},"ref":null}}'
    )


def commit_timestamp(us: int) -> str:
    """Microseconds -> `YYYY-MM-DDTHH:MM:SS.mmmZ`, as `commit_timestamp` is written."""
    when = datetime.fromtimestamp(us / 1_000_000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def expired_message(expires_at: float | None, now: float | None = None) -> str:
    ago = int((now or time.time()) - (expires_at or 0))
    return f"Token has expired {max(ago, 0)} seconds ago"


def _small(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        key: value
        for key, value in record.items()
        if len(dumps(value).encode()) <= TRUNCATED_VALUE_BYTES
    }


def change_data(
    *,
    table: str,
    kind: str,
    commit_us: int,
    columns: list[dict[str, str]],
    record: dict[str, Any] | None,
    old_record: dict[str, Any] | None,
) -> str:
    """The `data` object of a change, encoded. Over MAX_DATA_BYTES, Supabase's 413 treatment:
    values longer than 64 bytes are dropped and `errors` says so, so the frame stays sendable."""
    data: dict[str, Any] = {
        "schema": "public",
        "table": table,
        "commit_timestamp": commit_timestamp(commit_us),
        "type": kind,
        "columns": columns,
    }
    if kind != "DELETE":
        data["record"] = record
    if kind != "INSERT":
        data["old_record"] = old_record
    data["errors"] = None
    text = dumps(data)
    if len(text) * 4 <= MAX_DATA_BYTES or len(text.encode()) <= MAX_DATA_BYTES:
        return text
    if "record" in data:
        data["record"] = _small(record)
    if "old_record" in data:
        data["old_record"] = _small(old_record)
    data["errors"] = [PAYLOAD_TOO_LARGE]
    return dumps(data)
