-- The decision app's own schema (what its Supabase migrations create). Idempotent.
CREATE TABLE IF NOT EXISTS public.jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type text NOT NULL CHECK (type IN ('competitor_analysis', 'market_research',
                                       'brief_generation', 'option_analysis')),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    progress integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    input jsonb NOT NULL DEFAULT '{}',
    -- {status_message, ...the result once completed}
    output jsonb,
    error text,
    org_id text NOT NULL,
    decision_id text NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS jobs_pending ON public.jobs (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_active_org ON public.jobs (org_id)
    WHERE status IN ('pending', 'running');
