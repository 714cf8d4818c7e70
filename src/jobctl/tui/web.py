"""`jobctl tui --web`: the same dashboard in a browser tab, through textual-serve.

textual-serve runs one `jobctl tui` process per browser tab and relays its
screen over a WebSocket. What this module adds to it:

- 127.0.0.1 only, and only that Host (a DNS-rebinding page cannot reach it);
- the job server's token is the key: the address printed carries it once
  (`/?token=...`), which sets an HttpOnly cookie (an HMAC of the token, not the
  token) and redirects to `/`; the page, its WebSocket (same-origin only) and
  downloads need that cookie; textual-serve's own scripts and fonts do not;
- the page is textual-serve's, less its web-font link: nothing is fetched from
  anywhere but this server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

COOKIE = "jobctl_dashboard"
OPEN_PATHS = ("/static/",)  # textual-serve's scripts, styles and fonts: nothing of ours
FONT_LINK = re.compile(r"<link[^>]*fonts\.googleapis\.com[^>]*>", re.DOTALL)


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"jobctl dashboard", hashlib.sha256).hexdigest()


def page_template() -> str:
    """textual-serve's page, without its link to a web-font service (the font it names
    is in textual-serve's own static folder, declared here instead)."""
    import textual_serve

    source = (Path(textual_serve.__file__).parent / "templates" / "app_index.html").read_text()
    page = FONT_LINK.sub("", source)
    font = (
        "<style>@font-face { font-family: 'Roboto Mono'; "
        "src: url('{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf'); }</style>"
    )
    return page.replace("</head>", f"{font}\n  </head>", 1)


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(
    command: str,
    token: str,
    sock: socket.socket,
    on_ready: Callable[[str], None],
    title: str = "jobctl dashboard",
) -> None:
    """Serve the dashboard until SIGINT or SIGTERM; `on_ready(address)` once listening."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.server import Server

    port = sock.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    expected = cookie_value(token)
    denied = (
        "jobctl dashboard: open the address `jobctl tui --web` printed; it carries the "
        "server's token.\n"
    )

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.host != f"127.0.0.1:{port}":
            return web.Response(status=421, text=f"jobctl dashboard: use {origin}/\n")
        if request.path.startswith(OPEN_PATHS):
            return await handler(request)
        given = request.query.get("token")
        if request.path == "/" and given is not None:
            if not hmac.compare_digest(given.encode(), token.encode()):
                return web.Response(status=401, text=denied)
            moved = web.HTTPSeeOther("/")
            moved.set_cookie(COOKIE, expected, httponly=True, samesite="Strict", path="/")
            return moved
        if not hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), expected.encode()):
            return web.Response(status=401, text=denied)
        if request.path == "/ws" and request.headers.get("Origin") != origin:
            return web.Response(status=403, text="jobctl dashboard: not from this page\n")
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    class DashboardServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard)
            loader = jinja2.DictLoader({"app_index.html": page_template()})
            aiohttp_jinja2.setup(app, loader=loader)
            return app

        def initialize_logging(self) -> None:
            pass  # the launcher says what there is to say, on stderr

        async def on_startup(self, app: web.Application) -> None:
            on_ready(f"{origin}/?token={token}")

    server = DashboardServer(command, host="127.0.0.1", port=port, title=title)
    server.public_url = origin
    application: Any = server._make_app()
    web.run_app(application, sock=sock, print=None, shutdown_timeout=5, handle_signals=True)
