"""Supabase-compatible live updates in the embedded server.

`GET /realtime/v1/websocket` (also `/socket/websocket`) speaks Phoenix frames (vsn 1.0.0 and
2.0.0) as Supabase Realtime does: `postgres_changes` on `public.jobs` and `public.job_logs`,
broadcast (also over HTTP, and from the database on private `job:<id>` / `jobs:<user>` topics)
and presence; `/rest/v1/jobs` is the read-only PostgREST subset that supabase-py's and
supabase-js's table queries use, `/rest/v1/` its OpenAPI document. With `--publish`, an app's
tables join them (and ours move to schema `jobctl`). docs/design.md ("Realtime endpoint",
"Publishing an app's table") records the decisions.
"""

from __future__ import annotations

import hmac
import logging
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from jobctl.server.auth import Authenticator, AuthFailed, Principal
from jobctl.server.realtime import protocol
from jobctl.server.realtime.broadcast import router as broadcast_router
from jobctl.server.realtime.connection import Connection
from jobctl.server.realtime.hub import Hub, RealtimeSettings
from jobctl.server.realtime.openapi import router as openapi_router
from jobctl.server.realtime.rest import router as rest_router
from jobctl.server.realtime.tables import Catalog, published_table
from jobctl.server.store.base import Store

__all__ = ["Hub", "RealtimeSettings", "add_published", "mount_realtime"]

SOCKET_PATHS = ("/realtime/v1/websocket", "/socket/websocket")
TRANSPORT_KEY = "jobctl.transport"
SEND_KEY = "jobctl.send"
DENIED_KEY = "jobctl.denied"
# Set in the task that serves a refused upgrade, where uvicorn logs after the app returns.
_denied: ContextVar[bool] = ContextVar("jobctl_realtime_denied", default=False)


class DeniedUpgradeFilter(logging.Filter):
    """uvicorn's websockets-sansio logs "ASGI callable returned without completing handshake."
    (an ERROR) after an upgrade refused with an HTTP response, which is a handshake answered as
    intended: a client retrying with a bad key would fill the log. Only those lines are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_denied.get() and "without completing handshake" in str(record.msg))


class KeepTransport:
    """Puts the connection's asyncio transport in a WebSocket's scope, where the server shows it.

    uvicorn's protocol objects are the ASGI `send` callable's owner and hold `.transport`; with
    it, a socket whose peer stops reading can be aborted at the TCP level (nothing else frees its
    buffers). It must wrap the whole app (FastAPI's middleware wraps `send`); without it, or under
    another server, the key is absent and such a socket is only closed politely."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            # Duck-typed: uvloop's transports are not asyncio.BaseTransport subclasses.
            if callable(getattr(transport, "abort", None)):
                scope[TRANSPORT_KEY] = transport
                scope[SEND_KEY] = send  # uvicorn's own, without the app's wrappers
        await self.app(scope, receive, send)
        if scope.get(DENIED_KEY):
            _denied.set(True)  # this context is uvicorn's run_asgi task's own


def mount_realtime(
    app: FastAPI,
    store: Store,
    auth: Authenticator,
    settings: RealtimeSettings | None = None,
    catalog: Catalog | None = None,
) -> Hub:
    """`catalog`: the tables exposed (ours in `public` by default; with published tables, ours
    in `jobctl`); published tables join it once the store is open (`add_published`)."""
    lookup = store if hasattr(store, "get_job") else None
    catalog = catalog or Catalog.own()
    hub = Hub(store.changes, auth, settings or RealtimeSettings.from_env(), lookup, catalog)
    app.state.realtime_hub = hub
    app.state.catalog = catalog
    app.state.realtime_enabled = True
    # Outermost, around FastAPI's own middleware (which wraps `send`): main.py applies it.
    app.state.outer_middleware = (*getattr(app.state, "outer_middleware", ()), KeepTransport)
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DeniedUpgradeFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(DeniedUpgradeFilter())

    async def websocket(ws: WebSocket) -> None:
        await serve_socket(hub, ws)

    for path in SOCKET_PATHS:
        app.add_api_websocket_route(path, websocket)

    @app.post("/realtime/v1/api/disconnect", include_in_schema=False)
    async def disconnect(request: Request) -> JSONResponse:
        """Close Realtime sockets from the server side (operators, and tests of reconnects).

        Needs the server's own token or a service_role JWT; `?user_id=` limits it to one user."""
        token = request.headers.get("authorization", "").partition(" ")[2].strip()
        try:
            who = auth.authenticate(token)
        except AuthFailed as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        is_owner = hmac.compare_digest(token.encode(), auth.local_token.encode())
        if not (is_owner or who.is_service):
            return JSONResponse({"error": "needs the server token or service_role"}, 403)
        closed = hub.close_connections(
            1012, "closed by the server", request.query_params.get("user_id")
        )
        return JSONResponse({"closed": closed})

    app.include_router(broadcast_router)
    app.include_router(openapi_router)
    app.include_router(rest_router)
    return hub


def add_published(app: FastAPI, store: Store) -> list[str]:
    """Expose the tables the (open) store publishes; their names, `schema.table`."""
    catalog: Catalog = app.state.catalog
    published = getattr(store, "published", {})
    for info in published.values():
        catalog.add(published_table(info))
    return sorted(published)


def socket_owner(principal: Principal) -> str:
    """Whose cap a socket counts against: its apikey's user, or its role (anon, service_role)."""
    return principal.user_id or principal.role


async def serve_socket(hub: Hub, ws: WebSocket) -> None:
    vsn = ws.query_params.get("vsn", "1.0.0")
    codec = protocol.codec_for(vsn)
    if codec is None:
        message = f"unsupported vsn {vsn[:20]!r}: this server speaks 1.0.0 and 2.0.0"
        await _deny(ws, 400, message)
        return
    apikey = ws.headers.get("x-api-key") or ws.query_params.get("apikey") or ""
    try:
        principal = hub.auth.authenticate(apikey)
    except AuthFailed as exc:
        await _deny(ws, 401, f"{exc}" if apikey else "API key is missing")
        return
    owner = socket_owner(principal)
    if not hub.admit(owner):
        await _deny(ws, 429, "Too many connected users")
        return
    try:
        await ws.accept()
        await Connection(hub, ws, principal, apikey, codec).run()
    finally:
        hub.release(owner)


async def _deny(ws: WebSocket, status: int, message: str) -> None:
    """Refuse before the upgrade, with an HTTP status and `{"error": ...}` like Supabase."""
    body: dict[str, Any] = {"error": message}
    ws.scope[DENIED_KEY] = True
    try:
        await ws.send_denial_response(JSONResponse(body, status_code=status))
    except RuntimeError:  # the ASGI server cannot send an HTTP response here
        await ws.close(1008, message[:120])
