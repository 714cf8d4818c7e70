"""The journal reference app: a small, faithful stand-in for a Nuxt + Inngest + Supabase app.

    POST /api/journal/submit  {eventText, referenceDate?, evidenceIds?}
        Authorization: Bearer <the user's Supabase access token>
        -> {journalEntryId, jobId, message}

It writes a `journal_entries` row and a `jobs` row (status `pending`), and a background worker
(what the app's Inngest function does) moves the job `pending -> processing -> completed`,
filling `result_summary` {events_created, evidence_processed, action_items_created, event_ids},
or `failed` with `error_message`. The frontend follows the job through Supabase Realtime
(`postgres_changes` UPDATEs with `filter: id=eq.<jobId>`); here that is the jobctl stand-in
publishing this app's table: see README.md.

Run it (the table comes from this app's own migration, run at start-up):

    DATABASE_URL=postgresql://localhost/journal SUPABASE_JWT_SECRET=... \\
        python examples/apps/journal-app/app.py --port 8000

Events are extracted by jobctl's offline extractor (jobctl.server.jobs.extract, the same rules
as jobctl's own `journal_extraction` job type): no LLM, the same answer every time. An entry
containing the word FAIL fails, as a failed LLM call would, with an error_message.
Environment: DATABASE_URL, SUPABASE_JWT_SECRET (the stand-in's JWT secret),
JOURNAL_STEP_SECONDS (the pause between the worker's steps; 1 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import jwt
import psycopg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobctl.server.jobs import extract

log = logging.getLogger("journal-app")
MIGRATION = Path(__file__).with_name("migration.sql")
POLL_SECONDS = 0.2  # how often the worker looks for pending jobs (Inngest would push them)


class Submit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # camelCase: the app's JSON
    eventText: str = Field(min_length=1, max_length=100_000)
    referenceDate: date | None = None
    evidenceIds: list[str] = Field(default_factory=list, max_length=100)


class AppError(Exception):
    """An error answered as Nuxt's createError() does: {statusCode, statusMessage, message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity"}


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("journal-app: set DATABASE_URL (postgresql://...)")
    return url


def user_of(request: Request) -> str:
    """The user id (the JWT's sub) of a valid Supabase access token, as the app's
    serverSupabaseUser() gives it."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError(401, "Unauthorized: send Authorization: Bearer <access token>")
    secret = os.environ.get("SUPABASE_JWT_SECRET", "")
    try:
        claims = jwt.decode(
            token.strip(), secret, algorithms=["HS256"],
            options={"require": ["exp", "sub"], "verify_aud": False},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise AppError(401, "Unauthorized: the access token has expired") from None
    except jwt.PyJWTError:
        raise AppError(401, "Unauthorized: invalid access token") from None
    if claims.get("role") != "authenticated":
        raise AppError(401, "Unauthorized: not a user's token")
    try:
        return str(uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise AppError(401, "Unauthorized: the token's sub is not a user id") from None


async def migrate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(MIGRATION.read_text())


# The worker: what the app's Inngest function `process-journal-entry` does, step by step.


async def claim(conn: psycopg.AsyncConnection[Any]) -> tuple[Any, ...] | None:
    cur = await conn.execute(
        "UPDATE jobs SET status = 'processing', updated_at = now() WHERE id = ("
        " SELECT id FROM jobs WHERE status = 'pending' ORDER BY created_at"
        " LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING jobs.id, jobs.user_id, jobs.journal_entry_id"
    )
    return await cur.fetchone()


def extract_all(text: str, reference: date | None) -> tuple[list[dict[str, Any]], int]:
    if re.search(r"\bFAIL\b", text):
        raise RuntimeError("the event extraction failed: the model could not read this entry")
    ref = reference or extract.find_reference_date(text, date.today())
    sentences = extract.split_sentences(text)
    dated_header = bool(sentences) and extract._absolute_date(sentences[0], ref) is not None
    events = extract.extract_events(sentences, ref, dated_header)
    items = extract.extract_action_items(sentences, ref)
    return events, len(items)


async def process(url: str, job_id: Any, user_id: Any, entry_id: Any, pause: float) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT event_text, reference_date, evidence_ids FROM journal_entries WHERE id = %s",
            (entry_id,),
        )
        entry = await cur.fetchone()
        await asyncio.sleep(pause)  # the LLM call
        try:
            if entry is None:
                raise RuntimeError("the journal entry is gone")
            text, reference, evidence = entry
            events, action_items = extract_all(text, reference)
        except Exception as exc:
            await conn.execute(
                "UPDATE jobs SET status = 'failed', error_message = %s, updated_at = now()"
                " WHERE id = %s",
                (str(exc), job_id),
            )
            log.info("job %s failed: %s", job_id, exc)
            return
        async with conn.transaction():
            for event in events:
                await conn.execute(
                    "INSERT INTO journal_events (id, user_id, journal_entry_id, title, event_date,"
                    " event_time) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (event["id"], user_id, entry_id, event["title"], event["date"],
                     event.get("time")),
                )  # fmt: skip
        await asyncio.sleep(pause)  # evidence and action items
        summary = {
            "events_created": len(events),
            "evidence_processed": len(evidence or []),
            "action_items_created": action_items,
            "event_ids": [e["id"] for e in events],
        }
        await conn.execute(
            "UPDATE jobs SET status = 'completed', result_summary = %s, updated_at = now()"
            " WHERE id = %s",
            (json.dumps(summary), job_id),
        )
        log.info("job %s completed: %d events", job_id, len(events))


async def worker(url: str, pause: float) -> None:
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                claimed = await claim(conn)
            if claimed is None:
                await asyncio.sleep(POLL_SECONDS)
                continue
            job_id, user_id, entry_id = claimed
            await process(url, job_id, user_id, entry_id, pause)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker: a job could not be processed; trying again shortly")
            await asyncio.sleep(1.0)


def create_app() -> FastAPI:
    url = database_url()
    pause = float(os.environ.get("JOURNAL_STEP_SECONDS", "1"))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(url)
        task = asyncio.create_task(worker(url, pause))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="journal reference app", lifespan=lifespan)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            {"statusCode": exc.status, "statusMessage": REASONS.get(exc.status, "Error"),
             "message": str(exc)}, status_code=exc.status,
        )  # fmt: skip

    @app.post("/api/journal/submit")
    async def submit(request: Request) -> dict[str, Any]:
        user_id = user_of(request)
        try:
            body = Submit.model_validate(await request.json())
        except ValueError as exc:  # not JSON, or not the shape (ValidationError is one)
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "not JSON"
            raise AppError(400, f"Invalid request body: {detail}") from None
        if not body.eventText.strip():
            raise AppError(400, "eventText is required")
        connecting = psycopg.AsyncConnection.connect(url, autocommit=True)
        async with await connecting as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO journal_entries (user_id, event_text, reference_date,"
                " evidence_ids) VALUES (%s, %s, %s, %s) RETURNING id",
                (user_id, body.eventText, body.referenceDate, body.evidenceIds),
            )
            entry = await cur.fetchone()
            assert entry is not None
            cur = await conn.execute(
                "INSERT INTO jobs (user_id, journal_entry_id) VALUES (%s, %s) RETURNING id",
                (user_id, entry[0]),
            )
            job = await cur.fetchone()
            assert job is not None
        return {
            "journalEntryId": str(entry[0]),
            "jobId": str(job[0]),
            "message": "Journal entry submitted for processing",
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
