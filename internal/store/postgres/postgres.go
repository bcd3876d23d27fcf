// Package postgres is the store.Store for running several backlot instances
// against one PostgreSQL database, through a pgx connection pool. The pool
// reconnects on its own, so a database restart needs no reopen: Ping fails
// fast while the server is away and succeeds once it is back.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/backlothq/backlot/internal/store"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// PingTimeout bounds Ping when the caller's context allows longer, so a
// readiness probe answers promptly while the database is unreachable.
const PingTimeout = 2 * time.Second

// DB is the PostgreSQL store.
type DB struct {
	pool     *pgxpool.Pool
	maxConns int32
	mig      *goose.Provider
	// migDB is a database/sql view of pool, only for goose.
	migDB interface{ Close() error }
}

// Open connects to the database at url (a postgres:// URL). With
// opts.Migrate pending migrations are applied, serialised across processes
// by an advisory lock; without, a database whose schema is behind is refused
// with store.ErrSchemaBehind.
func Open(ctx context.Context, url string, opts store.Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The error text of ParseConfig may quote the URL; keep it out.
		return nil, errors.New("open postgres: cannot parse url")
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "backlot"
	}
	cfg.MaxConns = int32(opts.MaxConns)
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = int32(max(8, 4*runtime.GOMAXPROCS(0)))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redact(cfg), err)
	}
	db := &DB{pool: pool, maxConns: cfg.MaxConns}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", redact(cfg), err)
	}

	sqlDB := stdlib.OpenDBFromPool(pool)
	db.migDB = sqlDB
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: migrations: %w", err)
	}
	// Poll the advisory lock every second (goose's default is 5 s) so a
	// second instance starting beside a migrating one is not held up long;
	// give up after 5 minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: migration lock: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db.mig, err = goose.NewProvider(goose.DialectPostgres, sqlDB, sub,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker),
		goose.WithSlog(logger),
	)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: migrations: %w", err)
	}

	if err := store.PrepareSchema(ctx, db, opts.Migrate); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", redact(cfg), err)
	}
	return db, nil
}

// redact names the database without the password.
func redact(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Backend returns store.BackendPostgres.
func (db *DB) Backend() string { return store.BackendPostgres }

// Ping checks the database answers, within PingTimeout at most. After a
// server restart the pool may still hold dead connections recently used
// (pgxpool only re-checks those idle over a second); each failed ping
// discards one, so it retries up to the pool size before believing the
// database is down. While it is down every attempt fails at once.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	var err error
	for range db.maxConns + 1 {
		if err = db.pool.Ping(ctx); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// SchemaStatus reports the highest applied and highest embedded migration
// versions. It only reads: no lock, no version table created.
func (db *DB) SchemaStatus(ctx context.Context) (store.SchemaStatus, error) {
	st := store.SchemaStatus{}
	for _, s := range db.mig.ListSources() {
		st.Latest = max(st.Latest, s.Version)
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, goose.DefaultTablename).Scan(&exists); err != nil {
		return st, fmt.Errorf("schema status: %w", err)
	}
	if !exists {
		return st, nil
	}
	err := db.pool.QueryRow(ctx,
		`SELECT COALESCE(MAX(version_id), 0) FROM `+goose.DefaultTablename+` WHERE is_applied`).Scan(&st.Current)
	if err != nil {
		return st, fmt.Errorf("schema status: %w", err)
	}
	return st, nil
}

// Migrate applies pending migrations. Concurrent callers, in this process
// or others, queue on a PostgreSQL advisory lock.
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := db.mig.Up(ctx); err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	return nil
}

// Close closes the pool.
func (db *DB) Close() error {
	var err error
	if db.migDB != nil {
		err = db.migDB.Close()
	}
	db.pool.Close()
	if err != nil {
		return fmt.Errorf("close postgres: %w", err)
	}
	return nil
}

// WriteTx runs fn in a transaction and commits if fn returns nil; otherwise
// (or on panic) it rolls back. The error fn returns comes back as is, except
// that one matching pgx.ErrNoRows also matches store.ErrNotFound.
func (db *DB) WriteTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return store.InTx(tx, store.TxFuncs{
		Commit:   func() error { return tx.Commit(ctx) },
		Rollback: func() { _ = tx.Rollback(context.WithoutCancel(ctx)) },
	}, pgx.ErrNoRows, fn)
}

// notFound translates pgx.ErrNoRows to store.ErrNotFound.
func notFound(err error) error { return store.NotFound(err, pgx.ErrNoRows) }

// Meta reads a backlot_meta value.
func (db *DB) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := db.pool.QueryRow(ctx, `SELECT value FROM backlot_meta WHERE key = $1`, key).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("meta %q: %w", key, notFound(err))
	}
	return v, nil
}

// SetMeta inserts or replaces a backlot_meta value.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO backlot_meta (key, value) VALUES ($1, $2)
		 ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}
