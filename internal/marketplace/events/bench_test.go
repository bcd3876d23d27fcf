package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/marketplace/events"
	"github.com/backlothq/backlot/internal/marketplace/sharetribe"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	tu "github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

// BenchmarkEventToJob measures the time from an event appearing in the
// simulator to its job completed by a worker, with poll: 1s and the
// simulator enforcing Sharetribe's dev rate limits (the client keeps to
// them too). Events arrive at random moments, 3 a second on average, so
// some land just after a poll. Reports p50 and p99 in ms; the target is a
// p99 of at most the poll interval plus 500 ms.
//
//	go test -run '^$' -bench EventToJob -benchtime 60x ./internal/marketplace/events/
func BenchmarkEventToJob(b *testing.B) {
	ctx := context.Background()
	sim := marketplace.New(marketplace.Options{ClientID: clientID, IntegrationClientID: integID,
		IntegrationClientSecret: integSecret, RateLimits: marketplace.DevRateLimits()})
	srv := newBenchServer(b, sim)
	st := tu.SQLite(b)
	eng, err := engine.New(config.Jobs{Queues: map[string]config.Queue{"default": {Concurrency: 4}}}, nil, st, engine.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu      sync.Mutex
		created = map[string]time.Time{}
		lat     []time.Duration
		done    = make(chan struct{}, b.N)
	)
	eng.Register(jobKind, func(_ context.Context, j *jobs.Job) error {
		var ev sharetribe.Event
		if err := json.Unmarshal(j.Payload, &ev); err != nil {
			return err
		}
		mu.Lock()
		if t, ok := created[ev.Attributes.ResourceID]; ok {
			lat = append(lat, time.Since(t))
		}
		mu.Unlock()
		done <- struct{}{}
		return nil
	})
	if err := eng.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer eng.Stop(ctx)
	c, err := sharetribe.New(sharetribe.Config{APIURL: srv, IntegrationURL: srv, ClientID: clientID,
		IntegrationClientID: integID, IntegrationClientSecret: integSecret, Environment: sharetribe.EnvDev})
	if err != nil {
		b.Fatal(err)
	}
	p, err := events.New(events.Config{Marketplace: marketplaceN, Job: jobKind, Poll: time.Second, Types: []string{"user/created"}},
		events.Deps{Source: c, Store: st, Enqueue: eng.EnqueueTx, WakeFunc: eng.WakeKind})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer p.Stop(ctx)
	time.Sleep(1500 * time.Millisecond) // the first poll records "now"

	b.ResetTimer()
	for i := range b.N {
		time.Sleep(time.Duration(rand.IntN(667)) * time.Millisecond)
		mu.Lock()
		id := sim.AddUser(fmt.Sprintf("b%d@example.com", i), "pw", marketplace.Profile{FirstName: "B"})
		created[id] = time.Now()
		mu.Unlock()
	}
	for range b.N {
		<-done
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[min(int(f*float64(len(lat))), len(lat)-1)].Milliseconds()) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(sim.Stats().Limited), "429s")
}

func newBenchServer(b *testing.B, h http.Handler) string {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.URL
}
