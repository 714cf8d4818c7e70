"""JobClient alone, through pytest-httpx: error mapping, retries, Retry-After, autostart hook."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from pytest_httpx import HTTPXMock

from jobctl.backends.jobapi import Endpoint, JobClient
from jobctl.errors import (
    AuthError,
    ConflictError,
    ExitCode,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnreachableError,
    UsageError,
)

URL = "http://jobs.test"
JOB = {"id": "3fa2c0de-0000-4000-8000-000000000001", "type": "demo", "status": "pending"}


def client(**kw: object) -> tuple[JobClient, list[float]]:
    slept: list[float] = []
    made = JobClient(URL, "tok", sleep=slept.append, **kw)  # type: ignore[arg-type]
    return made, slept


def error(status: int, message: str = "nope", **headers: str) -> dict[str, object]:
    return {
        "status_code": status,
        "json": {"error": {"code": "x", "message": message}},
        "headers": headers,
    }


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, UsageError, ExitCode.USAGE),
        (413, UsageError, ExitCode.USAGE),
        (422, UsageError, ExitCode.USAGE),
        (401, AuthError, ExitCode.AUTH),
        (403, AuthError, ExitCode.AUTH),
        (404, NotFoundError, ExitCode.NOT_FOUND),
        (409, ConflictError, ExitCode.REJECTED),
        (418, ServerError, ExitCode.SERVER_ERROR),
    ],
)
def test_error_mapping(httpx_mock: HTTPXMock, status: int, kind: type, code: ExitCode) -> None:
    httpx_mock.add_response(**error(status, "the server's words"))  # type: ignore[arg-type]
    jobs, _ = client()
    with pytest.raises(kind) as caught:
        jobs.get_job(JOB["id"])
    assert caught.value.exit_code == code
    assert "the server's words" in caught.value.message


def test_get_is_retried_on_5xx_with_backoff(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(**error(503))  # type: ignore[arg-type]
    httpx_mock.add_response(**error(502))  # type: ignore[arg-type]
    httpx_mock.add_response(json=JOB)
    jobs, slept = client(backoff=0.2)
    assert jobs.get_job(JOB["id"]).id == JOB["id"]
    assert len(slept) == 2
    assert 0.1 <= slept[0] <= 0.2 and 0.2 <= slept[1] <= 0.4  # exponential, with jitter


def test_gives_up_after_retries(httpx_mock: HTTPXMock) -> None:
    for _ in range(3):
        httpx_mock.add_response(**error(500))  # type: ignore[arg-type]
    jobs, slept = client(retries=2)
    with pytest.raises(ServerError, match="server error 500"):
        jobs.list_jobs()
    assert len(slept) == 2


def test_cancel_is_not_resent_after_a_5xx(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(**error(500))  # type: ignore[arg-type]
    jobs, slept = client()
    with pytest.raises(ServerError):
        jobs.cancel_job(JOB["id"])
    assert slept == []


def test_submit_is_resent_with_the_same_idempotency_key(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    httpx_mock.add_response(status_code=201, json=JOB)
    jobs, _ = client()
    jobs.create_job("demo", {"steps": 1}, "key-1")
    bodies = [json.loads(r.content) for r in httpx_mock.get_requests()]
    assert [b["idempotency_key"] for b in bodies] == ["key-1", "key-1"]


def test_retry_after_is_honoured(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(**error(429, **{"Retry-After": "7"}))  # type: ignore[arg-type]
    httpx_mock.add_response(json={"jobs": [], "next_cursor": None})
    jobs, slept = client()
    assert jobs.list_jobs().jobs == []
    assert slept == [7.0]


def test_a_long_retry_after_is_reported_not_slept(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(**error(429, "busy", **{"Retry-After": "3600"}))  # type: ignore[arg-type]
    jobs, slept = client()
    with pytest.raises(RateLimitedError, match="retry after 3600s") as caught:
        jobs.list_jobs()
    assert caught.value.exit_code == ExitCode.REJECTED and slept == []


def test_unreachable_names_the_url_and_the_hint(httpx_mock: HTTPXMock) -> None:
    for _ in range(4):
        httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"))
    jobs, slept = client(unreachable_hint="; start it with `jobctl server start`")
    with pytest.raises(UnreachableError) as caught:
        jobs.list_jobs()
    assert caught.value.message == (
        f"the job server at {URL} refused the connection; start it with `jobctl server start`"
    )
    assert len(slept) == 3


def test_autostart_hook_runs_once_and_redirects(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{URL}/api/jobs?limit=50")
    httpx_mock.add_response(
        url="http://started.test/api/jobs?limit=50", json={"jobs": [JOB], "next_cursor": None}
    )
    calls: list[int] = []

    def start() -> Endpoint:
        calls.append(1)
        return Endpoint("http://started.test", "new-token")

    jobs = JobClient(URL, None, on_unreachable=start, sleep=lambda _: None)
    assert [j.id for j in jobs.list_jobs().jobs] == [JOB["id"]]
    assert calls == [1]
    assert httpx_mock.get_requests()[-1].headers["authorization"] == "Bearer new-token"


def test_token_is_sent_and_never_in_errors(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(**error(401, "bad token"))  # type: ignore[arg-type]
    jobs = JobClient(URL, "sekrit-token", retries=0)
    with pytest.raises(AuthError) as caught:
        jobs.list_jobs()
    assert httpx_mock.get_request().headers["authorization"] == "Bearer sekrit-token"  # type: ignore[union-attr]
    assert "sekrit" not in caught.value.message


def test_resolve_id_prefix(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{URL}/api/jobs?limit=2&id_prefix=3fa2", json={"jobs": [JOB], "next_cursor": None}
    )
    jobs, _ = client()
    assert jobs.resolve_id("3FA2") == JOB["id"]
    assert jobs.resolve_id(JOB["id"]) == JOB["id"]  # a full id needs no request
    with pytest.raises(UsageError, match="not a job id"):
        jobs.resolve_id("zz; drop table")


def test_iter_jobs_follows_cursors_within_the_limit(httpx_mock: HTTPXMock) -> None:
    page = [dict(JOB, id=f"3fa2c0de-0000-4000-8000-00000000000{i}") for i in range(3)]
    httpx_mock.add_response(url=f"{URL}/api/jobs?limit=5", json={"jobs": page, "next_cursor": "c1"})
    httpx_mock.add_response(
        url=f"{URL}/api/jobs?limit=2&cursor=c1", json={"jobs": page[:2], "next_cursor": "c2"}
    )
    jobs, _ = client()
    assert len(list(jobs.iter_jobs(limit=5))) == 5


def test_non_json_answer(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(text="<html>proxy</html>")
    jobs, _ = client()
    with pytest.raises(ServerError, match="not JSON"):
        jobs.stats()


async def test_async_client_is_a_feed_source(httpx_mock: HTTPXMock) -> None:
    """The feed's polls list every field but the input (a watch shows outputs)."""
    from jobctl.backends.jobapi import FEED_FIELDS, AsyncJobClient

    assert "input" not in FEED_FIELDS and "output" in FEED_FIELDS
    fields = quote(",".join(FEED_FIELDS))
    other = dict(JOB, id="3fa2c0de-0000-4000-8000-000000000002")
    httpx_mock.add_response(url=f"{URL}/api/jobs/{JOB['id']}", json=JOB)
    httpx_mock.add_response(url=f"{URL}/api/jobs/{other['id']}", **error(404))  # type: ignore[arg-type]
    httpx_mock.add_response(
        url=f"{URL}/api/jobs?status=pending&status=running&limit=500&fields={fields}",
        json={"jobs": [JOB], "next_cursor": None},
    )
    httpx_mock.add_response(
        url=f"{URL}/api/jobs?limit=50&fields={fields}",
        json={"jobs": [JOB, other], "next_cursor": None},
    )
    jobs = AsyncJobClient(URL, "tok")
    try:
        assert [j.id for j in await jobs.fetch_jobs([JOB["id"], other["id"]])] == [JOB["id"]]
        assert sorted(j.id for j in await jobs.fetch_active()) == sorted([JOB["id"], other["id"]])
    finally:
        await jobs.aclose()


