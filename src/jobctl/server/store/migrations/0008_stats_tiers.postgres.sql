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

-- The backfill and the triggers see the same rows: no job changes meanwhile.
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE IF NOT EXISTS job_finish_tens (
    ten      BIGINT NOT NULL,   -- completed_at / 600 000 000 (ten minutes)
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (ten, user_id, type, status, bucket)
);
CREATE TABLE IF NOT EXISTS job_finish_days (
    day      BIGINT NOT NULL,   -- completed_at / 86 400 000 000 (UTC days)
    user_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    n        BIGINT NOT NULL,
    total_us BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, type, status, bucket)
);
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
CREATE OR REPLACE FUNCTION jobctl_tiers_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IN ('completed', 'failed', 'cancelled') THEN
        WITH r AS (
            SELECT COALESCE(OLD.completed_at, OLD.updated_at) AS c, OLD.user_id AS u, OLD.type AS t, OLD.status AS s,
                   CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets
                       WHERE lo_us <= GREATEST(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0)
                       ORDER BY lo_us DESC LIMIT 1) END AS b,
                   CASE WHEN OLD.started_at IS NULL THEN 0
                       ELSE GREATEST(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) END AS d
        ), hrs AS (
            INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
            SELECT c / 86400000000, u, t, s, b, -1, -d FROM r
            ON CONFLICT (day, user_id, type, status, bucket) DO UPDATE
            SET n = job_finish_days.n + excluded.n,
                total_us = job_finish_days.total_us + excluded.total_us
        )
        INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
        SELECT c / 600000000, u, t, s, b, -1, -d FROM r
        ON CONFLICT (ten, user_id, type, status, bucket) DO UPDATE
        SET n = job_finish_tens.n + excluded.n,
            total_us = job_finish_tens.total_us + excluded.total_us;
        WITH z AS (SELECT COALESCE(OLD.completed_at, OLD.updated_at) AS c, CASE WHEN OLD.started_at IS NULL THEN -1 ELSE (SELECT bucket FROM duration_buckets WHERE lo_us <= GREATEST(COALESCE(OLD.completed_at, OLD.updated_at) - OLD.started_at, 0) ORDER BY lo_us DESC LIMIT 1) END AS b), hrs AS (
            DELETE FROM job_finish_days h USING z WHERE h.day = z.c / 86400000000
                AND h.user_id = OLD.user_id AND h.type = OLD.type AND h.status = OLD.status
                AND h.bucket = z.b AND h.n = 0
        )
        DELETE FROM job_finish_tens m USING z WHERE m.ten = z.c / 600000000
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
        ), hrs AS (
            INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
            SELECT c / 86400000000, u, t, s, b, 1, d FROM r
            ON CONFLICT (day, user_id, type, status, bucket) DO UPDATE
            SET n = job_finish_days.n + excluded.n,
                total_us = job_finish_days.total_us + excluded.total_us
        )
        INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
        SELECT c / 600000000, u, t, s, b, 1, d FROM r
        ON CONFLICT (ten, user_id, type, status, bucket) DO UPDATE
        SET n = job_finish_tens.n + excluded.n,
            total_us = job_finish_tens.total_us + excluded.total_us;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_tiers_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION jobctl_tiers_row();
CREATE TRIGGER jobs_tiers_update AFTER UPDATE OF status, type, user_id, started_at, completed_at ON jobs
    FOR EACH ROW WHEN (OLD.status IN ('completed', 'failed', 'cancelled') OR NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION jobctl_tiers_row();

-- Deletes (the retention sweep's batches): one statement trigger over the deleted rows,
-- one upsert per rollup row, taken in key order (two sweeps lock rollup rows in the same
-- order), then the rows that came back to zero go.
CREATE OR REPLACE FUNCTION jobctl_tiers_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH g AS (
        SELECT COALESCE(completed_at, updated_at) / 600000000 AS ten, user_id, type, status,
               CASE WHEN started_at IS NULL THEN -1 ELSE jobctl_duration_bucket(COALESCE(completed_at, updated_at) - started_at) END AS bucket,
               -COUNT(*) AS n, -SUM(CASE WHEN started_at IS NULL THEN 0 ELSE GREATEST(COALESCE(completed_at, updated_at) - started_at, 0) END) AS total_us
        FROM gone WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4, 5
        ), h AS (
        INSERT INTO job_finish_days (day, user_id, type, status, bucket, n, total_us)
        SELECT ten / 144, user_id, type, status, bucket, SUM(n), SUM(total_us) FROM g
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (day, user_id, type, status, bucket) DO UPDATE
        SET n = job_finish_days.n + excluded.n,
            total_us = job_finish_days.total_us + excluded.total_us
    )
    INSERT INTO job_finish_tens (ten, user_id, type, status, bucket, n, total_us)
    SELECT * FROM g ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (ten, user_id, type, status, bucket) DO UPDATE
    SET n = job_finish_tens.n + excluded.n,
        total_us = job_finish_tens.total_us + excluded.total_us;
    -- what came back to zero (a second statement: it sees the first one's rows)
    WITH g AS (
        SELECT COALESCE(completed_at, updated_at) / 600000000 AS ten, user_id, type, status,
               CASE WHEN started_at IS NULL THEN -1 ELSE jobctl_duration_bucket(COALESCE(completed_at, updated_at) - started_at) END AS bucket,
               -COUNT(*) AS n, -SUM(CASE WHEN started_at IS NULL THEN 0 ELSE GREATEST(COALESCE(completed_at, updated_at) - started_at, 0) END) AS total_us
        FROM gone WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4, 5
        ), h AS (
        DELETE FROM job_finish_days r USING g WHERE r.day = g.ten / 144
            AND r.user_id = g.user_id AND r.type = g.type AND r.status = g.status
            AND r.bucket = g.bucket AND r.n = 0
    )
    DELETE FROM job_finish_tens r USING g WHERE r.ten = g.ten
        AND r.user_id = g.user_id AND r.type = g.type AND r.status = g.status
        AND r.bucket = g.bucket AND r.n = 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_tiers_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION jobctl_tiers_deleted();
