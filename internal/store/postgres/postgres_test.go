package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/postgres"
	"github.com/backlothq/backlot/internal/store/storetest"
	"github.com/backlothq/backlot/internal/testutil"
)

var _ store.Store = (*postgres.DB)(nil)

func TestMain(m *testing.M) { testutil.Main(m) }

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return testutil.PostgresStore(t) })
}

func open(t *testing.T, url string, opts store.Options) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenWithoutMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("FreshIsBehind", func(t *testing.T) {
		t.Parallel()
		db, err := postgres.Open(ctx, testutil.Postgres(t), store.Options{})
		if !errors.Is(err, store.ErrSchemaBehind) {
			if db != nil {
				db.Close()
			}
			t.Fatalf("Open fresh without Migrate: err = %v, want ErrSchemaBehind", err)
		}
	})

	t.Run("MigratedOpens", func(t *testing.T) {
		t.Parallel()
		url := testutil.Postgres(t)
		a := open(t, url, store.Options{Migrate: true})
		if err := a.SetMeta(ctx, "kept", "yes"); err != nil {
			t.Fatal(err)
		}
		b := open(t, url, store.Options{})
		if v, err := b.Meta(ctx, "kept"); err != nil || v != "yes" {
			t.Fatalf("Meta via second opener = %q, %v", v, err)
		}
	})

	t.Run("PartlyMigratedIsBehind", func(t *testing.T) {
		t.Parallel()
		url := testutil.Postgres(t)
		db := open(t, url, store.Options{Migrate: true})
		st, err := db.SchemaStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = db.WriteTx(ctx, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = $1`, st.Latest)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		db2, err := postgres.Open(ctx, url, store.Options{})
		if !errors.Is(err, store.ErrSchemaBehind) {
			if db2 != nil {
				db2.Close()
			}
			t.Fatalf("Open behind without Migrate: err = %v, want ErrSchemaBehind", err)
		}
	})
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t) // nothing listens there
	for _, tc := range []struct{ name, url string }{
		{"unparsable", "postgres://user:secret@[::1/db"},
		{"nothing listening", fmt.Sprintf("postgres://u:secret@127.0.0.1:%d/db?sslmode=disable&connect_timeout=2", port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, err := postgres.Open(context.Background(), tc.url, store.Options{Migrate: true})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if errorsContain(err, "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// Several instances starting at once against one fresh database must all
// come up, with the migrations applied once.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testutil.Postgres(t)
	const n = 6
	dbs := make([]*postgres.DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(ctx, url, store.Options{Migrate: true, MaxConns: 2}) })
	}
	wg.Wait()
	for i, db := range dbs {
		if db != nil {
			t.Cleanup(func() { db.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
	}
	st, err := dbs[0].SchemaStatus(ctx)
	if err != nil || st.Behind() {
		t.Fatalf("SchemaStatus = %+v, %v", st, err)
	}
	var rows, ids int
	err = dbs[0].WriteTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&rows); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM backlot_meta WHERE key = 'instance_id'`).Scan(&ids)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows != 1 || ids != 1 {
		t.Fatalf("after %d concurrent migrations: version 1 recorded %d times, %d instance ids; want 1, 1", n, rows, ids)
	}
}

func TestWriteTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testutil.PostgresStore(t)

	boom := errors.New("boom")
	err := db.WriteTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO backlot_meta (key, value) VALUES ('tx', 'v')`); err != nil {
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

	err = db.WriteTx(ctx, func(tx pgx.Tx) error {
		var v string
		if err := tx.QueryRow(ctx, `SELECT value FROM backlot_meta WHERE key = 'none'`).Scan(&v); err != nil {
			return fmt.Errorf("look up none: %w", err)
		}
		return nil
	})
	if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("WriteTx = %v, want ErrNotFound wrapping pgx.ErrNoRows", err)
	}

	err = db.WriteTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO backlot_meta (key, value) VALUES ('ok', 'v')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := db.Meta(ctx, "ok"); err != nil || v != "v" {
		t.Fatalf("Meta after commit = %q, %v", v, err)
	}
}

// What /readyz relies on: while the server is down Ping fails promptly,
// and once it is back the same DB value works again without reopening.
func TestPingAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testutil.NewPostgresServer(t, testutil.PGOptions{})
	db := open(t, srv.URL(), store.Options{Migrate: true, MaxConns: 4})

	// Fill the pool, so stale connections are there after the restart.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_ = db.WriteTx(ctx, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT pg_sleep(0.05)`)
				return err
			})
		})
	}
	wg.Wait()
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping before stop: %v", err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		start := time.Now()
		err := db.Ping(ctx)
		if err == nil {
			t.Fatalf("Ping #%d with the server stopped succeeded", i+1)
		}
		// Bounded by PingTimeout, whatever the caller's context.
		if d := time.Since(start); d > postgres.PingTimeout+time.Second {
			t.Fatalf("Ping #%d took %s with the server down; want at most about %s", i+1, d, postgres.PingTimeout)
		}
	}
	if _, err := db.Meta(ctx, "instance_id"); err == nil {
		t.Fatal("Meta with the server stopped succeeded")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	if _, err := db.Meta(ctx, "instance_id"); err != nil {
		t.Fatalf("Meta after restart: %v", err)
	}
}

// A server restarted while the pool is idle: the first Ping after it must
// already succeed (dead pooled connections are weeded out, not reported).
func TestPingAfterQuietRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testutil.NewPostgresServer(t, testutil.PGOptions{})
	db := open(t, srv.URL(), store.Options{Migrate: true, MaxConns: 4})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_ = db.WriteTx(ctx, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT pg_sleep(0.05)`)
				return err
			})
		})
	}
	wg.Wait()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("first Ping after restart: %v", err)
	}
	if _, err := db.Meta(ctx, "instance_id"); err != nil {
		t.Fatalf("Meta after restart: %v", err)
	}
}

// BenchmarkWriteTx measures one committed transaction, from parallel
// goroutines as the server would run them.
func BenchmarkWriteTx(b *testing.B) {
	db := testutil.PostgresStore(b)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := db.WriteTx(ctx, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO backlot_meta (key, value) VALUES ('bench', 'v')
					ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
