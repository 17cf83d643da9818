-- Jobs, their steps and their logs. Times are milliseconds since the epoch.
CREATE TABLE jobs (
        id               INTEGER PRIMARY KEY,
        kind             TEXT    NOT NULL,
        payload          TEXT    NOT NULL,
        state            TEXT    NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        priority         INTEGER NOT NULL DEFAULT 0,
        attempt          INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL DEFAULT 3,
        run_after        INTEGER NOT NULL,
        lease_owner      TEXT,
        lease_expires    INTEGER,
        idempotency_key  TEXT UNIQUE,
        concurrency_key  TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        error            TEXT,
        log_bytes        INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER
);

-- The claim walks this index in order; jobs that are not queued are not in it,
-- so finished jobs never slow claims down however many there are.
CREATE INDEX jobs_claim ON jobs (priority DESC, run_after, id) WHERE state = 'queued';
-- Expired leases are found without a scan of running jobs.
CREATE INDEX jobs_lease ON jobs (lease_expires) WHERE state = 'running';
-- At most one running job per concurrency key: the claim checks this index.
CREATE INDEX jobs_running_key ON jobs (concurrency_key) WHERE state = 'running';
CREATE INDEX jobs_queued_key ON jobs (concurrency_key) WHERE state = 'queued';

CREATE TABLE job_steps (
        job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        name        TEXT    NOT NULL,
        state       TEXT    NOT NULL
                    CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
        attempt     INTEGER NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        output      TEXT,
        error       TEXT,
        PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;

CREATE TABLE job_logs (
        job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq    INTEGER NOT NULL,
        ts     INTEGER NOT NULL,
        step   TEXT,
        line   TEXT    NOT NULL,
        PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
