"""Fencing (issue 10, item 2): a server that stalls past its leases and comes back
writes nothing for the jobs another server took over, and runs none of their steps.

Two servers on one PostgreSQL with a 3 s lease; one is stopped with SIGSTOP while it
runs jobs, the other re-queues and finishes them, then the stopped one is resumed.
Side effects are counted as in test_postgres_servers.py (tests/pgjobs.py), with marker
lines at the stop and the resume.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ServerProcess, wait_for
from tests.server.test_postgres_servers import counts, read_effects

pytestmark = pytest.mark.postgres

N_JOBS, STEPS, STEP_SECONDS = 12, 6, 0.2
NO_LIMITS = ["--limit", "user=0", "--limit", "key=0", "--limit", "org=0", "--limit", "decision=0"]


def mark(effects: Path, what: str) -> None:
    fd = os.open(effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{what} 0 0\n".encode())
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_server_stopped_past_its_lease_and_resumed_writes_and_reruns_nothing(
    make_server: Any, pg_url: str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    env = {"JOBCTL_TEST_EFFECTS": str(effects), "JOBCTL_LEASE_SECONDS": "3"}
    args = ["--db", pg_url, "--functions", "pgjobs", "--slots", "8", *NO_LIMITS]
    victim: ServerProcess = make_server(*args, env=env)
    other: ServerProcess = make_server(*args, env=env)
    assert victim.proc is not None and other.proc is not None
    victim_pid = victim.proc.pid
    owner_like = f"%:{victim_pid}:%"
    job = {"type": "paced", "input": {"steps": STEPS, "step_seconds": STEP_SECONDS}}
    with victim.client() as a, other.client() as b:
        ids = [(a, b)[i % 2].post("/api/jobs", json=job).json()["id"] for i in range(N_JOBS)]

    def victim_mid_job() -> bool:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM jobs j WHERE status = 'running' AND lease_owner LIKE %s"
                " AND EXISTS (SELECT 1 FROM steps s WHERE s.job_id = j.id"
                " AND s.status = 'completed')",
                (owner_like,),
            ).fetchone()
        return bool(row and row[0] >= 2)

    wait_for(victim_mid_job, timeout=30, interval=0.01)
    os.kill(victim_pid, signal.SIGSTOP)
    try:
        mark(effects, "stop")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            orphans = {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT id, lease_token FROM jobs WHERE status = 'running'"
                    " AND lease_owner LIKE %s",
                    (owner_like,),
                )
            }
        assert len(orphans) >= 2
        # The other server re-queues them once the lease runs out and finishes every job.
        wait_for(lambda: counts(pg_url) == {"completed": N_JOBS}, timeout=60, interval=0.1)
        mark(effects, "resume")
    finally:
        os.kill(victim_pid, signal.SIGCONT)

    # The resumed server finds out, from its writes and renewals, and gives them up.
    wait_for(lambda: victim.log.count("lost its lease") >= len(orphans), timeout=30)
    time.sleep(1.0)  # time for anything it would still (wrongly) do
    assert victim.proc.poll() is None and other.proc.poll() is None
    with victim.client() as a:
        assert a.get("/api/health").status_code == 200
    assert counts(pg_url) == {"completed": N_JOBS}

    with psycopg.connect(pg_url, autocommit=True) as conn:
        jobs = {r[0]: r[1:] for r in conn.execute("SELECT id, output, lease_owner FROM jobs")}
        steps = {
            (r[0], r[1]): (r[2], r[3])
            for r in conn.execute("SELECT job_id, name, status, attempt FROM steps")
        }
    assert set(jobs) == set(ids)
    assert all(
        output == f'{{"steps":{STEPS}}}' and owner is None for output, owner in jobs.values()
    )
    assert len(steps) == N_JOBS * STEPS

    effects_seen = read_effects(effects)
    markers = [i for i, (job_id, _, _) in enumerate(effects_seen) if job_id in ("stop", "resume")]
    resumed_at = markers[1]
    runs: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    for job_id, step, pid in effects_seen:
        if job_id not in ("stop", "resume"):
            runs[(job_id, step)].append(pid)
    after_resume = [e for e in effects_seen[resumed_at + 1 :] if e[2] == victim_pid]
    assert after_resume == [], "the resumed server ran steps of jobs it no longer held"
    taken_over = 0
    for job_id in ids:
        for step in range(1, STEPS + 1):
            pids = runs[(job_id, step)]
            status, attempt = steps[(job_id, f"step-{step}")]
            assert status == "completed"
            assert 1 <= len(pids) <= 2, pids
            if len(pids) == 2:  # the one step in flight at the stop ran again, elsewhere
                assert pids[0] == victim_pid and pids[1] != victim_pid
                assert job_id in orphans
            # Rows keep their attempts: each run counted once, none overwritten by the
            # stalled server (one more when it had marked the step started but was
            # stopped before the body ran).
            assert len(pids) <= attempt <= len(pids) + (job_id in orphans), (pids, attempt)
            if job_id not in orphans:
                assert attempt == len(pids) == 1
        if job_id in orphans:
            taken_over += sum(pid != victim_pid for s in range(1, STEPS + 1)
                              for pid in runs[(job_id, s)])  # fmt: skip
    assert taken_over > 0, "the other server should have finished the stopped one's jobs"
    in_flight = {j for (j, _), pids in runs.items() if len(pids) == 2}
    assert len(in_flight) == len([k for k, p in runs.items() if len(p) == 2]), (
        "at most one step per job ran twice"
    )
    print(f"\n{len(orphans)} job(s) taken over, {len(in_flight)} in-flight step(s) ran again")
