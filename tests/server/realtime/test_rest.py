"""The PostgREST subset for /rest/v1/jobs, through supabase-py's own client (acreate_client)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import acreate_client

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
        (bob.table("jobs").select("*").like("status", "run*"), "PGRST100"),
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
