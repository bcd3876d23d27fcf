-- +goose Up
-- secrets are the secret store's values, sealed by the keyring before they
-- reach the database: ciphertext starts with its key id, and key_id repeats
-- it so rotation and the start-up check count rows per key without
-- decrypting. scope is the encoded owner ("principal/<tenant>/<subject>" or
-- "system/<name>"); updated_at is Unix milliseconds.
CREATE TABLE secrets (
    scope      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    ciphertext BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

CREATE INDEX secrets_key_id ON secrets (key_id);

-- +goose Down
DROP TABLE secrets;
