package engine

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/postgres"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

func TestMain(m *testing.M) { testutil.Main(m) }

type backend struct {
	name string
	open func(t testing.TB) store.Store
}

var backends = []backend{
	{store.BackendSQLite, func(t testing.TB) store.Store { return testutil.SQLite(t) }},
	{store.BackendPostgres, func(t testing.TB) store.Store { return testutil.PostgresStore(t) }},
}

// eachBackend runs fn as a parallel subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

// testCfg is a small config: fast lease, fast backoff.
func testCfg() config.Jobs {
	return config.Jobs{
		Queues: map[string]config.Queue{"default": {Concurrency: 8}, "other": {Concurrency: 2}},
		Retry:  config.Retry{MaxAttempts: 3, Base: config.Duration(20 * time.Millisecond), Max: config.Duration(100 * time.Millisecond)},
		Lease:  config.Duration(3 * time.Second),
	}
}

type bundle struct {
	e   *Engine
	st  store.Store
	reg *prometheus.Registry
	clk *testutil.OffsetClock
}

// newEngine builds an engine over st; the caller registers workers and
// starts it with start.
func newEngine(t testing.TB, st store.Store, cfg config.Jobs, scheds []config.Schedule) *bundle {
	t.Helper()
	b := &bundle{st: st, reg: prometheus.NewRegistry(), clk: &testutil.OffsetClock{}}
	e, err := New(cfg, scheds, st, Deps{Metrics: b.reg, Now: b.clk.Now, PollInterval: 100 * time.Millisecond, LeaderRetry: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.e = e
	return b
}

func (b *bundle) start(t testing.TB) {
	t.Helper()
	if err := b.e.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.e.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

// waitState polls until job id is in state want.
func waitState(t testing.TB, st store.Store, id int64, want jobs.State, within time.Duration) *jobs.Job {
	t.Helper()
	deadline := time.Now().Add(within)
	var j *jobs.Job
	var err error
	for time.Now().Before(deadline) {
		j, err = st.GetJob(context.Background(), id)
		if err == nil && j.State == want {
			return j
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("job %d: %v (want %s)", id, err, want)
	}
	t.Fatalf("job %d is %s after %s, want %s (last_error %q, attempt %d)", id, j.State, within, want, j.LastError, j.Attempt)
	return nil
}

func enqueue(t testing.TB, e *Engine, kind, payload string, opts *jobs.EnqueueOpts) jobs.EnqueueResult {
	t.Helper()
	r, err := e.Enqueue(context.Background(), kind, []byte(payload), opts)
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", kind, err)
	}
	return r
}

// openPG opens a migrated store on the database at url, closed at cleanup.
func openPG(t testing.TB, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, store.Options{Migrate: true})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
