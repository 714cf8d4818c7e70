"""How long to wait before trying again: the one retry schedule of the client side.

Every loop that tries again after a failure takes its waits from a `Backoff`: the
HTTP clients' resends, the feed's polls while the job API fails and its Realtime
reconnects, and `logs --follow` while it waits for new lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits that grow from `first` by `factor` per attempt up to `cap`, each scaled by a
    random factor between `jitter[0]` and `jitter[1]` so that clients do not retry in step."""

    first: float
    factor: float = 2.0
    cap: float = math.inf
    jitter: tuple[float, float] = (1.0, 1.0)

    def step(self, attempt: int) -> float:
        """The wait before try `attempt + 1` (0: after the first failure), without jitter."""
        return min(self.cap, self.first * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, rng: Callable[[], float] | None = None) -> float:
        """The wait with jitter; `rng` gives numbers in [0, 1) (default: random.random)."""
        if rng is None:
            import random

            rng = random.random
        low, high = self.jitter
        return max(0.0, self.step(attempt) * (low + (high - low) * rng()))
