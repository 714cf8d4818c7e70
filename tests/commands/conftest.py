"""Fixtures for command tests: a server with a few jobs, a fault-injecting server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faultserver import FaultServer


@pytest.fixture
def fault() -> Iterator[type[FaultServer]]:
    """Factory: fault("500") -> a started FaultServer; all stopped at teardown."""
    started: list[FaultServer] = []

    def factory(mode: str, **options: object) -> FaultServer:
        server = FaultServer(mode, **options).__enter__()
        started.append(server)
        return server

    yield factory  # type: ignore[misc]
    for server in started:
        server.__exit__(None, None, None)
