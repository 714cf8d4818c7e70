-- Every listing is a page of an index (store/listing.py): each filter of GET /api/jobs is
-- an equality on an index's leading columns, and every index ends in (created_at, id),
-- the newest-first order, so the first page and a deep cursor page each read about a
-- page of rows, whatever the table holds. Per user (a user's token) and for every user
-- (service_role):
--   (nothing)       jobs_created, jobs_user_created (these two gain the id)
--   status          jobs_status_created, jobs_user_status_created
--   type [+status]  jobs_type_status_created, jobs_user_type_status_created (a type
--                   alone is one walk per status, merged)
--   since, cursor   a range on created_at within any of them
--   id prefix       a range on the id: the primary key on SQLite, jobs_id_c on PostgreSQL
-- Stuck-job detection (pending jobs created before a time) reads jobs_status_created.
-- PostgreSQL orders ids byte by byte (COLLATE "C", as SQLite does) in the listing, so its
-- indexes say so; SQLite has no collation of that name, hence the two parts.
-- On PostgreSQL these are built inside the migration's transaction, which holds off
-- writes to jobs while it builds (seconds per million rows).

-- dialect: sqlite
DROP INDEX IF EXISTS jobs_created;
DROP INDEX IF EXISTS jobs_user_created;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_user_created ON jobs (user_id, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs (status, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_user_status_created ON jobs (user_id, status, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_type_status_created ON jobs (type, status, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_user_type_status_created
    ON jobs (user_id, type, status, created_at, id);

-- dialect: postgresql
DROP INDEX IF EXISTS jobs_created;
DROP INDEX IF EXISTS jobs_user_created;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS jobs_user_created ON jobs (user_id, created_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs (status, created_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS jobs_user_status_created
    ON jobs (user_id, status, created_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS jobs_type_status_created
    ON jobs (type, status, created_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS jobs_user_type_status_created
    ON jobs (user_id, type, status, created_at, id COLLATE "C");
CREATE INDEX IF NOT EXISTS jobs_id_c ON jobs (id COLLATE "C");
