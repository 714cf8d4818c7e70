"""records.iso: the API's timestamps, formatted from a per-second cache (#15)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from jobctl.server.records import iso


def reference(us: int) -> str:
    when = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_iso_matches_datetime_across_the_cache() -> None:
    rng = random.Random(15)
    t0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    edges = [0, 1, 999_999, 1_000_000, -1, -1_000_001, t0, t0 - 1, 4_102_444_799_999_999]
    # More distinct seconds than the cache keeps, so it is cleared and filled again.
    spread = [rng.randrange(0, 4_102_444_800_000_000) for _ in range(10_000)]
    same_second = [t0 + 7_000_000 + rng.randrange(1_000_000) for _ in range(100)]
    for us in edges + spread + same_second + spread[:50]:
        assert iso(us) == reference(us), us
    assert iso(None) is None
    assert iso(t0 + 123_456) == "2026-01-01T00:00:00.123456Z"
