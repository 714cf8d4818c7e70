"""Clients that hang up mid-answer never take the server down (issue 10, item 1).

`jobctl`'s main() restores SIGPIPE's default for the client commands, and the server
runs through the same main(): a write to a client that has gone (a socket in
CLOSE_WAIT that then got a reset) raised SIGPIPE and killed it. These tests make the
answers large enough (about 5 MB) that the server is still writing when the client
goes, then check that the server is alive, logs the disconnect and answers the next
request.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from tests.clirun import SCRIPT
from tests.conftest import ServerProcess

N_JOBS = 300
PAD = "x" * 16_000  # 300 jobs of 16 kB inputs: a 500-row page is about 5 MB


@pytest.fixture
def big_server(server: ServerProcess) -> ServerProcess:
    """A server whose full listing is larger than loopback's socket buffers."""
    event = {"name": "demo", "data": {"steps": 1, "step_seconds": 0, "pad": PAD}}
    with server.client() as http:
        for _ in range(N_JOBS // 50):  # bodies stay under the 1 MiB limit
            answer = http.post(f"/e/{server.token}", json=[event] * 50, timeout=60)
            assert answer.status_code == 200, answer.text
        page = http.get("/api/jobs", params={"limit": 500, "fields": "input"})
        assert page.status_code == 200 and len(page.content) > 4_500_000
    return server


def _raw_request(server: ServerProcess) -> tuple[socket.socket, bytes]:
    request = (
        f"GET /api/jobs?limit=500&fields=input HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.token}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the answer backs up
    sock.connect(("127.0.0.1", server.port))
    return sock, request


def _alive_and_answering(server: ServerProcess) -> None:
    assert server.proc is not None and server.proc.poll() is None, (
        f"the server died (exit status {server.proc.returncode if server.proc else '?'}):\n"
        + server.log[-2000:]
    )
    with server.client() as http:
        assert http.get("/api/health").status_code == 200
        assert http.get("/api/jobs", params={"limit": 1}).status_code == 200


# How the client goes: read the head of the answer or not, half-close (FIN, so the
# server's socket is in CLOSE_WAIT), wait, then close with unread data (a reset) or
# abort (SO_LINGER 0). "rws" is the one that killed the server every time.
MODES = ["rws", "ws", "rwsl", "rl", "rsl", "l", "r", "rw"]


def test_raw_clients_resetting_mid_answer_leave_the_server_up(big_server: ServerProcess) -> None:
    for round_ in range(3):
        for mode in MODES:
            sock, request = _raw_request(big_server)
            sock.sendall(request)
            if "r" in mode:
                assert sock.recv(100).startswith(b"HTTP/1.1 200")
            if "w" in mode:
                sock.shutdown(socket.SHUT_WR)
            if "s" in mode:
                time.sleep(0.05)
            if "l" in mode:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            time.sleep(0.05)
            assert big_server.proc is not None and big_server.proc.poll() is None, (
                f"the server died on mode {mode!r}, round {round_}:"
                f" exit status {big_server.proc.returncode}"
            )
    _alive_and_answering(big_server)
    assert "hung up before the answer to GET /api/jobs was sent" in big_server.log


CLIENT = """
import socket, sys, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sock.connect(("127.0.0.1", int(sys.argv[1])))
sock.sendall(sys.argv[2].encode())
sock.recv(100)
sock.shutdown(socket.SHUT_WR)
print("reading", flush=True)
time.sleep(60)
"""


def test_a_client_killed_mid_answer_then_the_next_request_is_answered(
    big_server: ServerProcess,
) -> None:
    request = (
        f"GET /api/jobs?limit=500&fields=input HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {big_server.token}\r\n\r\n"
    )
    for _ in range(5):
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(big_server.port), request],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout is not None and client.stdout.readline() == "reading\n"
        finally:
            os.kill(client.pid, signal.SIGKILL)
            client.wait(10)
            if client.stdout is not None:
                client.stdout.close()
        time.sleep(0.1)
        _alive_and_answering(big_server)


def test_jobctl_list_all_json_into_head(big_server: ServerProcess) -> None:
    """The issue's pipeline: the reader goes after 100 bytes, jobctl dies of SIGPIPE as
    a filter should (141), and the server is not taken with it."""
    jobctl = str(SCRIPT) if SCRIPT.exists() else f"{sys.executable} -m jobctl"
    for _ in range(3):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{jobctl} list --all --json | head -c 100"],
            capture_output=True,
            timeout=120,
        )
        assert len(done.stdout) == 100 and done.stdout.startswith(b"[")
        assert done.returncode == 141, done.stderr[-2000:]
        _alive_and_answering(big_server)
