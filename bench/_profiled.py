"""Run `python -m jobctl ...` under cProfile timed by CPU (time.process_time), not the
wall clock, so that on a loaded machine the figures say where the server's own CPU goes
(a wall-clock profile charges each function for the time the process sat descheduled).

    python bench/_profiled.py OUT.prof server run ...   # then: python -m pstats OUT.prof

The stats are written when the server exits (SIGTERM drains it, as usual).
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out = sys.argv[1]
    sys.argv = ["jobctl", *sys.argv[2:]]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module("jobctl", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
