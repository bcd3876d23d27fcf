package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestEnqueueInvalid(t *testing.T) {
	t.Parallel()
	b := newEngine(t, nil, testCfg(), nil)
	for _, tc := range []struct {
		name, kind, payload string
		opts                *jobs.EnqueueOpts
		want                error
	}{
		{"not json", "k", `{"a":`, nil, ErrInvalidPayload},
		{"trailing garbage", "k", `{} x`, nil, ErrInvalidPayload},
		{"bare word", "k", `hello`, nil, ErrInvalidPayload},
		{"unknown queue", "k", `{}`, &jobs.EnqueueOpts{Queue: "nope"}, ErrUnknownQueue},
		{"empty kind", "", `{}`, nil, nil},
		{"invalid utf-8 payload", "k", "{\"a\":\"\xff\"}", nil, ErrInvalidPayload},
		{"invalid utf-8 dedupe key", "k", `{}`, &jobs.EnqueueOpts{DedupeKey: "a\xffb"}, nil},
		{"NUL in dedupe key", "k", `{}`, &jobs.EnqueueOpts{DedupeKey: "a\x00b"}, nil},
		{"overlong dedupe key", "k", `{}`, &jobs.EnqueueOpts{DedupeKey: strings.Repeat("k", 1001)}, nil},
		{"NUL in kind", "a\x00b", `{}`, nil, nil},
		{"overlong kind", strings.Repeat("k", 201), `{}`, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.e.Enqueue(context.Background(), tc.kind, []byte(tc.payload), tc.opts)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Enqueue = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cfg    config.Jobs
		scheds []config.Schedule
	}{
		{"bad cron", config.Jobs{}, []config.Schedule{{Name: "a", Cron: "61 * * * *", Job: "x"}}},
		{"bad payload", config.Jobs{}, []config.Schedule{{Name: "a", Cron: "@hourly", Job: "x", Payload: "{"}}},
		{"duplicate schedule", config.Jobs{}, []config.Schedule{{Name: "a", Cron: "@hourly", Job: "x"}, {Name: "a", Cron: "@daily", Job: "y"}}},
		{"no job", config.Jobs{}, []config.Schedule{{Name: "a", Cron: "@hourly"}}},
		{"kind in unknown queue", config.Jobs{Kinds: map[string]config.JobKind{"k": {Queue: "q"}}}, nil},
		{"linear backoff", config.Jobs{Retry: config.Retry{Backoff: "linear"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg, tc.scheds, nil, Deps{}); err == nil {
				t.Fatal("New: want an error")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := newEngine(t, nil, config.Jobs{Retry: config.Retry{Base: config.Duration(time.Second), Max: config.Duration(time.Minute)}}, nil)
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 7: time.Minute, 40: time.Minute} {
		for range 50 {
			d := b.e.backoff(attempt)
			lo, hi := time.Duration(float64(want)*(1-BackoffJitter)), time.Duration(float64(want)*(1+BackoffJitter))
			if d < lo || d > hi {
				t.Fatalf("backoff(%d) = %s, want %s ± %.0f%%", attempt, d, want, BackoffJitter*100)
			}
		}
	}
}

// TestGroupCommit: concurrent enqueues share transactions, and each caller
// gets a committed job.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		b.start(t)
		const n = 300
		ids := make([]int64, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := b.e.Enqueue(context.Background(), "gc", []byte(fmt.Sprintf(`{"i":%d}`, i)), nil)
				if err != nil {
					t.Error(err)
				}
				ids[i] = r.ID
			}()
		}
		wg.Wait()
		seen := map[int64]bool{}
		for i, id := range ids {
			if id <= 0 || seen[id] {
				t.Fatalf("caller %d got id %d (duplicate or missing)", i, id)
			}
			seen[id] = true
			j, err := st.GetJob(context.Background(), id)
			if err != nil || string(j.Payload) != fmt.Sprintf(`{"i":%d}`, i) {
				t.Fatalf("job %d of caller %d: %v %s", id, i, err, j.Payload)
			}
		}
		txs := histogramCount(t, b.reg, "backlot_jobs_enqueue_batch_size")
		if txs == 0 || txs >= n {
			t.Fatalf("%d transactions for %d concurrent jobs, want fewer", txs, n)
		}
		t.Logf("%d jobs in %d transactions", n, txs)
		if v := counterValue(t, b.reg, "backlot_jobs_total", map[string]string{"kind": "gc", "state": "enqueued"}); v != n {
			t.Fatalf("backlot_jobs_total{enqueued} = %v, want %d", v, n)
		}
	})
}

