// Package sqlite is the embedded store.Store: one SQLite file in WAL mode,
// written through exactly one connection (so writers queue in Go rather than
// fight over SQLite's lock) and read through a small pool of query-only
// connections. Durability is synchronous=FULL: anything acknowledged to a
// caller has been fsynced.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/backlothq/backlot/internal/store"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// BusyTimeoutMillis is how long a connection waits on SQLite's lock before
// SQLITE_BUSY. Only readers and other processes contend; our own writes are
// serialised by the single writer connection.
const BusyTimeoutMillis = 5000

// DB is the SQLite store.
type DB struct {
	w    *sql.DB // exactly one connection; ALL writes go through it
	r    *sql.DB // query-only read pool
	path string
	mig  *goose.Provider
	jobs jobStmts // prepared statements of jobs.go
}

// Open opens (creating if needed) the database file at path. Its directory
// must exist. With opts.Migrate pending migrations are applied; without, a
// database whose schema is behind is refused with store.ErrSchemaBehind.
func Open(ctx context.Context, path string, opts store.Options) (*DB, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if !opts.Migrate {
		// Refuse without leaving an empty database file behind.
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open sqlite %s: no database file: %w", path, store.ErrSchemaBehind)
		}
	}
	if err := createOwnerOnly(path); err != nil {
		return nil, err
	}
	db := &DB{path: path}
	var err error
	db.w, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMillis),
			"foreign_keys(ON)",
			"journal_mode(WAL)",
			"synchronous(FULL)",
		},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)
	// Connect now so the file exists and is in WAL mode before readers open.
	if err := connect(ctx, db.w); err != nil {
		db.w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := sidecarsOwnerOnly(path); err != nil {
		db.w.Close()
		return nil, err
	}

	n := opts.MaxConns
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	db.r, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMillis),
			"foreign_keys(ON)",
			"query_only(1)",
		},
	}))
	if err != nil {
		db.w.Close()
		return nil, fmt.Errorf("open sqlite %s: read pool: %w", path, err)
	}
	db.r.SetMaxOpenConns(n)
	db.r.SetMaxIdleConns(n)
	db.r.SetConnMaxLifetime(0)
	db.r.SetConnMaxIdleTime(0)

	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: migrations: %w", path, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db.mig, err = goose.NewProvider(goose.DialectSQLite3, db.w, sub,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: migrations: %w", path, err)
	}

	if err := store.PrepareSchema(ctx, db, opts.Migrate); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// connect makes w's first connection, which switches a new file to WAL.
// Two processes opening one new file at once can both hold a read lock
// and want the write lock for that switch; SQLite then refuses one of
// them with SQLITE_BUSY at once, without waiting out busy_timeout, since
// waiting could deadlock. That refusal is retried until busy_timeout has
// passed, as a wait on the lock would have been.
func connect(ctx context.Context, w *sql.DB) error {
	deadline := time.Now().Add(BusyTimeoutMillis * time.Millisecond)
	for {
		err := w.PingContext(ctx)
		if !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY, in any of its
// extended forms.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// createOwnerOnly creates the database file, if it does not exist yet,
// readable and writable by its owner only: it holds job payloads and
// sessions. SQLite would create it 0644 less the umask. The explicit
// chmod makes the mode independent of the umask. An existing file keeps
// the mode its owner gave it.
func createOwnerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open sqlite %s: create: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("open sqlite %s: chmod: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("open sqlite %s: create: %w", path, err)
	}
	return nil
}

// sidecarsOwnerOnly gives the WAL and shared-memory files no more
// permission than the database file: they hold the same data. SQLite
// creates them with the database's mode, but an older version of this
// program (or another tool) may have left them wider.
func sidecarsOwnerOnly(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	want := fi.Mode().Perm()
	for _, p := range []string{path + "-wal", path + "-shm"} {
		si, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open sqlite %s: %w", path, err)
		}
		if si.Mode().Perm()&^want != 0 {
			if err := os.Chmod(p, si.Mode().Perm()&want); err != nil {
				return fmt.Errorf("open sqlite %s: chmod %s: %w", path, filepath.Base(p), err)
			}
		}
	}
	return nil
}

