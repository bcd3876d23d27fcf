package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/store/storetest"
	"github.com/backlothq/backlot/internal/testutil"
)

var _ store.Store = (*sqlite.DB)(nil)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return testutil.SQLite(t) })
}

func open(t *testing.T, path string, opts store.Options) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPragmasOnWriter(t *testing.T) {
	t.Parallel()
	db := testutil.SQLite(t)
	want := map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"foreign_keys": "1",
		"busy_timeout": fmt.Sprint(sqlite.BusyTimeoutMillis),
		"query_only":   "0",
	}
	err := db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		for p, w := range want {
			var got string
			if err := tx.QueryRow("PRAGMA " + p).Scan(&got); err != nil {
				return fmt.Errorf("PRAGMA %s: %w", p, err)
			}
			if got != w {
				t.Errorf("PRAGMA %s = %q, want %q", p, got, w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new.db")
	db := open(t, path, store.Options{Migrate: true})
	if db.Path() != path {
		t.Errorf("Path() = %q, want %q", db.Path(), path)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("database file after Open: %v, %v", st, err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no WAL file beside the database: %v", err)
	}
}

func TestOpenWithoutMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("FreshIsBehind", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "b.db")
		db, err := sqlite.Open(ctx, path, store.Options{})
		if !errors.Is(err, store.ErrSchemaBehind) {
			if db != nil {
				db.Close()
			}
			t.Fatalf("Open fresh without Migrate: err = %v, want ErrSchemaBehind", err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("refused Open left a file behind: %v", err)
		}
	})

	t.Run("EmptyFileIsBehind", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "b.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := sqlite.Open(ctx, path, store.Options{})
		if !errors.Is(err, store.ErrSchemaBehind) {
			if db != nil {
				db.Close()
			}
			t.Fatalf("Open empty file without Migrate: err = %v, want ErrSchemaBehind", err)
		}
	})

	t.Run("MigratedOpens", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "b.db")
		db := open(t, path, store.Options{Migrate: true})
		if err := db.SetMeta(ctx, "kept", "yes"); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db2 := open(t, path, store.Options{})
		if v, err := db2.Meta(ctx, "kept"); err != nil || v != "yes" {
			t.Fatalf("Meta after reopen = %q, %v", v, err)
		}
	})

	t.Run("PartlyMigratedIsBehind", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "b.db")
		db := open(t, path, store.Options{Migrate: true})
		st, err := db.SchemaStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Forget the newest migration, as if this binary were newer.
		err = db.WriteTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.Exec(`DELETE FROM goose_db_version WHERE version_id = ?`, st.Latest)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := db.SchemaStatus(ctx); err != nil || !st.Behind() || st.Current >= st.Latest {
			t.Fatalf("SchemaStatus after forgetting %d = %+v, %v; want behind", st.Latest, st, err)
		}
		db.Close()
		db2, err := sqlite.Open(ctx, path, store.Options{})
		if !errors.Is(err, store.ErrSchemaBehind) {
			if db2 != nil {
				db2.Close()
			}
			t.Fatalf("Open behind without Migrate: err = %v, want ErrSchemaBehind", err)
		}
	})
}

func TestOpenBadPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, []byte(strings.Repeat("not sqlite ", 500)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"empty", "", "empty path"},
		{"memory", ":memory:", "plain file path"},
		{"uri", "file:" + filepath.Join(dir, "a.db"), "plain file path"},
		{"question mark", filepath.Join(dir, "a?b.db"), "must not contain"},
		{"missing directory", filepath.Join(dir, "nope", "a.db"), "no such file or directory"},
		{"directory is a file", filepath.Join(file, "a.db"), "not a directory"},
		{"not a database", file, "not a database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, err := sqlite.Open(context.Background(), tc.path, store.Options{Migrate: true})
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q) = %v, want an error mentioning %q", tc.path, err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Errorf("Open created the missing directory: %v", err)
	}
}

func TestWriteTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RollsBackOnError", func(t *testing.T) {
		t.Parallel()
		db := testutil.SQLite(t)
		boom := errors.New("boom")
		err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.Exec(`INSERT INTO backlot_meta (key, value) VALUES ('tx', 'v')`); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("WriteTx = %v, want boom", err)
		}
		if _, err := db.Meta(ctx, "tx"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Meta after rollback: %v, want ErrNotFound", err)
		}
	})

	t.Run("TranslatesNoRows", func(t *testing.T) {
		t.Parallel()
		db := testutil.SQLite(t)
		err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			var v string
			if err := tx.QueryRow(`SELECT value FROM backlot_meta WHERE key = 'none'`).Scan(&v); err != nil {
				return fmt.Errorf("look up none: %w", err)
			}
			return nil
		})
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("WriteTx = %v, want ErrNotFound wrapping sql.ErrNoRows", err)
		}
	})

	t.Run("PanicRollsBackAndFreesWriter", func(t *testing.T) {
		t.Parallel()
		db := testutil.SQLite(t)
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Errorf("recovered %v, want boom", p)
				}
			}()
			_ = db.WriteTx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO backlot_meta (key, value) VALUES ('p', 'v')`); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		// The single writer connection must be usable again.
		if err := db.SetMeta(ctx, "after", "ok"); err != nil {
			t.Fatalf("SetMeta after panic: %v", err)
		}
		if _, err := db.Meta(ctx, "p"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Meta(p) after panic: %v, want ErrNotFound", err)
		}
	})

	t.Run("ConcurrentIncrements", func(t *testing.T) {
		t.Parallel()
		db := testutil.SQLite(t)
		if err := db.SetMeta(ctx, "n", "0"); err != nil {
			t.Fatal(err)
		}
		const workers, each = 16, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for range workers {
			wg.Go(func() {
				for range each {
					errs <- db.WriteTx(ctx, func(tx *sql.Tx) error {
						_, err := tx.Exec(`UPDATE backlot_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'n'`)
						return err
					})
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("WriteTx: %v", err)
			}
		}
		if v, err := db.Meta(ctx, "n"); err != nil || v != fmt.Sprint(workers*each) {
			t.Fatalf("counter = %q, %v; want %d", v, err, workers*each)
		}
	})
}

// Two DB values on one file stand in for two processes: BEGIN IMMEDIATE and
// busy_timeout must make them queue, not fail with SQLITE_BUSY.
func TestTwoOpenersShareFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	a := open(t, path, store.Options{Migrate: true})
	b := open(t, path, store.Options{Migrate: true})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i, db := range []*sqlite.DB{a, b} {
		wg.Go(func() {
			for j := range 100 {
				errs <- db.SetMeta(ctx, fmt.Sprintf("k%d-%d", i, j), "v")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("SetMeta: %v", err)
		}
	}
	for _, k := range []string{"k0-99", "k1-99"} {
		if _, err := a.Meta(ctx, k); err != nil {
			t.Errorf("Meta(%s) via a: %v", k, err)
		}
	}
}

// Openers migrating one fresh file at once (server and `backlot migrate`)
// must all succeed, with each migration applied once.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for round := range 3 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("race%d.db", round))
		const n = 4
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				db, err := sqlite.Open(ctx, path, store.Options{Migrate: true})
				if err == nil {
					err = db.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Open #%d: %v", round, i, err)
			}
		}
		db := open(t, path, store.Options{})
		var rows int
		err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			return tx.QueryRow(`SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&rows)
		})
		if err != nil || rows != 1 {
			t.Fatalf("round %d: version 1 recorded %d times (%v), want once", round, rows, err)
		}
	}
}

// BenchmarkWriteTx measures one durable (synchronous=FULL) commit through
// the single writer, run from parallel goroutines as the server would.
func BenchmarkWriteTx(b *testing.B) {
	db := testutil.SQLite(b)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := db.WriteTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO backlot_meta (key, value) VALUES ('bench', 'v')
					ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
