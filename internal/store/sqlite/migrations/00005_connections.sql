-- +goose Up
-- connections are users' OAuth 2.0 connections to third parties. The
-- tokens (access and refresh) are sealed by the keyring into ciphertext,
-- bound to (kind "connection", scope, name); key_id repeats the key id of
-- the ciphertext's header so rotation counts rows without decrypting. scope
-- is the encoded principal scope, name the connection's name. Times are Unix
-- milliseconds; 0 means none (an access token without a stated expiry, a
-- connection not waiting to retry).
CREATE TABLE connections (
    scope      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    ciphertext BLOB    NOT NULL,
    state      TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    failures   INTEGER NOT NULL,
    retry_at   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

CREATE INDEX connections_key_id ON connections (key_id);

-- connect_states are the pending logins of GET /connect/<name>/login: the
-- SHA-256 of the state parameter (never the value), whom it was issued to,
-- the SHA-256 of the browser-binding cookie, and the PKCE verifier sealed
-- by the keyring. Each is taken (deleted) by its callback, used or not.
CREATE TABLE connect_states (
    state_hash    BLOB    NOT NULL PRIMARY KEY,
    connection    TEXT    NOT NULL,
    authenticator TEXT    NOT NULL,
    tenant        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    binding_hash  BLOB    NOT NULL,
    verifier      BLOB    NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX connect_states_expires_at ON connect_states (expires_at);

-- +goose Down
DROP TABLE connect_states;
DROP TABLE connections;