// checkPath rejects paths the DSN cannot carry and missing directories,
// which SQLite would otherwise report as a bare "unable to open".
func checkPath(path string) error {
	switch {
	case path == "":
		return errors.New("open sqlite: empty path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		// The read pool must see the writer's data: only a real file does.
		return fmt.Errorf("open sqlite %s: need a plain file path", path)
	case strings.ContainsRune(path, '?'):
		return fmt.Errorf("open sqlite %s: path must not contain '?'", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("open sqlite %s: directory %s: %w", path, dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("open sqlite %s: %s is not a directory", path, dir)
	}
	return nil
}

func dsn(path string, q url.Values) string {
	// modernc takes everything before '?' verbatim as the file name.
	return path + "?" + q.Encode()
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Backend returns store.BackendSQLite.
func (db *DB) Backend() string { return store.BackendSQLite }

// Ping checks the file can still be read.
func (db *DB) Ping(ctx context.Context) error {
	var n int
	// Touching sqlite_master reads the file; SELECT 1 would not.
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		return fmt.Errorf("ping sqlite %s: %w", db.path, err)
	}
	return nil
}

// SchemaStatus reports the highest applied and highest embedded migration
// versions. It only reads, so it never creates goose's version table.
func (db *DB) SchemaStatus(ctx context.Context) (store.SchemaStatus, error) {
	st := store.SchemaStatus{Latest: latest(db.mig)}
	var tables int
	err := db.r.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, goose.DefaultTablename).Scan(&tables)
	if err != nil {
		return st, fmt.Errorf("schema status: %w", err)
	}
	if tables == 0 {
		return st, nil
	}
	err = db.r.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version_id), 0) FROM `+goose.DefaultTablename+` WHERE is_applied`).Scan(&st.Current)
	if err != nil {
		return st, fmt.Errorf("schema status: %w", err)
	}
	return st, nil
}

func latest(p *goose.Provider) int64 {
	var v int64
	for _, s := range p.ListSources() {
		v = max(v, s.Version)
	}
	return v
}

// Migrate applies pending migrations through the writer connection.
//
// Two processes migrating one file at once (say `backlot migrate` beside a
// starting server) race: goose picks the pending list outside the
// transactions, so the loser fails on "table already exists". Each
// migration and its version row commit together, so the loser just
// re-reads the state and carries on from where the winner got to.
func (db *DB) Migrate(ctx context.Context) error {
	var err error
	for range migrateAttempts {
		if _, err = db.mig.Up(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		if st, serr := db.SchemaStatus(ctx); serr == nil && !st.Behind() {
			return nil
		}
	}
	return fmt.Errorf("migrate sqlite %s: %w", db.path, err)
}

// migrateAttempts bounds Migrate's retries; each lost race costs one.
const migrateAttempts = 10

// Close closes both pools. The last connection to close checkpoints the WAL.
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite %s: %w", db.path, err)
	}
	return nil
}

// WriteTx runs fn in a BEGIN IMMEDIATE transaction on the writer connection
// and commits if fn returns nil; otherwise (or on panic) it rolls back. The
// error fn returns comes back as is, except that one matching sql.ErrNoRows
// also matches store.ErrNotFound.
func (db *DB) WriteTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return inTx(tx, fn)
}

// inTx commits or rolls back tx around fn (store.InTx).
func inTx(tx *sql.Tx, fn func(*sql.Tx) error) error {
	return store.InTx(tx, store.TxFuncs{Commit: tx.Commit, Rollback: func() { _ = tx.Rollback() }}, sql.ErrNoRows, fn)
}

// notFound translates sql.ErrNoRows to store.ErrNotFound.
func notFound(err error) error { return store.NotFound(err, sql.ErrNoRows) }

// Meta reads a backlot_meta value.
func (db *DB) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := db.r.QueryRowContext(ctx, `SELECT value FROM backlot_meta WHERE key = ?`, key).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("meta %q: %w", key, notFound(err))
	}
	return v, nil
}

// SetMeta inserts or replaces a backlot_meta value.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO backlot_meta (key, value) VALUES (?, ?)
		 ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}
