-- Stats tiers (issue #15): the windows of /api/stats read a few periods, at any history.
--
-- 0006's rollups hold a row per period (minute, hour) and user, type, status and duration
-- bucket: with a busy history nearly every combination is there in every period, so the
-- last hour read 60 minutes of them and the week 168 hours (at 10 million jobs, ~100,000
-- rows). Two coarser tiers, kept by the same triggers:
-- job_finish_tens: per ten minutes of completed_at; the last hour reads the minutes up
--   to the first whole ten, then tens (at most 9 + 6 periods).
-- job_finish_days: per UTC day; the week (from the start of the hour 7 days ago) reads
--   the hours up to the first whole day, then days (at most 23 + 8 periods).

CREATE TABLE IF NOT EXISTS job_finish_tens (
    ten      BIGINT NOT NULL,   -- completed_at / 600 000 000 (ten minutes)
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (ten, user_id, type, status, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_finish_days (
    day      BIGINT NOT NULL,   -- completed_at / 86 400 000 000 (UTC days)
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, type, status, bucket)
) WITHOUT ROWID;
INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
SELECT minute / 10, user_id, type, status, bucket, SUM(n), SUM(total_us)
FROM job_finish_minutes GROUP BY minute / 10, user_id, type, status, bucket;
INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
SELECT hour / 24, user_id, type, status, bucket, SUM(n), SUM(total_us)
FROM job_finish_hours GROUP BY hour / 24, user_id, type, status, bucket;

-- Stuck jobs and expiry: the partial indexes carry the type, the user and every column
-- the statements name, so that a count (of all users or one) or expiry's filter on the
-- types a server runs is read from the index alone, never from the rows (SQLite does
-- not take a partial index's WHERE for its columns).
DROP INDEX IF EXISTS jobs_running_started;
CREATE INDEX IF NOT EXISTS jobs_running_started ON jobs (started_at, type, user_id, status)
    WHERE status = 'running';
DROP INDEX IF EXISTS jobs_unstarted;
CREATE INDEX IF NOT EXISTS jobs_unstarted
    ON jobs (created_at, type, user_id, status, started_at)
    WHERE status = 'pending' AND started_at IS NULL;

-- The same triggers as 0006's, for the two tiers (0006's keep the totals, minutes and hours).
CREATE TRIGGER IF NOT EXISTS jobs_tiers_insert AFTER INSERT ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 600000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (ten, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 86400000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (day, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
END;
CREATE TRIGGER IF NOT EXISTS jobs_tiers_leave AFTER UPDATE OF status, type, user_id, started_at, completed_at ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 600000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (ten, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 86400000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (day, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    DELETE FROM job_finish_tens WHERE ten = COALESCE(OLD.completed_at, OLD.updated_at) / 600000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
    DELETE FROM job_finish_days WHERE day = COALESCE(OLD.completed_at, OLD.updated_at) / 86400000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
END;
CREATE TRIGGER IF NOT EXISTS jobs_tiers_enter AFTER UPDATE OF status, type, user_id, started_at, completed_at ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 600000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (ten, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 86400000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (day, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
END;
CREATE TRIGGER IF NOT EXISTS jobs_tiers_delete AFTER DELETE ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 600000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (ten, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 86400000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (day, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    DELETE FROM job_finish_tens WHERE ten = COALESCE(OLD.completed_at, OLD.updated_at) / 600000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
    DELETE FROM job_finish_days WHERE day = COALESCE(OLD.completed_at, OLD.updated_at) / 86400000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
END;
