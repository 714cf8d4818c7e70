"""Bounded waits and readers for Pilot tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.pilot import Pilot

from tests.tui.screen_text import screen_text


async def until(
    pilot: Pilot[object], predicate: Callable[[], object], timeout: float = 20.0, what: str = ""
) -> None:
    """Let the app run until predicate() is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError(
        f"not met within {timeout}s: {what}\n--- screen ---\n{screen_text(pilot.app)}"
    )


async def until_text(pilot: Pilot[object], text: str, timeout: float = 20.0) -> None:
    await until(pilot, lambda: text in screen_text(pilot.app), timeout, f"{text!r} on screen")


def notes(app: App[object]) -> list[str]:
    return [n.message for n in app._notifications]
