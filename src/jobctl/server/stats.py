"""Monitoring figures and the alert thresholds of the original spec.

Every figure comes from a few index ranges and rollup rows (store.stats, migration
0006), so a stats request costs the same with a thousand jobs of history or ten million.
Counts are exact. Duration percentiles are estimates, read from per-minute and per-hour
histograms of durations in buckets ~10% wide (the response says so: `estimate: true`);
a job's count and average duration are exact. "The last hour" is whole minutes of
completion time, from the start of the minute an hour ago; "the last 7 days" whole
hours, from the start of the hour 7 days ago (the response gives both: `windows`), so
that each is read from a few coarse periods (minutes then tens of minutes; hours then
days: migration 0008), not from one row per minute or hour.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from typing import Any

from jobctl.server.records import COMPLETED, FAILED, STATUSES, now_us
from jobctl.server.store.base import MINUTE_US, StatsWindow, Store

US = 1_000_000
HOUR = 3600 * US
WEEK = 7 * 24 * HOUR

FAILURE_RATE_ALERT = 0.10  # over 10% failed in the last hour
QUEUE_DEPTH_ALERT = 50
P95_FACTOR_ALERT = 2.0  # p95 over twice its usual (the last 7 days)
STUCK_ALERT = 5
STUCK_AFTER_US = 10 * 60 * US  # running over 10 minutes
UNSTARTED_AFTER_US = 5 * 60 * US  # or pending, never started, for 5


def _bucket_bounds() -> list[int]:
    """lo_us of each duration bucket: the recurrence of duration_buckets (migration 0006)."""
    lows = [0, 100]
    while len(lows) < 261:
        lows.append(lows[-1] + lows[-1] // 10)
    return lows


BUCKET_LO = _bucket_bounds()
ESTIMATE_NOTE = (
    "p50/p95 durations are estimated from duration buckets about 10% wide;"
    " counts and averages are exact"
)


def bucket_of(duration_us: int) -> int:
    """The duration bucket of a duration (what the rollup triggers compute in SQL)."""
    return bisect.bisect_right(BUCKET_LO, max(duration_us, 0)) - 1


def percentile(values: list[float], p: float) -> float | None:
    """The exact percentile (linear between ranks), for the tests' naive figures."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def bucket_percentile(hist: dict[int, int], p: float) -> float | None:
    """The p-th percentile, in seconds, of durations counted per bucket: the rank's
    bucket, and a place in it proportional to the rank among the bucket's jobs."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = (total - 1) * p / 100
    seen = 0
    for bucket in sorted(hist):
        n = hist[bucket]
        if n > 0 and seen + n > rank:
            lo = BUCKET_LO[bucket]
            hi = BUCKET_LO[bucket + 1] if bucket + 1 < len(BUCKET_LO) else lo + lo // 10
            share = min(max((rank - seen + 0.5) / n, 0.0), 1.0)
            return (lo + (hi - lo) * share) / US
        seen += n
    return BUCKET_LO[max(hist)] / US


async def compute_stats(store: Store, user_id: str | None) -> dict[str, Any]:
    now = now_us()
    window = StatsWindow(
        user_id=user_id,
        hour_minute=(now - HOUR) // MINUTE_US,
        week_minute=(now - WEEK) // HOUR * HOUR // MINUTE_US,
        created_since=now - HOUR,
        stuck_started_before=now - STUCK_AFTER_US,
        stuck_created_before=now - UNSTARTED_AFTER_US,
    )
    figures = await store.stats(window)
    by_status = dict.fromkeys(STATUSES, 0)
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    for job_type, status, n in figures.counts:
        by_status[status] = by_status.get(status, 0) + n
        by_type[job_type][status] = by_type[job_type].get(status, 0) + n

    finished_hour = failed_hour = 0
    recent: dict[str, dict[int, int]] = defaultdict(dict)
    for job_type, status, bucket, n, _total in figures.last_hour:
        if status in (COMPLETED, FAILED):
            finished_hour += n
        if status == FAILED:
            failed_hour += n
        if status == COMPLETED and bucket >= 0:
            recent[job_type][bucket] = recent[job_type].get(bucket, 0) + n
    week: dict[str, dict[int, int]] = defaultdict(dict)
    week_us: dict[str, int] = defaultdict(int)
    for job_type, bucket, n, total in figures.week:
        week[job_type][bucket] = week[job_type].get(bucket, 0) + n
        week_us[job_type] += total

    duration_by_type = {}
    slow_types = []
    for job_type, hist in sorted(week.items()):
        count = sum(hist.values())
        if count <= 0:
            continue
        usual_p95 = bucket_percentile(hist, 95)
        hour_p95 = bucket_percentile(recent.get(job_type, {}), 95)
        duration_by_type[job_type] = {
            "count": count,
            "avg_seconds": week_us[job_type] / count / US,
            "p50_seconds": bucket_percentile(hist, 50),
            "p95_seconds": usual_p95,
            "last_hour_count": sum(recent.get(job_type, {}).values()),
            "last_hour_p95_seconds": hour_p95,
            "estimate": True,
        }
        if (
            hour_p95 is not None
            and usual_p95
            and count >= 20
            and hour_p95 > P95_FACTOR_ALERT * usual_p95
        ):
            slow_types.append(job_type)

    stuck = figures.stuck
    created_hour = figures.created
    failure_rate = failed_hour / finished_hour if finished_hour else 0.0
    queue_depth = by_status["pending"]

    alerts = []
    if failure_rate > FAILURE_RATE_ALERT:
        alerts.append(
            {"name": "failure_rate", "message": f"{failure_rate:.0%} of jobs failed in the last hour"
             f" (threshold {FAILURE_RATE_ALERT:.0%})"}
        )  # fmt: skip
    if queue_depth > QUEUE_DEPTH_ALERT:
        alerts.append(
            {"name": "queue_depth", "message": f"{queue_depth} jobs pending"
             f" (threshold {QUEUE_DEPTH_ALERT})"}
        )  # fmt: skip
    for job_type in slow_types:
        alerts.append(
            {"name": "p95_duration", "message": f"{job_type}: last hour's p95 is over"
             f" {P95_FACTOR_ALERT:g}x its usual"}
        )  # fmt: skip
    if stuck > STUCK_ALERT:
        alerts.append(
            {"name": "stuck_jobs", "message": f"{stuck} stuck jobs (threshold {STUCK_ALERT})"}
        )
    return {
        "counts": by_status,
        "by_type": {t: dict(v) for t, v in sorted(by_type.items())},
        "created_last_hour": created_hour,
        "creation_rate_per_minute": created_hour / 60,
        "finished_last_hour": finished_hour,
        "failed_last_hour": failed_hour,
        "failure_rate": failure_rate,
        "queue_depth": queue_depth,
        "duration_by_type": duration_by_type,
        "stuck_jobs": stuck,
        "stuck_job_ids": figures.stuck_ids,
        "thresholds": {
            "failure_rate": FAILURE_RATE_ALERT,
            "queue_depth": QUEUE_DEPTH_ALERT,
            "p95_factor": P95_FACTOR_ALERT,
            "stuck_jobs": STUCK_ALERT,
        },
        "alerts": alerts,
        "windows": {
            "last_hour_since_us": window.hour_minute * MINUTE_US,
            "week_since_us": window.week_minute * MINUTE_US,
        },
        "estimates": {"duration_by_type": ESTIMATE_NOTE},
    }