// TestGroupCommitFailure: a batch whose transaction fails returns the error
// to every caller in it, and none of its jobs exist. The failure is real: a
// trigger rejects one job of the batch.
func TestGroupCommitFailure(t *testing.T) {
	t.Parallel()
	st := backends[0].open(t).(*sqlite.DB)
	raw, err := sql.Open("sqlite", st.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	if _, err := raw.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON backlot_jobs
		WHEN NEW.kind = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned batch'); END`); err != nil {
		t.Fatal(err)
	}
	b := newEngine(t, st, testCfg(), nil)
	b.start(t)

	// Hold the write lock so the committer stalls on its first batch while
	// the next one gathers all the callers below.
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan error, 1)
	go func() { _, err := b.e.Enqueue(ctx, "ok", nil, nil); firstDone <- err }()
	time.Sleep(200 * time.Millisecond) // the committer takes it and waits for the lock
	if len(b.e.enq) != 0 {
		t.Fatal("the committer did not take the first enqueue")
	}
	const n = 20
	errs := make([]error, n)
	res := make([]jobs.EnqueueResult, n)
	var wg sync.WaitGroup
	for i := range n {
		kind := "ok"
		if i == n/2 {
			kind = "poison"
		}
		wg.Add(1)
		go func() { defer wg.Done(); res[i], errs[i] = b.e.Enqueue(ctx, kind, nil, nil) }()
	}
	for len(b.e.enq) != n {
		time.Sleep(time.Millisecond)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatalf("first batch: %v", err)
	}
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "poisoned batch") {
			t.Fatalf("caller %d: err = %v, want the batch's error", i, err)
		}
	}
	js, err := st.ListJobs(ctx, store.JobFilter{})
	if err != nil || len(js) != 1 {
		t.Fatalf("jobs after the failed batch: %d, %v; want only the first", len(js), err)
	}
}

func TestDedupe(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		b.start(t)
		const n = 50
		res := make([]jobs.EnqueueResult, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				res[i], err = b.e.Enqueue(context.Background(), "d", nil, &jobs.EnqueueOpts{DedupeKey: "evt_1"})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		firsts := 0
		for _, r := range res {
			if r.ID != res[0].ID {
				t.Fatalf("ids differ: %+v", res)
			}
			if !r.Duplicate {
				firsts++
			}
		}
		if firsts != 1 {
			t.Fatalf("%d callers created the job, want 1", firsts)
		}
		r := enqueue(t, b.e, "d", `{}`, &jobs.EnqueueOpts{DedupeKey: "evt_1"})
		if !r.Duplicate || r.ID != res[0].ID {
			t.Fatalf("later enqueue = %+v, want duplicate of %d", r, res[0].ID)
		}
	})
}

func TestEnqueueTx(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		ctx := context.Background()
		rollback := errors.New("rollback")
		var kept, dropped jobs.EnqueueResult
		enq := func(tx store.Tx, kind string, out *jobs.EnqueueResult) error {
			r, err := b.e.EnqueueTx(ctx, tx, kind, []byte(`{"tx":true}`), nil)
			*out = r
			return err
		}
		if err := st.RunTx(ctx, func(tx store.Tx) error { return enq(tx, "kept", &kept) }); err != nil {
			t.Fatal(err)
		}
		if err := st.RunTx(ctx, func(tx store.Tx) error {
			if err := enq(tx, "dropped", &dropped); err != nil {
				return err
			}
			return rollback
		}); !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		if j, err := st.GetJob(ctx, kept.ID); err != nil || j.Kind != "kept" {
			t.Fatalf("committed job: %v", err)
		}
		if dropped.ID == 0 {
			t.Fatal("no id inside the rolled-back transaction")
		}
		if _, err := st.GetJob(ctx, dropped.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rolled-back job: %v, want ErrNotFound", err)
		}
		if _, err := b.e.EnqueueTx(ctx, foreignTx{}, "k", []byte(`{}`), nil); err == nil {
			t.Fatal("EnqueueTx with a transaction the store did not begin: want an error")
		}
		// Once the store has served the engine (statements cached on
		// SQLite), EnqueueTx still works inside a caller's transaction.
		enqueue(t, b.e, "warm", `{}`, nil)
		var again jobs.EnqueueResult
		if err := st.RunTx(ctx, func(tx store.Tx) error { return enq(tx, "again", &again) }); err != nil {
			t.Fatal(err)
		}
		if j, err := st.GetJob(ctx, again.ID); err != nil || j.Kind != "again" {
			t.Fatalf("EnqueueTx after warm-up: %v", err)
		}
	})
}

