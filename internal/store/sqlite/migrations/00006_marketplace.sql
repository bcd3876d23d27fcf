-- +goose Up
-- rate_limits holds budgets shared by every process on the database
-- (store.RateLimitStore): tat is the GCRA theoretical arrival time, Unix
-- seconds as a real.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat REAL NOT NULL
) WITHOUT ROWID;

-- marketplace_event_checkpoints is where each marketplace's event poller
-- stands; written in the same transaction as the jobs of the events it
-- moves past. Times are Unix milliseconds; sequence_id is NULL before the
-- first event.
CREATE TABLE marketplace_event_checkpoints (
    marketplace TEXT PRIMARY KEY,
    sequence_id INTEGER,
    event_at    INTEGER NOT NULL DEFAULT 0,
    start_at    INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE marketplace_event_checkpoints;
DROP TABLE rate_limits;
