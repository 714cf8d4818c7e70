"""The job service at unit level: in-process, a real SQLite file, no HTTP.

It holds the rules (checks, limits, idempotency) and raises domain errors; it never
wakes the engine, which hears of new work on the store's change bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobctl.server.engine import Engine, EngineSettings
from jobctl.server.inputs import UnsafeJson
from jobctl.server.joberrors import (
    DomainError,
    IdempotencyConflict,
    InvalidInput,
    JobMissing,
    LimitReached,
    StateConflict,
    TooLarge,
    UnknownType,
)
from jobctl.server.records import Limits
from jobctl.server.registry import Registry
from jobctl.server.service import JobService, Submission, Submitted, check_schemas
from jobctl.server.store.base import ListQuery
from jobctl.server.store.sqlite import SQLiteStore

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "minimum": 0},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["n"],
}


def make_registry() -> Registry:
    registry = Registry()

    @registry.job("count", input_schema=SCHEMA)
    async def count(ctx: Any) -> int:
        return int(ctx.input["n"])

    @registry.job("limited", reject_when_limited=True)
    async def limited(ctx: Any) -> None:
        await asyncio.sleep(30)

    return registry


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "service.db"))
    await s.open()
    yield s
    await s.close()


def service_for(store: SQLiteStore, **settings: Any) -> JobService:
    return JobService(store, make_registry(), EngineSettings(**settings), max_input_bytes=1000)


async def test_submit_checks_input_against_the_published_schema(store: SQLiteStore) -> None:
    service = service_for(store)
    refused: list[tuple[Submission, type[DomainError], str]] = [
        (Submission("nope", {}), UnknownType, "unknown job type 'nope' (known: count, limited)"),
        (Submission("count", {}), InvalidInput, "input.n is required for count"),
        (Submission("count", {"n": "1"}), InvalidInput, "input.n must be integer, not a string"),
        (Submission("count", {"n": -1}), InvalidInput, "input.n: -1 is less than the minimum of 0"),
        (Submission("count", {"n": 1, "when": "2024-02-30"}), InvalidInput,
         "input.when: '2024-02-30' is not a 'date'"),
        (Submission("count", [1]), InvalidInput, "input must be a JSON object, not an array"),
        (Submission("count", {"n": 1, "t": "x" * 1000}), TooLarge, "input is over the 0 KiB limit"),
        (Submission("count", {"n": 1, "t": "\ud800"}), UnsafeJson, "input.t: contains a lone"),
        (Submission("count", {"n": 1, "t": {"\x00": 1}}), UnsafeJson, 'input.t["\\u0000"] (a key)'),
        (Submission("count", {"n": float("nan")}), UnsafeJson, "input.n: nan is not a JSON number"),
        (Submission("count", {"n": 1}, idempotency_key="a\x00"), UnsafeJson, "idempotency_key"),
        (Submission("count", {"n": 1}, concurrency_key=""), InvalidInput, "concurrency_key: 1 to"),
    ]  # fmt: skip
    deep: dict[str, Any] = {"n": 1}
    for _ in range(64):
        deep = {"a": deep}
    refused.append((Submission("count", {"n": 1, "d": deep}), UnsafeJson, "nested deeper than 64"))
    for sub, error, message in refused:
        with pytest.raises(error) as caught:
            await service.submit(sub, "u")
        assert message in caught.value.message, (sub, caught.value.message)
    rows, _ = await store.list_jobs(ListQuery(None))
    assert rows == []
    ok = await service.submit(Submission("count", {"n": 1, "when": "2024-02-29"}), "u")
    assert ok.created and ok.job.input == '{"n":1,"when":"2024-02-29"}'


async def test_a_reused_key_must_name_the_same_request(store: SQLiteStore) -> None:
    service = service_for(store)
    first = await service.submit(Submission("count", {"n": 1}, idempotency_key="k"), "u")
    again = await service.submit(Submission("count", {"n": 1}, idempotency_key="k"), "u")
    assert (again.created, again.job.id) == (False, first.job.id)
    for other in (Submission("count", {"n": 2}, idempotency_key="k"),
                  Submission("count", {"n": 1.0}, idempotency_key="k"),
                  Submission("count", {"n": 1}, idempotency_key="k", concurrency_key="org:a"),
                  Submission("limited", {"n": 1}, idempotency_key="k")):  # fmt: skip
        with pytest.raises(IdempotencyConflict) as caught:
            await service.submit(other, "u")
        assert caught.value.job_id == first.job.id
    # keys are per user
    assert (await service.submit(Submission("count", {"n": 2}, idempotency_key="k"), "v")).created


async def test_submit_many_answers_each_in_its_place(store: SQLiteStore) -> None:
    service = service_for(store)
    results = await service.submit_many(
        [Submission("count", {"n": 1}), Submission("count", {}), Submission("nope", {}),
         Submission("count", {"n": 2})],
        "u",
    )  # fmt: skip
    assert [type(r) for r in results] == [Submitted, InvalidInput, UnknownType, Submitted]
    assert [r.job.input for r in results if isinstance(r, Submitted)] == ['{"n":1}', '{"n":2}']


async def test_limits_cancel_retry_and_missing_jobs(store: SQLiteStore) -> None:
    service = service_for(store, limits=Limits(per_user=0, per_key=(), default_key=None))
    with pytest.raises(LimitReached):
        await service.submit(Submission("limited", {}), "u")
    job = (await service.submit(Submission("count", {"n": 1}), "u")).job
    with pytest.raises(JobMissing):
        await service.job(job.id, "someone else")
    with pytest.raises(StateConflict):
        await service.retry(job.id, "u", False)
    assert (await service.cancel(job.id, "u")).status == "cancelled"
    with pytest.raises(StateConflict):
        await service.cancel(job.id, "u")
    assert (await service.retry(job.id, None, True)).status == "pending"


def test_a_type_with_an_invalid_schema_is_refused_at_start() -> None:
    registry = make_registry()

    @registry.job("broken", input_schema={"type": "objekt"})
    async def broken(ctx: Any) -> None: ...

    with pytest.raises(
        ValueError, match="job type broken: input_schema is not a valid JSON Schema"
    ):
        check_schemas(registry)


async def test_the_engine_hears_of_submitted_work_on_the_change_bus(store: SQLiteStore) -> None:
    """The service never calls engine.wake(): with polling pushed out to 60 s, a job
    submitted through it still starts at once, because the store's INSERT reaches the
    engine on the change bus. (The wait below is a bound, far under 60 s.)"""
    service = service_for(store)
    engine = Engine(store, service.registry, EngineSettings(poll_interval=60.0))
    assert not hasattr(service, "engine")
    await engine.start()
    try:
        await asyncio.sleep(0.2)  # the dispatcher's first look finds nothing and sleeps
        sub = await service.submit(Submission("count", {"n": 7}), "u")
        for _ in range(200):
            row = await service.job(sub.job.id, "u")
            if row.status == "completed":
                break
            await asyncio.sleep(0.05)
        assert (row.status, row.output) == ("completed", "7")
    finally:
        await engine.stop()