// TestLifecycle covers a worker's view: retries with backoff, failure after
// max_attempts, manual retry, RetryAfter, panics, timeouts, logs, progress.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		cfg := testCfg()
		cfg.Kinds = map[string]config.JobKind{"slow": {Timeout: config.Duration(100 * time.Millisecond)}}
		b := newEngine(t, st, cfg, nil)
		var flakyRuns, deadRuns atomic.Int32
		b.e.Register("flaky", func(ctx context.Context, j *jobs.Job) error {
			if flakyRuns.Add(1) < 3 {
				return fmt.Errorf("flake %d", j.Attempt)
			}
			jobs.Logf(ctx, "done on attempt %d", j.Attempt)
			jobs.SetProgress(ctx, 50)
			jobs.SetProgress(ctx, 250) // clamped
			return nil
		})
		b.e.Register("dead", func(ctx context.Context, j *jobs.Job) error {
			if deadRuns.Add(1) > 3 {
				return nil // the manual retry succeeds
			}
			return errors.New("always")
		})
		b.e.Register("panics", func(ctx context.Context, j *jobs.Job) error { panic("boom") })
		b.e.Register("slow", func(ctx context.Context, j *jobs.Job) error {
			<-ctx.Done()
			return ctx.Err()
		})
		var afterAt atomic.Int64
		b.e.Register("later", func(ctx context.Context, j *jobs.Job) error {
			if j.Attempt == 1 {
				return jobs.RetryAfter(700*time.Millisecond, errors.New("429"))
			}
			afterAt.Store(time.Now().UnixNano())
			return nil
		})
		b.start(t)

		flaky := enqueue(t, b.e, "flaky", `{}`, nil)
		dead := enqueue(t, b.e, "dead", `{}`, nil)
		pan := enqueue(t, b.e, "panics", `{}`, &jobs.EnqueueOpts{MaxAttempts: 1})
		slow := enqueue(t, b.e, "slow", `{}`, &jobs.EnqueueOpts{MaxAttempts: 1})
		t0 := time.Now()
		later := enqueue(t, b.e, "later", `{}`, nil)

		j := waitState(t, st, flaky.ID, jobs.StateCompleted, 10*time.Second)
		if j.Attempt != 3 || j.LastError != "flake 2" || j.Progress != 100 {
			t.Fatalf("flaky = attempt %d, last_error %q, progress %d", j.Attempt, j.LastError, j.Progress)
		}
		logs, err := b.e.Logs(context.Background(), flaky.ID)
		if err != nil || len(logs) != 1 || logs[0].Line != "done on attempt 3" {
			t.Fatalf("logs = %+v, %v", logs, err)
		}

		j = waitState(t, st, dead.ID, jobs.StateFailed, 10*time.Second)
		if j.Attempt != 3 || j.LastError != "always" || deadRuns.Load() != 3 {
			t.Fatalf("dead = %+v after %d runs", j, deadRuns.Load())
		}
		if _, err := b.e.Retry(context.Background(), dead.ID); err != nil {
			t.Fatal(err)
		}
		if j = waitState(t, st, dead.ID, jobs.StateCompleted, 10*time.Second); j.Attempt != 4 {
			t.Fatalf("after manual retry: attempt %d", j.Attempt)
		}

		j = waitState(t, st, pan.ID, jobs.StateFailed, 10*time.Second)
		if !strings.HasPrefix(j.LastError, "panic: boom") || !strings.Contains(j.LastError, "engine_test.go") {
			t.Fatalf("panic last_error = %q", j.LastError)
		}
		if logs, _ := b.e.Logs(context.Background(), pan.ID); len(logs) != 1 || !strings.HasPrefix(logs[0].Line, "panic: boom") {
			t.Fatalf("panic logs = %+v", logs)
		}

		j = waitState(t, st, slow.ID, jobs.StateFailed, 10*time.Second)
		if !strings.Contains(j.LastError, "timed out after 100ms") {
			t.Fatalf("timeout last_error = %q", j.LastError)
		}

		j = waitState(t, st, later.ID, jobs.StateCompleted, 10*time.Second)
		if wait := time.Unix(0, afterAt.Load()).Sub(t0); wait < 700*time.Millisecond {
			t.Fatalf("RetryAfter(700ms) honoured after %s", wait)
		}
		if v := counterValue(t, b.reg, "backlot_jobs_total", map[string]string{"kind": "dead", "state": "failed"}); v != 1 {
			t.Fatalf("backlot_jobs_total{dead,failed} = %v", v)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		started := make(chan struct{})
		cause := make(chan error, 1)
		b.e.Register("block", func(ctx context.Context, j *jobs.Job) error {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return ctx.Err()
		})
		ran := make(chan int64, 1)
		b.e.Register("never", func(ctx context.Context, j *jobs.Job) error { ran <- j.ID; return nil })
		ctx := context.Background()
		// Cancelled before it could run.
		sched := enqueue(t, b.e, "never", `{}`, &jobs.EnqueueOpts{RunAt: time.Now().Add(300 * time.Millisecond)})
		if j, err := b.e.Cancel(ctx, sched.ID); err != nil || j.State != jobs.StateCancelled {
			t.Fatalf("Cancel(scheduled) = %+v, %v", j, err)
		}
		b.start(t)
		r := enqueue(t, b.e, "block", `{}`, nil)
		<-started
		if j, err := b.e.Cancel(ctx, r.ID); err != nil || j.State != jobs.StateRunning {
			t.Fatalf("Cancel(running) = %+v, %v", j, err)
		}
		if c := <-cause; !errors.Is(c, jobs.ErrCancelled) {
			t.Fatalf("context cause = %v", c)
		}
		waitState(t, st, r.ID, jobs.StateCancelled, 5*time.Second)
		if _, err := b.e.Cancel(ctx, r.ID); err != nil {
			t.Fatalf("cancelling twice: %v", err)
		}
		select {
		case id := <-ran:
			t.Fatalf("cancelled job %d ran", id)
		case <-time.After(600 * time.Millisecond):
		}
		// Retry brings it back.
		if _, err := b.e.Retry(ctx, sched.ID); err != nil {
			t.Fatal(err)
		}
		if id := <-ran; id != sched.ID {
			t.Fatalf("ran %d", id)
		}
	})
}

