package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
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

// openJobsDB opens a fresh migrated store.
func openJobsDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "b.db"), store.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// payloadOf returns a payload that needs escaping in every way JSON has.
func payloadOf(i int) []byte {
	return []byte(fmt.Sprintf(`{"i":%d,"s":"quote \" backslash \\ tab \t nl \n ctl \u0001 é 日本 🎉","a":[1,{"b":null}]}`, i))
}

// TestInsertJobsChunks: batches of every shape around the chunk sizes
// (padding, several chunks) get consecutive ids, exact payloads (stored as
// text), and dedupe against earlier batches and within the batch.
func TestInsertJobsChunks(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 31, 127, 128, 129, 300, 513} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := openJobsDB(t)
			now := time.UnixMicro(1_700_000_000_000_000).UTC()
			// An earlier batch knows keys old-0, old-3, old-6, …
			var old []store.JobInsert
			for i := 0; i < n; i += 3 {
				old = append(old, store.JobInsert{Kind: "k", Queue: "q", Payload: []byte(`{}`), MaxAttempts: 1, DedupeKey: fmt.Sprintf("old-%d", i)})
			}
			oldRes, err := db.InsertJobs(ctx, now, old)
			if err != nil {
				t.Fatal(err)
			}
			batch := make([]store.JobInsert, n)
			for i := range batch {
				batch[i] = store.JobInsert{Kind: fmt.Sprintf("kind-%d", i%5), Queue: "q", Payload: payloadOf(i), MaxAttempts: 1 + i%4}
				switch i % 4 {
				case 1:
					batch[i].DedupeKey = fmt.Sprintf("old-%d", i) // known when i%3 == 0
				case 2:
					batch[i].DedupeKey = fmt.Sprintf("new-%d", i/8) // repeats within the batch
				case 3:
					batch[i].RunAt = now.Add(time.Hour)
				}
			}
			res, err := db.InsertJobs(ctx, now, batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != n {
				t.Fatalf("%d results for %d jobs", len(res), n)
			}
			next := oldRes[len(oldRes)-1].ID + 1
			first := map[string]int64{}
			for i, r := range res {
				key := batch[i].DedupeKey
				var want jobsResult
				switch {
				case key != "" && i%4 == 1 && i%3 == 0:
					want = jobsResult{id: oldRes[i/3].ID, dup: true}
				case key != "" && first[key] != 0:
					want = jobsResult{id: first[key], dup: true}
				default:
					want = jobsResult{id: next}
					next++
					if key != "" {
						first[key] = want.id
					}
				}
				if r.ID != want.id || r.Duplicate != want.dup {
					t.Fatalf("job %d (key %q): got id %d dup %v, want id %d dup %v", i, key, r.ID, r.Duplicate, want.id, want.dup)
				}
				if r.Duplicate {
					continue
				}
				j, err := db.GetJob(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if string(j.Payload) != string(batch[i].Payload) || j.Kind != batch[i].Kind || j.MaxAttempts != batch[i].MaxAttempts ||
					j.DedupeKey != key || !j.CreatedAt.Equal(now) {
					t.Fatalf("job %d read back as %+v (payload %s)", i, j, j.Payload)
				}
				wantState, wantRun := jobs.StateAvailable, now
				if !batch[i].RunAt.IsZero() {
					wantState, wantRun = jobs.StateScheduled, batch[i].RunAt
				}
				if j.State != wantState || !j.RunAt.Equal(wantRun) {
					t.Fatalf("job %d: state %s run_at %v, want %s %v", i, j.State, j.RunAt, wantState, wantRun)
				}
			}
			var texts, keys int
			if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM backlot_jobs WHERE typeof(payload) = 'text'`).Scan(&texts); err != nil {
				t.Fatal(err)
			}
			if want := int(next - 1); texts != want {
				t.Fatalf("%d text payloads, want %d", texts, want)
			}
			if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM backlot_job_dedupe`).Scan(&keys); err != nil {
				t.Fatal(err)
			}
			if want := len(old) + len(first); keys != want {
				t.Fatalf("%d dedupe keys, want %d", keys, want)
			}
		})
	}
}

type jobsResult struct {
	id  int64
	dup bool
}

