-- +goose Up
-- The console's state indexes leave out running jobs. Every job passes
-- through 'running', most for a moment (a job is inserted already claimed
-- when a worker is free): indexing it cost two index writes on the insert
-- and two deletes on the completion. The console finds the few running
-- jobs through backlot_jobs_running. The conditions are
-- store.IndexedStatesSQL and store.WaitingStatesSQL; queries repeat them so
-- the planner can use these indexes.
--
-- Partial-index conditions are chains of OR, not IN lists: SQLite
-- evaluates an index's IN list through a temporary table built for every
-- row it writes, which made a job's completion cost twice its insert. So
-- the due index is rebuilt the same way.
DROP INDEX backlot_jobs_state_id;
DROP INDEX backlot_jobs_kind_state_id;
DROP INDEX backlot_jobs_due;
CREATE INDEX backlot_jobs_due ON backlot_jobs (queue, run_at, id)
    WHERE state = 'available' OR state = 'scheduled' OR state = 'retrying';
CREATE INDEX backlot_jobs_state_id ON backlot_jobs (state, id)
    WHERE state <> 'running';
CREATE INDEX backlot_jobs_kind_state_id ON backlot_jobs (kind, state, id)
    WHERE state <> 'running';

-- +goose Down
DROP INDEX backlot_jobs_kind_state_id;
DROP INDEX backlot_jobs_state_id;
DROP INDEX backlot_jobs_due;
CREATE INDEX backlot_jobs_due ON backlot_jobs (queue, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retrying');
CREATE INDEX backlot_jobs_state_id ON backlot_jobs (state, id);
CREATE INDEX backlot_jobs_kind_state_id ON backlot_jobs (kind, state, id);
