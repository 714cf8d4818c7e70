"""follow_jobs with a scripted job source and a fake clock: no server, no sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from jobctl.errors import ExitCode, UnreachableError, WatchTimeoutError
from jobctl.follow import FollowOptions, follow_jobs, outcome_code
from jobctl.models import Job, JobStatus


@dataclass
class Script:
    """Answers get_job from a list of snapshots (or errors); the clock advances on sleep."""

    answers: list[Job | Exception]
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def get_job(self, job_id: str) -> Job:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def job(status: str, progress: int = 0) -> Job:
    return Job(id="j1", type="demo", status=JobStatus(status), progress=progress)


def test_reports_each_change_once_and_returns_the_end() -> None:
    script = Script([job("pending"), job("running", 10), job("running", 10), job("completed", 100)])
    seen: list[Job] = []
    final = follow_jobs(script, ["j1"], seen.append, clock=lambda: script.now, sleep=script.sleep)
    assert [j.status for j in seen] == ["pending", "running", "completed"]
    assert final["j1"].progress == 100
    assert script.slept[2] > script.slept[1]  # backs off while nothing changes


def test_timeout() -> None:
    script = Script([job("running")])
    with pytest.raises(WatchTimeoutError, match="still running: j1"):
        follow_jobs(
            script,
            ["j1"],
            lambda j: None,
            FollowOptions(timeout=3),
            clock=lambda: script.now,
            sleep=script.sleep,
        )
    assert script.now == pytest.approx(3)


def test_survives_a_short_outage_and_gives_up_on_a_long_one() -> None:
    lost = UnreachableError("refused")
    script = Script([job("running"), lost, lost, job("completed")])
    final = follow_jobs(
        script,
        ["j1"],
        lambda j: None,
        FollowOptions(reconnect_seconds=30),
        clock=lambda: script.now,
        sleep=script.sleep,
    )
    assert final["j1"].status == "completed"

    script = Script([job("running"), lost])
    with pytest.raises(UnreachableError, match="lost the job server for 5s"):
        follow_jobs(
            script,
            ["j1"],
            lambda j: None,
            FollowOptions(reconnect_seconds=5),
            clock=lambda: script.now,
            sleep=script.sleep,
        )


def test_outcome_code() -> None:
    assert outcome_code([job("completed")]) == ExitCode.OK
    assert outcome_code([job("completed"), job("cancelled")]) == ExitCode.JOB_CANCELLED
    assert outcome_code([job("cancelled"), job("failed")]) == ExitCode.JOB_FAILED