// TestInsertJobsTxChunks: inside a caller's transaction, before the
// store has prepared its statements, a multi-chunk batch still inserts.
func TestInsertJobsTxChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJobsDB(t)
	batch := make([]store.JobInsert, 200)
	for i := range batch {
		batch[i] = store.JobInsert{Kind: "k", Queue: "q", Payload: payloadOf(i), MaxAttempts: 1, DedupeKey: fmt.Sprintf("k-%d", i%150)}
	}
	var res []jobs.EnqueueResult
	err := db.RunTx(ctx, func(tx store.Tx) error {
		var err error
		res, err = db.InsertJobsTx(ctx, tx, time.Now(), batch)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if want := int64(i%150 + 1); r.ID != want || r.Duplicate != (i >= 150) {
			t.Fatalf("job %d: %+v, want id %d", i, r, want)
		}
	}
}

// TestClaimKindsAndFinishChunks: the kinds filter holds for every kinds
// count (padding, and the JSON form beyond maxKindsIn), and outcomes of
// several chunks land, fenced by attempt.
func TestClaimKindsAndFinishChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJobsDB(t)
	now := time.UnixMicro(1_700_000_000_000_000).UTC()
	batch := make([]store.JobInsert, 0, 600)
	for i := 0; i < 300; i++ {
		batch = append(batch,
			store.JobInsert{Kind: "wanted", Queue: "q", Payload: payloadOf(i), MaxAttempts: 3},
			store.JobInsert{Kind: "other", Queue: "q", Payload: []byte(`{}`), MaxAttempts: 3})
	}
	if _, err := db.InsertJobs(ctx, now, batch); err != nil {
		t.Fatal(err)
	}
	var claimed []*jobs.Job
	for _, nKinds := range []int{1, 2, 3, 64, 65, 200} {
		kinds := make([]string, nKinds)
		for i := range kinds {
			kinds[i] = fmt.Sprintf("nope-%d", i)
		}
		kinds[nKinds/2] = "wanted"
		got, err := db.ClaimJobs(ctx, store.ClaimParams{Queue: "q", Kinds: kinds, Limit: 50, Now: now, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 50 {
			t.Fatalf("%d kinds: claimed %d, want 50", nKinds, len(got))
		}
		for _, j := range got {
			if j.Kind != "wanted" || j.State != jobs.StateRunning || j.Attempt != 1 {
				t.Fatalf("%d kinds: claimed %+v", nKinds, j)
			}
		}
		claimed = append(claimed, got...)
	}
	// No kind listed: nothing is claimed (padding must not match).
	got, err := db.ClaimJobs(ctx, store.ClaimParams{Queue: "q", Kinds: []string{"nope"}, Limit: 10, Now: now, Lease: time.Minute})
	if err != nil || len(got) != 0 {
		t.Fatalf("claim of an absent kind: %d jobs, %v", len(got), err)
	}
	// 300 outcomes in one update; every seventh carries a stale attempt
	// and must not land.
	states := []jobs.State{jobs.StateCompleted, jobs.StateRetrying, jobs.StateFailed}
	fin := make([]store.JobFinish, len(claimed))
	for i, j := range claimed {
		fin[i] = store.JobFinish{JobRef: store.JobRef{ID: j.ID, Attempt: j.Attempt}, State: states[i%3],
			RunAt: now.Add(time.Duration(i) * time.Second), Error: fmt.Sprintf("err %d", i), At: now.Add(time.Minute)}
		if i%7 == 0 {
			fin[i].Attempt = 2
		}
	}
	if err := db.UpdateJobs(ctx, store.JobUpdates{Finishes: fin}); err != nil {
		t.Fatal(err)
	}
	for i, f := range fin {
		j, err := db.GetJob(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if j.State != jobs.StateRunning || j.LastError != "" {
				t.Fatalf("fenced outcome %d landed: %+v", i, j)
			}
			continue
		}
		if j.State != f.State || j.LastError != f.Error || j.LeaseUntil != nil {
			t.Fatalf("outcome %d: job %+v, want state %s", i, j, f.State)
		}
		if f.State == jobs.StateRetrying && (!j.RunAt.Equal(f.RunAt) || j.FinishedAt != nil) {
			t.Fatalf("retrying outcome %d: run_at %v finished %v", i, j.RunAt, j.FinishedAt)
		}
		if f.State != jobs.StateRetrying && (j.FinishedAt == nil || !j.FinishedAt.Equal(f.At)) {
			t.Fatalf("final outcome %d: finished_at %v", i, j.FinishedAt)
		}
	}
}
