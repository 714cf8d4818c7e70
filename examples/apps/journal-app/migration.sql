-- The journal app's own schema (what its Supabase migrations create). Idempotent.
CREATE TABLE IF NOT EXISTS public.journal_entries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    event_text text NOT NULL,
    reference_date date,
    evidence_ids text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    journal_entry_id uuid REFERENCES public.journal_entries (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    error_message text,
    -- {events_created, evidence_processed, action_items_created, event_ids}
    result_summary jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS jobs_pending ON public.jobs (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_user ON public.jobs (user_id, created_at DESC);

CREATE TABLE IF NOT EXISTS public.journal_events (
    journal_entry_id uuid NOT NULL REFERENCES public.journal_entries (id) ON DELETE CASCADE,
    id text NOT NULL,
    user_id uuid NOT NULL,
    title text NOT NULL,
    event_date date,
    event_time text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journal_entry_id, id)
);
