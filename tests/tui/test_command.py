"""`jobctl tui`'s launcher: what it connects to, and what it refuses before drawing anything."""

from __future__ import annotations

import os
from pathlib import Path

from jobctl.commands.context import Context
from jobctl.commands.tui import connect, realtime_config
from tests.clirun import invoke, jobctl
from tests.conftest import ServerProcess


def test_a_supabase_only_profile_is_refused_in_one_line(isolated_dirs: Path) -> None:
    config = isolated_dirs / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        '[profiles.proj]\nsupabase_url = "https://proj.supabase.co"\n'
        'supabase_anon_key = "anon"\ntoken = "jwt"\n'
    )
    env = {**os.environ, "JOBCTL_PROFILE": "proj"}
    invoke("tui", env=env).one_line_error(2, "no job API", "jobctl watch")


def test_connect_asks_the_server_whether_it_offers_realtime(server: ServerProcess) -> None:
    ctx = Context.from_process()
    endpoint, offered = connect(ctx)
    assert endpoint.url == server.url and endpoint.token == server.token
    assert offered  # the embedded server has a Realtime endpoint
    config = realtime_config(ctx, endpoint, offered)
    assert config is not None and config.url == f"{server.url}/realtime/v1"
    assert realtime_config(ctx, endpoint, False) is None
    ctx.close()


def test_an_unreachable_server_still_opens_the_dashboard(isolated_dirs: object) -> None:
    ctx = Context.from_process({**os.environ, "JOBCTL_API_URL": "http://127.0.0.1:9"})
    endpoint, offered = connect(ctx)  # no exception: the dashboard starts offline
    assert endpoint.url == "http://127.0.0.1:9" and offered
    ctx.close()


def test_without_a_terminal_it_refuses_in_one_line(server: ServerProcess) -> None:
    # The real command in a subprocess, its output piped: no escape codes, no hanging.
    result = jobctl("tui", timeout=30)
    result.one_line_error(2, "needs a terminal", "jobctl watch", "--web")
    assert result.stdout == ""


def test_web_refuses_a_port_in_use(server: ServerProcess) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = jobctl("tui", "--web", "--port", str(port), timeout=30)
    result.one_line_error(2, f"cannot listen on 127.0.0.1:{port}", "--port")
