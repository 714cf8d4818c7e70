"""`jobctl tui --web` in headless Chromium: the same dashboard in a browser tab, on
127.0.0.1, opened only with the server's token.

Real parts: the job server process, `jobctl submit` from the CLI, `jobctl tui --web`
(textual-serve, one `jobctl tui` per tab) and Debian's chromium (.ci/run installs it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, ServerProcess
from tests.tui.cdp import Browser, chromium_path

ADDRESS = re.compile(r"dashboard at (http://127\.0\.0\.1:(\d+)/\?token=(\S+))")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.fixture
def server(make_server: Any) -> ServerProcess:
    """One job at a time per user: a job submitted behind another stays pending until the
    test lets it run, however slow the machine."""
    return make_server("--backoff", "0.05,0.1", "--limit", "user=1")  # type: ignore[no-any-return]


@pytest.fixture
def web_dashboard(server: ServerProcess, tmp_path: Path) -> Iterator[tuple[str, int, str]]:
    """`jobctl tui --web --port 0` against the test's server: (address, port, token)."""
    err = tmp_path / "web.err"
    with err.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "tui", "--web", "--port", "0"],
            env=env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline:
            assert proc.poll() is None, f"jobctl tui --web exited:\n{err.read_text()}"
            found = ADDRESS.search(err.read_text())
            time.sleep(0.05)
        assert found is not None, f"no address printed:\n{err.read_text()}"
        yield found.group(1), int(found.group(2)), found.group(3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the tabs' dashboards
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def test_the_web_dashboard_needs_the_token_and_this_host(
    server: ServerProcess, web_dashboard: tuple[str, int, str]
) -> None:
    _, port, token = web_dashboard
    assert token == server.token
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as http:
        for path in ("/", "/?token=wrong", "/ws", "/download/x"):
            answer = http.get(path)
            assert answer.status_code == 401, (path, answer.status_code)
            assert "carries the server's token" in answer.text
        assert http.get("/", headers={"Host": f"localhost:{port}"}).status_code == 421
        opened = http.get(f"/?token={token}")  # follows the redirect, with the cookie set
        assert opened.status_code == 200 and "textual-terminal" in opened.text
        assert "googleapis" not in opened.text  # nothing fetched from elsewhere
        assert "token=" not in str(opened.url)  # the token leaves the address bar
        # the socket is this page's only: another origin is refused, even with the cookie
        refused = http.get("/ws", headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403


def test_the_web_dashboard_in_headless_chromium(
    server: ServerProcess, web_dashboard: tuple[str, int, str], tmp_path: Path
) -> None:
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    # A demo job holds the one slot until the test cancels it, so the CLI's job is on the
    # table before it ends, whatever the time chromium takes (a fixed 6 s job was not).
    with server.client() as http:
        blocker = http.post("/api/jobs", json={"type": "demo", "input": {"steps": 1000}})
        assert blocker.status_code == 201, blocker.text
    submitted = subprocess.run(
        [sys.executable, "-m", "jobctl", "submit", "--type", "demo", "--quiet",
         "--input", '{"steps": 4, "step_seconds": 0.5}'],
        env=env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    address, _, _ = web_dashboard
    browser = Browser(tmp_path / "chromium")
    try:
        browser.open(address)
        screen = browser.wait_for(job[:8], 60)  # the jobs table, with the CLI's job
        assert "jobctl · jobs" in screen and "STATUS" in screen
        first = browser.screenshot(tmp_path / "web-table.png")
        row = next(line for line in screen.splitlines() if job[:8] in line)
        assert "completed" not in row, row  # seen before it ended...
        with server.client() as http:
            cancel = http.post(f"/api/jobs/{blocker.json()['id']}/cancel")
            assert cancel.status_code == 202, cancel.text
        done = browser.wait_for_row(job[:8], "✔ completed", 60)  # ...and when it has
        assert "100%" in done
        last = browser.screenshot(tmp_path / "web-completed.png")
        for png in (first, last):
            assert png.startswith(b"\x89PNG") and len(png) > 10_000  # a drawn page
        assert first != last
    finally:
        browser.close()
        keep = os.environ.get("JOBCTL_KEEP_SCREENSHOTS")
        if keep:
            for name in ("web-table.png", "web-completed.png"):
                if (tmp_path / name).exists():
                    (Path(keep) / name).write_bytes((tmp_path / name).read_bytes())
