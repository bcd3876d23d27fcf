package events_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/marketplace/events"
	"github.com/backlothq/backlot/internal/marketplace/sharetribe"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/postgres"
	"github.com/backlothq/backlot/internal/store/sqlite"
	tu "github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

const (
	childEnvDB  = "BACKLOT_EVENTS_CHILD_DB"
	childEnvURL = "BACKLOT_EVENTS_CHILD_URL"
)

// runChild is the poller process of TestCrashLosesNothing: the test binary
// run again with the child variables set. It polls until killed.
func runChild() bool {
	path, url := os.Getenv(childEnvDB), os.Getenv(childEnvURL)
	if path == "" {
		return false
	}
	ctx := context.Background()
	fail := func(err error) bool {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
		return true
	}
	st, err := sqlite.Open(ctx, path, store.Options{Migrate: true})
	if err != nil {
		return fail(err)
	}
	eng, err := engine.New(config.Jobs{Queues: map[string]config.Queue{"default": {Concurrency: 4}}}, nil, st, engine.Deps{})
	if err != nil {
		return fail(err)
	}
	eng.Register(jobKind, func(context.Context, *jobs.Job) error { return nil })
	if err := eng.Start(ctx); err != nil {
		return fail(err)
	}
	c, err := sharetribe.New(sharetribe.Config{APIURL: url, IntegrationURL: url, ClientID: clientID,
		IntegrationClientID: integID, IntegrationClientSecret: integSecret,
		Limiter: sharetribe.NewLocalLimiter(sharetribe.Limits{QueriesPerSecond: 1000, QueryBurst: 1000, CommandsPerSecond: 1, CommandBurst: 1})})
	if err != nil {
		return fail(err)
	}
	p, err := events.New(events.Config{Marketplace: marketplaceN, Job: jobKind, Poll: 20 * time.Millisecond, StartBeginning: true},
		events.Deps{Source: c, Store: st, Enqueue: eng.EnqueueTx, WakeFunc: eng.WakeKind, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return fail(err)
	}
	if err := p.Start(ctx); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	select {}
}

// TestCrashLosesNothing kills the polling process with SIGKILL again and
// again, often while a page is fetched and not yet committed (the
// simulator answers events/query slowly), while events keep arriving;
// after a last run catches up, every event has exactly one job.
func TestCrashLosesNothing(t *testing.T) {
	t.Parallel()
	sim := marketplace.New(marketplace.Options{ClientID: clientID, IntegrationClientID: integID, IntegrationClientSecret: integSecret})
	sim.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/events/query", LatencyMS: 40})
	var fetching atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/integration_api/events/query" {
			fetching.Add(1)
			defer fetching.Add(-1)
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	dbPath := filepath.Join(t.TempDir(), "backlot.db")

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnvDB+"="+dbPath, childEnvURL+"="+srv.URL)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			sim.AddUser(fmt.Sprintf("u%d@example.com", i), "pw", marketplace.Profile{FirstName: "U"})
		}
	})

	midFetch := 0
	for range 10 {
		cmd := start()
		time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
		if fetching.Load() > 0 {
			midFetch++
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	close(stop)
	wg.Wait()
	if midFetch == 0 {
		t.Log("no kill landed during a fetch this time (timing); the commit path was killed instead")
	}

	last := sim.LastSequenceID()
	cmd := start()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	st, err := sqlite.Open(context.Background(), dbPath, store.Options{Migrate: false})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cp, err := st.EventCheckpoint(context.Background(), marketplaceN)
		if err == nil && cp.SequenceID >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up: checkpoint %+v (%v), last event %d", cp, err, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seqs := eventJobs(t, st)
	count := map[int64]int{}
	for _, s := range seqs {
		count[s]++
	}
	for s := int64(1); s <= last; s++ {
		if count[s] != 1 {
			t.Errorf("event %d has %d jobs, want 1", s, count[s])
		}
	}
	t.Logf("%d events, %d jobs, 10 kills (%d during a fetch)", last, len(seqs), midFetch)
}

// TestTwoInstancesOnePostgres runs two instances' pollers and Integration
// API callers on one PostgreSQL: exactly one polls, and their calls
// together keep to the shared rate limit the simulator enforces.
func TestTwoInstancesOnePostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The simulator enforces 4 queries/s with bursts of 4 (one spare for
	// the network's jitter); the client keeps to 4/s with bursts of 3.
	limits := sharetribe.Limits{QueriesPerSecond: 4, QueryBurst: 3, CommandsPerSecond: 1, CommandBurst: 1}
	sim, url := newSim(t, marketplace.Options{RateLimits: &marketplace.RateLimits{QueriesPerSecond: 4, QueryBurst: 4, CommandsPerSecond: 1, CommandBurst: 1}})
	sim.AddUser("a@example.com", "pw", marketplace.Profile{FirstName: "A"})
	dsn := tu.Postgres(t)

	type inst struct {
		st *postgres.DB
		p  *events.Poller
		c  *sharetribe.Client
	}
	var insts []inst
	for range 2 {
		st, err := postgres.Open(ctx, dsn, store.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c := newClient(t, url, func(c *sharetribe.Config) {
			c.Limiter = sharetribe.NewSharedLimiter(st, "marketplace:"+marketplaceN, limits)
			c.MaxRetries = -1 // a 429 must show, not be retried away
		})
		p, _, _, _ := newPoller(t, st, c, events.Config{StartBeginning: true, Poll: 50 * time.Millisecond}, nil)
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(context.Background()) })
		insts = append(insts, inst{st, p, c})
	}

	// Both instances also query users as fast as their limiter lets them.
	runFor := 4 * time.Second
	qctx, cancel := context.WithTimeout(ctx, runFor)
	defer cancel()
	var wg sync.WaitGroup
	var calls, limited atomic.Int64
	for _, in := range insts {
		for range 3 {
			wg.Go(func() {
				for qctx.Err() == nil {
					_, err := in.c.QueryUsers(qctx, sharetribe.PageParams{})
					if err == nil {
						calls.Add(1)
					} else if qctx.Err() == nil {
						limited.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()

	leaders := 0
	for _, in := range insts {
		if in.p.Leading() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d instances poll, want exactly 1", leaders)
	}
	stats := sim.Stats()
	if stats.Limited != 0 || limited.Load() != 0 {
		t.Errorf("simulator answered 429 %d times (client saw %d errors): the shared limit did not hold", stats.Limited, limited.Load())
	}
	for _, s := range stats.PerSecond {
		if s.Queries > 4+3 {
			t.Errorf("second %s: %d queries, more than rate+burst", s.Second.Format(time.TimeOnly), s.Queries)
		}
	}
	// Sanity: they did work, at about the shared rate, not twice it.
	if total := stats.Queries; total < 8 || float64(total) > 4*runFor.Seconds()+3+4 {
		t.Errorf("%d queries in %v at a shared 4/s", total, runFor)
	}
	t.Logf("%d queries in %v (%d user queries), per second %v", stats.Queries, runFor, calls.Load(), stats.PerSecond)
}