// TestCancelOtherEngine: a cancel made elsewhere (another instance, the
// CLI) reaches the running job at its engine's next heartbeat.
func TestCancelOtherEngine(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		cfg := testCfg()
		cfg.Lease = config.Duration(600 * time.Millisecond)
		b := newEngine(t, st, cfg, nil)
		started := make(chan struct{})
		b.e.Register("block", func(ctx context.Context, j *jobs.Job) error {
			close(started)
			<-ctx.Done()
			return context.Cause(ctx)
		})
		b.start(t)
		r := enqueue(t, b.e, "block", `{}`, nil)
		<-started
		if _, err := st.CancelJob(context.Background(), r.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		j := waitState(t, st, r.ID, jobs.StateCancelled, 3*time.Second)
		if j.LastError != jobs.ErrCancelled.Error() {
			t.Fatalf("last_error = %q", j.LastError)
		}
	})
}

func TestScheduledAndOrder(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		cfg := testCfg()
		cfg.Queues = map[string]config.Queue{"default": {Concurrency: 1}}
		b := newEngine(t, st, cfg, nil)
		var mu sync.Mutex
		var order []int64
		ranAt := map[int64]time.Time{}
		b.e.Register("k", func(ctx context.Context, j *jobs.Job) error {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, j.ID)
			ranAt[j.ID] = time.Now()
			return nil
		})
		var want []int64
		for range 5 {
			want = append(want, enqueue(t, b.e, "k", `{}`, nil).ID)
		}
		runAt := time.Now().Add(time.Second)
		sched := enqueue(t, b.e, "k", `{}`, &jobs.EnqueueOpts{RunAt: runAt})
		unknown := enqueue(t, b.e, "nobody.handles.this", `{}`, nil)
		b.start(t)
		waitState(t, st, want[4], jobs.StateCompleted, 5*time.Second)
		mu.Lock()
		got := fmt.Sprint(order)
		mu.Unlock()
		if got != fmt.Sprint(want) {
			t.Fatalf("ran %s, want %v", got, want)
		}
		if j, _ := st.GetJob(context.Background(), sched.ID); j.State != jobs.StateScheduled {
			t.Fatalf("scheduled job is %s before its time", j.State)
		}
		waitState(t, st, sched.ID, jobs.StateCompleted, 5*time.Second)
		mu.Lock()
		at := ranAt[sched.ID]
		mu.Unlock()
		if at.Before(runAt) {
			t.Fatalf("scheduled job ran %s early", runAt.Sub(at))
		}
		// No worker for its kind: never claimed here.
		if j, _ := st.GetJob(context.Background(), unknown.ID); j.State != jobs.StateAvailable || j.Attempt != 0 {
			t.Fatalf("unknown kind = %s attempt %d, want available and untouched", j.State, j.Attempt)
		}
		b.e.refreshDepth(context.Background())
		for state, want := range map[string]float64{"available": 1, "running": 0, "scheduled": 0} {
			if v := counterValue(t, b.reg, "backlot_jobs_queue_depth", map[string]string{"queue": "default", "state": state}); v != want {
				t.Fatalf("backlot_jobs_queue_depth{default,%s} = %v, want %v", state, v, want)
			}
		}
		if v := counterValue(t, b.reg, "backlot_jobs_total", map[string]string{"kind": "k", "state": "completed"}); v != 6 {
			t.Fatalf("backlot_jobs_total{k,completed} = %v, want 6", v)
		}
	})
}

