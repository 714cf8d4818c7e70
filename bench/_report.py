"""What bench/engine.py and bench/pg_engine.py print: medians out of run_suite results."""

from __future__ import annotations

from typing import Any


def figures(result: dict[str, Any]) -> tuple[float, float, float]:
    """(throughput jobs/s, p50 ms, p99 ms): the medians of a run_suite result."""
    tp = result.get("throughput") or {}
    lat = result.get("latency") or {}
    rate = (tp.get("rate") or {}).get("median", float("nan"))
    p50 = lat.get("p50_ms", {}).get("median", float("nan"))
    p99 = lat.get("p99_ms", {}).get("median", float("nan"))
    return float(rate), float(p50), float(p99)


def print_table(results: dict[str, dict[str, Any]], width: int) -> None:
    print(f"{'system':{width}} {'jobs/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, result in results.items():
        rate, p50, p99 = figures(result)
        print(f"{name:{width}} {rate:9.0f} {p50:8.2f} {p99:8.2f}")
