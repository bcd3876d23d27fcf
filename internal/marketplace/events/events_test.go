package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/marketplace/events"
	"github.com/backlothq/backlot/internal/marketplace/sharetribe"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/internal/store"
	tu "github.com/backlothq/backlot/internal/testutil"
)

func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	tu.Main(m)
}

const (
	clientID     = "mkt-client"
	integID      = "integ-client"
	integSecret  = "integ-secret"
	jobKind      = "marketplace.event"
	marketplaceN = "main"
)

func newSim(t *testing.T, opts marketplace.Options) (*marketplace.Marketplace, string) {
	t.Helper()
	opts.ClientID, opts.IntegrationClientID, opts.IntegrationClientSecret = clientID, integID, integSecret
	sim := marketplace.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func newClient(t *testing.T, url string, mod func(*sharetribe.Config)) *sharetribe.Client {
	t.Helper()
	cfg := sharetribe.Config{APIURL: url, IntegrationURL: url, ClientID: clientID,
		IntegrationClientID: integID, IntegrationClientSecret: integSecret,
		Limiter: sharetribe.NewLocalLimiter(sharetribe.Limits{QueriesPerSecond: 1000, QueryBurst: 1000, CommandsPerSecond: 1000, CommandBurst: 1000})}
	if mod != nil {
		mod(&cfg)
	}
	c, err := sharetribe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func newPoller(t *testing.T, st store.Store, src events.Source, cfg events.Config, now func() time.Time) (*events.Poller, *engine.Engine, *prometheus.Registry, *logBuf) {
	t.Helper()
	eng, err := engine.New(config.Jobs{Queues: map[string]config.Queue{"default": {Concurrency: 4}}}, nil, st, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	lb := &logBuf{}
	if cfg.Marketplace == "" {
		cfg.Marketplace = marketplaceN
	}
	if cfg.Job == "" {
		cfg.Job = jobKind
	}
	p, err := events.New(cfg, events.Deps{Source: src, Store: st, Enqueue: eng.EnqueueTx, WakeFunc: eng.WakeKind,
		Logger: slog.New(slog.NewJSONHandler(lb, nil)), Metrics: reg, Now: now, LeaderRetry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p, eng, reg, lb
}

// eventJobs returns the sequence ids of the event jobs, checking each
// job's dedupe key names its own event.
func eventJobs(t *testing.T, st store.Store) []int64 {
	t.Helper()
	list, err := st.ListJobs(context.Background(), store.JobFilter{Kind: jobKind, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, j := range list {
		var ev sharetribe.Event
		if err := json.Unmarshal(j.Payload, &ev); err != nil {
			t.Fatalf("job %d payload: %v", j.ID, err)
		}
		if want := events.DedupeKey(marketplaceN, ev.Attributes.SequenceID); j.DedupeKey != want {
			t.Errorf("job %d dedupe key %q, want %q", j.ID, j.DedupeKey, want)
		}
		seqs = append(seqs, ev.Attributes.SequenceID)
	}
	return seqs
}

func backends() map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"sqlite":   func(t *testing.T) store.Store { return tu.SQLite(t) },
		"postgres": func(t *testing.T) store.Store { return tu.PostgresStore(t) },
	}
}

func TestPollStartsAtNowAndFollows(t *testing.T) {
	t.Parallel()
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sim, url := newSim(t, marketplace.Options{})
			sim.AddUser("before@example.com", "pw", marketplace.Profile{FirstName: "Old"})
			st := open(t)
			p, _, _, _ := newPoller(t, st, newClient(t, url, nil), events.Config{Types: []string{"user/created", "listing/created"}, Poll: time.Second}, nil)

			// First poll: nothing, the older event is not wanted.
			if d, err := p.PollOnce(ctx); err != nil || d != time.Second {
				t.Fatalf("first poll: %v, %v", d, err)
			}
			if got := eventJobs(t, st); len(got) != 0 {
				t.Fatalf("jobs for events before the start: %v", got)
			}
			u := sim.AddUser("after@example.com", "pw", marketplace.Profile{FirstName: "New"})
			sim.AddListing(u, marketplace.Listing{Title: "Bike"})
			sim.SetBanned(u, true) // user/updated: filtered out by type
			if _, err := p.PollOnce(ctx); err != nil {
				t.Fatal(err)
			}
			got := eventJobs(t, st)
			if len(got) != 2 {
				t.Fatalf("jobs = %v, want the user/created and listing/created events", got)
			}
			cp, err := st.EventCheckpoint(ctx, marketplaceN)
			if err != nil || !cp.HasSequence || cp.SequenceID != 3 {
				t.Fatalf("checkpoint %+v, %v; want sequence 3", cp, err)
			}
			// Polling again adds nothing.
			if _, err := p.PollOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(eventJobs(t, st)); n != 2 {
				t.Errorf("after a second poll %d jobs, want 2", n)
			}
		})
	}
}

func TestPollFromBeginningAndFullPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim, url := newSim(t, marketplace.Options{})
	const n = 250
	for i := range n {
		sim.AddUser(fmt.Sprintf("u%d@example.com", i), "pw", marketplace.Profile{FirstName: "U"})
	}
	st := tu.SQLite(t)
	p, _, _, _ := newPoller(t, st, newClient(t, url, nil), events.Config{StartBeginning: true, Poll: time.Second}, nil)
	var delays []time.Duration
	for range 4 {
		d, err := p.PollOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		delays = append(delays, d)
	}
	want := []time.Duration{events.FullPageDelayDefault, events.FullPageDelayDefault, time.Second, time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Errorf("delay after poll %d = %v, want %v (all %v)", i+1, delays[i], want[i], delays)
		}
	}
	got := eventJobs(t, st)
	if len(got) != n {
		t.Fatalf("%d jobs, want %d", len(got), n)
	}
	seen := map[int64]bool{}
	for _, s := range got {
		seen[s] = true
	}
	for s := int64(1); s <= n; s++ {
		if !seen[s] {
			t.Errorf("no job for event %d", s)
		}
	}
}

func TestRetentionAlarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &tu.OffsetClock{}
	sim, url := newSim(t, marketplace.Options{Now: clk.Now})
	st := tu.SQLite(t)
	p, _, reg, lb := newPoller(t, st, newClient(t, url, nil), events.Config{Poll: time.Second}, clk.Now)
	u := sim.AddUser("a@example.com", "pw", marketplace.Profile{FirstName: "A"})
	if _, err := p.PollOnce(ctx); err != nil { // start at now
		t.Fatal(err)
	}
	sim.SetBanned(u, true)
	if _, err := p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	gauge := func() float64 {
		return testutil.ToFloat64(mustGauge(t, reg))
	}
	if g := gauge(); g != 0 {
		t.Fatalf("lag %v while caught up", g)
	}
	// The poller was down for 8 days: the simulator has dropped events
	// older than 7, the checkpoint is older than that.
	clk.Advance(8 * 24 * time.Hour)
	sim.SetBanned(u, false)
	if _, err := p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lb.String(), "beyond the marketplace") {
		t.Errorf("no retention warning logged: %s", lb.String())
	}
	// The poll that raised it also caught up; a stale checkpoint is not
	// reported forever.
	if g := gauge(); g != 0 {
		t.Errorf("lag %v after catching up", g)
	}

	// A checkpoint behind retention with more events waiting: the gauge
	// says how far behind.
	st2 := tu.SQLite(t)
	p2, _, reg2, lb2 := newPoller(t, st2, failingSource{}, events.Config{Poll: time.Second}, clk.Now)
	old := clk.Now().Add(-10 * 24 * time.Hour)
	if err := st2.RunTx(ctx, func(tx store.Tx) error {
		return st2.PutEventCheckpointTx(ctx, tx, store.EventCheckpoint{Marketplace: marketplaceN, SequenceID: 5, HasSequence: true, EventAt: old, UpdatedAt: old})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.PollOnce(ctx); err == nil {
		t.Fatal("failing source: no error")
	}
	if g := testutil.ToFloat64(mustGauge(t, reg2)); g < 10*24*3600-60 {
		t.Errorf("lag gauge %v, want about 10 days", g)
	}
	if !strings.Contains(lb2.String(), "beyond the marketplace") {
		t.Errorf("no warning: %s", lb2.String())
	}
}

type failingSource struct{}

func (failingSource) QueryEvents(context.Context, sharetribe.EventsQuery) (*sharetribe.Page[sharetribe.Event], error) {
	return nil, errors.New("unreachable")
}

func mustGauge(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "backlot_marketplace_events_lag_seconds" {
			for _, m := range mf.GetMetric() {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
				g.Set(m.GetGauge().GetValue())
				return g
			}
		}
	}
	t.Fatal("no lag gauge")
	return nil
}

func TestSequenceRefusedRaisesAlarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := newSim(t, marketplace.Options{})
	st := tu.SQLite(t)
	p, _, _, lb := newPoller(t, st, refusingSource{newClient(t, url, nil)}, events.Config{}, nil)
	if err := st.RunTx(ctx, func(tx store.Tx) error {
		return st.PutEventCheckpointTx(ctx, tx, store.EventCheckpoint{Marketplace: marketplaceN, SequenceID: 5, HasSequence: true, UpdatedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollOnce(ctx); err == nil {
		t.Fatal("refused checkpoint: no error")
	}
	if !strings.Contains(lb.String(), "refused the event checkpoint") {
		t.Errorf("no warning: %s", lb.String())
	}
	cp, _ := st.EventCheckpoint(ctx, marketplaceN)
	if cp.SequenceID != 5 {
		t.Errorf("checkpoint moved to %d; it must stay", cp.SequenceID)
	}
}

// refusingSource asks the simulator with a malformed sequence id, which
// it refuses with 400 as Sharetribe refuses one it does not accept.
type refusingSource struct{ c *sharetribe.Client }

func (r refusingSource) QueryEvents(ctx context.Context, q sharetribe.EventsQuery) (*sharetribe.Page[sharetribe.Event], error) {
	_, err := r.c.Integration(ctx, "GET", "events/query", map[string][]string{"startAfterSequenceId": {"-1"}}, nil)
	return nil, err
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim, url := newSim(t, marketplace.Options{})
	st := tu.SQLite(t)

	// The client waits out one 429 itself and the poll succeeds, slower.
	p, _, _, _ := newPoller(t, st, newClient(t, url, nil), events.Config{StartBeginning: true}, nil)
	sim.AddUser("a@example.com", "pw", marketplace.Profile{FirstName: "A"})
	sim.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/events/query", Status: 429, RetryAfter: 1, Times: 1})
	start := time.Now()
	if _, err := p.PollOnce(ctx); err != nil {
		t.Fatalf("poll through one 429: %v", err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("poll took %v; the 429's Retry-After is 1s", el)
	}
	if n := len(eventJobs(t, st)); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}

	// A client that does not retry: the poller backs off by Retry-After,
	// then recovers.
	st2 := tu.SQLite(t)
	p2, _, _, _ := newPoller(t, st2, newClient(t, url, func(c *sharetribe.Config) { c.MaxRetries = -1 }), events.Config{StartBeginning: true, Poll: 100 * time.Millisecond}, nil)
	sim.InjectFault(marketplace.Fault{Route: "GET /v1/integration_api/events/query", Status: 429, RetryAfter: 3, Times: 1})
	d, err := p2.PollOnce(ctx)
	if !errors.Is(err, sharetribe.ErrRateLimited) || d != 3*time.Second {
		t.Fatalf("poll on 429: delay %v, err %v; want 3s and ErrRateLimited", d, err)
	}
	if d, err := p2.PollOnce(ctx); err != nil || d != 100*time.Millisecond {
		t.Fatalf("poll after the 429: %v, %v", d, err)
	}
	if n := len(eventJobs(t, st2)); n != 1 {
		t.Errorf("%d jobs after recovery, want 1", n)
	}
}