func TestRetention(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		b.e.Register("ok", func(ctx context.Context, j *jobs.Job) error { jobs.Logf(ctx, "hi"); return nil })
		b.e.Register("bad", func(ctx context.Context, j *jobs.Job) error { return errors.New("no") })
		b.start(t)
		ok := enqueue(t, b.e, "ok", `{}`, &jobs.EnqueueOpts{DedupeKey: "ret-1"})
		bad := enqueue(t, b.e, "bad", `{}`, &jobs.EnqueueOpts{MaxAttempts: 1})
		waitState(t, st, ok.ID, jobs.StateCompleted, 5*time.Second)
		waitState(t, st, bad.ID, jobs.StateFailed, 5*time.Second)
		ctx := context.Background()
		exists := func(id int64) bool {
			_, err := st.GetJob(ctx, id)
			return err == nil
		}
		b.e.cleanup(ctx)
		if !exists(ok.ID) || !exists(bad.ID) {
			t.Fatal("janitor deleted fresh jobs")
		}
		b.clk.Advance(time.Hour + time.Second)
		b.e.cleanup(ctx)
		if exists(ok.ID) || !exists(bad.ID) {
			t.Fatalf("after 1h: completed exists=%v (want false), failed exists=%v (want true)", exists(ok.ID), exists(bad.ID))
		}
		if logs, _ := b.e.Logs(ctx, ok.ID); len(logs) != 0 {
			t.Fatal("logs of a deleted job remain")
		}
		// The dedupe key outlives the job.
		if r := enqueue(t, b.e, "ok", `{}`, &jobs.EnqueueOpts{DedupeKey: "ret-1"}); !r.Duplicate || r.ID != ok.ID {
			t.Fatalf("dedupe after retention = %+v", r)
		}
		b.clk.Advance(23 * time.Hour)
		b.e.cleanup(ctx)
		if exists(bad.ID) {
			t.Fatal("failed job kept past 24h")
		}
		b.clk.Advance(7 * 24 * time.Hour)
		b.e.cleanup(ctx)
		if r := enqueue(t, b.e, "ok", `{}`, &jobs.EnqueueOpts{DedupeKey: "ret-1"}); r.Duplicate {
			t.Fatal("dedupe key kept past its retention")
		}
		if n, err := b.e.Purge(ctx, jobs.StateRunning, 0); err == nil {
			t.Fatalf("Purge(running) = %d, want an error", n)
		}
	})
}

// TestLeaseExpiry: a job claimed by a worker that vanished (claimed
// straight in the store, never renewed) runs once its lease lapses.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		ran := make(chan int, 1)
		b.e.Register("k", func(ctx context.Context, j *jobs.Job) error { ran <- j.Attempt; return nil })
		r := enqueue(t, b.e, "k", `{}`, nil)
		got, err := st.ClaimJobs(context.Background(), store.ClaimParams{Queue: "default", Kinds: []string{"k"}, Limit: 1, Now: time.Now(), Lease: time.Second})
		if err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", got, err)
		}
		t0 := time.Now()
		b.start(t)
		if a := <-ran; a != 2 {
			t.Fatalf("re-run as attempt %d, want 2", a)
		}
		if d := time.Since(t0); d < 900*time.Millisecond {
			t.Fatalf("re-run after %s, before the lease lapsed", d)
		}
		waitState(t, st, r.ID, jobs.StateCompleted, 5*time.Second)
	})
}

// TestStopHandsBack: jobs still running when Stop's deadline passes are
// made available again at once, the attempt not counted.
func TestStopHandsBack(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		started := make(chan struct{})
		b.e.Register("k", func(ctx context.Context, j *jobs.Job) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		if err := b.e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := enqueue(t, b.e, "k", `{}`, nil)
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := b.e.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		j, err := st.GetJob(context.Background(), r.ID)
		if err != nil || j.State != jobs.StateAvailable || j.Attempt != 0 || j.LastError != "" {
			t.Fatalf("after Stop: %+v, %v", j, err)
		}
		// Enqueue still works after Stop, one transaction per call.
		enqueue(t, b.e, "k", `{}`, nil)
	})
}

