package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// TestRelaxedTxRestoresFull: the engine's bookkeeping commits without
// fsync, but the writer must be back to synchronous=FULL afterwards, for
// enqueues and everyone else.
func TestRelaxedTxRestoresFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "b.db"), store.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.InsertJobs(ctx, time.Now(), []store.JobInsert{{Kind: "k", Queue: "q", Payload: []byte(`{}`), MaxAttempts: 1}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.ClaimJobs(ctx, store.ClaimParams{Queue: "q", Kinds: []string{"k"}, Limit: 1, Now: time.Now(), Lease: time.Minute})
	if err != nil || len(got) != 1 {
		t.Fatalf("claim: %v, %v", got, err)
	}
	// A failing relaxed transaction restores it too.
	if _, err := db.ClaimJobs(ctx, store.ClaimParams{Queue: "q", Kinds: []string{"k"}, Limit: 1, Now: time.Now(), Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.UpdateJobs(cctx, store.JobUpdates{Progress: []store.JobProgress{{JobID: got[0].ID, Percent: 1}}}); err == nil {
		t.Fatal("UpdateJobs with a cancelled context: want an error")
	}
	var sync int
	if err := db.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != 2 {
		t.Fatalf("writer synchronous = %d after relaxed transactions, want 2 (FULL)", sync)
	}
}
