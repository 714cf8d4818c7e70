-- Schedules, their runs (one row per tick: the exactly-once key), and the event history.
-- Plain SQL for both stores, as 0001: text ids, text JSON, integer microseconds (UTC).

-- A job made by a schedule carries its schedule and nominal tick (kept when the schedule
-- is deleted: deleting a schedule does not touch its jobs).
ALTER TABLE jobs ADD COLUMN schedule_id TEXT;
ALTER TABLE jobs ADD COLUMN schedule_tick BIGINT;

CREATE TABLE IF NOT EXISTS schedules (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    name           TEXT NOT NULL,
    type           TEXT NOT NULL,
    cron           TEXT,             -- 5 fields (an @hourly form is stored as its 5 fields)
    tz             TEXT NOT NULL,
    every_us       BIGINT,           -- or a fixed period
    input          TEXT NOT NULL,
    overlap        TEXT NOT NULL,    -- skip | buffer-one | allow
    catchup_us     BIGINT NOT NULL,  -- missed ticks younger than this run after downtime
    catchup_policy TEXT NOT NULL,    -- each | once
    jitter_us      BIGINT NOT NULL,
    paused         INTEGER NOT NULL DEFAULT 0,
    note           TEXT,
    next_tick      BIGINT,           -- the first tick not yet handled (NULL: none left)
    buffered_tick  BIGINT,           -- buffer-one: the tick waiting for the running job
    last_tick      BIGINT,
    last_job_id    TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS schedules_user_name ON schedules (user_id, name);
-- The scheduler's look-up: active schedules by the next tick due.
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_tick) WHERE paused = 0;

-- One row per (schedule, tick): inserting it is what makes a tick fire at most once, with
-- any number of servers. outcome: started | skipped_missed | skipped_overlap | coalesced
-- or buffered. kind: tick, trigger or backfill.
CREATE TABLE IF NOT EXISTS schedule_runs (
    schedule_id TEXT NOT NULL,
    tick        BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    job_id      TEXT,
    detail      TEXT,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (schedule_id, tick)
);
CREATE INDEX IF NOT EXISTS schedule_runs_recorded ON schedule_runs (recorded_at);

-- Every event received on /e/{key} and every API submit; replays link to the original.
CREATE TABLE IF NOT EXISTS events (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    data        TEXT NOT NULL,
    event_id    TEXT,               -- the sender's id (de-duplication), if any
    source      TEXT NOT NULL,      -- event | api | replay
    replay_of   TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user_received ON events (user_id, received_at);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);

CREATE TABLE IF NOT EXISTS event_jobs (
    event_id TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    PRIMARY KEY (event_id, job_id)
);
CREATE INDEX IF NOT EXISTS event_jobs_job ON event_jobs (job_id);
