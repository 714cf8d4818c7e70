-- Claims read pending jobs in (run_at, id) order. This partial index holds only pending
-- rows and gives that order directly, so a claim never walks past running or finished
-- rows, and the plan does not depend on fresh statistics (on PostgreSQL, a claim planned
-- on stale statistics otherwise scans rows that were claimed long ago). SQLite and
-- PostgreSQL both support partial indexes with this syntax.
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (run_at, id) WHERE status = 'pending';
