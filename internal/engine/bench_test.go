package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/jobs"
)

// benchCallers are the numbers of concurrent enqueuers benchmarked: 64 is
// the HTTP target's connection count; more callers make bigger group
// commits, which is what amortises each fsync.
var benchCallers = []int{64, 512}

// batchStats returns transactions and rows seen by the batch histogram.
func batchStats(b *testing.B, reg *prometheus.Registry) (txs uint64, rows float64) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "backlot_jobs_enqueue_batch_size" {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

// parallel runs fn from callers goroutines in total (at least one per P).
func parallel(b *testing.B, callers int, fn func(ctx context.Context) error) {
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := fn(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEnqueue measures acknowledged (committed) enqueues per second
// from concurrent callers, each with a dedupe key as a webhook delivery
// has. Reports rows/s and rows per transaction.
func BenchmarkEnqueue(b *testing.B) {
	for _, be := range backends {
		for _, callers := range benchCallers {
			b.Run(fmt.Sprintf("%s/callers=%d", be.name, callers), func(b *testing.B) {
				st := be.open(b)
				bu := newEngine(b, st, config.Jobs{}, nil)
				bu.start(b)
				var seq atomic.Int64
				payload := []byte(`{"type":"invoice.paid","data":{"id":"in_123","amount":4200}}`)
				b.ResetTimer()
				start := time.Now()
				parallel(b, callers, func(ctx context.Context) error {
					key := fmt.Sprintf("wh_%d", seq.Add(1))
					_, err := bu.e.Enqueue(ctx, "bench.noop", payload, &jobs.EnqueueOpts{DedupeKey: key})
					return err
				})
				el := time.Since(start)
				b.StopTimer()
				txs, rows := batchStats(b, bu.reg)
				b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
				b.ReportMetric(rows/float64(max(txs, 1)), "rows/tx")
			})
		}
	}
}

// BenchmarkEndToEnd measures completed jobs per second with a no-op worker:
// enqueue (group commit), claim, run, complete (batched).
func BenchmarkEndToEnd(b *testing.B) {
	for _, be := range backends {
		for _, callers := range benchCallers {
			b.Run(fmt.Sprintf("%s/callers=%d", be.name, callers), func(b *testing.B) {
				st := be.open(b)
				cfg := config.Jobs{Queues: map[string]config.Queue{"default": {Concurrency: 200}}}
				bu := newEngine(b, st, cfg, nil)
				var done atomic.Int64
				all := make(chan struct{})
				target := int64(b.N)
				bu.e.Register("bench.noop", func(ctx context.Context, j *jobs.Job) error {
					if done.Add(1) == target {
						close(all)
					}
					return nil
				})
				bu.start(b)
				payload := []byte(`{"n":1}`)
				b.ResetTimer()
				start := time.Now()
				parallel(b, callers, func(ctx context.Context) error {
					_, err := bu.e.Enqueue(ctx, "bench.noop", payload, nil)
					return err
				})
				select {
				case <-all:
				case <-time.After(5 * time.Minute):
					b.Fatalf("only %d of %d jobs ran", done.Load(), b.N)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
			})
		}
	}
}
