"""The decision reference app: a small, faithful stand-in for an Inngest + Supabase app whose jobs
analyse a decision.

    POST /api/jobs             {type, decision_id, input}  -> the job (201)
    GET  /api/jobs/{id}        -> the job (its owner only; the frontend polls this)
    POST /api/jobs/{id}/cancel -> the job, cancelled (409 when it already ended)

Types and what the frontend does with them: `competitor_analysis` and `market_research` are
polled every 3 s and given up after 2 min, `brief_generation` every 2 s for 1 min,
`option_analysis` every 2 s for 30 s. The `jobs` table (this app's own migration) has `progress`
0-100, the progress text in `output.status_message`, `error`, and `org_id` and `decision_id`
for its limits: one active job per decision and type (409), five active jobs per org (429).

A background worker (what the app's Inngest functions do) moves a job `pending -> running ->
completed`, raising `progress` and `output.status_message` at each stage, or `failed` with
`error` (an input with `"fail": true` fails at the third stage), and stops at the next stage
boundary when the job was cancelled.

    DATABASE_URL=postgresql://localhost/decisions SUPABASE_JWT_SECRET=... \\
        python examples/apps/decision-app/app.py --port 8001

Environment: DATABASE_URL, SUPABASE_JWT_SECRET (the stand-in's JWT secret),
DECISION_STEP_SECONDS (the pause between stages; 1 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import jwt
import psycopg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("decision-app")
MIGRATION = Path(__file__).with_name("migration.sql")
POLL_SECONDS = 0.2
ORG_ACTIVE_LIMIT = 5
ACTIVE = ("pending", "running")

STAGES: dict[str, list[str]] = {
    "competitor_analysis": ["Finding competitors", "Reading reviews", "Comparing features",
                            "Writing the analysis"],
    "market_research": ["Sizing the market", "Collecting trends", "Segmenting customers",
                        "Writing the report"],
    "brief_generation": ["Reading the decision", "Drafting the brief", "Polishing"],
    "option_analysis": ["Scoring options", "Weighing trade-offs"],
}  # fmt: skip
COLUMNS = (
    "id, type, status, progress, input, output, error, org_id, decision_id, user_id,"
    " created_at, updated_at"
)


class NewJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["competitor_analysis", "market_research", "brief_generation", "option_analysis"]
    decision_id: str = Field(min_length=1, max_length=200)
    input: dict[str, Any] = Field(default_factory=dict)


class AppError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("decision-app: set DATABASE_URL (postgresql://...)")
    return url


def caller(request: Request) -> tuple[str, str]:
    """(user id, org id) of a valid Supabase access token; the org from the token's
    app_metadata.org_id, else the user's own (a personal org)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError(401, "send Authorization: Bearer <access token>")
    try:
        claims = jwt.decode(
            token.strip(), os.environ.get("SUPABASE_JWT_SECRET", ""), algorithms=["HS256"],
            options={"require": ["exp", "sub"], "verify_aud": False},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise AppError(401, "the access token has expired") from None
    except jwt.PyJWTError:
        raise AppError(401, "invalid access token") from None
    if claims.get("role") != "authenticated":
        raise AppError(401, "not a user's token")
    try:
        user_id = str(uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise AppError(401, "the token's sub is not a user id") from None
    meta = claims.get("app_metadata")
    org = meta.get("org_id") if isinstance(meta, dict) else None
    return user_id, str(org or f"personal-{user_id}")


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["id"] = str(row["id"])
    out["user_id"] = str(row["user_id"])
    for key in ("created_at", "updated_at"):
        out[key] = row[key].isoformat()
    return out


async def connect(url: str) -> psycopg.AsyncConnection[dict[str, Any]]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)


# The worker: one stage at a time, each a committed UPDATE that Realtime subscribers see.


async def run_job(url: str, job: dict[str, Any], pause: float) -> None:
    stages = STAGES[job["type"]]
    fail = bool(job["input"].get("fail"))
    async with await connect(url) as conn:
        for i, stage in enumerate(stages):
            if fail and i == 2:
                await conn.execute(
                    "UPDATE jobs SET status = 'failed', error = %s, updated_at = now()"
                    " WHERE id = %s AND status = 'running'",
                    (f"{stage} failed: the data source refused the request", job["id"]),
                )
                return
            progress = int(100 * (i + 1) / (len(stages) + 1))
            cur = await conn.execute(
                "UPDATE jobs SET progress = %s, output = %s, updated_at = now()"
                " WHERE id = %s AND status = 'running' RETURNING id",
                (progress, json.dumps({"status_message": f"{stage}..."}), job["id"]),
            )
            if await cur.fetchone() is None:
                log.info("job %s was cancelled; stopping", job["id"])
                return
            await asyncio.sleep(pause)
        result = {
            "status_message": "Done",
            "summary": f"{job['type'].replace('_', ' ')} for decision {job['decision_id']}",
            "stages": stages,
        }
        await conn.execute(
            "UPDATE jobs SET status = 'completed', progress = 100, output = %s,"
            " updated_at = now() WHERE id = %s AND status = 'running'",
            (json.dumps(result), job["id"]),
        )


async def worker(url: str, pause: float) -> None:
    while True:
        try:
            async with await connect(url) as conn:
                cur = await conn.execute(
                    "UPDATE jobs SET status = 'running', progress = 0, output = %s,"
                    " updated_at = now() WHERE id = ("
                    " SELECT id FROM jobs WHERE status = 'pending' ORDER BY created_at"
                    f" LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
                    (json.dumps({"status_message": "Starting..."}),),
                )
                job = await cur.fetchone()
            if job is None:
                await asyncio.sleep(POLL_SECONDS)
                continue
            await asyncio.sleep(pause)
            await run_job(url, job, pause)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker: a job could not be processed; trying again shortly")
            await asyncio.sleep(1.0)


def create_app() -> FastAPI:
    url = database_url()
    pause = float(os.environ.get("DECISION_STEP_SECONDS", "1"))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(MIGRATION.read_text())
        task = asyncio.create_task(worker(url, pause))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="decision reference app", lifespan=lifespan)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.post("/api/jobs", status_code=201)
    async def create_job(request: Request) -> dict[str, Any]:
        user_id, org_id = caller(request)
        try:
            body = NewJob.model_validate(await request.json())
        except ValueError as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "not JSON"
            raise AppError(400, f"invalid request body: {detail}") from None
        async with await connect(url) as conn, conn.transaction():
            # Limits, checked under a per-org lock so two requests cannot both pass them.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (org_id,))
            cur = await conn.execute(
                "SELECT count(*) AS n, count(*) FILTER (WHERE decision_id = %s AND type = %s)"
                " AS same FROM jobs WHERE org_id = %s AND status = ANY(%s)",
                (body.decision_id, body.type, org_id, list(ACTIVE)),
            )
            counts = await cur.fetchone()
            assert counts is not None
            if counts["same"]:
                raise AppError(409, f"a {body.type} job is already running for this decision")
            if counts["n"] >= ORG_ACTIVE_LIMIT:
                raise AppError(429, f"your organisation has {ORG_ACTIVE_LIMIT} jobs running")
            cur = await conn.execute(
                "INSERT INTO jobs (type, input, org_id, decision_id, user_id)"
                f" VALUES (%s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                (body.type, json.dumps(body.input), org_id, body.decision_id, user_id),
            )
            row = await cur.fetchone()
        assert row is not None
        return to_json(row)

    async def owned(job_id: str, user_id: str) -> dict[str, Any]:
        try:
            uuid.UUID(job_id)
        except ValueError:
            raise AppError(404, "job not found") from None
        async with await connect(url) as conn:
            cur = await conn.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE id = %s AND user_id = %s", (job_id, user_id)
            )
            row = await cur.fetchone()
        if row is None:
            raise AppError(404, "job not found")
        return row

    @app.get("/api/jobs/{job_id}")
    async def get_job(job_id: str, request: Request) -> dict[str, Any]:
        user_id, _ = caller(request)
        return to_json(await owned(job_id, user_id))

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
        user_id, _ = caller(request)
        await owned(job_id, user_id)
        async with await connect(url) as conn:
            cur = await conn.execute(
                "UPDATE jobs SET status = 'cancelled', updated_at = now()"
                f" WHERE id = %s AND status = ANY(%s) RETURNING {COLUMNS}",
                (job_id, list(ACTIVE)),
            )
            row = await cur.fetchone()
        if row is None:
            raise AppError(409, "the job has already ended")
        return to_json(row)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
