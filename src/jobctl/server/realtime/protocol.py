"""Phoenix frames as the Supabase Realtime server writes them, in both serializer versions.

`vsn=1.0.0` (realtime-py, and realtime-js when asked): every frame is a JSON object with exactly
`topic`, `event`, `payload` and `ref` (never `join_ref`); realtime-py drops a frame that lacks
`ref`, so every builder here sets it.

`vsn=2.0.0` (realtime-js's default): text frames are JSON arrays `[join_ref, ref, topic, event,
payload]`, and user broadcasts travel as binary frames (supabase/realtime
`lib/realtime_web/socket/v2_serializer.ex`, realtime-js `src/lib/serializer.ts`):

- from the client, kind 3 "user broadcast push": `3, len(join_ref), len(ref), len(topic),
  len(event), len(metadata), encoding` then those strings and the payload (encoding 1 = JSON,
  0 = raw bytes);
- to the client, kind 4 "user broadcast": `4, len(topic), len(event), len(metadata), encoding`
  then topic, event, metadata (JSON, optional) and the payload. realtime-js decodes no other kind.

Replies echo `ref` (and, in 2.0.0, the channel's `join_ref`); pushes to a channel carry its
join_ref in 2.0.0 (`system`, `presence_state`, `phx_close`); fan-out frames (postgres_changes,
broadcast, presence_diff) carry neither, as Phoenix's fastlane writes them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_FRAME_BYTES = 1024 * 1024  # realtime-py (websockets) closes the socket on a bigger frame
# A change's `data` must leave room for the envelope: a topic (<= MAX_TOPIC) and the ids.
MAX_DATA_BYTES = MAX_FRAME_BYTES - 16 * 1024
MAX_TOPIC = 1024
MAX_DEPTH = 64  # nesting of an inbound frame's JSON: deeper is refused, never parsed further
TRUNCATED_VALUE_BYTES = 64  # Supabase keeps values up to 64 bytes in a 413'd record
PAYLOAD_TOO_LARGE = "Error 413: Payload Too Large"
SUBSCRIBED = "Subscribed to PostgreSQL"
USER_BROADCAST_PUSH, USER_BROADCAST = 3, 4
BINARY_ENCODING, JSON_ENCODING = 0, 1
Frame = str | bytes


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class MalformedMessage(ValueError):
    """An inbound frame that cannot be read; str() is the reason sent back."""


@dataclass(frozen=True, slots=True)
class UserBroadcast:
    """A broadcast whose payload is kept as encoded bytes (JSON text, or raw binary).

    What a 2.0.0 client's binary push carries, and what broadcast from the database sends,
    as Supabase's `UserBroadcast` struct: relayed without decoding the payload."""

    event: str
    body: bytes
    is_json: bool
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    event: str
    payload: dict[str, Any] | UserBroadcast
    ref: str | None
    join_ref: str | None


