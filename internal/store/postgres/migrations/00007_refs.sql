-- +goose Up
-- refs are the stored form of sealed references: a third party holds a
-- random handle, the table holds the SHA-256 of it (name, hex) and the
-- payload sealed by the keyring, bound to (kind "ref", scope, name). scope
-- is the reference's purpose. key_id repeats the key id of the
-- ciphertext's header so rotation counts rows without decrypting. used_by
-- is the consumer that opened a single-use reference ('' while unused).
-- COLLATE "C" makes (scope, name) order bytewise, the order rotation pages
-- through on both backends. Times are Unix milliseconds, as on SQLite.
CREATE TABLE refs (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    scope      TEXT COLLATE "C" NOT NULL,
    key_id     TEXT    NOT NULL,
    ciphertext BYTEA   NOT NULL,
    expires_at BIGINT  NOT NULL,
    single_use BOOLEAN NOT NULL,
    used_by    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE UNIQUE INDEX refs_scope_name ON refs (scope, name);
CREATE INDEX refs_key_id ON refs (key_id);
CREATE INDEX refs_expires_at ON refs (expires_at);

-- +goose Down
DROP TABLE refs;
