"""Bad input gets a 4xx with the error shape, never a 500; users are isolated (issue #2)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import ServerProcess, wait_job


def token_for(server: ServerProcess, sub: str | None, role: str = "authenticated",
              ttl: float = 600) -> str:  # fmt: skip
    secret = (server.config_dir / "jwt-secret").read_text().strip()
    claims: dict[str, Any] = {"role": role, "exp": int(time.time() + ttl)}
    if sub is not None:
        claims["sub"] = sub
    return jwt.encode(claims, secret, algorithm="HS256")


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"] and "Traceback" not in r.text
    if code:
        assert body["error"]["code"] == code, body
    return body  # type: ignore[no-any-return]


def test_bad_requests(server: ServerProcess) -> None:
    with server.client() as c:
        raw = {"content-type": "application/json"}
        assert_error(c.post("/api/jobs", content=b"{not json", headers=raw), 400, "malformed_json")
        assert_error(c.post("/api/jobs", json={"type": "nope", "input": {}}), 400, "unknown_type")
        body = assert_error(c.post("/api/jobs", json={"type": "demo", "colour": 1}), 422)
        assert "unknown field 'colour'" in body["error"]["message"]
        assert_error(c.post("/api/jobs", json={"input": {}}), 422)
        assert_error(c.post("/api/jobs", json={"type": "demo", "input": [1]}), 422)
        listed = c.post("/api/jobs", json=[1, 2])  # a list: each item answered on its own
        assert listed.status_code == 207, listed.text
        assert [r["status"] for r in listed.json()["results"]] == [422, 422]
        missing = assert_error(c.post("/api/jobs", json={"type": "journal_extraction"}), 422)
        assert "input.text is required" in missing["error"]["message"]
        assert_error(
            c.post("/api/jobs", json={"type": "journal_extraction", "input": {"text": 5}}), 422
        )
        big = {"type": "journal_extraction", "input": {"text": "x" * (1024 * 1024 + 10)}}
        assert_error(c.post("/api/jobs", json=big), 413, "too_large")
        huge = b'{"type": "demo", "input": {"t": "' + b"y" * (3 * 1024 * 1024) + b'"}}'
        assert_error(c.post("/api/jobs", content=huge, headers=raw), 413, "too_large")
        assert_error(c.get("/api/jobs/not-a-uuid"), 400, "invalid_id")
        assert_error(c.get("/api/jobs/123e4567-e89b-12d3-a456-426614174000"), 404, "not_found")
        assert_error(c.post("/api/jobs/xyz/cancel"), 400, "invalid_id")
        assert_error(c.get("/api/jobs", params={"status": "bogus"}), 400, "invalid_status")
        assert_error(c.get("/api/jobs", params={"limit": 501}), 422)
        assert_error(c.get("/api/jobs", params={"limit": "many"}), 422)
        assert_error(c.get("/api/jobs", params={"cursor": "!!!"}), 400, "invalid_cursor")
        assert_error(c.get("/api/jobs", params={"since": "yesterday-ish"}), 400, "invalid_since")
        assert_error(c.get("/api/jobs", params={"id_prefix": "zz"}), 400, "invalid_id")
        assert_error(c.get("/api/nowhere"), 404, "not_found")
        assert_error(c.delete("/api/jobs"), 405, "method_not_allowed")
        job = c.post("/api/jobs", json={"type": "demo", "input": {"steps": 0}}).json()
        assert_error(c.post(f"/api/jobs/{job['id']}/retry", json={"from_start": "yes"}), 422)
        assert_error(c.post(f"/api/jobs/{job['id']}/retry", json={"x": 1}), 422)


def test_auth_required(server: ServerProcess) -> None:
    for secret in ("server-token", "jwt-secret"):  # made on first start, owner-only
        assert (server.config_dir / secret).stat().st_mode & 0o777 == 0o600
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        assert_error(anon.get("/api/jobs"), 401, "unauthenticated")
        assert_error(anon.get("/api/jobs", headers={"Authorization": "Bearer wrong"}), 401)
        assert_error(anon.get("/api/jobs", headers={"Authorization": "Basic abc"}), 401)
        expired = token_for(server, "a", ttl=-10)
        body = assert_error(
            anon.get("/api/jobs", headers={"Authorization": f"Bearer {expired}"}), 401
        )
        assert "expired" in body["error"]["message"]
        forged = jwt.encode({"sub": "a", "role": "authenticated", "exp": time.time() + 60},
                            "not-the-secret", algorithm="HS256")  # fmt: skip
        assert_error(anon.get("/api/jobs", headers={"Authorization": f"Bearer {forged}"}), 401)
        anon_key = token_for(server, None, role="anon")
        assert_error(anon.get("/api/jobs", headers={"Authorization": f"Bearer {anon_key}"}), 403)
        assert anon.get("/api/health").status_code == 200  # health needs no token
        assert server.token not in anon.get("/api/jobs").text


def test_user_b_cannot_touch_user_a_jobs(server: ServerProcess) -> None:
    a = server.client(token_for(server, "user-a"))
    b = server.client(token_for(server, "user-b"))
    with a, b:
        job = a.post("/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}})
        job_id = job.json()["id"]
        assert job.json()["user_id"] == "user-a"
        wait_job(a, job_id)
        assert_error(b.get(f"/api/jobs/{job_id}"), 404)
        assert_error(b.get(f"/api/jobs/{job_id}/steps"), 404)
        assert_error(b.get(f"/api/jobs/{job_id}/logs"), 404)
        assert_error(b.post(f"/api/jobs/{job_id}/cancel"), 404)
        assert_error(b.post(f"/api/jobs/{job_id}/retry"), 404)
        assert b.get("/api/jobs").json()["jobs"] == []
        assert b.get("/api/jobs", params={"id_prefix": job_id[:6]}).json()["jobs"] == []
        assert b.get("/api/stats").json()["counts"]["completed"] == 0
        assert [j["id"] for j in a.get("/api/jobs").json()["jobs"]] == [job_id]
        # the same idempotency key is per user: B gets its own job
        body = {"type": "demo", "input": {"steps": 0}, "idempotency_key": "same"}
        ja, jb = a.post("/api/jobs", json=body).json(), b.post("/api/jobs", json=body).json()
        assert ja["id"] != jb["id"]
    with server.client(token_for(server, None, role="service_role")) as admin:
        users = {j["user_id"] for j in admin.get("/api/jobs").json()["jobs"]}
        assert users == {"user-a", "user-b"}


def test_list_pagination_and_filters(server: ServerProcess) -> None:
    with server.client() as c:
        ids = [
            c.post("/api/jobs", json={"type": "demo", "input": {"steps": 0}}).json()["id"]
            for _ in range(7)
        ]
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/api/jobs", params=params).json()
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(ids)), "newest first, every job once"
        for job_id in ids:
            wait_job(c, job_id)
        assert len(c.get("/api/jobs", params={"status": "completed"}).json()["jobs"]) == 7
        both = c.get("/api/jobs", params=[("status", "failed"), ("status", "completed")])
        assert len(both.json()["jobs"]) == 7
        assert c.get("/api/jobs", params={"type": "journal_extraction"}).json()["jobs"] == []
        assert len(c.get("/api/jobs", params={"since": "1h"}).json()["jobs"]) == 7
        prefix = c.get("/api/jobs", params={"id_prefix": ids[0][:8]}).json()["jobs"]
        assert [j["id"] for j in prefix] == [ids[0]]


def test_types_stats_health(server: ServerProcess) -> None:
    with server.client() as c:
        types = {t["name"]: t for t in c.get("/api/types").json()["types"]}
        assert {"demo", "journal_extraction"} <= set(types)
        assert types["journal_extraction"]["input_schema"]["required"] == ["text"]
        job = c.post("/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}})
        wait_job(c, job.json()["id"])
        stats = c.get("/api/stats").json()
        assert stats["counts"]["completed"] == 1
        assert stats["by_type"]["demo"]["completed"] == 1
        assert stats["duration_by_type"]["demo"]["count"] == 1
        assert stats["failure_rate"] == 0 and stats["alerts"] == []
        health = c.get("/api/health").json()
        assert health["status"] == "ok" and health["store"] == "sqlite"


@pytest.mark.parametrize("path", ["/openapi.json"])
def test_openapi_lists_every_endpoint(server: ServerProcess, path: str) -> None:
    spec = httpx.get(server.url + path, timeout=10).json()
    paths = set(spec["paths"])
    for expected in ["/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/steps",
                     "/api/jobs/{job_id}/logs", "/api/jobs/{job_id}/cancel",
                     "/api/jobs/{job_id}/retry", "/api/types", "/api/stats", "/api/health",
                     "/e/{event_key}"]:  # fmt: skip
        assert expected in paths
