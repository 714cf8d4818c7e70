"""Fixtures for the dashboard tests: fakes for the UI-layer tests, deterministic settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jobctl.models import JobStatus
from jobctl.tui.app import JobctlApp, make_app
from jobctl.tui.settings import TuiSettings
from tests.tui.fakes import FakeClient, FakeFeed, fixed_clock, make_job

STATUSES = [
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
]


def settings(**kw: Any) -> TuiSettings:
    values: dict[str, Any] = {
        "clock": fixed_clock,
        "target": "local · http://127.0.0.1:8765",
        "stats_interval": 3600.0,  # the tests ask for stats themselves
        "tick_interval": 3600.0,
        "log_interval": 0.05,
    }
    values.update(kw)
    return TuiSettings(**values)


def sample_client(count: int = 10) -> FakeClient:
    client = FakeClient()
    for n in range(1, count + 1):
        status = STATUSES[n % 5]
        extra: dict[str, Any] = {"message": f"Step {n % 4}/3 done"}
        if status == JobStatus.RUNNING:
            extra.update(progress=(n * 7) % 100)
        if status == JobStatus.FAILED:
            extra.update(error="demo failure at step 2 (try 3 of 3)", message=None, attempt=3)
        if n % 3 == 0:
            extra["type"] = "journal_extraction"
        client.add(make_job(n, status, **extra))
    return client


@pytest.fixture
def client() -> FakeClient:
    return sample_client()


@pytest.fixture
def feed() -> FakeFeed:
    return FakeFeed()


@pytest.fixture
def build(client: FakeClient, feed: FakeFeed) -> Callable[..., JobctlApp]:
    def factory(**kw: Any) -> JobctlApp:
        return make_app(client, feed, settings(**kw))

    return factory
