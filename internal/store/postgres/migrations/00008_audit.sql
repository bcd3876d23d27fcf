-- +goose Up
-- The audit log: who did what to which rows, when, from where. Times are
-- Unix microseconds (the same on both backends, so one INSERT serves both).
CREATE TABLE backlot_audit (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    target  TEXT   NOT NULL,
    count   BIGINT NOT NULL,
    detail  TEXT   NOT NULL,
    address TEXT   NOT NULL
);
-- Retention deletes by time.
CREATE INDEX backlot_audit_at ON backlot_audit (at);
CREATE INDEX backlot_audit_action ON backlot_audit (action, id);

-- The console lists jobs newest first by state, by kind, or by both, and
-- counts them (capped): each walks one of these indexes in id order and
-- stops early. Without the third, a kind's count by state walked every job
-- of the kind (over a second at a million rows; see docs/BENCHMARKS.md).
CREATE INDEX backlot_jobs_state_id ON backlot_jobs (state, id);
CREATE INDEX backlot_jobs_kind_id ON backlot_jobs (kind, id);
CREATE INDEX backlot_jobs_kind_state_id ON backlot_jobs (kind, state, id);

-- +goose Down
DROP INDEX backlot_jobs_kind_state_id;
DROP INDEX backlot_jobs_kind_id;
DROP INDEX backlot_jobs_state_id;
DROP TABLE backlot_audit;
