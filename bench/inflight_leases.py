"""SQLite with 5,000 jobs running under one owner: the CPU of one renewal of all their
leases, the longest the event loop waited meanwhile (a sleep(0) probe: the renewal's own
hold, and any checkpoint its commits set off), and an empty claim's time (the
dispatcher's look when nothing is pending, no limits set). Against another tree:
PYTHONPATH=that/src python bench/inflight_leases.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid

from jobctl.server.records import Limits, NewJob, now_us
from jobctl.server.store.sqlite import SQLiteStore

JOBS = 5000
ROUNDS = 5
NO_LIMITS = Limits(None, (), None)


async def main() -> None:
    store = SQLiteStore(os.path.join(tempfile.mkdtemp(prefix="jobctl-leases-"), "r.db"))
    await store.open()
    news = [NewJob(str(uuid.uuid4()), "t", "{}", f"u{i % 100}", 1) for i in range(JOBS)]
    await store.create_jobs(news, now_us(), 10**9)
    rows = await store.claim_jobs("w", JOBS, now_us(), 30_000_000, NO_LIMITS)
    held = {r.id: r.lease_token for r in rows}
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0)
            lags.append(time.perf_counter() - started)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    cpu0 = time.process_time()
    kept: set[str] = set()
    for _ in range(ROUNDS):
        kept = await store.renew_leases("w", held, now_us() + 30_000_000)
    cpu = (time.process_time() - cpu0) / ROUNDS
    stop.set()
    await prober
    started = time.perf_counter()
    await store.claim_jobs("w", JOBS, now_us(), 30_000_000, NO_LIMITS)
    claim = time.perf_counter() - started
    await store.close()
    print(
        f"renew {JOBS} leases: {len(kept)} kept, {cpu * 1e3:.1f} ms CPU each; longest loop "
        f"wait {max(lags) * 1e3:.1f} ms; an empty claim with {JOBS} running {claim * 1e3:.2f} ms"
        f" (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
