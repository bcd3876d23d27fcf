-- +goose Up
-- sessions are cookie sessions (SPEC 5.2 `session`). id_hash is the SHA-256
-- of the cookie value, never the value itself; times are Unix milliseconds.
CREATE TABLE sessions (
    id_hash       BLOB PRIMARY KEY,
    authenticator TEXT NOT NULL,
    subject       TEXT NOT NULL,
    principal     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX sessions_subject ON sessions (authenticator, subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
