-- +goose Up
-- rate_limits holds budgets shared by every instance on the database
-- (store.RateLimitStore): tat is the GCRA theoretical arrival time, Unix
-- seconds.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat DOUBLE PRECISION NOT NULL
);

-- marketplace_event_checkpoints is where each marketplace's event poller
-- stands; written in the same transaction as the jobs of the events it
-- moves past. sequence_id is NULL before the first event.
CREATE TABLE marketplace_event_checkpoints (
    marketplace TEXT PRIMARY KEY,
    sequence_id BIGINT,
    event_at    TIMESTAMPTZ,
    start_at    TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE marketplace_event_checkpoints;
DROP TABLE rate_limits;
