package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/backlothq/backlot/internal/store"
)

// The read pool must never write: query_only is on for its connections.
func TestReadPoolIsQueryOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"), store.Options{Migrate: true, MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var q int
	if err := db.r.QueryRowContext(ctx, `PRAGMA query_only`).Scan(&q); err != nil || q != 1 {
		t.Fatalf("reader PRAGMA query_only = %d, %v; want 1", q, err)
	}
	if _, err := db.r.ExecContext(ctx, `INSERT INTO backlot_meta (key, value) VALUES ('r', 'v')`); err == nil {
		t.Fatal("insert through the read pool succeeded")
	}
	if got := db.r.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("read pool size = %d, want 3 (Options.MaxConns)", got)
	}
	if got := db.w.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool size = %d, want 1", got)
	}
}
