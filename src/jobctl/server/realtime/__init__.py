"""Supabase-compatible live updates in the embedded server.

`GET /realtime/v1/websocket` (also `/socket/websocket`) speaks Phoenix V1 frames as Supabase
Realtime does for `postgres_changes` on `public.jobs` and `public.job_logs`; `/rest/v1/jobs` is
the read-only PostgREST subset that supabase-py's table queries use. docs/design.md ("Realtime
endpoint") records the protocol decisions.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocket

from jobctl.server.auth import Authenticator, AuthFailed
from jobctl.server.realtime.connection import Connection
from jobctl.server.realtime.hub import Hub, RealtimeSettings
from jobctl.server.realtime.rest import router as rest_router
from jobctl.server.store.base import Store

__all__ = ["Hub", "RealtimeSettings", "mount_realtime"]

SOCKET_PATHS = ("/realtime/v1/websocket", "/socket/websocket")


def mount_realtime(
    app: FastAPI, store: Store, auth: Authenticator, settings: RealtimeSettings | None = None
) -> Hub:
    hub = Hub(store.changes, auth, settings or RealtimeSettings.from_env())
    app.state.realtime_hub = hub
    app.state.realtime_enabled = True

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

    app.include_router(rest_router)
    return hub


async def serve_socket(hub: Hub, ws: WebSocket) -> None:
    vsn = ws.query_params.get("vsn", "1.0.0")
    if not vsn.startswith("1."):
        await _deny(ws, 400, f"unsupported vsn {vsn[:20]!r}: this server speaks Phoenix V1 (1.0.0)")
        return
    apikey = ws.headers.get("x-api-key") or ws.query_params.get("apikey") or ""
    try:
        principal = hub.auth.authenticate(apikey)
    except AuthFailed as exc:
        await _deny(ws, 401, f"{exc}" if apikey else "missing apikey")
        return
    await ws.accept()
    await Connection(hub, ws, principal, apikey).run()


async def _deny(ws: WebSocket, status: int, message: str) -> None:
    """Refuse before the upgrade, with an HTTP status and `{"error": ...}` like Supabase."""
    body: dict[str, Any] = {"error": message}
    try:
        await ws.send_denial_response(JSONResponse(body, status_code=status))
    except RuntimeError:  # the ASGI server cannot send an HTTP response here
        await ws.close(1008, message[:120])
