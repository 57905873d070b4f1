-- Several daemons on one database (issue 15, PostgreSQL). Who holds a claim and
-- until when: a daemon takes over an inbox row in 'processing' or a delivery in
-- 'sending' only once the claimer's lease has run out, and at start takes back
-- only the claims of its own earlier life (claimed_by starts with its instance).
-- On SQLite one daemon owns the file and these columns are only informative.
ALTER TABLE inbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE inbox ADD COLUMN lease_until TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_until TEXT;
-- A scheduled job's run for one slot (the day of a daily job, the hour of an
-- hourly one): the first daemon to insert the row runs the job, the others skip.
CREATE TABLE job_runs (
    job         TEXT NOT NULL,
    slot        TEXT NOT NULL,
    claimed_by  TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    PRIMARY KEY (job, slot)
)
