-- +goose Up
-- Jobs (SPEC 5.5). Times are unix microseconds. AUTOINCREMENT so an id is
-- never reused after retention deletes the newest jobs: dedupe keys and
-- logs outlive jobs and must not point at a stranger.
CREATE TABLE backlot_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT    NOT NULL DEFAULT '',
    progress         INTEGER NOT NULL DEFAULT 0,
    dedupe_key       TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER
);

-- Fetch: due jobs of a queue in run_at order. Partial, so finished jobs
-- cost nothing here.
CREATE INDEX backlot_jobs_due ON backlot_jobs (queue, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retrying');
-- Lapsed leases.
CREATE INDEX backlot_jobs_running ON backlot_jobs (lease_until)
    WHERE state = 'running';
-- Retention and purge.
CREATE INDEX backlot_jobs_finished ON backlot_jobs (state, finished_at)
    WHERE finished_at IS NOT NULL;

-- Dedupe keys live apart from jobs, with their own retention.
CREATE TABLE backlot_job_dedupe (
    key        TEXT    PRIMARY KEY,
    job_id     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX backlot_job_dedupe_created ON backlot_job_dedupe (created_at);

CREATE TABLE backlot_job_logs (
    job_id INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    line   TEXT    NOT NULL
);
CREATE INDEX backlot_job_logs_job ON backlot_job_logs (job_id);

-- +goose Down
DROP TABLE backlot_job_logs;
DROP TABLE backlot_job_dedupe;
DROP TABLE backlot_jobs;
