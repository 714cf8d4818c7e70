-- jobctl: the jobs table for a Supabase project (`jobctl schema supabase`).
--
-- Idempotent: every statement checks or replaces what is already there, so the
-- migration can run again (e.g. after an upgrade) without errors or duplicates.
-- Run it as the project's owner (the SQL editor, or `supabase db push`).
--
-- Writes come from your job API / workers with the service role key, which bypasses
-- row-level security. Signed-in users read their own jobs (PostgREST, Realtime).

-- The status enum. "processing" is accepted by jobctl as a synonym of "running"
-- when reading tables made by other apps; this table uses the five statuses below.
DO $$
BEGIN
    CREATE TYPE public.job_status AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled');
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;

CREATE TABLE IF NOT EXISTS public.jobs (
    -- @columns@ (one per field of jobctl.jobshape.JOB_FIELDS, written by supabase_migration.py)
);

COMMENT ON TABLE public.jobs IS 'Background jobs: one row per job, written by workers, read by clients (jobctl).';

-- "My jobs, newest first" (jobctl list/watch, RLS-filtered reads), queue and limit look-ups.
CREATE INDEX IF NOT EXISTS jobs_user_created_idx ON public.jobs (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS jobs_pending_idx ON public.jobs (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_running_key_idx ON public.jobs (concurrency_key)
    WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_user_idempotency_idx ON public.jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- updated_at follows every update.
CREATE OR REPLACE FUNCTION public.jobs_set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    NEW.updated_at := pg_catalog.now();
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS jobs_set_updated_at ON public.jobs;
CREATE TRIGGER jobs_set_updated_at
    BEFORE UPDATE ON public.jobs
    FOR EACH ROW EXECUTE FUNCTION public.jobs_set_updated_at();

-- Row-level security: users see their own jobs, nobody else's; anonymous callers see none.
ALTER TABLE public.jobs ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS "users see their own jobs" ON public.jobs;
CREATE POLICY "users see their own jobs" ON public.jobs
    FOR SELECT TO authenticated
    USING ((SELECT auth.uid()) = user_id);

REVOKE ALL ON TABLE public.jobs FROM anon;
REVOKE ALL ON TABLE public.jobs FROM authenticated;
GRANT SELECT ON TABLE public.jobs TO authenticated;
GRANT ALL ON TABLE public.jobs TO service_role;

-- Realtime (postgres_changes): publish the table; full rows on UPDATE and DELETE too,
-- so that subscribers filtering on user_id or status also hear about old rows.
ALTER TABLE public.jobs REPLICA IDENTITY FULL;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
        CREATE PUBLICATION supabase_realtime;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_publication_tables
        WHERE pubname = 'supabase_realtime' AND schemaname = 'public' AND tablename = 'jobs'
    ) THEN
        ALTER PUBLICATION supabase_realtime ADD TABLE public.jobs;
    END IF;
END
$$;
