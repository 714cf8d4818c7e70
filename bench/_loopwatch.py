"""Run `python -m jobctl ...` with a watch on its event loop, for bench/history.py.

    python bench/_loopwatch.py OUT.jsonl -m jobctl server run ...

A task on the server's loop sleeps 5 ms at a time; each time it wakes later than asked,
it notes the lag, less the time the process's threads spent waiting for a CPU meanwhile
(their run-queue waits in /proc/self/task/*/schedstat, nanoseconds: the loop's own
thread, or a thread holding the GIL that the loop waits for). What is left is what the
server did to its own loop: a callback computing, or the thread blocked inside one (a
write syncing, a page read from disk, the GIL held by a thread at work). On a machine
loaded by other work the health probe's latency is mostly the run queue; this figure
is not (it can only err low, when several threads wait at once). One JSON line per lag over 2 ms: [monotonic start s, lag ms, lag less
the run-queue wait ms, CPU ms of the loop's thread], flushed every second. And OUT.gc: a line per garbage collection
of the oldest generation or over 2 ms (monotonic start, generation, ms, objects freed).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import runpy
import sys
import time
from pathlib import Path

TICK = 0.005
NOTE_MS = 2.0


def _run_queue_ns() -> dict[str, int]:
    """ns that each of the process's threads has waited on the run queue."""
    waits = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            waits[task.name] = int((task / "schedstat").read_text().split()[1])
    return waits


def _waited(before: dict[str, int], after: dict[str, int]) -> int:
    """ns waited on the run queue between two looks, by the threads seen at both."""
    return sum(max(after[t] - before[t], 0) for t in after.keys() & before.keys())


async def _watch(out: Path) -> None:
    pending: list[list[float]] = []
    flushed = time.monotonic()
    with out.open("a") as f:
        while True:
            t0 = time.monotonic()
            c0, wait0 = time.thread_time(), _run_queue_ns()
            await asyncio.sleep(TICK)
            t1 = time.monotonic()
            c1, wait1 = time.thread_time(), _run_queue_ns()
            lag = (t1 - t0 - TICK) * 1000
            if lag > NOTE_MS:
                own = min(max(lag - _waited(wait0, wait1) / 1e6, 0.0), lag)
                pending.append([t0, round(lag, 2), round(own, 2), round((c1 - c0) * 1000, 2)])
            if pending and t1 - flushed > 1.0:
                f.write("".join(json.dumps(p) + "\n" for p in pending))
                f.flush()
                pending.clear()
                flushed = t1


def main() -> None:
    out = Path(sys.argv[1])
    if sys.argv[2] != "-m":
        raise SystemExit("usage: _loopwatch.py OUT -m MODULE ARGS...")
    module = sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]

    import uvloop

    made = uvloop.new_event_loop

    def new_event_loop() -> asyncio.AbstractEventLoop:
        loop = made()
        loop.call_soon(lambda: loop.create_task(_watch(out)))
        return loop

    uvloop.new_event_loop = new_event_loop  # type: ignore[assignment]
    gc_file = out.with_suffix(".gc")
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        elif info.get("generation") == 2 or time.monotonic() - started[0] > 0.002:
            with gc_file.open("a") as f:
                f.write(
                    f"{started[0]} {info.get('generation')} {(time.monotonic() - started[0]) * 1000:.1f} {info.get('collected')}\n"
                )

    gc.callbacks.append(on_gc)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