async def test_async_client_submits_and_lists_types(httpx_mock: HTTPXMock) -> None:
    from jobctl.backends.jobapi import AsyncJobClient

    httpx_mock.add_response(
        method="POST",
        url=f"{URL}/api/jobs",
        match_json={"type": "demo", "input": {"steps": 1}, "idempotency_key": "k1"},
        json=JOB,
        status_code=201,
    )
    httpx_mock.add_response(url=f"{URL}/api/types", json={"types": [{"name": "demo"}]})
    httpx_mock.add_response(url=f"{URL}/api/health", json={"status": "ok", "realtime": False})
    jobs = AsyncJobClient(URL, "tok")
    try:
        assert (await jobs.create_job("demo", {"steps": 1}, "k1")).id == JOB["id"]
        assert [t["name"] for t in await jobs.types()] == ["demo"]
        assert (await jobs.health())["realtime"] is False
    finally:
        await jobs.aclose()


async def test_async_client_has_the_same_send_policy_and_autostart_hook(
    httpx_mock: HTTPXMock,
) -> None:
    """One send policy: the async client resends a 503 GET, and a refused connection runs
    the owner's hook once (in a worker thread) and moves to the server it started."""
    import threading

    from jobctl.backends.jobapi import AsyncJobClient

    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{URL}/api/jobs/{JOB['id']}")
    httpx_mock.add_response(url=f"http://started.test/api/jobs/{JOB['id']}", **error(503))  # type: ignore[arg-type]
    httpx_mock.add_response(url=f"http://started.test/api/jobs/{JOB['id']}", json=JOB)
    threads: list[str] = []

    def start() -> Endpoint:
        threads.append(threading.current_thread().name)
        return Endpoint("http://started.test", "new-token")

    jobs = AsyncJobClient(URL, None, backoff=0.001, on_unreachable=start)
    try:
        assert (await jobs.get_job(JOB["id"])).id == JOB["id"]
    finally:
        await jobs.aclose()
    assert len(threads) == 1 and threads[0] != threading.main_thread().name
    assert httpx_mock.get_requests()[-1].headers["authorization"] == "Bearer new-token"


def test_plain_http_clients_skip_tls_settings() -> None:
    """Building TLS settings loads the CA bundle (~40 ms); the local server is plain http."""
    from jobctl.backends.jobapi import AsyncJobClient

    assert not JobClient("http://127.0.0.1:8765", None).core.tls
    assert not AsyncJobClient("http://127.0.0.1:8765", None).core.tls
    assert AsyncJobClient("https://jobs.example.com", None).core.tls


def test_backoff_grows_to_its_cap_within_its_jitter() -> None:
    from jobctl.backends.backoff import Backoff

    steps = Backoff(0.2, factor=2.0, cap=1.0)
    assert [steps.step(n) for n in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert steps.step(10_000) == 1.0  # no overflow however long it fails
    jittered = Backoff(1.0, jitter=(0.5, 1.0))
    assert jittered.delay(0, rng=lambda: 0.0) == 0.5
    assert jittered.delay(0, rng=lambda: 1.0) == 1.0
