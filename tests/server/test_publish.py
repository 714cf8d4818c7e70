"""`jobctl server run --db postgresql://... --publish public.jobs --owner-column user_id`: an app's
own table, written by the app (here: plain SQL through psycopg), goes out over Realtime
`postgres_changes` (the official realtime-py client, with a filter), is served read-only by
/rest/v1/jobs (supabase-py's PostgREST client) to its owners only, and is described by the
OpenAPI document at /rest/v1/. The server's own tables move to schema `jobctl` and keep working.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from realtime import AsyncRealtimeClient
from supabase import acreate_client

from tests.conftest import ServerProcess, wait_job
from tests.pgcluster import PgCluster
from tests.pgfixtures import new_database
from tests.server.realtime.conftest import jwt_for, ws_url
from tests.server.realtime.conftest import subscribe_table as join

pytestmark = pytest.mark.postgres

APP_MIGRATION = """
CREATE TABLE public.jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    error_message text,
    result_summary jsonb,
    journal_entry_id uuid,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""

ALICE = str(uuid.uuid4())
BOB = str(uuid.uuid4())


@pytest.fixture
def app_db(pg_cluster: PgCluster) -> str:
    """An empty database with the app's own table, as the app's migration makes it."""
    url = new_database(pg_cluster, migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(APP_MIGRATION)
    return url


@pytest.fixture
def published(make_server: Any, app_db: str) -> Iterator[ServerProcess]:
    server: ServerProcess = make_server(
        "--db", app_db, "--publish", "public.jobs", "--owner-column", "user_id",
        "--backoff", "0.05",
    )  # fmt: skip
    server.extra["db"] = app_db
    yield server


def app_sql(server: ServerProcess, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """A write or read by the app itself: its own connection, its own transaction."""
    with psycopg.connect(server.extra["db"], autocommit=True) as conn:
        cur = conn.execute(statement, args)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def new_row(server: ServerProcess, owner: str) -> str:
    rows = app_sql(server, "INSERT INTO public.jobs (user_id) VALUES (%s) RETURNING id", owner)
    return str(rows[0][0])


async def test_an_app_rows_updates_reach_a_filtered_subscriber_and_its_owner_only(
    published: ServerProcess,
) -> None:
    server = published
    alice = AsyncRealtimeClient(ws_url(server.url), jwt_for(server.config_dir, ALICE))
    bob = AsyncRealtimeClient(ws_url(server.url), jwt_for(server.config_dir, BOB))
    try:
        mine = await asyncio.to_thread(new_row, server, ALICE)
        other_of_mine = await asyncio.to_thread(new_row, server, ALICE)
        one = await join(alice, "one-job", "public", "jobs", "UPDATE", f"id=eq.{mine}")
        alices_all = await join(alice, "all", "public", "jobs")
        bobs_all = await join(bob, "all", "public", "jobs")

        summary = {"events_created": 5, "evidence_processed": 0, "action_items_created": 2,
                   "event_ids": ["e1", "e2"]}  # fmt: skip
        await asyncio.to_thread(
            app_sql, server, "UPDATE public.jobs SET status = 'processing' WHERE id = %s", mine
        )
        await asyncio.to_thread(
            app_sql, server,
            "UPDATE public.jobs SET status = 'processing' WHERE id = %s", other_of_mine,
        )  # fmt: skip
        await asyncio.to_thread(
            app_sql, server,
            "UPDATE public.jobs SET status = 'completed', result_summary = %s, updated_at = now()"
            " WHERE id = %s", json.dumps(summary), mine,
        )  # fmt: skip
        bobs = await asyncio.to_thread(new_row, server, BOB)

        await one.wait(lambda: len(one.events) >= 2)
        await alices_all.wait(lambda: len(alices_all.events) >= 3)
        await bobs_all.wait(lambda: len(bobs_all.events) >= 1)
        await asyncio.sleep(0.3)  # nothing more may arrive

        statuses = [(e["data"]["type"].value, e["data"]["record"]["status"]) for e in one.events]
        assert statuses == [("UPDATE", "processing"), ("UPDATE", "completed")]
        data = one.events[-1]["data"]
        assert data["schema"] == "public" and data["table"] == "jobs"
        record = data["record"]
        assert record["id"] == mine and record["user_id"] == ALICE
        assert record["result_summary"] == summary  # nested JSON, as the app's column has it
        assert record["attempts"] == 0 and record["error_message"] is None
        assert record["created_at"].endswith("+00:00")
        assert data["old_record"] == {"id": mine}
        columns = {c["name"]: c["type"] for c in data["columns"]}
        assert columns == {
            "id": "uuid", "user_id": "uuid", "status": "text", "error_message": "text",
            "result_summary": "jsonb", "journal_entry_id": "uuid", "attempts": "int4",
            "created_at": "timestamptz", "updated_at": "timestamptz",
        }  # fmt: skip
        assert [e["data"]["record"]["id"] for e in alices_all.events] == [
            mine, other_of_mine, mine,
        ]  # fmt: skip
        assert [(e["data"]["type"].value, e["data"]["record"]["id"]) for e in bobs_all.events] == [
            ("INSERT", bobs)
        ]

        # A DELETE goes to the owner with the primary key only; a row too big for a
        # notification is read back whole.
        big = {"event_ids": [str(uuid.uuid4()) for _ in range(400)]}  # ~16 kB
        await asyncio.to_thread(
            app_sql, server, "UPDATE public.jobs SET result_summary = %s WHERE id = %s",
            json.dumps(big), other_of_mine,
        )  # fmt: skip
        await asyncio.to_thread(app_sql, server, "DELETE FROM public.jobs WHERE id = %s", mine)
        await alices_all.wait(lambda: len(alices_all.events) >= 5)
        big_update, deleted = alices_all.events[3]["data"], alices_all.events[4]["data"]
        assert big_update["record"]["result_summary"] == big
        assert deleted["type"].value == "DELETE" and deleted["old_record"] == {"id": mine}
        await asyncio.sleep(0.3)
        assert len(bobs_all.events) == 1
    finally:
        await alice.close()
        await bob.close()


async def test_the_servers_own_jobs_live_in_schema_jobctl(published: ServerProcess) -> None:
    server = published
    client = AsyncRealtimeClient(ws_url(server.url), server.token)
    try:
        ours = await join(client, "ours", "jobctl", "jobs", "UPDATE", "status=eq.completed")
        with server.client() as api:
            created = api.post(
                "/api/jobs", json={"type": "demo", "input": {"steps": 1, "step_seconds": 0}}
            )
            assert created.status_code == 201, created.text
            job = wait_job(api, created.json()["id"])
        assert job["status"] == "completed"
        await ours.wait(lambda: ours.events)
        assert ours.events[0]["data"]["schema"] == "jobctl"
        assert ours.events[0]["data"]["record"]["id"] == job["id"]
    finally:
        await client.close()
    in_ours = app_sql(server, "SELECT count(*) FROM jobctl.jobs WHERE id = %s", job["id"])
    assert in_ours == [(1,)]
    apps = app_sql(server, "SELECT count(*) FROM public.jobs")
    assert apps == [(0,)]  # the app's table holds only the app's rows


async def test_rest_serves_the_app_table_read_only_to_its_owners(published: ServerProcess) -> None:
    server = published
    ids = {who: [new_row(server, who) for _ in range(3)] for who in (ALICE, BOB)}
    app_sql(server, "UPDATE public.jobs SET status = 'completed' WHERE id = %s", ids[ALICE][0])

    alice = await acreate_client(server.url, jwt_for(server.config_dir, ALICE))
    everything = await alice.table("jobs").select("*").execute()
    assert sorted(r["id"] for r in everything.data) == sorted(ids[ALICE])
    assert {r["user_id"] for r in everything.data} == {ALICE}
    done = await alice.table("jobs").select("id,status").eq("status", "completed").execute()
    assert done.data == [{"id": ids[ALICE][0], "status": "completed"}]
    one = await alice.table("jobs").select("*").eq("id", ids[ALICE][1]).single().execute()
    assert one.data["id"] == ids[ALICE][1]
    counted = await alice.table("jobs").select("id", count="exact").limit(1).execute()
    assert counted.count == 3 and len(counted.data) == 1
    # Bob's row is not there for Alice, even by id.
    none = await alice.table("jobs").select("*").eq("id", ids[BOB][0]).execute()
    assert none.data == []

    admin = await acreate_client(server.url, jwt_for(server.config_dir, None, "service_role"))
    all_rows = await admin.table("jobs").select("id").execute()
    assert len(all_rows.data) == 6
    anon = await acreate_client(server.url, jwt_for(server.config_dir, None, "anon"))
    assert (await anon.table("jobs").select("*").execute()).data == []

    alice_token = jwt_for(server.config_dir, ALICE)
    with httpx.Client(base_url=server.url, timeout=10,
                      headers={"Authorization": f"Bearer {alice_token}"}) as http:  # fmt: skip
        write = http.post("/rest/v1/jobs", json={"status": "completed"})
        assert write.status_code == 405
        unknown = http.get("/rest/v1/jobs", params={"colour": "eq.red"})
        assert unknown.status_code == 400 and unknown.json()["code"] == "42703"
        assert "jobs.colour" in unknown.json()["message"]
        bad_uuid = http.get("/rest/v1/jobs", params={"id": "eq.nope"})
        assert bad_uuid.status_code == 400 and bad_uuid.json()["code"] == "22P02"
        sorted_desc = http.get("/rest/v1/jobs", params={"order": "created_at.desc,id.asc"})
        assert sorted_desc.status_code == 200 and len(sorted_desc.json()) == 3
        ours = http.get("/rest/v1/jobs", headers={"Accept-Profile": "jobctl"})
        assert ours.status_code == 200 and ours.json() == []
        elsewhere = http.get("/rest/v1/jobs", headers={"Accept-Profile": "private"})
        assert elsewhere.status_code == 406 and elsewhere.json()["code"] == "PGRST106"
        assert "public, jobctl" in elsewhere.json()["message"]
        missing = http.get("/rest/v1/decisions")
        assert missing.status_code == 404 and missing.json()["code"] == "PGRST205"


def test_the_openapi_document_describes_the_app_table(published: ServerProcess) -> None:
    server = published
    token = jwt_for(server.config_dir, ALICE)
    with httpx.Client(base_url=server.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as http:  # fmt: skip
        doc = http.get("/rest/v1/")
        assert doc.status_code == 200, doc.text
        body = doc.json()
        assert body["swagger"] == "2.0"
        assert "/jobs" in body["paths"] and "get" in body["paths"]["/jobs"]
        jobs = body["definitions"]["jobs"]
        props = jobs["properties"]
        assert list(props) == [
            "id", "user_id", "status", "error_message", "result_summary", "journal_entry_id",
            "attempts", "created_at", "updated_at",
        ]  # fmt: skip
        assert props["id"] == {
            "default": "gen_random_uuid()",
            "description": "Note:\nThis is a Primary Key.<pk/>",
            "format": "uuid",
            "type": "string",
        }
        assert props["status"] == {"default": "pending", "format": "text", "type": "string"}
        assert props["result_summary"] == {"format": "jsonb"}
        assert props["attempts"] == {"default": 0, "format": "integer", "type": "integer"}
        assert props["created_at"]["format"] == "timestamp with time zone"
        assert set(jobs["required"]) == {"id", "user_id", "status", "attempts", "created_at",
                                         "updated_at"}  # fmt: skip
        assert body["parameters"]["rowFilter.jobs.status"]["format"] == "text"

        ours = http.get("/rest/v1/", headers={"Accept-Profile": "jobctl"}).json()
        assert "progress" in ours["definitions"]["jobs"]["properties"]
        assert ours["definitions"]["jobs"]["properties"]["progress"]["type"] == "integer"
        assert http.get("/rest/v1/", headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--publish", "public.nope"], "--publish public.nope: no such table"),
        (["--publish", "public.jobs", "--owner-column", "owner"],
         "--owner-column owner: public.jobs has no such column"),
        (["--publish", "public.jobs;drop"], "is not a plain identifier"),
        (["--publish", "jobctl.jobs"], "the jobctl schema is the server's own"),
    ],
)  # fmt: skip
def test_a_table_that_cannot_be_published_stops_the_start(
    make_server: Any, app_db: str, args: list[str], message: str
) -> None:
    server: ServerProcess = make_server("--db", app_db, *args, start=False)
    with pytest.raises(RuntimeError) as exc:
        server.start()
    server.ended = True
    assert message in str(exc.value)
    assert "Traceback" not in str(exc.value)
    assert server.proc is not None and server.proc.returncode == 2


def test_publish_needs_postgresql(make_server: Any, tmp_path: Any) -> None:
    server: ServerProcess = make_server(
        "--db", str(tmp_path / "x.db"), "--publish", "public.jobs", start=False
    )
    with pytest.raises(RuntimeError) as exc:
        server.start()
    server.ended = True
    assert "--publish needs a PostgreSQL database" in str(exc.value)
    assert server.proc is not None and server.proc.returncode == 2