// TestTwoEnginesSkipLocked: two engines on one PostgreSQL database run
// each of many jobs exactly once.
func TestTwoEnginesSkipLocked(t *testing.T) {
	t.Parallel()
	// Two pools on one database, as two instances would have.
	url := testutil.Postgres(t)
	st1, st2 := openPG(t, url), openPG(t, url)
	var runs sync.Map
	var perEngine [2]atomic.Int32
	const n = 400
	var done atomic.Int32
	all := make(chan struct{})
	for i, st := range []store.Store{st1, st2} {
		b := newEngine(t, st, testCfg(), nil)
		b.e.Register("k", func(ctx context.Context, j *jobs.Job) error {
			c, _ := runs.LoadOrStore(j.ID, new(atomic.Int32))
			c.(*atomic.Int32).Add(1)
			perEngine[i].Add(1)
			if done.Add(1) == n {
				close(all)
			}
			return nil
		})
		b.start(t)
	}
	e := newEngine(t, st1, testCfg(), nil).e
	for i := range n {
		enqueue(t, e, "k", fmt.Sprintf(`{"i":%d}`, i), nil)
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d of %d jobs ran", done.Load(), n)
	}
	time.Sleep(300 * time.Millisecond) // a double run would show up here
	count := 0
	runs.Range(func(k, v any) bool {
		count++
		if c := v.(*atomic.Int32).Load(); c != 1 {
			t.Errorf("job %v ran %d times", k, c)
		}
		return true
	})
	if count != n || int(done.Load()) != n {
		t.Fatalf("%d distinct jobs, %d runs; want %d", count, done.Load(), n)
	}
	t.Logf("engine 1 ran %d, engine 2 ran %d", perEngine[0].Load(), perEngine[1].Load())
}

// TestSchedules: a cron schedule fires once per tick; with two engines on
// one PostgreSQL database only one leads.
func TestSchedules(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			testSchedules(t, be.name)
		})
	}
}

func testSchedules(t *testing.T, backend string) {
	{
		scheds := []config.Schedule{{Name: "tick", Cron: "@every 1s", Job: "tick", Payload: `{"from":"cron"}`}}
		var stores []store.Store
		if backend == store.BackendPostgres {
			url := testutil.Postgres(t)
			stores = []store.Store{openPG(t, url), openPG(t, url)}
		} else {
			stores = []store.Store{testutil.SQLite(t)}
		}
		st := stores[0]
		var engines []*Engine
		var ticks atomic.Int32
		for _, s := range stores {
			b := newEngine(t, s, testCfg(), scheds)
			b.e.Register("tick", func(ctx context.Context, j *jobs.Job) error {
				if string(j.Payload) != `{"from":"cron"}` || !strings.HasPrefix(j.DedupeKey, "schedule:tick:") {
					t.Errorf("tick job = %+v", j)
				}
				ticks.Add(1)
				return nil
			})
			b.start(t)
			engines = append(engines, b.e)
		}
		time.Sleep(3500 * time.Millisecond)
		leaders := 0
		for _, e := range engines {
			if e.Leading() {
				leaders++
			}
		}
		if leaders != 1 {
			t.Fatalf("%d leaders, want 1", leaders)
		}
		js, err := st.ListJobs(context.Background(), store.JobFilter{Kind: "tick"})
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, j := range js {
			if keys[j.DedupeKey] {
				t.Fatalf("tick %s fired twice", j.DedupeKey)
			}
			keys[j.DedupeKey] = true
		}
		// 3.5 s of "@every 1s": 3 ticks (2 to 4 allowing for slow starts); two
		// firing leaders would make about 6.
		if len(js) < 2 || len(js) > 4 {
			t.Fatalf("%d tick jobs in 3.5s, want about 3", len(js))
		}
	}
}

