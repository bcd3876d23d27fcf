// Package store defines the one interface through which backlot keeps
// everything durable (jobs, webhook dedupe keys, sessions, and later
// secrets, OAuth state and sealed-reference handles). Two implementations
// live beside it, sqlite/ (the embedded default) and postgres/, and both
// pass the shared suite in storetest/.
//
// Driver errors are translated at the boundary: a missing row is
// ErrNotFound, whatever the backend.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Backend names.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// ErrSchemaBehind is returned by Open with Migrate off when the database's
// schema is older than the binary's.
var ErrSchemaBehind = errors.New("database schema is behind this binary (run `backlot migrate`)")

// Store is everything durable. Each area's methods are declared in its own
// file of this package (sessions.go, jobs.go, …).
type Store interface {
	// Backend is BackendSQLite or BackendPostgres.
	Backend() string
	// Ping checks the database answers.
	Ping(ctx context.Context) error
	// SchemaStatus reports the applied and the embedded migration versions.
	SchemaStatus(ctx context.Context) (SchemaStatus, error)
	// Migrate applies pending migrations.
	Migrate(ctx context.Context) error
	// Close releases connections.
	Close() error

	// Meta reads a row of the backlot_meta table (instance facts such as
	// "created_at"); ErrNotFound when the key is absent.
	Meta(ctx context.Context, key string) (string, error)
	// SetMeta inserts or replaces a backlot_meta row.
	SetMeta(ctx context.Context, key, value string) error

	// RunTx runs fn in one write transaction and commits if it returns
	// nil; otherwise (or on panic) it rolls back. It is what the Go API's
	// App.WriteTx hands to users, and the transaction InsertJobsTx joins.
	RunTx(ctx context.Context, fn func(Tx) error) error

	SessionStore
	JobStore
	LeaderStore
	SecretStore
	RateLimitStore
	EventCheckpointStore
	ConnectionStore
	RefStore
	AuditStore
	ConsoleStore
}

// Options tune Open for either backend.
type Options struct {
	// Migrate applies pending migrations at open. When false, Open fails
	// with an error wrapping ErrSchemaBehind if any are pending (a fresh,
	// empty database included). Default false; the server passes true
	// unless started with --migrate=false.
	Migrate bool
	// MaxConns bounds the PostgreSQL pool, or the SQLite read pool (SQLite
	// always has exactly one writer connection). Default: PostgreSQL
	// max(8, 4*GOMAXPROCS), SQLite max(4, GOMAXPROCS).
	MaxConns int
	// Logger receives migration progress. Default: discard.
	Logger *slog.Logger
}

// SchemaStatus compares the database to the binary.
type SchemaStatus struct {
	Current int64 // highest applied version
	Latest  int64 // highest embedded version
}

// Behind reports whether migrations are pending.
func (s SchemaStatus) Behind() bool { return s.Current < s.Latest }

// ParseURL splits a store URL into backend and the rest: "sqlite://path"
// gives (sqlite, path); "postgres://…" and "postgresql://…" give
// (postgres, the whole URL).
func ParseURL(u string) (backend, dsn string, err error) {
	switch {
	case strings.HasPrefix(u, "sqlite://"):
		p := strings.TrimPrefix(u, "sqlite://")
		if p == "" {
			return "", "", fmt.Errorf("store url %q: sqlite:// needs a file path", u)
		}
		return BackendSQLite, p, nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return BackendPostgres, u, nil
	default:
		return "", "", fmt.Errorf("store url %q: want sqlite://path or postgres://…", u)
	}
}

// Tx is an open write transaction on either backend, for the transaction
// twins of writes (InsertJobsTx) and a Go user's own statements in the same
// commit. Queries use $1, $2, … placeholders on both backends (SQLite reads
// $N as a numbered parameter). Only the store that began a Tx accepts it.
type Tx interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryRow runs a query expected to return at most one row; its Scan
	// returns ErrNotFound when there is none.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Row is the result of Tx.QueryRow.
type Row interface {
	Scan(dest ...any) error
}
