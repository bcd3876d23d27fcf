package sqlite_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/testutil"
)

// cpuTime is the process's user CPU time so far: the store's own cost
// per row, apart from the fsync waits that dominate wall time (and the
// kernel's time writing, which is the same whatever the SQL).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano())
}

// benchBatch fills batch with webhook-like jobs, each with a fresh dedupe
// key.
func benchBatch(batch []store.JobInsert, n *int) {
	for k := range batch {
		*n++
		batch[k] = store.JobInsert{Kind: "bench", Queue: "default", Payload: []byte(`{"type":"invoice.paid","data":{"id":"in_123"}}`),
			MaxAttempts: 10, DedupeKey: fmt.Sprintf("wh_%d", *n)}
	}
}

// BenchmarkInsertJobs measures the store's cost of one group-commit batch
// of jobs with dedupe keys (ns/op is per row; user-ns/row is the process's
// CPU per row, which the fsync per batch does not hide).
func BenchmarkInsertJobs(b *testing.B) {
	for _, size := range []int{1, 32, 33, 37, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			db := testutil.SQLite(b)
			ctx := context.Background()
			batch := make([]store.JobInsert, size)
			n := 0
			b.ResetTimer()
			cpu0 := cpuTime(b)
			rows := 0
			for i := 0; i < b.N; i += len(batch) {
				benchBatch(batch, &n)
				if _, err := db.InsertJobs(ctx, time.Now(), batch); err != nil {
					b.Fatal(err)
				}
				rows += len(batch)
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(rows), "user-ns/row")
		})
	}
}

// BenchmarkClaimFinish measures the engine's bookkeeping per job: claim
// in batches of 33 to 64, then complete the batch in one UpdateJobs (ns/op and
// user-ns/row are per job). Inserts happen outside the timer.
func BenchmarkClaimFinish(b *testing.B) {
	db := testutil.SQLite(b)
	ctx := context.Background()
	batch := make([]store.JobInsert, 512)
	n := 0
	kinds := []string{"other", "bench"}
	fin := make([]store.JobFinish, 0, 64)
	var cpu time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		benchBatch(batch, &n)
		now := time.Now()
		if _, err := db.InsertJobs(ctx, now, batch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu0 := cpuTime(b)
		for left := len(batch); left > 0 && done < b.N; {
			// The limit varies as the engine's does (its free slots).
			got, err := db.ClaimJobs(ctx, store.ClaimParams{Queue: "default", Kinds: kinds, Limit: 33 + done%32, Now: now,
				Lease: time.Minute, SkipLapsed: done%512 != 0})
			if err != nil {
				b.Fatal(err)
			}
			if len(got) == 0 {
				b.Fatal("claimed nothing")
			}
			fin = fin[:0]
			for _, j := range got {
				fin = append(fin, store.JobFinish{JobRef: store.JobRef{ID: j.ID, Attempt: j.Attempt}, State: "completed", At: now})
			}
			if err := db.UpdateJobs(ctx, store.JobUpdates{Finishes: fin}); err != nil {
				b.Fatal(err)
			}
			left -= len(got)
			done += len(got)
		}
		cpu += cpuTime(b) - cpu0
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "user-ns/row")
}

// BenchmarkWriteJobBatch measures the writer's cycle under ingest, per job:
// one WriteJobBatch inserts 32 webhook jobs already claimed (as the engine
// does when a worker is free) and completes the 32 of the cycle before, in
// one transaction with synchronous=FULL. user-ns/row is the CPU per job,
// which the fsync does not hide.
func BenchmarkWriteJobBatch(b *testing.B) {
	const size = 32
	db := testutil.SQLite(b)
	ctx := context.Background()
	batch := make([]store.JobInsert, size)
	var fin []store.JobFinish
	n, rows := 0, 0
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i += size {
		benchBatch(batch, &n)
		now := time.Now()
		for k := range batch {
			batch[k].LeaseUntil = now.Add(time.Minute)
		}
		out, err := db.WriteJobBatch(ctx, now, store.JobBatch{Inserts: batch, Updates: store.JobUpdates{Finishes: fin}})
		if err != nil {
			b.Fatal(err)
		}
		fin = fin[:0]
		for _, r := range out.Inserted {
			fin = append(fin, store.JobFinish{JobRef: store.JobRef{ID: r.ID, Attempt: 1}, State: "completed", At: now})
		}
		rows += size
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(rows), "user-ns/row")
}