// TestDedupeAcrossInstances: two instances enqueueing the same keys at the
// same time on one PostgreSQL database agree on one job per key.
func TestDedupeAcrossInstances(t *testing.T) {
	t.Parallel()
	url := testutil.Postgres(t)
	var engines [2]*Engine
	for i, st := range []store.Store{openPG(t, url), openPG(t, url)} {
		b := newEngine(t, st, testCfg(), nil)
		b.start(t)
		engines[i] = b.e
	}
	const keys = 100
	var got [2][keys]jobs.EnqueueResult
	var wg sync.WaitGroup
	for i := range 2 {
		for k := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := engines[i].Enqueue(context.Background(), "d", nil, &jobs.EnqueueOpts{DedupeKey: fmt.Sprintf("key-%d", k)})
				if err != nil {
					t.Error(err)
				}
				got[i][k] = r
			}()
		}
	}
	wg.Wait()
	for k := range keys {
		a, b := got[0][k], got[1][k]
		if a.ID != b.ID || a.Duplicate == b.Duplicate {
			t.Fatalf("key-%d: %+v and %+v, want one job, one duplicate", k, a, b)
		}
	}
}

// TestLeaderReacquire: when the connection holding the advisory lock
// drops, the engine stops leading, then leads again on a new connection.
func TestLeaderReacquire(t *testing.T) {
	t.Parallel()
	url := testutil.Postgres(t)
	st := openPG(t, url)
	b := newEngine(t, st, testCfg(), []config.Schedule{{Name: "s", Cron: "@hourly", Job: "x"}})
	b.start(t)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("leading", b.e.Leading)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d backends, %v", killed, err)
	}
	waitFor("leadership lost", func() bool { return !b.e.Leading() })
	waitFor("leading again", b.e.Leading)
}

// TestDirtyText: log lines and errors with invalid UTF-8 or NUL (from a
// vendor's answer, say) are stored cleaned, and do not sink the batch.
func TestDirtyText(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		b.e.Register("dirty", func(ctx context.Context, j *jobs.Job) error {
			jobs.Logf(ctx, "vendor said %s", "bad\xff\x00bytes")
			return errors.New("oops\xfe\x00" + strings.Repeat("x", 5000))
		})
		b.start(t)
		r := enqueue(t, b.e, "dirty", `{}`, &jobs.EnqueueOpts{MaxAttempts: 1})
		j := waitState(t, st, r.ID, jobs.StateFailed, 5*time.Second)
		if !strings.HasPrefix(j.LastError, "oops\uFFFD\uFFFD") || len(j.LastError) > maxErrorLen+10 {
			t.Fatalf("last_error = %.20q… (%d bytes)", j.LastError, len(j.LastError))
		}
		logs, err := b.e.Logs(context.Background(), r.ID)
		if err != nil || len(logs) != 1 || logs[0].Line != "vendor said bad\uFFFD\uFFFDbytes" {
			t.Fatalf("logs = %+v, %v", logs, err)
		}
	})
}

// foreignTx is a store.Tx no store began.
type foreignTx struct{}

func (foreignTx) Exec(context.Context, string, ...any) (int64, error) { return 0, nil }
func (foreignTx) QueryRow(context.Context, string, ...any) store.Row  { return nil }

// TestConcurrencyUnderLoad: many concurrent enqueues of a kind with a
// worker, more than the queue's slots, some with dedupe keys repeated
// within and across batches. On SQLite the writer claims jobs at insert,
// holds some back a batch and claims waiting ones in its own transaction;
// whatever path a job takes, the queue never runs more jobs at once than
// its concurrency, every job runs exactly once and ends completed, and a
// duplicate never runs.
func TestConcurrencyUnderLoad(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		cfg := testCfg()
		cfg.Queues = map[string]config.Queue{"default": {Concurrency: 3}}
		b := newEngine(t, st, cfg, nil)
		var running, peak atomic.Int64
		var mu sync.Mutex
		runs := map[int64]int{}
		b.e.Register("load", func(ctx context.Context, j *jobs.Job) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			mu.Lock()
			runs[j.ID]++
			mu.Unlock()
			time.Sleep(200 * time.Microsecond) // some work, so slots stay taken a moment
			return nil
		})
		b.start(t)
		const n = 400
		res := make([]jobs.EnqueueResult, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var opts *jobs.EnqueueOpts
				if i%10 == 0 {
					opts = &jobs.EnqueueOpts{DedupeKey: fmt.Sprintf("k%d", i%200)} // 20 keys, each twice
				}
				r, err := b.e.Enqueue(context.Background(), "load", []byte(fmt.Sprintf(`{"i":%d}`, i)), opts)
				if err != nil {
					t.Error(err)
				}
				res[i] = r
			}()
		}
		wg.Wait()
		fresh := map[int64]bool{}
		dups := 0
		for _, r := range res {
			if r.Duplicate {
				dups++
				continue
			}
			fresh[r.ID] = true
		}
		if dups != 20 || len(fresh) != n-20 {
			t.Fatalf("%d duplicates and %d fresh jobs, want 20 and %d", dups, len(fresh), n-20)
		}
		for id := range fresh {
			waitState(t, st, id, jobs.StateCompleted, 10*time.Second)
		}
		mu.Lock()
		defer mu.Unlock()
		for id, c := range runs {
			if !fresh[id] || c != 1 {
				t.Fatalf("job %d ran %d times (fresh: %v)", id, c, fresh[id])
			}
		}
		if len(runs) != len(fresh) {
			t.Fatalf("%d jobs ran, want %d", len(runs), len(fresh))
		}
		if p := peak.Load(); p > 3 {
			t.Fatalf("%d jobs ran at once, the queue's concurrency is 3", p)
		}
	})
}

