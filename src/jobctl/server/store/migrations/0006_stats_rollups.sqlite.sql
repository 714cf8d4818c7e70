-- Stats rollups (issue #15): /api/stats costs the same at any history.
--
-- job_totals: finished jobs by user, type and status, all time. Pending and running
--   jobs are counted live, over the partial index jobs_active (they are the work in
--   hand, not the history).
-- job_finish_minutes / job_finish_hours: finished jobs per minute (hour) of completed_at,
--   by user, type, status and duration bucket (completed_at - started_at; -1 for a job
--   that never started), with the count and the sum of durations. Stats read the last
--   hour from minutes and the week from hours (plus the minutes of its first, partial
--   hour): a few thousand rows whatever the history.
-- duration_buckets: bucket k >= 1 starts at lo_us = 100 us * ~1.1^(k-1) (integer steps
--   lo + lo / 10), bucket 0 is [0, 100 us): a percentile read from them is within ~10%.
--
-- Triggers keep the three tables in step with jobs in the same transaction as the
-- change (a job finishing, a retry taking it back to pending, the retention sweep
-- deleting it), whichever statement makes it; a rollup row that comes back to zero is
-- deleted. The migration fills them from the rows already there. (SQLite: WITHOUT ROWID
-- tables, clustered on their key: a window's rows are one range of the table itself.)
CREATE TABLE IF NOT EXISTS duration_buckets (
    bucket INTEGER PRIMARY KEY,
    lo_us  BIGINT NOT NULL UNIQUE
);
WITH RECURSIVE b(k, lo) AS (
    SELECT 1, CAST(100 AS BIGINT) UNION ALL SELECT k + 1, lo + lo / 10 FROM b WHERE k < 260
) INSERT INTO duration_buckets (bucket, lo_us) SELECT 0, 0 UNION ALL SELECT k, lo FROM b;

CREATE TABLE IF NOT EXISTS job_totals (
    user_id TEXT NOT NULL,
    type    TEXT NOT NULL,
    status  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (user_id, type, status)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_finish_minutes (
    minute   BIGINT NOT NULL,   -- completed_at / 60 000 000
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (minute, user_id, type, status, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_finish_hours (
    hour     BIGINT NOT NULL,   -- completed_at / 3 600 000 000
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (hour, user_id, type, status, bucket)
) WITHOUT ROWID;

-- Indexes for the reads that stats and the sweeps make (each an index range, never a
-- scan of the history):
-- live counts of the work in hand, by status and type (covering);
CREATE INDEX IF NOT EXISTS jobs_active ON jobs (status, type, user_id)
    WHERE status IN ('pending', 'running');
-- stuck jobs: running since before a time, or pending and never started since before one;
CREATE INDEX IF NOT EXISTS jobs_running_started ON jobs (started_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_unstarted ON jobs (created_at)
    WHERE status = 'pending' AND started_at IS NULL;
-- retention: finished jobs by status and completion time;
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (status, completed_at)
    WHERE completed_at IS NOT NULL;
-- and the sweep's delete of a job's idempotency key.
CREATE INDEX IF NOT EXISTS idempotency_keys_job ON idempotency_keys (job_id);

-- Backfill from the jobs already there.
INSERT INTO job_totals (user_id, type, status, n)
SELECT user_id, type, status, COUNT(*) FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')
GROUP BY user_id, type, status;
INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
SELECT m, user_id, type, status, b, COUNT(*), SUM(d) FROM (
    SELECT COALESCE(completed_at, updated_at) / 60000000 AS m, user_id, type, status,
           CASE WHEN started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(completed_at, updated_at) - started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AS b, CASE WHEN started_at IS NULL THEN 0 ELSE MAX(COALESCE(completed_at, updated_at) - started_at, 0) END AS d
    FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')
) f GROUP BY m, user_id, type, status, b;
INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
SELECT minute / 60, user_id, type, status, bucket, SUM(n), SUM(total_us)
FROM job_finish_minutes GROUP BY minute / 60, user_id, type, status, bucket;

-- One trigger per direction: a row leaves the rollups (OLD was finished) before it
-- enters them again (NEW is finished), so that an update between two finished states
-- moves it.
CREATE TRIGGER IF NOT EXISTS jobs_rollup_insert AFTER INSERT ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_totals (user_id, type, status, n) VALUES (NEW.user_id, NEW.type, NEW.status, 1)
        ON CONFLICT (user_id, type, status) DO UPDATE SET n = n + excluded.n;
    INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 60000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (minute, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 3600000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (hour, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
END;
CREATE TRIGGER IF NOT EXISTS jobs_rollup_leave AFTER UPDATE OF status, type, user_id, started_at, completed_at ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_totals (user_id, type, status, n) VALUES (OLD.user_id, OLD.type, OLD.status, -1)
        ON CONFLICT (user_id, type, status) DO UPDATE SET n = n + excluded.n;
    INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 60000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (minute, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 3600000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (hour, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    DELETE FROM job_totals WHERE user_id = OLD.user_id AND type = OLD.type
        AND status = OLD.status AND n = 0;
    DELETE FROM job_finish_minutes WHERE minute = COALESCE(OLD.completed_at, OLD.updated_at) / 60000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
    DELETE FROM job_finish_hours WHERE hour = COALESCE(OLD.completed_at, OLD.updated_at) / 3600000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
END;
CREATE TRIGGER IF NOT EXISTS jobs_rollup_enter AFTER UPDATE OF status, type, user_id, started_at, completed_at ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_totals (user_id, type, status, n) VALUES (NEW.user_id, NEW.type, NEW.status, 1)
        ON CONFLICT (user_id, type, status) DO UPDATE SET n = n + excluded.n;
    INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 60000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (minute, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(NEW.completed_at, NEW.updated_at) / 3600000000, NEW.user_id, NEW.type, NEW.status, CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, 1, (CASE WHEN NEW.started_at IS NULL THEN 0 ELSE MAX(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END))
        ON CONFLICT (hour, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
END;
CREATE TRIGGER IF NOT EXISTS jobs_rollup_delete AFTER DELETE ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_totals (user_id, type, status, n) VALUES (OLD.user_id, OLD.type, OLD.status, -1)
        ON CONFLICT (user_id, type, status) DO UPDATE SET n = n + excluded.n;
    INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 60000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (minute, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
        VALUES (COALESCE(OLD.completed_at, OLD.updated_at) / 3600000000, OLD.user_id, OLD.type, OLD.status, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END, -1, -(CASE WHEN OLD.started_at IS NULL THEN 0 ELSE MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END))
        ON CONFLICT (hour, user_id, type, status, bucket)
        DO UPDATE SET n = n + excluded.n, total_us = total_us + excluded.total_us;
    DELETE FROM job_totals WHERE user_id = OLD.user_id AND type = OLD.type
        AND status = OLD.status AND n = 0;
    DELETE FROM job_finish_minutes WHERE minute = COALESCE(OLD.completed_at, OLD.updated_at) / 60000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
    DELETE FROM job_finish_hours WHERE hour = COALESCE(OLD.completed_at, OLD.updated_at) / 3600000000 AND user_id = OLD.user_id
        AND type = OLD.type AND status = OLD.status AND bucket = CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= MAX(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AND n = 0;
END;
