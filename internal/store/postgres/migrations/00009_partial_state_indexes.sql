-- +goose Up
-- The console's state indexes leave out running jobs. Every job passes
-- through 'running', most for a moment (a job is inserted already claimed
-- when a worker is free): indexing it cost two index writes on the insert
-- and two deletes on the completion. The console finds the few running
-- jobs through backlot_jobs_running. The condition is
-- store.IndexedStatesSQL; the console's queries repeat it.
DROP INDEX backlot_jobs_state_id;
DROP INDEX backlot_jobs_kind_state_id;
CREATE INDEX backlot_jobs_state_id ON backlot_jobs (state, id)
    WHERE state <> 'running';
CREATE INDEX backlot_jobs_kind_state_id ON backlot_jobs (kind, state, id)
    WHERE state <> 'running';

-- +goose Down
DROP INDEX backlot_jobs_kind_state_id;
DROP INDEX backlot_jobs_state_id;
CREATE INDEX backlot_jobs_state_id ON backlot_jobs (state, id);
CREATE INDEX backlot_jobs_kind_state_id ON backlot_jobs (kind, state, id);
