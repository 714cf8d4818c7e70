"""List rows are summaries (GET /api/jobs): no input or output unless `fields=` asks for
them, and the stored input's size in bytes; `show` returns the whole job. On both stores,
through the real app (httpx.ASGITransport)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobctl.jobshape import JOB_FIELD_NAMES, SUMMARY_FIELDS
from jobctl.server.records import NewJob, dumps, now_us
from jobctl.server.store.base import Store

BIG = {"text": "é" * 300_000, "note": "a big input: 600,000 bytes in 300,000 characters"}


@pytest.fixture
async def api(store_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    from jobctl.server.main import build
    from jobctl.server.settings import ServerSettings

    settings = ServerSettings(db=store_url, data_dir=tmp_path / "d",
                              token_file=tmp_path / "token", jwt_secret_file=tmp_path / "jwt")  # fmt: skip
    built = build(settings)
    store = built.engine.store
    await store.open()
    try:
        transport = httpx.ASGITransport(app=built.app)
        headers = {"Authorization": f"Bearer {built.auth.local_token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers=headers) as client:  # fmt: skip
            yield client, store
    finally:
        await store.close()


async def add(store: Store, value: dict[str, Any], type: str = "demo") -> str:
    new = NewJob(str(uuid.uuid4()), type, dumps(value), "local", 1)
    await store.create_job(new, now_us(), 10**9)
    return new.id


async def listed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/api/jobs", params=params)
    assert answer.status_code == 200, answer.text
    jobs: list[dict[str, Any]] = answer.json()["jobs"]
    return jobs


async def test_a_page_without_fields_is_summaries_with_the_inputs_size(
    api: tuple[httpx.AsyncClient, Store],
) -> None:
    client, store = api
    big = await add(store, BIG)
    small = await add(store, {"steps": 0, "word": "naïve ✓"})
    rows = {j["id"]: j for j in await listed(client)}
    assert set(rows) == {big, small}
    for job_id, row in rows.items():
        assert "input" not in row and "output" not in row
        assert tuple(row) == SUMMARY_FIELDS
        stored = await store.get_job(job_id, None)
        assert stored is not None
        assert row["input_bytes"] == len(stored.input.encode()), "bytes, not characters"
    assert rows[big]["input_bytes"] > 600_000 > len(dumps(BIG))
    # the summary page is small, whatever the inputs hold
    answer = await client.get("/api/jobs")
    assert len(answer.content) < 3000


async def test_fields_picks_what_each_row_carries(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = api
    job_id = await add(store, {"steps": 2})
    (with_input,) = await listed(client, fields="input")
    assert with_input == {"id": job_id, "input": {"steps": 2}}  # id is always there
    (both,) = await listed(client, fields="status,input,output,input_bytes")
    assert both == {
        "id": job_id,
        "status": "pending",
        "input": {"steps": 2},
        "output": None,
        "input_bytes": len(b'{"steps":2}'),
    }
    (repeated,) = await listed(client, fields=["type", "progress"])
    assert repeated == {"id": job_id, "type": "demo", "progress": 0}
    (everything,) = await listed(client, fields=",".join(JOB_FIELD_NAMES))
    shown = (await client.get(f"/api/jobs/{job_id}")).json()
    assert everything == shown and shown["input"] == {"steps": 2}
    # filters and fields together, through the prefix and the status paths of the store
    (by_prefix,) = await listed(client, id_prefix=job_id[:6], fields="input")
    (by_status,) = await listed(client, status="pending,running", type="demo", fields="input")
    assert by_prefix == by_status == with_input


async def test_show_returns_the_whole_job(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = api
    job_id = await add(store, BIG)
    shown = (await client.get(f"/api/jobs/{job_id}")).json()
    assert tuple(shown) == JOB_FIELD_NAMES and shown["input"] == BIG


@pytest.mark.parametrize(
    "fields",
    ["bogus", "input,bogus", "INPUT", "input; DROP TABLE jobs", "lease_owner", "run_at", "x" * 300],
)
async def test_an_unknown_field_is_a_clear_400(
    api: tuple[httpx.AsyncClient, Store], fields: str
) -> None:
    client, store = api
    await add(store, {"steps": 0})
    answer = await client.get("/api/jobs", params={"fields": fields})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_fields"
    assert (
        error["message"].startswith("fields: unknown field ") and "input_bytes" in error["message"]
    )


async def test_the_openapi_says_list_rows_may_leave_fields_out(
    api: tuple[httpx.AsyncClient, Store],
) -> None:
    client, _ = api
    doc = (await client.get("/openapi.json")).json()
    row = doc["components"]["schemas"]["JobRowOut"]
    assert row["required"] == ["id"]
    assert {"input", "output", "input_bytes"} <= set(row["properties"])
    assert row["properties"]["input_bytes"]["anyOf"][0] == {"type": "integer", "minimum": 0}
    listing = doc["paths"]["/api/jobs"]["get"]
    assert "fields" in {p["name"] for p in listing["parameters"]}
    full = doc["components"]["schemas"]["JobOut"]
    assert set(full["required"]) == set(JOB_FIELD_NAMES)  # show: everything
