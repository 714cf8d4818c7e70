"""Running the server: wiring, the listening socket, the state file, uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobctl import __version__
from jobctl.server.auth import Authenticator, load_or_create_secret
from jobctl.server.engine import Engine
from jobctl.server.registry import load_builtin_jobs, load_functions, registry
from jobctl.server.settings import ServerSettings
from jobctl.server.store import StoreUnavailable, open_store

log = logging.getLogger("jobctl.server")


class StartupError(Exception):
    """A clear, one-line reason the server cannot start."""


@dataclass
class Built:
    app: Any
    engine: Engine
    auth: Authenticator
    token_created: bool


def build(settings: ServerSettings) -> Built:
    """Everything but the socket: store, registry, engine, auth, ASGI app."""
    from jobctl.server.app import create_app

    load_builtin_jobs()
    try:
        load_functions(settings.functions)
    except ImportError as exc:
        raise StartupError(f"cannot load job functions: {exc}") from exc
    for name, seconds in settings.timeouts.items():
        job_type = registry.get(name)
        if job_type is None:
            raise StartupError(f"--timeout {name}=...: no such job type")
        job_type.timeout = seconds
    token, created = load_or_create_secret(settings.token_file, prefix="jctl_")
    secret = settings.jwt_secret or os.environ.get("JOBCTL_JWT_SECRET")
    if not secret:
        secret, _ = load_or_create_secret(settings.jwt_secret_file)
    auth = Authenticator(token, secret)
    try:
        store = open_store(settings.db_target)
    except StoreUnavailable as exc:
        raise StartupError(str(exc)) from exc
    settings.engine.single_process = not settings.db_target.startswith("postgres")
    lease = os.environ.get("JOBCTL_LEASE_SECONDS")
    if lease:
        # How long a killed server's jobs wait before another server re-queues them.
        try:
            settings.engine.lease_seconds = float(lease)
        except ValueError:
            raise StartupError(f"JOBCTL_LEASE_SECONDS: not a number: {lease!r}") from None
        if not 0.5 <= settings.engine.lease_seconds <= 3600:
            raise StartupError("JOBCTL_LEASE_SECONDS: from 0.5 to 3600 seconds")
    engine = Engine(store, registry, settings.engine)

    def setup(app: Any) -> None:
        try:
            from jobctl.server.realtime import mount_realtime  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return
        mount_realtime(app, store, auth)

    try:
        app = create_app(
            store,
            registry,
            engine,
            auth,
            max_body_bytes=settings.max_body_bytes,
            db_display=_display_db(settings.db_target),
            extra_setup=setup,
        )
    except ValueError as exc:  # a job type's input_schema is not a JSON Schema
        raise StartupError(str(exc)) from None
    return Built(app, engine, auth, created)


def _display_db(db: str) -> str:
    if "://" in db and "@" in db:  # hide a password in a URL
        scheme, rest = db.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return db


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(settings: ServerSettings) -> None:
    import uvicorn

    built = build(settings)
    store = built.engine.store
    try:
        await store.open()
    except Exception as exc:
        raise StartupError(str(exc)) from exc
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    url = url_for(settings.host, port)
    served: Any = built.app
    for wrap in getattr(built.app.state, "outer_middleware", ()):
        served = wrap(served)  # outside FastAPI's own: Realtime's KeepTransport sees uvicorn's send
    config = uvicorn.Config(
        served,
        log_level="warning",
        access_log=settings.access_log,
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        timeout_graceful_shutdown=5,
        ws_max_size=5_000_000,
    )
    server = uvicorn.Server(config)
    state = {
        "pid": os.getpid(),
        "url": url,
        "version": __version__,
        "db": _display_db(settings.db_target),
        "data_dir": str(settings.data_dir),
        "started_at": time.time(),
    }
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        await task
        raise StartupError("the server stopped while starting (see the log above)")
    if settings.state_file is not None:
        settings.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = settings.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, settings.state_file)
    print(
        f"jobctl server {__version__} listening on {url}\n"
        f"  store: {_display_db(settings.db_target)}\n"
        f"  token: {settings.token_file}{' (created)' if built.token_created else ''}\n"
        f"  job types: {', '.join(registry.names())}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await task
    finally:
        if settings.state_file is not None:
            with contextlib.suppress(FileNotFoundError):
                current = json.loads(settings.state_file.read_text())
                if current.get("pid") == os.getpid():
                    settings.state_file.unlink()
        await store.close()


def run(settings: ServerSettings) -> int:
    """Run in the foreground until SIGINT/SIGTERM. Returns a process exit code."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(settings))
    except StartupError as exc:
        print(f"jobctl server: {exc}", file=sys.stderr)
        return 6 if "cannot listen" in str(exc) else 2
    except KeyboardInterrupt:
        return 0
    return 0


def state_path(data_dir: Path) -> Path:
    return data_dir / "server.json"
