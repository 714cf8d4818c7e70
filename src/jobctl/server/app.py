"""Builds the ASGI application: API, error shapes, body limits, engine lifecycle."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobctl import __version__
from jobctl.server import api
from jobctl.server.auth import Authenticator
from jobctl.server.engine import Engine
from jobctl.server.joberrors import ApiError, DomainError
from jobctl.server.logredact import install_redaction
from jobctl.server.registry import Registry
from jobctl.server.service import JobService
from jobctl.server.store.base import StorageUnavailable, Store

log = logging.getLogger("jobctl.server")
STORAGE_RETRY_AFTER = "2"  # seconds; clients resend 503s to GETs and keyed submits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, declared or streamed.

    A streamed (chunked) body is cut off where it passes the limit: the 413 goes out
    at once, the application is told the client left, and what it still tries to send
    is dropped (FastAPI would otherwise report the cut as "error parsing the body", 400).
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        seen = 0
        rejected = False

        async def limited() -> Message:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    rejected = True
                    await self._reject(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "too_large", f"request body is over the {self.limit // 1024} KiB limit"
        )
        if scope.get("path", "").startswith("/e/"):  # Inngest's shape there
            response = JSONResponse(
                {"ids": [], "status": 413, "error": "request body is too large",
                 "code": "too_large"}, status_code=413,
            )  # fmt: skip
        await response(scope, receive, send)


class _StorageLog:
    """A line for a request refused because the store is unavailable, at most once a
    second (with how many were refused since)."""

    def __init__(self) -> None:
        self._last = -1.0
        self._quiet = 0

    def report(self, method: str, path: str, exc: StorageUnavailable) -> None:
        now = time.monotonic()
        if now - self._last < 1.0:
            self._quiet += 1
            return
        more = f" (and {self._quiet} more since)" if self._quiet else ""
        self._last, self._quiet = now, 0
        if path.startswith("/e/"):
            path = "/e/***"  # the event key is a token
        log.warning("503 for %s %s: %s%s", method, path, exc, more)


_STORAGE_LOG = _StorageLog()

DirectHandler = Callable[[Request], Awaitable[Response]]


class JobApp(FastAPI):
    """FastAPI, with a few hot routes served without its per-request machinery.

    A route in `direct` (method, path) is still declared on the router, so the OpenAPI
    document and every error shape stay the same, but a request for it goes straight to
    its handler, `handler(request) -> Response`: no middleware stack, no route matching,
    no dependency solving, which cost more than the whole submit did (profiled: FastAPI's
    dependency solving alone was a third of a submit's CPU). What the stack does for it
    is done here, in the same order: the app's exception handlers (looked up as Starlette
    does, by the exception's class, most specific first) inside the body limit
    (BodyLimit, as for every request), and outside both the handler of last resort for
    any other Exception (a 500, then the exception raised on for the server to log, as
    Starlette's ServerErrorMiddleware does).
    """

    direct: dict[tuple[str, str], ASGIApp]

    def add_direct(self, method: str, path: str, handler: DirectHandler, body_limit: int) -> None:
        if not hasattr(self, "direct"):
            self.direct = {}

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive, send)
            try:
                response = await handler(request)
            except Exception as exc:
                answer = self._handler_for(exc)
                if answer is None:
                    raise
                response = await answer(request, exc)
            await response(scope, receive, send)

        limited = BodyLimit(serve, body_limit)

        async def outermost(scope: Scope, receive: Receive, send: Send) -> None:
            scope["app"] = self
            started = False

            async def send_watched(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await limited(scope, receive, send_watched)
            except Exception as exc:
                last = self.exception_handlers.get(Exception)
                if not started and last is not None:
                    response = await last(Request(scope, receive), exc)  # type: ignore[misc]
                    await response(scope, receive, send)
                raise

        self.direct[(method, path)] = outermost

    def _handler_for(
        self, exc: Exception
    ) -> Callable[[Request, Exception], Awaitable[Response]] | None:
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None  # the last resort's, outside the body limit
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                return handler  # type: ignore[return-value]  # create_app's are all async
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        direct = getattr(self, "direct", None)
        if direct and scope["type"] == "http":
            serve = direct.get((scope["method"], scope["path"]))
            if serve is not None:
                await serve(scope, receive, send)
                return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]


def create_app(
    store: Store,
    registry: Registry,
    engine: Engine,
    auth: Authenticator,
    *,
    max_body_bytes: int = 1024 * 1024,
    db_display: str = "",
    extra_setup: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    from jobctl.server import api_schedules
    from jobctl.server.schedules import Scheduler

    scheduler = Scheduler(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_redaction(auth.local_token)  # uvicorn has set up its loggers by now
        # uvicorn writes request lines only when its access_log is on (`--access-log`),
        # at INFO, which the server's log_level ("warning") would otherwise hide.
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        await engine.start()
        await scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()
            await engine.stop()

    app = JobApp(
        title="jobctl job API",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.service = JobService(store, registry, engine.settings, max_body_bytes)
    app.state.auth = auth
    app.state.max_input_bytes = max_body_bytes
    app.state.db_display = db_display or store.description
    app.state.pid = os.getpid()
    app.state.scheduler = scheduler
    app.include_router(api.router)
    app.include_router(api_schedules.router)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if request.url.path.startswith("/e/"):  # the event intake answers in Inngest's shape
            return api.events_error(exc.status, exc.code, exc.message)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return await api_error(request, api.http_error(exc))

    @app.exception_handler(StorageUnavailable)
    async def storage_unavailable(request: Request, exc: StorageUnavailable) -> JSONResponse:
        # The one place a store fault becomes HTTP: whatever the route, a clean 503 that
        # says to come back, never a 500. Logged once a second at most: an outage would
        # otherwise log every request.
        _STORAGE_LOG.report(request.method, request.url.path, exc)
        return error_response(
            503,
            "storage_unavailable",
            "the job store cannot take this request right now; try again shortly",
            {"Retry-After": STORAGE_RETRY_AFTER},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = api.validation_message(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal server error (see the server log)")

    if extra_setup is not None:
        extra_setup(app)
    body_limit = max_body_bytes + 64 * 1024
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_direct("POST", "/api/jobs", api.create_job_direct, body_limit)
    build_routes(app)
    return app


def build_routes(app: FastAPI) -> None:
    """Build each included router's routes now. FastAPI (0.16x) builds them on the first
    request that reaches the router (its dependencies, its parameters' validators): 50 ms
    on the loop, under that first request and every other in flight (the first
    /rest/v1 read stalled a 10M-row server 64-78 ms in bench/history.py, #15). Private
    API (duck-typed): on a FastAPI without it, nothing to do."""
    pending: list[Any] = list(app.router.routes)
    while pending:
        route = pending.pop()
        build = getattr(route, "effective_candidates", None)
        if not callable(build):
            continue
        pending.extend(build())
        low = getattr(route, "effective_low_priority_routes", None)
        if callable(low):
            low()
