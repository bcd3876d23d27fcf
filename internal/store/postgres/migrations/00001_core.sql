-- +goose Up
-- backlot_meta holds facts about this store instance (when it was created,
-- its id); other areas may add keys.
CREATE TABLE backlot_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO backlot_meta (key, value) VALUES
    ('created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    ('instance_id', md5(random()::text || clock_timestamp()::text));

-- +goose Down
DROP TABLE backlot_meta;
