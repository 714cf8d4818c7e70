"""Monitoring figures and the alert thresholds of the original spec."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from jobctl.server.records import RUNNING, STATUSES, now_us
from jobctl.server.store.base import Store

US = 1_000_000
HOUR = 3600 * US

FAILURE_RATE_ALERT = 0.10  # over 10% failed in the last hour
QUEUE_DEPTH_ALERT = 50
P95_FACTOR_ALERT = 2.0  # p95 over twice its usual (the last 7 days)
STUCK_ALERT = 5
STUCK_AFTER_US = 10 * 60 * US  # running over 10 minutes


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def compute_stats(store: Store, user_id: str | None) -> dict[str, Any]:
    now = now_us()
    counts = await store.status_counts(user_id)
    by_status = dict.fromkeys(STATUSES, 0)
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    for job_type, status, n in counts:
        by_status[status] = by_status.get(status, 0) + n
        by_type[job_type][status] = by_type[job_type].get(status, 0) + n

    week = await store.finished_since(user_id, now - 7 * 24 * HOUR)
    durations: dict[str, list[float]] = defaultdict(list)
    recent: dict[str, list[float]] = defaultdict(list)
    finished_hour = failed_hour = 0
    for job in week:
        if job.completed_at is None:
            continue
        if job.completed_at >= now - HOUR:
            if job.status in ("completed", "failed"):
                finished_hour += 1
            if job.status == "failed":
                failed_hour += 1
        if job.status == "completed" and job.started_at is not None:
            seconds = (job.completed_at - job.started_at) / US
            durations[job.type].append(seconds)
            if job.completed_at >= now - HOUR:
                recent[job.type].append(seconds)

    duration_by_type = {}
    slow_types = []
    for job_type, values in durations.items():
        usual_p95 = percentile(values, 95)
        last_hour = recent.get(job_type, [])
        hour_p95 = percentile(last_hour, 95)
        duration_by_type[job_type] = {
            "count": len(values),
            "avg_seconds": sum(values) / len(values),
            "p50_seconds": percentile(values, 50),
            "p95_seconds": usual_p95,
            "last_hour_p95_seconds": hour_p95,
        }
        if (
            hour_p95 is not None
            and usual_p95
            and len(values) >= 20
            and hour_p95 > P95_FACTOR_ALERT * usual_p95
        ):
            slow_types.append(job_type)

    stuck_rows = await store.active_jobs_older_than(now - STUCK_AFTER_US, now - 5 * 60 * US)
    if user_id is not None:
        stuck_rows = [r for r in stuck_rows if r.user_id == user_id]
    stuck = [r.id for r in stuck_rows if r.status == RUNNING]
    stuck += [r.id for r in stuck_rows if r.status != RUNNING]
    created_hour = await store.created_since(user_id, now - HOUR)
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
    if len(stuck) > STUCK_ALERT:
        alerts.append(
            {"name": "stuck_jobs", "message": f"{len(stuck)} stuck jobs (threshold {STUCK_ALERT})"}
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
        "stuck_jobs": len(stuck),
        "stuck_job_ids": stuck[:50],
        "thresholds": {
            "failure_rate": FAILURE_RATE_ALERT,
            "queue_depth": QUEUE_DEPTH_ALERT,
            "p95_factor": P95_FACTOR_ALERT,
            "stuck_jobs": STUCK_ALERT,
        },
        "alerts": alerts,
    }
