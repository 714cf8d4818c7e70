"""Running the server: wiring, the listening socket, the state file, uvicorn.

The process this runs in is a long-lived daemon, whatever `jobctl`'s main() set up
for the client commands: SIGPIPE is ignored (a client that hangs up is a logged
disconnect, never the end of the server), SIGTERM and SIGINT drain and clean up
and then exit 0, and files are made readable by their owner only (umask 077).
Anything that stops the start is one line on stderr and exit 2 (usage) or 6
(storage or another resource unavailable), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobctl import __version__
from jobctl.server.auth import Authenticator, load_or_create_secret
from jobctl.server.authusers import USERS_FILE, UserStore
from jobctl.server.engine import Engine
from jobctl.server.gotrue import access_ttl_from_env, mount_gotrue
from jobctl.server.registry import load_builtin_jobs, load_functions, registry
from jobctl.server.settings import ServerSettings
from jobctl.server.store import POSTGRES_MISSING, StoreDriverMissing, open_store
from jobctl.server.store.base import StorageUnavailable

log = logging.getLogger("jobctl.server")

EXIT_OK, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 2, 6  # jobctl's exit codes (DESIGN.md section 6)
OWN_SCHEMA = "jobctl"  # where the server's own tables go when it publishes an app's


class StartupError(Exception):
    """A clear, one-line reason the server cannot start, and the exit code to end with:
    2 for what the user asked (flags, environment, job modules), 6 for what is not
    available (the database, the port, the files of the data dir)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Built:
    app: Any
    engine: Engine
    auth: Authenticator
    token_created: bool


def tighten(path: Path, what: str, *, warn: bool = True) -> None:
    """Take group and other permissions off an existing file or directory of ours."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    os.chmod(path, mode & 0o700)
    report = log.warning if warn else log.info
    report("%s %s was open to other users (mode %04o); now %04o", what, path, mode, mode & 0o700)


def _read_secret(path: Path, what: str, prefix: str = "") -> tuple[str, bool]:
    try:
        tighten(path, what)
        return load_or_create_secret(path, prefix=prefix)
    except OSError as exc:
        raise StartupError(f"cannot read or create the {what} {path}: {exc.strerror}",
                           EXIT_UNAVAILABLE) from exc  # fmt: skip


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
    token, created = _read_secret(settings.token_file, "token file", prefix="jctl_")
    secret = settings.jwt_secret or os.environ.get("JOBCTL_JWT_SECRET")
    if not secret:
        secret, _ = _read_secret(settings.jwt_secret_file, "JWT secret file")
    auth = Authenticator(token, secret)
    publish = _publish_specs(settings)
    try:
        store = open_store(
            settings.db_target, schema=OWN_SCHEMA if publish else None, publish=publish
        )
    except StoreDriverMissing as exc:
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
    try:
        access_ttl = access_ttl_from_env()
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    users = UserStore(settings.data_dir / USERS_FILE)

    def setup(app: Any) -> None:
        mount_gotrue(app, users, auth, access_ttl)
        try:
            from jobctl.server.realtime import mount_realtime  # type: ignore[import-not-found,unused-ignore]
            from jobctl.server.realtime.tables import Catalog
        except ImportError:
            return
        mount_realtime(app, store, auth, catalog=Catalog.own(OWN_SCHEMA if publish else "public"))

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


def _publish_specs(settings: ServerSettings) -> list[Any]:
    """`--publish` values as the store's PublishSpecs (PostgreSQL only; exit 2 otherwise)."""
    if not settings.publish:
        return []
    if not settings.db_target.startswith(("postgresql://", "postgres://")):
        raise StartupError("--publish needs a PostgreSQL database (--db postgresql://...)")
    try:
        from jobctl.server.store.published import PublishError, PublishSpec
    except ImportError as exc:
        raise StartupError(f"{POSTGRES_MISSING} ({exc})") from exc
    specs = []
    try:
        for text in settings.publish:
            spec = PublishSpec.parse(text, settings.owner_column)
            if spec.schema == OWN_SCHEMA:
                raise PublishError(f"--publish {text}: the {OWN_SCHEMA} schema is the server's own")
            specs.append(spec)
    except PublishError as exc:
        raise StartupError(str(exc)) from None
    return specs


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
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}",
                           EXIT_UNAVAILABLE) from exc  # fmt: skip
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


