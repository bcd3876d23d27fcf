-- +goose Up
-- sessions are cookie sessions (SPEC 5.2 `session`). id_hash is the SHA-256
-- of the cookie value, never the value itself.
CREATE TABLE sessions (
    id_hash       BYTEA PRIMARY KEY,
    authenticator TEXT NOT NULL,
    subject       TEXT NOT NULL,
    principal     JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX sessions_subject ON sessions (authenticator, subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
