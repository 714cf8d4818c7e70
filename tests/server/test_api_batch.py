"""POST /api/jobs with a list: each job with its own idempotency key and its own result,
through the same service path as a single submit, against a real server process."""

from __future__ import annotations

from typing import Any

from tests.conftest import ServerProcess, wait_for


def _post(c: Any, body: Any) -> tuple[int, dict[str, Any]]:
    r = c.post("/api/jobs", json=body)
    return r.status_code, r.json()


def test_a_list_answers_each_job_in_its_place(server: ServerProcess) -> None:
    with server.client() as c:
        single = c.post("/api/jobs", json={"type": "demo", "input": {"steps": 0},
                                           "idempotency_key": "before"}).json()  # fmt: skip
        status, body = _post(c, [
            {"type": "demo", "input": {"steps": 0}},
            {"type": "demo", "input": {"steps": 0}, "idempotency_key": "k1"},
            {"type": "nope"},  # unknown type
            {"type": "journal_extraction", "input": {"text": 5}},  # against its schema
            {"type": "demo", "input": {"steps": 0}, "idempotency_key": "k1"},  # same request
            {"type": "demo", "input": {"steps": 1}, "idempotency_key": "k1"},  # another input
            {"type": "demo", "input": {"steps": 0}, "idempotency_key": "before"},
            {"type": "demo", "colour": 1},  # not the shape of a job
        ])  # fmt: skip
        assert status == 207, body
        results = body["results"]
        assert [r["status"] for r in results] == [201, 201, 400, 422, 200, 409, 200, 422]
        assert (body["created"], body["existing"], body["refused"]) == (2, 2, 4)
        assert results[2]["error"]["code"] == "unknown_type"
        assert "input.text must be string" in results[3]["error"]["message"]
        assert results[4]["job"]["id"] == results[1]["job"]["id"]
        assert results[5]["error"]["code"] == "idempotency_conflict"
        assert results[6]["job"]["id"] == single["id"]
        assert "unknown field 'colour'" in results[7]["error"]["message"]
        created = [results[0]["job"]["id"], results[1]["job"]["id"]]
        for job_id in created:  # real jobs: they run to the end
            assert wait_for(
                lambda j=job_id: c.get(f"/api/jobs/{j}").json()["status"] == "completed"
            )
        # The event history as for single submits: one event per job created, none for
        # the submits that found an earlier job.
        events = c.get("/api/events", params={"name": "demo"}).json()["events"]
        linked = [j for e in events for j in e["job_ids"]]
        assert sorted(linked) == sorted([*created, single["id"]])


def test_a_list_without_refusals_is_200_and_a_repeat_finds_the_same_jobs(
    server: ServerProcess,
) -> None:
    jobs = [{"type": "demo", "input": {"steps": 0}, "idempotency_key": f"b{i}"} for i in range(50)]
    with server.client() as c:
        status, first = _post(c, jobs)
        assert status == 200 and first["created"] == 50 and first["refused"] == 0
        assert all(r["status"] == 201 for r in first["results"])
        status, again = _post(c, jobs)
        assert status == 200 and again["existing"] == 50 and again["created"] == 0
        assert [r["job"]["id"] for r in again["results"]] == [
            r["job"]["id"] for r in first["results"]
        ]
        assert len({r["job"]["id"] for r in first["results"]}) == 50
        # Single submits of the same keys find them too.
        one = c.post("/api/jobs", json=jobs[7])
        assert one.status_code == 200 and one.json()["id"] == first["results"][7]["job"]["id"]


def test_a_list_that_is_empty_or_too_long_is_refused_whole(server: ServerProcess) -> None:
    with server.client() as c:
        r = c.post("/api/jobs", json=[])
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = c.post("/api/jobs", json=[{"type": "demo"}] * 1001)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        assert c.get("/api/jobs").json()["jobs"] == []  # nothing of them was created
