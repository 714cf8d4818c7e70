-- Fencing: a worker's lease is its owner id plus this token, which every claim,
-- re-queue and retry raises. Each write a worker makes for a job (steps, progress,
-- logs, finish, suspend) names both, so a worker that lost its lease (stalled past
-- it, then resumed) is refused, learns so, and leaves the job to its new owner.
ALTER TABLE jobs ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;
