package store

import (
	"context"
	"time"
)

// KindConnection is the Kind of the rows of the connections table (users'
// OAuth tokens) and the first field of their associated data.
const KindConnection = "connection"

// KindConnectState is the associated-data kind of the PKCE verifiers of
// pending logins. Those rows live at most ten minutes, so they do not join
// key rotation: a login pending across a key's removal fails and is
// started again.
const KindConnectState = "connect_state"

// Connection states.
const (
	ConnectionActive  = "active"
	ConnectionFailing = "failing"
	ConnectionExpired = "expired"
)

// ConnectionStore keeps users' OAuth connections (sealed tokens plus the
// state machine around refreshing them) and the pending logins that lead to
// them. The store never sees a token in clear.
type ConnectionStore interface {
	// PutConnectState records a pending login, deleting the ones expired
	// before s was made.
	PutConnectState(ctx context.Context, s ConnectState) error
	// TakeConnectState deletes and returns the pending login with the given
	// state hash, expired or not (the caller compares ExpiresAt): a state
	// is usable once. ErrNotFound when there is none.
	TakeConnectState(ctx context.Context, hash []byte) (ConnectState, error)

	// GetConnection reads one connection; ErrNotFound when there is none.
	GetConnection(ctx context.Context, scope, name string) (Connection, error)
	// PutConnection inserts or replaces the connection (c.Scope, c.Name).
	PutConnection(ctx context.Context, c Connection) error
	// DeleteConnection removes one connection; ErrNotFound when there was
	// none.
	DeleteConnection(ctx context.Context, scope, name string) error
	// LockConnection runs fn in one write transaction holding the
	// connection's row lock (PostgreSQL: SELECT … FOR UPDATE; SQLite: the
	// single writer), with the row as read under that lock, so that
	// whoever refreshes a token does it alone and others, once they get
	// the lock, see the refreshed row. fn may call the network. What fn
	// writes (UpdateConnectionTx, jobs enqueued in tx) commits when it
	// returns nil. ErrNotFound, without calling fn, when there is no row.
	LockConnection(ctx context.Context, scope, name string, fn func(tx Tx, c Connection) error) error
	// UpdateConnectionTx rewrites the row (c.Scope, c.Name) inside tx.
	UpdateConnectionTx(ctx context.Context, tx Tx, c Connection) error
}

// Connection is one row of the connections table.
type Connection struct {
	// Scope is the encoded principal scope; Name the connection's name.
	Scope string
	Name  string
	// KeyID is the key Ciphertext is sealed under.
	KeyID string
	// Ciphertext is the sealed tokens.
	Ciphertext []byte
	// State is ConnectionActive, ConnectionFailing or ConnectionExpired.
	State string
	// Scopes are the granted scopes, space-separated.
	Scopes string
	// ExpiresAt is when the access token expires; zero when unknown.
	ExpiresAt time.Time
	// Failures counts refresh attempts failed in a row (network, 5xx).
	Failures int
	// RetryAt is the earliest next refresh attempt while failing; zero
	// when none is pending.
	RetryAt time.Time
	// CreatedAt is when the user connected; UpdatedAt the last write.
	// Times are kept to the millisecond.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ConnectState is a pending login (one row of connect_states).
type ConnectState struct {
	// Hash is the SHA-256 of the state parameter.
	Hash []byte
	// Connection is the connection's name.
	Connection string
	// Authenticator, Tenant and Subject are the principal it was issued to.
	Authenticator string
	Tenant        string
	Subject       string
	// BindingHash is the SHA-256 of the browser-binding cookie's value.
	BindingHash []byte
	// Verifier is the PKCE code verifier, sealed by the keyring.
	Verifier []byte
	// ExpiresAt ends the state's life (ten minutes after the login).
	ExpiresAt time.Time
}

// Millis is t as Unix milliseconds, 0 for the zero time: how both
// backends keep the connection tables' times.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMillis is the inverse of Millis.
func FromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