// TestEnqueueValid: the webhook ingest's entry (payload already checked)
// stores the job as Enqueue does, dedupe included, and still refuses what
// prepare checks besides the payload.
func TestEnqueueValid(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		b := newEngine(t, st, testCfg(), nil)
		b.start(t)
		ctx := context.Background()
		opts := &jobs.EnqueueOpts{DedupeKey: "webhook:/x:1"}
		r, err := b.e.EnqueueValid(ctx, "v", []byte(`{"a":1}`), opts)
		if err != nil || r.Duplicate {
			t.Fatalf("EnqueueValid: %+v %v", r, err)
		}
		j, err := st.GetJob(ctx, r.ID)
		if err != nil || string(j.Payload) != `{"a":1}` || j.Kind != "v" {
			t.Fatalf("stored %+v %v", j, err)
		}
		again, err := b.e.EnqueueValid(ctx, "v", []byte(`{"a":2}`), opts)
		if err != nil || !again.Duplicate || again.ID != r.ID {
			t.Fatalf("repeat: %+v %v, want a duplicate of %d", again, err, r.ID)
		}
		if _, err := b.e.EnqueueValid(ctx, "", []byte(`{}`), nil); err == nil {
			t.Fatal("empty kind accepted")
		}
		if _, err := b.e.EnqueueValid(ctx, "v", nil, &jobs.EnqueueOpts{Queue: "nope"}); !errors.Is(err, ErrUnknownQueue) {
			t.Fatalf("unknown queue: %v", err)
		}
	})
}

// TestDueJobNotStarvedUnderLoad: a scheduled job coming due while a stream
// of enqueues keeps every slot of its queue busy still runs soon: fresh
// jobs claimed at insert do not overtake it for as long as the load lasts.
// The stream may outpace the two slots, so jobs enqueued before the late
// one came due can rightly go first, however long a loaded machine takes
// to work them off; the clock starts when the last of them has started.
func TestDueJobNotStarvedUnderLoad(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, st store.Store) {
		cfg := testCfg()
		cfg.Queues = map[string]config.Queue{"default": {Concurrency: 2}}
		b := newEngine(t, st, cfg, nil)
		ran := make(chan struct{})
		var due atomic.Int64         // unix µs, once the late job is enqueued
		var lastEarlier atomic.Int64 // unix µs: when a job due before it last started
		b.e.Register("late", func(ctx context.Context, j *jobs.Job) error { close(ran); return nil })
		b.e.Register("load", func(ctx context.Context, j *jobs.Job) error {
			if d := due.Load(); d != 0 && j.RunAt.UnixMicro() <= d {
				lastEarlier.Store(time.Now().UnixMicro())
			}
			time.Sleep(time.Millisecond) // keeps the two slots busy under the stream
			return nil
		})
		b.start(t)
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if _, err := b.e.Enqueue(ctx, "load", []byte(`{}`), nil); err != nil && ctx.Err() == nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		defer func() { stop(); wg.Wait() }()
		time.Sleep(100 * time.Millisecond) // the stream is on
		at := b.clk.Now().Add(200 * time.Millisecond)
		atReal := time.Now().Add(200 * time.Millisecond)
		due.Store(at.UnixMicro())
		enqueue(t, b.e, "late", `{}`, &jobs.EnqueueOpts{RunAt: at})
		giveUp := time.After(60 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ran:
				return
			case <-giveUp:
				t.Fatal("the jobs due before the late one were still running after 60 s")
			case <-tick.C:
			}
			since := atReal
			if l := time.UnixMicro(lastEarlier.Load()); l.After(since) {
				since = l
			}
			if time.Since(since) > 3*time.Second {
				t.Fatalf("a due job waited more than 3 s behind a stream of fresh jobs (the last job due before it started %v ago)",
					time.Since(time.UnixMicro(lastEarlier.Load())).Round(time.Millisecond))
			}
		}
	})
}
