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
-- deleted. The migration fills them from the rows already there.
-- The backfill and the triggers see the same rows: no job changes meanwhile.
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
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
);
CREATE TABLE IF NOT EXISTS job_finish_minutes (
    minute   BIGINT NOT NULL,   -- completed_at / 60 000 000
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (minute, user_id, type, status, bucket)
);
CREATE TABLE IF NOT EXISTS job_finish_hours (
    hour     BIGINT NOT NULL,   -- completed_at / 3 600 000 000
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (hour, user_id, type, status, bucket)
);

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

CREATE OR REPLACE FUNCTION jobctl_duration_bucket(d BIGINT) RETURNS INTEGER
LANGUAGE sql STABLE AS $$
    SELECT bucket FROM duration_buckets WHERE lo_us <= GREATEST(d, 0)
    ORDER BY lo_us DESC LIMIT 1
$$;

-- Backfill from the jobs already there.
INSERT INTO job_totals (user_id, type, status, n)
SELECT user_id, type, status, COUNT(*) FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')
GROUP BY user_id, type, status;
INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
SELECT m, user_id, type, status, b, COUNT(*), SUM(d) FROM (
    SELECT COALESCE(completed_at, updated_at) / 60000000 AS m, user_id, type, status,
           CASE WHEN started_at IS NULL THEN -1 ELSE jobctl_duration_bucket(COALESCE(completed_at, updated_at) - started_at) END AS b, CASE WHEN started_at IS NULL THEN 0 ELSE GREATEST(COALESCE(completed_at, updated_at) - started_at, 0) END AS d
    FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')
) f GROUP BY m, user_id, type, status, b;
INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
SELECT minute / 60, user_id, type, status, bucket, SUM(n), SUM(total_us)
FROM job_finish_minutes GROUP BY minute / 60, user_id, type, status, bucket;

-- Row triggers for single changes (a job finishing, a retry), filtered by WHEN so that
-- creating, claiming or a progress write does not call them: one statement per
-- direction (the three upserts as data-modifying CTEs), as each costs a round of the
-- executor.
CREATE OR REPLACE FUNCTION jobctl_rollup_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IN ('completed', 'failed', 'cancelled') THEN
        WITH r AS (
            SELECT COALESCE(OLD.completed_at, OLD.updated_at) AS c, OLD.user_id AS u, OLD.type AS t, OLD.status AS s,
                   CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets
                       WHERE lo_us <= GREATEST(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0)
                       ORDER BY lo_us DESC LIMIT 1) END AS b,
                   CASE WHEN OLD.started_at IS NULL THEN 0
                       ELSE GREATEST(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END AS d
        ), tot AS (
            INSERT INTO job_totals (user_id, type, status, n) SELECT u, t, s, -1 FROM r
            ON CONFLICT (user_id, type, status) DO UPDATE SET n = job_totals.n + excluded.n
        ), hrs AS (
            INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
            SELECT c / 3600000000, u, t, s, b, -1, -d FROM r
            ON CONFLICT (hour, user_id, type, status, bucket) DO UPDATE
            SET n = job_finish_hours.n + excluded.n,
                total_us = job_finish_hours.total_us + excluded.total_us
        )
        INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
        SELECT c / 60000000, u, t, s, b, -1, -d FROM r
        ON CONFLICT (minute, user_id, type, status, bucket) DO UPDATE
        SET n = job_finish_minutes.n + excluded.n,
            total_us = job_finish_minutes.total_us + excluded.total_us;
        WITH z AS (SELECT COALESCE(OLD.completed_at, OLD.updated_at) AS c, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= GREATEST(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AS b), tot AS (
            DELETE FROM job_totals WHERE user_id = OLD.user_id AND type = OLD.type
                AND status = OLD.status AND n = 0
        ), hrs AS (
            DELETE FROM job_finish_hours h USING z WHERE h.hour = z.c / 3600000000
                AND h.user_id = OLD.user_id AND h.type = OLD.type AND h.status = OLD.status
                AND h.bucket = z.b AND h.n = 0
        )
        DELETE FROM job_finish_minutes m USING z WHERE m.minute = z.c / 60000000
            AND m.user_id = OLD.user_id AND m.type = OLD.type AND m.status = OLD.status
            AND m.bucket = z.b AND m.n = 0;
    END IF;
    IF NEW.status IN ('completed', 'failed', 'cancelled') THEN
        WITH r AS (
            SELECT COALESCE(NEW.completed_at, NEW.updated_at) AS c, NEW.user_id AS u, NEW.type AS t, NEW.status AS s,
                   CASE WHEN NEW.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets
                       WHERE lo_us <= GREATEST(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0)
                       ORDER BY lo_us DESC LIMIT 1) END AS b,
                   CASE WHEN NEW.started_at IS NULL THEN 0
                       ELSE GREATEST(COALESCE(NEW.completed_at, NEW.updated_at) - NEW.started_at, 0) END AS d
        ), tot AS (
            INSERT INTO job_totals (user_id, type, status, n) SELECT u, t, s, 1 FROM r
            ON CONFLICT (user_id, type, status) DO UPDATE SET n = job_totals.n + excluded.n
        ), hrs AS (
            INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
            SELECT c / 3600000000, u, t, s, b, 1, d FROM r
            ON CONFLICT (hour, user_id, type, status, bucket) DO UPDATE
            SET n = job_finish_hours.n + excluded.n,
                total_us = job_finish_hours.total_us + excluded.total_us
        )
        INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
        SELECT c / 60000000, u, t, s, b, 1, d FROM r
        ON CONFLICT (minute, user_id, type, status, bucket) DO UPDATE
        SET n = job_finish_minutes.n + excluded.n,
            total_us = job_finish_minutes.total_us + excluded.total_us;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_rollup_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION jobctl_rollup_row();