GC_FULL_EVERY = 100  # middle-generation collections per full one (Python's default: 10)


class _Disconnects:
    """Logs clients that hang up before their answer is out: one line a second at most,
    with a count of the others (a client must not be able to flood the log)."""

    INTERVAL = 1.0

    def __init__(self) -> None:
        self._last = -self.INTERVAL
        self._quiet = 0

    def report(self, client: tuple[str, int] | None, what: str, why: str) -> None:
        now = time.monotonic()
        if now - self._last < self.INTERVAL:
            self._quiet += 1
            return
        more = f" (and {self._quiet} more since the last report)" if self._quiet else ""
        self._last, self._quiet = now, 0
        who = f"{client[0]}:{client[1]}" if client else "a client"
        log.info("%s hung up before the answer to %s was sent (%s); dropped it%s",
                 who, what, why, more)  # fmt: skip


DISCONNECTS = _Disconnects()


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, logging a write to a client that has gone."""

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        unsent = cycle is not None and not cycle.response_complete
        if exc is not None or unsent:
            scope = cycle.scope if cycle is not None else None
            what = f"{scope['method']} {scope['path']}" if scope else "a request"
            why = f"{type(exc).__name__}: {exc}" if exc is not None else "connection closed"
            DISCONNECTS.report(self.client, what, why)
        super().connection_lost(exc)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(state))
    os.replace(tmp, path)


def _remove_state(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        current = json.loads(path.read_text())
        if current.get("pid") == os.getpid():
            path.unlink()


def _prepare_data_dir(settings: ServerSettings) -> None:
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tighten(settings.data_dir, "data directory", warn=False)
    except OSError as exc:
        raise StartupError(f"cannot use the data directory {settings.data_dir}: {exc.strerror}",
                           EXIT_UNAVAILABLE) from exc  # fmt: skip


async def serve(settings: ServerSettings) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        # uvicorn's own handlers re-raise the signal once it has shut down, which ends
        # the process (status -15) before our clean-up below; ours just ask it to stop.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    _prepare_data_dir(settings)
    built = build(settings)
    store = built.engine.store
    shown = _display_db(settings.db_target)
    try:
        await store.open()
    except StorageUnavailable as exc:  # damaged, not a database, read-only, unreachable
        await _close_quietly(store)
        raise StartupError(f"cannot open the database {shown}: {_reason(exc)}",
                           EXIT_UNAVAILABLE) from exc  # fmt: skip
    except Exception as exc:  # another server holds it, PostgreSQL refused us...
        await _close_quietly(store)
        asked = type(exc).__name__ == "PublishError"  # a --publish table that is not fit
        raise StartupError(_one_line(exc), EXIT_USAGE if asked else EXIT_UNAVAILABLE) from exc
    published: list[str] = []
    if getattr(store, "published", None):
        from jobctl.server.realtime import add_published

        published = add_published(built.app, store)
    try:
        await built.engine.recover()
        sock = bind(settings.host, settings.port)
    except StorageUnavailable as exc:  # damaged pages show up on the first real read
        await _close_quietly(store)
        raise StartupError(f"cannot use the database {shown}: {_reason(exc)}",
                           EXIT_UNAVAILABLE) from exc  # fmt: skip
    except BaseException:
        await _close_quietly(store)
        raise
    port = sock.getsockname()[1]
    url = url_for(settings.host, port)
    served: Any = built.app
    for wrap in getattr(built.app.state, "outer_middleware", ()):
        served = wrap(served)  # outside FastAPI's own: Realtime's KeepTransport sees uvicorn's send
    config = uvicorn.Config(
        served,
        log_level="warning",
        access_log=settings.access_log,
        http=_HttpProtocol,
        ws="websockets-sansio",
        lifespan="on",
        timeout_graceful_shutdown=5,
        ws_max_size=5_000_000,
    )
    server = Server(config)
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if server.should_exit:  # a second ^C or SIGTERM: stop waiting for the drain
            server.force_exit = True
            return
        log.info("%s: draining (running jobs get %gs, then go back to the queue)",
                 signal.Signals(signum).name, settings.engine.stop_grace)  # fmt: skip
        server.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    state = {
        "pid": os.getpid(),
        "url": url,
        "version": __version__,
        "db": _display_db(settings.db_target),
        "data_dir": str(settings.data_dir),
        "started_at": time.time(),
    }
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            with contextlib.suppress(SystemExit):  # uvicorn's way to say start-up failed
                await task
            raise StartupError("the server stopped while starting (see the log above)",
                               EXIT_UNAVAILABLE)  # fmt: skip
        if settings.state_file is not None:
            try:
                _write_state(settings.state_file, state)
            except OSError as exc:
                server.should_exit = True
                with contextlib.suppress(BaseException):
                    await task
                raise StartupError(
                    f"cannot write the state file {settings.state_file}: {exc.strerror}",
                    EXIT_UNAVAILABLE,
                ) from exc
        # What start-up made (modules, the app, the routes) lives as long as the server:
        # out of the collector's reach, a full collection walks only what came since
        # (it walked all of it each time: ~100 ms on the loop, measured by
        # bench/history.py's loop watch).
        gc.freeze()
        # And full collections ten times rarer than Python's default (threshold 10 -> 100
        # collections of the middle generation): with 5,000 jobs in flight each one walked
        # every live task and row, 130-180 ms on the loop, 48 in a 35 s run (6.3 s of
        # CPU) finding nothing to free; the young generations, where nearly every cycle
        # dies, are collected as before (bench/inflight.py --db pg: p99 176 -> 54-68 ms).
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, GC_FULL_EVERY)
        with contextlib.suppress(OSError):  # a closed stderr must not stop the server
            print(
                f"jobctl server {__version__} listening on {url}\n"
                f"  store: {_display_db(settings.db_target)}\n"
                f"  token: {settings.token_file}{' (created)' if built.token_created else ''}\n"
                + (
                    f"  publishing: {', '.join(published)} (owner column"
                    f" {settings.owner_column}; the server's own tables in schema {OWN_SCHEMA})\n"
                    if published
                    else ""
                )
                + f"  job types: {', '.join(registry.names())}",
                file=sys.stderr,
                flush=True,
            )
        await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if settings.state_file is not None:
            _remove_state(settings.state_file)
        await _close_quietly(store)
    log.info("stopped")


async def _close_quietly(store: Any) -> None:
    try:
        await store.close()
    except Exception as exc:  # closing must not hide why we stop
        log.warning("closing the store failed: %s", _one_line(exc))


def _reason(exc: StorageUnavailable) -> str:
    """The store's own words, without the store's name (the message names the database)."""
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return _one_line(exc).split(": ", 1)[-1]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run(settings: ServerSettings) -> int:
    """Run in the foreground until SIGINT/SIGTERM. Returns a process exit code."""
    if hasattr(signal, "SIGPIPE"):
        # jobctl's main() restores SIGPIPE's default for the client commands (a reader
        # that goes away ends a filter); a server that did so would die on the first
        # write to a client that hung up. Ignored, such a write fails with EPIPE, which
        # the transport turns into a closed connection (logged by _HttpProtocol).
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    os.umask(0o077)  # the database, its WAL, logs and state hold every user's jobs
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
        with contextlib.suppress(OSError):
            print(f"jobctl server: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def state_path(data_dir: Path) -> Path:
    return data_dir / "server.json"
