-- +goose Up
-- Jobs (SPEC 5.5).
CREATE TABLE backlot_jobs (
    id               BIGSERIAL   PRIMARY KEY,
    kind             TEXT        NOT NULL,
    queue            TEXT        NOT NULL,
    payload          JSON        NOT NULL,
    state            TEXT        NOT NULL,
    attempt          INTEGER     NOT NULL DEFAULT 0,
    max_attempts     INTEGER     NOT NULL,
    run_at           TIMESTAMPTZ NOT NULL,
    lease_until      TIMESTAMPTZ,
    last_error       TEXT        NOT NULL DEFAULT '',
    progress         INTEGER     NOT NULL DEFAULT 0,
    dedupe_key       TEXT,
    cancel_requested BOOLEAN     NOT NULL DEFAULT false,
    created_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ
);

-- Fetch: due jobs of a queue in run_at order; partial, so finished jobs
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
    key        TEXT        PRIMARY KEY,
    job_id     BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX backlot_job_dedupe_created ON backlot_job_dedupe (created_at);

CREATE TABLE backlot_job_logs (
    job_id BIGINT      NOT NULL,
    at     TIMESTAMPTZ NOT NULL,
    line   TEXT        NOT NULL
);
CREATE INDEX backlot_job_logs_job ON backlot_job_logs (job_id);

-- +goose Down
DROP TABLE backlot_job_logs;
DROP TABLE backlot_job_dedupe;
DROP TABLE backlot_jobs;
