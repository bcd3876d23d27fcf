-- +goose Up
-- connections are users' OAuth 2.0 connections to third parties. The
-- tokens (access and refresh) are sealed by the keyring into ciphertext,
-- bound to (kind "connection", scope, name); key_id repeats the key id of
-- the ciphertext's header so rotation counts rows without decrypting. scope
-- is the encoded principal scope, name the connection's name; COLLATE "C"
-- makes the primary key's order bytewise, the order rotation pages through
-- on both backends. Times are Unix milliseconds, as on SQLite; 0 means none
-- (an access token without a stated expiry, a connection not waiting to
-- retry).
CREATE TABLE connections (
    scope      TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    key_id     TEXT    NOT NULL,
    ciphertext BYTEA   NOT NULL,
    state      TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    failures   BIGINT  NOT NULL,
    retry_at   BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (scope, name)
);

CREATE INDEX connections_key_id ON connections (key_id);

-- connect_states are the pending logins of GET /connect/<name>/login: the
-- SHA-256 of the state parameter (never the value), whom it was issued to,
-- the SHA-256 of the browser-binding cookie, and the PKCE verifier sealed
-- by the keyring. Each is taken (deleted) by its callback, used or not.
CREATE TABLE connect_states (
    state_hash    BYTEA   NOT NULL PRIMARY KEY,
    connection    TEXT    NOT NULL,
    authenticator TEXT    NOT NULL,
    tenant        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    binding_hash  BYTEA   NOT NULL,
    verifier      BYTEA   NOT NULL,
    expires_at    BIGINT  NOT NULL
);

CREATE INDEX connect_states_expires_at ON connect_states (expires_at);

-- +goose Down
DROP TABLE connect_states;
DROP TABLE connections;