# -- reading inbound frames ------------------------------------------------------------
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Cheap pre-check before json.loads (whose recursion would raise on hostile input)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, quoted, escaped = 0, False, False
    for char in text:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def load_json(text: str) -> Any:
    """json.loads with a depth limit and no lone surrogates; raises MalformedMessage."""
    if _too_deep(text):
        raise MalformedMessage(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedMessage("not valid JSON") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise MalformedMessage("a string holds a lone UTF-16 surrogate (not valid Unicode)")
    return value


def _ref(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MalformedMessage(f"`{name}` must be a string or null")


def _inbound(topic: Any, event: Any, payload: Any, ref: Any, join_ref: Any) -> Inbound:
    ref = _ref(ref, "ref")
    join_ref = _ref(join_ref, "join_ref") if isinstance(join_ref, str | int | None) else None
    if not isinstance(topic, str) or not topic:
        raise MalformedMessage("`topic` must be a non-empty string")
    if not isinstance(event, str) or not event:
        raise MalformedMessage("`event` must be a non-empty string")
    if not isinstance(payload, dict):
        raise MalformedMessage("`payload` must be an object")
    return Inbound(topic, event, payload, ref, join_ref)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage(f"{what} is not UTF-8") from None


class V1:
    """Phoenix V1 JSON objects."""

    vsn = "1.0.0"

    @staticmethod
    def decode(text: str | None, data: bytes | None) -> Inbound:
        if text is None:
            raise MalformedMessage("binary frame (vsn 1.0.0 takes JSON text frames)")
        message = load_json(text)
        if not isinstance(message, dict):
            raise MalformedMessage("expected a JSON object (this socket speaks vsn 1.0.0)")
        return _inbound(
            message.get("topic"),
            message.get("event"),
            message.get("payload", {}),
            message.get("ref"),
            message.get("join_ref"),
        )

    @staticmethod
    def push(
        topic: str, event: str, payload: Any, ref: str | None = None, join_ref: str | None = None
    ) -> str:
        return dumps({"topic": topic, "event": event, "payload": payload, "ref": ref})

    @staticmethod
    def fanout(topic_json: str, event: str, payload_json: str) -> str:
        return f'{{"topic":{topic_json},"event":"{event}","payload":{payload_json},"ref":null}}'

    @staticmethod
    def user_broadcast(topic: str, topic_json: str, message: UserBroadcast) -> Frame | None:
        """V1 cannot carry binary: a JSON user broadcast becomes an ordinary broadcast frame
        (Supabase's `convert_to_json_broadcast`), a binary one is not sent to this socket."""
        if not message.is_json:
            return None
        return V1.fanout(topic_json, "broadcast", json_broadcast_payload(message))


class V2:
    """Phoenix V2 arrays, with Supabase's binary user broadcasts."""

    vsn = "2.0.0"

    @staticmethod
    def decode(text: str | None, data: bytes | None) -> Inbound:
        if text is None:
            return V2._decode_binary(data or b"")
        message = load_json(text)
        if not isinstance(message, list) or len(message) < 5:
            raise MalformedMessage(
                "expected a JSON array [join_ref, ref, topic, event, payload] (vsn 2.0.0)"
            )
        join_ref, ref, topic, event, payload = message[:5]
        return _inbound(topic, event, payload, ref, join_ref)

    @staticmethod
    def _decode_binary(data: bytes) -> Inbound:
        kind = data[0] if data else None
        if kind != USER_BROADCAST_PUSH:
            raise MalformedMessage(f"binary frame of kind {kind} (only 3, a user broadcast push)")
        if len(data) < 7:
            raise MalformedMessage("binary frame shorter than its header says")
        sizes = data[1:6]
        encoding = data[6]
        offset = 7
        parts: list[bytes] = []
        for size in sizes:
            parts.append(data[offset : offset + size])
            offset += size
        if offset > len(data):
            raise MalformedMessage("binary frame shorter than its header says")
        join_ref, ref, topic, event, metadata = (
            _text(part, what)
            for part, what in zip(
                parts, ("join_ref", "ref", "topic", "event", "metadata"), strict=True
            )
        )
        if not topic:
            raise MalformedMessage("`topic` must be a non-empty string")
        if metadata:
            meta = load_json(metadata)
            if not isinstance(meta, dict):
                raise MalformedMessage("binary frame metadata must be a JSON object")
        body = data[offset:]
        if encoding == JSON_ENCODING:
            load_json(_text(body, "JSON payload"))  # relayed as sent, but it must be JSON
        # Supabase does not use the metadata (`persist` is for stored messages): dropped.
        message = UserBroadcast(event, body, encoding == JSON_ENCODING)
        return Inbound(topic, "broadcast", message, ref or None, join_ref or None)

    @staticmethod
    def push(
        topic: str, event: str, payload: Any, ref: str | None = None, join_ref: str | None = None
    ) -> str:
        return dumps([join_ref, ref, topic, event, payload])

    @staticmethod
    def fanout(topic_json: str, event: str, payload_json: str) -> str:
        return f'[null,null,{topic_json},"{event}",{payload_json}]'

    @staticmethod
    def user_broadcast(topic: str, topic_json: str, message: UserBroadcast) -> Frame | None:
        topic_b = topic.encode()
        event_b = message.event.encode()
        meta_b = b"" if not message.meta else dumps(message.meta).encode()
        if max(len(topic_b), len(event_b), len(meta_b)) > 255:
            return None  # unrepresentable in the binary frame, as the server refuses it too
        header = bytes(
            [
                USER_BROADCAST,
                len(topic_b),
                len(event_b),
                len(meta_b),
                JSON_ENCODING if message.is_json else BINARY_ENCODING,
            ]
        )
        return header + topic_b + event_b + meta_b + message.body


Codec = type[V1] | type[V2]
CODECS: dict[str, Codec] = {"1": V1, "2": V2}


def codec_for(vsn: str) -> Codec | None:
    """`1.x` and `2.x` as Phoenix's `~> 1.0.0` / `~> 2.0.0` requirements read them."""
    parts = vsn.split(".")
    if len(parts) != 3 or parts[1] != "0" or not parts[2].isascii() or not parts[2].isdigit():
        return None
    return CODECS.get(parts[0])


def json_broadcast_payload(message: UserBroadcast) -> str:
    """A user broadcast as the payload of a JSON `broadcast` frame: {event, payload, type[, meta]}."""
    meta = "" if message.meta is None else f',"meta":{dumps(message.meta)}'
    body = message.body.decode()
    return f'{{"event":{dumps(message.event)},"payload":{body},"type":"broadcast"{meta}}}'


# -- replies and channel pushes ----------------------------------------------------------
def reply(
    codec: Codec,
    topic: str,
    ref: str | None,
    response: Any,
    ok: bool = True,
    join_ref: str | None = None,
) -> str:
    status = "ok" if ok else "error"
    return codec.push(topic, "phx_reply", {"status": status, "response": response}, ref, join_ref)


def error_reply(
    codec: Codec, topic: str, ref: str | None, reason: str, join_ref: str | None = None
) -> str:
    return reply(codec, topic, ref, {"reason": reason}, ok=False, join_ref=join_ref)


def system(
    codec: Codec,
    topic: str,
    extension: str,
    message: str,
    ok: bool = True,
    join_ref: str | None = None,
) -> str:
    payload = {
        "channel": topic.removeprefix("realtime:"),
        "extension": extension,
        "message": message,
        "status": "ok" if ok else "error",
    }
    return codec.push(topic, "system", payload, None, join_ref)


def close(codec: Codec, topic: str, join_ref: str | None) -> str:
    return codec.push(topic, "phx_close", {}, join_ref, join_ref)


def channel_error(codec: Codec, topic: str, join_ref: str | None) -> str:
    return codec.push(topic, "phx_error", {}, join_ref, join_ref)


def change_payload(ids: list[int], data_json: str) -> str:
    """A `postgres_changes` payload from pre-encoded parts (the data is shared by every channel)."""
    return '{"ids":[' + ",".join(str(i) for i in ids) + '],"data":' + data_json + "}"


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
    schema: str = "public",
    kind: str,
    commit_us: int,
    columns: list[dict[str, str]],
    record: dict[str, Any] | None,
    old_record: dict[str, Any] | None,
) -> str:
    """The `data` object of a change, encoded. Over MAX_DATA_BYTES, Supabase's 413 treatment:
    values longer than 64 bytes are dropped and `errors` says so, so the frame stays sendable."""
    data: dict[str, Any] = {
        "schema": schema,
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


def database_broadcast(
    *,
    message_id: str,
    kind: str,
    table: str,
    record: dict[str, Any] | None,
    old_record: dict[str, Any] | None,
    schema: str = "public",
) -> UserBroadcast:
    """A change as `realtime.broadcast_changes(topic, TG_OP, TG_OP, table, schema, NEW, OLD)` sends
    it: event = the operation; payload {old_record, record, operation, table, schema, id} (`id`
    added by `realtime.send`); metadata {id}. Too big a record keeps only its short values."""
    payload: dict[str, Any] = {
        "id": message_id,
        "old_record": old_record,
        "operation": kind,
        "record": record,
        "schema": schema,
        "table": table,
    }
    body = dumps(payload)
    if len(body) * 4 > MAX_DATA_BYTES and len(body.encode()) > MAX_DATA_BYTES:
        payload["record"] = _small(record)
        payload["old_record"] = _small(old_record)
        payload["errors"] = [PAYLOAD_TOO_LARGE]
        body = dumps(payload)
    return UserBroadcast(kind, body.encode(), True, {"id": message_id})
