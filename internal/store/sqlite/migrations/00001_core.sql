-- +goose Up
-- backlot_meta holds facts about this store instance (when it was created,
-- its id); other areas may add keys.
CREATE TABLE backlot_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO backlot_meta (key, value) VALUES
    ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ('instance_id', lower(hex(randomblob(16))));

-- +goose Down
DROP TABLE backlot_meta;
