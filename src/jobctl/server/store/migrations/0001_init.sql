-- jobctl schema, version 1. Plain SQL that runs unchanged on SQLite and PostgreSQL:
-- ids are text, JSON is text, timestamps are integer microseconds since the epoch (UTC).
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL,
    status           TEXT NOT NULL,
    progress         INTEGER NOT NULL DEFAULT 0,
    message          TEXT,
    input            TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    attempt          INTEGER NOT NULL DEFAULT 1,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    user_id          TEXT NOT NULL,
    concurrency_key  TEXT,
    idempotency_key  TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT,
    run_at           BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, run_at);
CREATE INDEX IF NOT EXISTS jobs_user_created ON jobs (user_id, created_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);

CREATE TABLE IF NOT EXISTS steps (
    job_id       TEXT NOT NULL,
    step_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    position     INTEGER NOT NULL,
    status       TEXT NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 1,
    output       TEXT,
    error        TEXT,
    started_at   BIGINT,
    completed_at BIGINT,
    PRIMARY KEY (job_id, step_id)
);

CREATE TABLE IF NOT EXISTS job_logs (
    job_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    ts      BIGINT NOT NULL,
    level   TEXT NOT NULL,
    step    TEXT,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
