"""The PostgREST subset for /rest/v1/jobs, through supabase-py's own client (acreate_client)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import acreate_client

from jobctl.server.realtime.tables import JOBS
from tests.conftest import ServerProcess, wait_job
from tests.server.realtime.conftest import jwt_for, submit

# supabase-py 2.34 warns about its own use of postgrest's deprecated parameters.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:supabase.*")


@pytest.fixture
def jobs(server: ServerProcess) -> dict[str, Any]:
    """Alice has 5 jobs (3 completed, 2 failed with fail_at), Bob 2; all finished."""
    alice, bob = jwt_for(server.config_dir, "alice"), jwt_for(server.config_dir, "bob")
    made: dict[str, list[str]] = {"alice": [], "bob": []}
    for i in range(5):
        extra = {"fail_at": 1, "fail_times": 5} if i >= 3 else {}
        made["alice"].append(
            submit(server.url, alice, steps=i % 3 + 1, step_seconds=0, **extra)["id"]
        )
    for _ in range(2):
        made["bob"].append(submit(server.url, bob, steps=1, step_seconds=0)["id"])
    for user, token in (("alice", alice), ("bob", bob)):
        with server.client(token) as http:
            for job_id in made[user]:
                wait_job(http, job_id)
    return {"alice": alice, "bob": bob, "ids": made}


async def test_supabase_py_reads_jobs(server: ServerProcess, jobs: dict[str, Any]) -> None:
    sb = await acreate_client(server.url, jobs["alice"])
    table = sb.table("jobs")
    everything = await table.select("*").order("created_at", desc=True).limit(50).execute()
    assert [r["id"] for r in everything.data] == list(reversed(jobs["ids"]["alice"]))
    assert everything.data[0]["created_at"].endswith("+00:00")

    counted = await table.select("*", count="exact").eq("status", "completed").execute()
    assert counted.count == 3 and len(counted.data) == 3

    some = await table.select("id,status,progress").in_("status", ["failed", "running"]).execute()
    assert {r["id"] for r in some.data} == set(jobs["ids"]["alice"][3:])
    assert all(set(r) == {"id", "status", "progress"} for r in some.data)

    page = await table.select("id", count="exact").order("created_at").range(1, 2).execute()
    assert [r["id"] for r in page.data] == jobs["ids"]["alice"][1:3] and page.count == 5

    head = await table.select("*", count="exact", head=True).execute()
    assert head.count == 5 and head.data == []

    one_id = jobs["ids"]["alice"][0]
    single = await table.select("*").eq("id", one_id).single().execute()
    assert single.data["id"] == one_id and single.data["user_id"] == "alice"
    maybe = await table.select("*").eq("id", jobs["ids"]["bob"][0]).maybe_single().execute()
    assert maybe is None  # Bob's job does not exist for Alice

    steps_2 = (
        await table.select("id")
        .gte("progress", 100)
        .lt("attempt", 2)
        .is_("error", "null")
        .execute()
    )
    assert {r["id"] for r in steps_2.data} == set(jobs["ids"]["alice"][:3])
    ordered = await table.select("error").order("error", desc=False, nullsfirst=True).execute()
    errors = [r["error"] for r in ordered.data]
    assert errors[:3] == [None] * 3 and all(errors[3:])


async def test_rls_and_errors(server: ServerProcess, jobs: dict[str, Any]) -> None:
    bob = await acreate_client(server.url, jobs["bob"])
    mine = await bob.table("jobs").select("user_id", count="exact").execute()
    assert {r["user_id"] for r in mine.data} == {"bob"} and mine.count == 2
    peek = await bob.table("jobs").select("*").eq("user_id", "alice").execute()
    assert peek.data == []

    admin = await acreate_client(server.url, jwt_for(server.config_dir, None, "service_role"))
    assert (await admin.table("jobs").select("id", count="exact").execute()).count == 7
    anon = await acreate_client(server.url, jwt_for(server.config_dir, None, "anon"))
    assert (await anon.table("jobs").select("*").execute()).data == []

    for query, code in [
        (bob.table("jobs").select("nope"), "42703"),
        (bob.table("jobs").select("*").eq("progress", "lots"), "22P02"),
        (bob.table("jobs").select("*").filter("status", "fts", "run"), "PGRST100"),
        (bob.table("jobs").select("*").like("progress", "1*"), "PGRST100"),
        (bob.table("jobs").select("*").single(), "PGRST116"),
        (bob.table("steps").select("*"), "PGRST205"),
    ]:
        with pytest.raises(APIError) as caught:
            await query.execute()
        assert caught.value.code == code, caught.value

    with pytest.raises(APIError) as caught:
        await bob.table("jobs").insert({"type": "demo"}).execute()
    assert caught.value.code == "PGRST000"


def test_raw_http_shapes(server: ServerProcess, jobs: dict[str, Any]) -> None:
    url = f"{server.url}/rest/v1/jobs"
    expired = jwt_for(server.config_dir, "alice", ttl=-10)
    headers = {"apikey": jobs["alice"]}
    r = httpx.get(
        url, params={"select": "id", "limit": "2"}, headers={**headers, "Prefer": "count=exact"}
    )
    assert r.status_code == 206 and r.headers["content-range"] == "0-1/5"
    r = httpx.get(url, params={"offset": "9"}, headers={**headers, "Prefer": "count=exact"})
    assert r.status_code == 416 and r.json()["code"] == "PGRST103"
    r = httpx.get(url, params={"status": "eq.nothing"}, headers=headers)
    assert (r.status_code, r.json(), r.headers["content-range"]) == (200, [], "*/*")
    r = httpx.get(url, headers={"Authorization": f"Bearer {expired}", **headers})
    assert r.status_code == 401 and r.json() == {
        "message": "JWT expired",
        "code": "PGRST303",
        "hint": None,
        "details": None,
    }
    r = httpx.get(url, headers={**headers, "Accept-Profile": "private"})
    assert r.status_code == 406 and r.json()["code"] == "PGRST106"
    r = httpx.get(url)
    assert r.status_code == 401


def test_postgrest_additions(server: ServerProcess, jobs: dict[str, Any]) -> None:
    url = f"{server.url}/rest/v1/jobs"
    headers = {"apikey": jobs["alice"]}

    def get(**params: str) -> httpx.Response:
        return httpx.get(url, params=params, headers=headers, timeout=10)

    mixed = get(select="*,jobId:id,steps:input->steps,kind:input->>steps", order="created_at")
    assert mixed.status_code == 200, mixed.text
    first = mixed.json()[0]
    assert first["jobId"] == first["id"] == jobs["ids"]["alice"][0]
    assert first["steps"] == 1 and first["kind"] == "1" and first["status"] == "completed"
    assert set(first) == {*JOBS.column_names, "jobId", "steps", "kind"}
    # JSON paths in filters: ->> compares text, -> compares JSON.
    two_steps = get(select="id", **{"input->>steps": "eq.2"})
    assert [r["id"] for r in two_steps.json()] == [jobs["ids"]["alice"][4], jobs["ids"]["alice"][1]]
    assert get(select="id", **{"input->steps": "eq.2"}).json() == two_steps.json()
    assert get(select="id", **{"input->steps": "gt.1", "input->>fail_at": "is.null"}).json() == [
        {"id": jobs["ids"]["alice"][2]},
        {"id": jobs["ids"]["alice"][1]},
    ]
    either = get(select="id", order="created_at", **{"or": "(status.eq.failed,input->>steps.eq.3)"})
    assert [r["id"] for r in either.json()] == jobs["ids"]["alice"][2:]
    nested = get(select="id", **{"or": "(id.eq.nope,and(status.eq.failed,progress.lt.100))"})
    assert nested.status_code == 400 and nested.json()["code"] == "22P02"
    nested = get(select="id", **{"or": "(progress.eq.-1,and(status.eq.failed,attempt.gte.1))"})
    assert {r["id"] for r in nested.json()} == set(jobs["ids"]["alice"][3:])
    negated = get(select="id", **{"not.or": "(status.eq.failed,status.eq.running)"})
    assert {r["id"] for r in negated.json()} == set(jobs["ids"]["alice"][:3])
    liked = get(select="id", status="ilike.COMP*")
    assert len(liked.json()) == 3

    csv_answer = httpx.get(
        url,
        params={"select": "id,status,input", "order": "created_at", "limit": "2"},
        headers={**headers, "Accept": "text/csv"},
    )
    assert csv_answer.headers["content-type"].startswith("text/csv")
    lines = csv_answer.text.splitlines()
    assert lines[0] == "id,status,input" and len(lines) == 3
    assert lines[1].startswith(jobs["ids"]["alice"][0] + ",completed,")
    xml = httpx.get(url, headers={**headers, "Accept": "text/xml"})
    assert xml.status_code == 406 and xml.json()["code"] == "PGRST107"

    for params, code in [
        ({"select": "count()"}, "PGRST123"),
        ({"select": "id,steps(*)"}, "PGRST200"),
        ({"select": "id->x"}, "42883"),
        ({"status": "fts.x"}, "PGRST100"),
        ({"or": "status.eq.x"}, "PGRST100"),
    ]:
        answer = get(**params)
        assert answer.status_code == 400 and answer.json()["code"] == code, answer.text
        assert not answer.json()["message"].startswith('"'), answer.json()  # no extra quotes

    rpc = httpx.post(f"{server.url}/rest/v1/rpc/nope", json={"a": 1}, headers=headers)
    assert rpc.status_code == 404
    assert rpc.json() == {
        "code": "PGRST202",
        "details": "Searched for the function public.nope with parameters a or with a single"
        " unnamed json/jsonb parameter, but no matches were found in the schema cache.",
        "hint": None,
        "message": "Could not find the function public.nope(a) in the schema cache",
    }


def test_hostile_query_values_are_4xx(server: ServerProcess, jobs: dict[str, Any]) -> None:
    """Issue 10 item 5: each a PostgREST-shaped 4xx, never a 500; the table still answers."""
    url = f"{server.url}/rest/v1/jobs"
    headers = {"apikey": jobs["alice"]}
    deep = "[" * 1000 + "]" * 1000
    for params, code in [
        ({"limit": "\u00b2"}, "PGRST100"),
        ({"offset": "\u00b2"}, "PGRST100"),
        ({"limit": "\u0663"}, "PGRST100"),  # an Arabic-Indic digit: isdigit() but not ASCII
        ({"offset": "9" * 4301}, "PGRST100"),
        ({"progress": "eq." + "9" * 4301}, "22003"),
        ({"progress": "eq.99999999999"}, "22003"),
        ({"progress": "eq.\u0663"}, "22P02"),
        ({"input": "eq." + deep}, "22P02"),
        ({"input->a": "eq." + deep}, "22P02"),
        ({"or": "(" * 50 + ")" * 50}, "PGRST100"),
    ]:
        answer = httpx.get(url, params=params, headers=headers, timeout=10)
        assert 400 <= answer.status_code < 500, (params, answer.text)
        body = answer.json()
        assert set(body) == {"message", "code", "hint", "details"} and body["code"] == code, body
    assert httpx.get(url, headers=headers, timeout=10).status_code == 200


def test_the_openapi_document_describes_our_jobs_table(server: ServerProcess) -> None:
    """GET /rest/v1/ as PostgREST serves it (Swagger 2.0), for our own table in `public`."""
    token = jwt_for(server.config_dir, "alice")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        doc = http.get("/rest/v1/", headers={"Authorization": f"Bearer {token}"})
        assert doc.status_code == 200, doc.text
        assert doc.headers["content-type"].startswith("application/openapi+json")
        body = doc.json()
        assert body["swagger"] == "2.0" and list(body["definitions"]) == ["jobs"]
        props = body["definitions"]["jobs"]["properties"]
        assert list(props) == list(JOBS.column_names)
        assert props["id"]["format"] == "uuid" and "Primary Key" in props["id"]["description"]
        assert props["progress"] == {"format": "integer", "type": "integer"}
        assert props["created_at"] == {"format": "timestamp with time zone", "type": "string"}
        assert props["output"] == {"format": "jsonb"}
        assert "message" not in body["definitions"]["jobs"]["required"]
        assert "/jobs" in body["paths"]
        no_key = http.get("/rest/v1/")
        assert no_key.status_code == 401 and no_key.json()["code"] == "PGRST302"
        other = http.get(
            "/rest/v1/", headers={"Authorization": f"Bearer {token}", "Accept-Profile": "x"}
        )
        assert other.status_code == 406
