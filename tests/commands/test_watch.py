"""`jobctl watch`, the real command against the real server: every exit code, the output
modes, --last/--all, and one user never seeing another's jobs."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from tests.clirun import invoke, jobctl
from tests.commands.watchkit import Burst, Watch, demo, mint, parse_jsonl, seen_as, status_of
from tests.conftest import ServerProcess, wait_for

QUICK = {"steps": 4, "step_seconds": 0.15}
LONG = {"steps": 100, "step_seconds": 0.2}
FAILS = {"steps": 2, "step_seconds": 0.05, "fail_at": 1, "fail_times": 99}


def test_completed_exit_0_over_realtime_with_jsonl(make_server: Any, tmp_path: Path) -> None:
    server, burst = Burst.server(make_server, tmp_path)
    with server.client() as http:
        # they run until the watch is up and has seen them running (its first poll runs
        # beside its Realtime subscription), then end 5 s later: over Realtime, however
        # slow the machine (jobs of a fixed length could end before it subscribed)
        ids = [burst.submit(http) for _ in range(3)]
    watch = Watch(tmp_path, *ids, "--jsonl")
    wait_for(lambda: seen_as(watch.out, "running") == set(ids), timeout=60)
    burst.end(after=5.0)
    assert watch.wait() == 0, watch.err
    stream = parse_jsonl(watch.out)
    summary = stream.summary
    assert summary["exit_code"] == 0 and summary["reason"] == "done"
    assert summary["counts"]["completed"] == 3
    assert {j["id"]: j["status"] for j in summary["jobs"]} == dict.fromkeys(ids, "completed")
    assert summary["deliveries"].get("realtime", 0) > 0, "Realtime carried the updates"
    ended = [t["job_id"] for t in stream.transitions if t["to"] == "completed"]
    assert sorted(ended) == sorted(ids), "one completed transition per job"
    # the human view went to stderr: a plain line per transition, then the summary
    assert "jobctl: 3 jobs: 3 completed" in watch.err
    assert "\x1b" not in watch.out + watch.err, "no escape codes off a terminal"


def test_plain_lines_when_piped_and_forced_polling(server: ServerProcess) -> None:
    with server.client() as http:
        ids = [demo(http, **QUICK) for _ in range(2)]
    result = jobctl("watch", *ids, "--poll", "--interval", "0.2")
    assert result.code == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert all(len(r) == 5 for r in rows), result.stdout
    for job_id in ids:
        statuses = [r[2] for r in rows if r[0] == job_id]
        assert statuses[-1] == "completed"
        assert all(a != b for a, b in itertools.pairwise(statuses)), "no repeats"
    assert "realtime" not in result.stderr  # --poll: no Realtime, nothing to fall back from


def test_failed_in_a_mixed_batch_exit_1(server: ServerProcess) -> None:
    with server.client() as http:
        ok, bad, gone = demo(http, **QUICK), demo(http, **FAILS), demo(http, **LONG)
        assert http.post(f"/api/jobs/{gone}/cancel").is_success
    result = jobctl("watch", ok, bad, gone, "--jsonl")
    assert result.code == 1, result.stderr
    final = {j["id"]: j["status"] for j in parse_jsonl(result.stdout).summary["jobs"]}
    assert final == {ok: "completed", bad: "failed", gone: "cancelled"}
    assert "demo failure at step 1" in result.stderr


def test_cancelled_exit_3(server: ServerProcess, tmp_path: Path) -> None:
    with server.client() as http:
        ok, long_ = demo(http, **QUICK), demo(http, **LONG)
        watch = Watch(tmp_path, ok, long_)
        wait_for(
            lambda: status_of(http, ok) == "completed" and f"{ok}\tdemo\tcompleted" in watch.out
        )
        assert http.post(f"/api/jobs/{long_}/cancel").is_success
        assert watch.wait(30) == 3, watch.err
    assert f"{long_}\tdemo\tcancelled" in watch.out
    assert "1 completed, 1 cancelled" in watch.err


def test_fail_fast_exits_at_the_first_failure_without_cancelling(server: ServerProcess) -> None:
    with server.client() as http:
        long_, bad = demo(http, **LONG), demo(http, **FAILS)
        started = time.monotonic()
        result = jobctl("watch", long_, bad, "--fail-fast", "--jsonl")
        assert time.monotonic() - started < 15
        assert result.code == 1, result.stderr
        assert parse_jsonl(result.stdout).summary["reason"] == "fail_fast"
        assert status_of(http, long_) in ("pending", "running"), "the others go on"
        http.post(f"/api/jobs/{long_}/cancel")


def test_timeout_exit_7_and_a_failure_outranks_it(server: ServerProcess) -> None:
    with server.client() as http:
        long_, bad = demo(http, **LONG), demo(http, **FAILS)
        result = jobctl("watch", long_, "--timeout", "1")
        assert result.code == 7, result.stderr
        assert f"timed out after 1s; still running: {long_}" in result.stderr
        assert jobctl("watch", long_, bad, "--timeout", "3").code == 1
        assert status_of(http, long_) == "running", "a timeout leaves the job alone"
        http.post(f"/api/jobs/{long_}/cancel")


def test_connection_lost_for_good_exit_6(make_server: object, tmp_path: Path) -> None:
    server: ServerProcess = make_server()  # type: ignore[operator]
    with server.client() as http:
        long_ = demo(http, **LONG)
        wait_for(lambda: status_of(http, long_) == "running")
    watch = Watch(tmp_path, long_, env={"JOBCTL_RECONNECT_SECONDS": "1", "JOBCTL_RETRIES": "0"})
    wait_for(lambda: f"{long_}\tdemo\trunning" in watch.out)
    server.kill()
    assert watch.wait(30) == 6, watch.err
    assert "the job server is unreachable" in watch.err
    assert "lost the job server for 1s" in watch.err
    assert "Traceback" not in watch.err


def test_not_found_and_usage_errors(server: ServerProcess) -> None:
    jobctl("watch", "00000000-0000-4000-8000-000000000000").one_line_error(4, "not found")
    jobctl("watch").one_line_error(2, "nothing submitted from this machine yet")
    jobctl("watch", "abc", "--all").one_line_error(2, "not several")
    jobctl("watch", "--notify", "loud").one_line_error(2, "loud")


def test_last_follows_the_last_submit_and_all_follows_every_active_job(
    server: ServerProcess,
) -> None:
    first = jobctl("submit", "--type", "demo", "--input", '{"steps": 30}', "-q").stdout.strip()
    last = jobctl("submit", "--type", "demo", "--input", '{"steps": 2, "step_seconds": 0.1}', "-q")
    last_id = last.stdout.strip()
    for args in (["--last"], []):
        result = jobctl("watch", *args, "--jsonl")
        assert result.code == 0, result.stderr
        assert [j["id"] for j in parse_jsonl(result.stdout).summary["jobs"]] == [last_id]
    with server.client() as http:
        wait_for(lambda: status_of(http, first) == "running")
        done = jobctl("watch", "--all", "--timeout", "0.5", "--jsonl")
        assert done.code == 7
        assert [j["id"] for j in parse_jsonl(done.stdout).summary["jobs"]] == [first]
        http.post(f"/api/jobs/{first}/cancel")
    assert jobctl("watch", "--all").stderr == "jobctl: no active jobs to watch\n"


def test_one_users_watch_never_shows_anothers_jobs(make_server: Any, tmp_path: Path) -> None:
    server, burst = Burst.server(make_server, tmp_path)
    alice, bob = mint(server, "alice"), mint(server, "bob")
    with server.client(bob) as as_bob, server.client(alice) as as_alice:
        bobs = [Burst.submit(as_bob) for _ in range(3)]
        # active until the watch has seen them (`watch --all` with nothing active prints
        # nothing), however slow its start-up
        alices = [Burst.submit(as_alice) for _ in range(2)]
        watch = Watch(tmp_path, "--all", "--jsonl", env={"JOBCTL_TOKEN": alice})
        wait_for(lambda: seen_as(watch.out, "running") == set(alices), timeout=60)
        burst.end()
        assert watch.wait() == 0, watch.err
        stream = parse_jsonl(watch.out)
        seen = {t["job_id"] for t in stream.transitions}
        assert seen == set(alices)
        assert not set(bobs) & seen and bobs[0] not in watch.err
        invoke("watch", bobs[0], env={"JOBCTL_TOKEN": alice}).one_line_error(4, "not found")


def test_live_block_on_a_terminal_with_a_notification(server: ServerProcess) -> None:
    with server.client() as http:
        ids = [demo(http, steps=6, step_seconds=0.2) for _ in range(2)]
    result = invoke("watch", *ids, "--notify", "osc9", tty=True)
    assert result.code == 0, result.stderr
    out = result.stdout
    assert out.startswith("\x1b[?25l") and out.endswith("\x1b[?25h"), "cursor hidden, restored"
    assert "█" in out and "[realtime]" in out, "progress bars and the mode"
    assert out.count("✔ completed") == 2
    assert "\x1b]9;jobctl: done: 2 jobs: 2 completed\x07" in result.stderr


@pytest.mark.parametrize("kind", ["bell", "osc777"])
def test_no_notification_escape_off_a_terminal(server: ServerProcess, kind: str) -> None:
    with server.client() as http:
        job_id = demo(http, steps=1, step_seconds=0)
    result = jobctl("watch", job_id, "--notify", kind)
    assert result.code == 0
    assert "\a" not in result.stderr + result.stdout and "\x1b" not in result.stderr


def test_reader_going_away_is_sigpipe_not_job_failed(server: ServerProcess) -> None:
    """`jobctl watch | head -1`: jobctl ends as a Unix filter does (141), never as exit 1."""
    import shlex
    import subprocess

    from tests.clirun import SCRIPT

    with server.client() as http:
        job = demo(http, steps=30, step_seconds=0.1)
    command = f"{shlex.quote(str(SCRIPT))} watch {job} --jsonl | head -1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 141, (proc.returncode, proc.stderr)
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr
