"""Broadcast over HTTP, as Supabase Realtime's API answers it (servers, and realtime-js's
`httpSend` and REST fallback).

- `POST /realtime/v1/api/broadcast` `{"messages": [{topic, event, payload, private?, id?}]}`:
  202; each public message goes to the topic's channels as a JSON `broadcast`
  `{event, payload, type: "broadcast"[, meta: {id}]}`; a private one only where the caller may
  use that topic (others are skipped, as Supabase skips them). Invalid messages: 422.
- `POST /realtime/v1/api/broadcast/<topic>/events/<event>[?private=true]`, body JSON or
  `application/octet-stream`: 202, sent as a user broadcast (binary payloads reach 2.0.0
  sockets only); a private topic the caller may not use: 403.

The token is `Authorization: Bearer`, else the `apikey` header; errors are `{"message": ...}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from jobctl.server.auth import AuthFailed, Principal
from jobctl.server.realtime import protocol, rules
from jobctl.server.realtime.hub import Hub, Outgoing
from jobctl.server.realtime.protocol import MalformedMessage, UserBroadcast

router = APIRouter(include_in_schema=False)
BASE = "/realtime/v1/api/broadcast"


class Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.realtime_hub
    return hub


def _caller(request: Request, hub: Hub) -> Principal:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    token = token or request.headers.get("apikey", "")
    if not token:
        raise Refused(401, {"message": "Unauthorized: send Authorization: Bearer or apikey"})
    try:
        return hub.auth.authenticate(token)
    except AuthFailed as exc:
        raise Refused(401, {"message": f"Unauthorized: {exc}"}) from None


async def _allowed(hub: Hub, who: Principal, topic: str) -> bool:
    if hub.store is None:
        return who.is_service
    return await rules.may_use(hub.store, who, topic)


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return protocol.load_json(body.decode("utf-8"))
    except (UnicodeDecodeError, MalformedMessage) as exc:
        raise Refused(400, {"message": f"invalid JSON body: {exc}"}) from None


def _topic_ok(topic: str) -> bool:
    return 0 < len(("realtime:" + topic).encode()) <= protocol.MAX_TOPIC


@router.post(BASE)
async def broadcast_batch(request: Request) -> Response:
    try:
        hub = _hub(request)
        who = _caller(request, hub)
        body = await _json_body(request)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            raise Refused(422, {"errors": {"messages": ["can't be blank"]}})
        errors: list[dict[str, list[str]]] = []
        for message in messages:
            errors.append(_check(message, hub.settings.max_broadcast_bytes))
        if any(errors):
            raise Refused(422, {"errors": {"messages": errors}})
        for message in messages:
            private = message.get("private") is True or message.get("private") == "true"
            topic = message["topic"]
            if private and not await _allowed(hub, who, topic):
                continue
            payload: dict[str, Any] = {
                "event": message["event"],
                "payload": message["payload"],
                "type": "broadcast",
            }
            if isinstance(message.get("id"), str):
                payload["meta"] = {"id": message["id"]}
            hub.broadcast((private, topic), Outgoing("broadcast", protocol.dumps(payload)))
        return Response(status_code=202)
    except Refused as exc:
        return exc.response()


def _check(message: Any, limit: int) -> dict[str, list[str]]:
    if not isinstance(message, dict):
        return {"message": ["is invalid"]}
    errors: dict[str, list[str]] = {}
    for key in ("topic", "event"):
        value = message.get(key)
        if not isinstance(value, str) or not value:
            errors[key] = ["can't be blank" if value in (None, "") else "is invalid"]
    if "topic" not in errors and not _topic_ok(message["topic"]):
        errors["topic"] = [f"must be at most {protocol.MAX_TOPIC - 9} bytes"]
    payload = message.get("payload")
    if payload is None:
        errors["payload"] = ["can't be blank"]
    elif not isinstance(payload, dict):
        errors["payload"] = ["is invalid"]
    elif len(protocol.dumps(payload)) > limit:
        errors["payload"] = ["Payload size exceeds tenant limit"]
    return errors


@router.post(BASE + "/{rest:path}")
async def broadcast_one(rest: str, request: Request) -> Response:
    try:
        hub = _hub(request)
        topic, marker, event = rest.rpartition("/events/")
        if not marker or not topic or not event or "/" in event:
            raise Refused(404, {"message": "not found: use /api/broadcast/<topic>/events/<event>"})
        if not _topic_ok(topic) or len(event.encode()) > 255:
            raise Refused(422, {"errors": {"topic": ["is too long"]}})
        who = _caller(request, hub)
        content_type = request.headers.get("content-type", "application/json").split(";")[0]
        content_type = content_type.strip().lower()
        if content_type == "application/octet-stream":
            body = await request.body()
            message = UserBroadcast(event, body, False)
        elif content_type in ("application/json", ""):
            payload = await _json_body(request)
            if payload is None:
                raise Refused(422, {"errors": {"payload": ["can't be blank"]}})
            message = UserBroadcast(event, protocol.dumps(payload).encode(), True)
        else:
            raise Refused(415, {"message": f"unsupported content type {content_type[:60]!r}"})
        if len(message.body) > hub.settings.max_broadcast_bytes:
            raise Refused(422, {"errors": {"payload": ["Payload size exceeds tenant limit"]}})
        private = request.query_params.get("private", "").lower() == "true"
        if private and not await _allowed(hub, who, topic):
            raise Refused(403, {"message": "Unauthorized"})
        hub.broadcast((private, topic), Outgoing("broadcast", user=message))
        return Response(status_code=202)
    except Refused as exc:
        return exc.response()
