"""The must-show: during a run of 30 jobs the server closes every WebSocket, and then the
server process is killed and restarted. `jobctl watch` still reports every job's final
state correctly (none missed, none wrong) and says on stderr that it fell back to polling
and came back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.commands.watchkit import TERMINAL, Watch, demo, parse_jsonl, status_of
from tests.conftest import ServerProcess, wait_for

OK = {"steps": 10, "step_seconds": 0.3}
FAILS = {"steps": 4, "step_seconds": 0.3, "fail_at": 3, "fail_times": 99}


def test_watch_survives_a_server_side_close_and_a_restart(make_server: Any, tmp_path: Path) -> None:
    server: ServerProcess = make_server(
        "--backoff", "0.05,0.1", "--slots", "6", "--limit", "user=0"
    )
    with server.client() as http:
        ids = [demo(http, **(FAILS if i % 10 == 3 else OK)) for i in range(30)]
        watch = Watch(tmp_path, *ids, "--jsonl")
        # Subscribed: a transition arrived through Realtime.
        wait_for(lambda: '"source":"realtime"' in watch.out)
        for job_id in ids[-2:]:  # two cancelled before they start
            assert http.post(f"/api/jobs/{job_id}/cancel").is_success

        assert http.post("/realtime/v1/api/disconnect").json()["closed"] >= 1
        wait_for(lambda: "realtime restored" in watch.err)
        assert "realtime unavailable, polling every 2s" in watch.err

        active = [i for i in ids if status_of(http, i) not in TERMINAL]
        assert len(active) >= 10, "the restart must happen mid-run"
    server.kill()
    server.start()  # same data, same port
    code = watch.wait(120)

    with server.client() as http:
        truth = {i: status_of(http, i) for i in ids}
    assert all(s in TERMINAL for s in truth.values()), truth
    stream = parse_jsonl(watch.out)
    reported = {j["id"]: j["status"] for j in stream.summary["jobs"]}
    assert reported == truth, "every job's final state, none missed, none wrong"
    ended = {t["job_id"]: t["to"] for t in stream.transitions if t["to"] in TERMINAL}
    assert ended == truth, "one terminal transition per job, matching the server"
    assert sorted(truth.values()).count("failed") == 3
    assert sorted(truth.values()).count("cancelled") == 2
    assert code == 1 == stream.summary["exit_code"], watch.err
    err = watch.err
    # fell back and came back twice: after the close, and across the restart
    assert err.count("realtime unavailable, polling every 2s") >= 2, err
    assert err.count("realtime restored") >= 2, err
    assert stream.summary["fallbacks"] >= 2
    assert "Traceback" not in err
