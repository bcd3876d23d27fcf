-- +goose Up
-- secrets are the secret store's values, sealed by the keyring before they
-- reach the database: ciphertext starts with its key id, and key_id repeats
-- it so rotation and the start-up check count rows per key without
-- decrypting. scope is the encoded owner ("principal/<tenant>/<subject>" or
-- "system/<name>"). COLLATE "C" makes the primary key's order bytewise, the
-- order rotation pages through on both backends.
CREATE TABLE secrets (
    scope      TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    key_id     TEXT             NOT NULL,
    ciphertext BYTEA            NOT NULL,
    updated_at TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (scope, name)
);

CREATE INDEX secrets_key_id ON secrets (key_id);

-- +goose Down
DROP TABLE secrets;