CREATE TRIGGER jobs_rollup_update AFTER UPDATE OF status, type, user_id, started_at, completed_at ON jobs
    FOR EACH ROW WHEN (OLD.status IN ('completed', 'failed', 'cancelled') OR NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION jobctl_rollup_row();

-- Deletes (the retention sweep's batches): one statement trigger over the deleted rows,
-- one upsert per rollup row, taken in key order (two sweeps lock rollup rows in the same
-- order), then the rows that came back to zero go.
CREATE OR REPLACE FUNCTION jobctl_rollup_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH g AS (
        SELECT COALESCE(completed_at, updated_at) / 60000000 AS minute, user_id, type, status,
               CASE WHEN started_at IS NULL THEN -1 ELSE jobctl_duration_bucket(COALESCE(completed_at, updated_at) - started_at) END AS bucket,
               -COUNT(*) AS n, -SUM(CASE WHEN started_at IS NULL THEN 0 ELSE GREATEST(COALESCE(completed_at, updated_at) - started_at, 0) END) AS total_us
        FROM gone WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4, 5
    ), t AS (
        INSERT INTO job_totals (user_id, type, status, n)
        SELECT user_id, type, status, SUM(n) FROM g GROUP BY user_id, type, status ORDER BY user_id, type, status
        ON CONFLICT (user_id, type, status) DO UPDATE SET n = job_totals.n + excluded.n
    ), h AS (
        INSERT INTO job_finish_hours (hour, user_id, type, status, bucket, n, total_us)
        SELECT minute / 60, user_id, type, status, bucket, SUM(n), SUM(total_us) FROM g
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (hour, user_id, type, status, bucket) DO UPDATE
        SET n = job_finish_hours.n + excluded.n,
            total_us = job_finish_hours.total_us + excluded.total_us
    )
    INSERT INTO job_finish_minutes (minute, user_id, type, status, bucket, n, total_us)
    SELECT * FROM g ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (minute, user_id, type, status, bucket) DO UPDATE
    SET n = job_finish_minutes.n + excluded.n,
        total_us = job_finish_minutes.total_us + excluded.total_us;
    -- what came back to zero (a second statement: it sees the first one's rows)
    WITH g AS (
        SELECT COALESCE(completed_at, updated_at) / 60000000 AS minute, user_id, type, status,
               CASE WHEN started_at IS NULL THEN -1 ELSE jobctl_duration_bucket(COALESCE(completed_at, updated_at) - started_at) END AS bucket,
               -COUNT(*) AS n, -SUM(CASE WHEN started_at IS NULL THEN 0 ELSE GREATEST(COALESCE(completed_at, updated_at) - started_at, 0) END) AS total_us
        FROM gone WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4, 5
    ), t AS (
        DELETE FROM job_totals r USING g WHERE r.user_id = g.user_id
            AND r.type = g.type AND r.status = g.status AND r.n = 0
    ), h AS (
        DELETE FROM job_finish_hours r USING g WHERE r.hour = g.minute / 60
            AND r.user_id = g.user_id AND r.type = g.type AND r.status = g.status
            AND r.bucket = g.bucket AND r.n = 0
    )
    DELETE FROM job_finish_minutes r USING g WHERE r.minute = g.minute
        AND r.user_id = g.user_id AND r.type = g.type AND r.status = g.status
        AND r.bucket = g.bucket AND r.n = 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_rollup_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION jobctl_rollup_deleted();
