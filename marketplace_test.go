package backlot_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/jobs"
)

// TestMarketplace uses App.Marketplace from a handler and a worker fed by
// the event poller, against the marketplace simulator.
func TestMarketplace(t *testing.T) {
	t.Parallel()
	sim := marketplace.New(marketplace.Options{ClientID: "c", IntegrationClientID: "ic", IntegrationClientSecret: "is"})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	alice := sim.AddUser("alice@example.com", "pw", marketplace.Profile{FirstName: "Alice"})

	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0"},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(t.TempDir(), "app.db")},
		Marketplaces: map[string]config.Marketplace{"main": {ClientID: "c", APIURL: srv.URL, IntegrationAPIURL: srv.URL,
			Integration: config.MarketplaceClient{ClientID: "ic", ClientSecret: "is"},
			Events:      config.MarketplaceEvents{Types: []string{"listing/created"}, Poll: config.Duration(200 * time.Millisecond)}}},
	}
	app, err := backlot.New(backlot.WithConfig(cfg), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if app.Marketplace("nope") != nil {
		t.Error("Marketplace(unknown) is not nil")
	}
	m := app.Marketplace("main")
	got := make(chan string, 10)
	app.Worker("marketplace.event", func(ctx context.Context, job *jobs.Job) error {
		var ev struct {
			Attributes struct {
				EventType  string `json:"eventType"`
				ResourceID string `json:"resourceId"`
			} `json:"attributes"`
		}
		if err := json.Unmarshal(job.Payload, &ev); err != nil {
			return err
		}
		// The worker acts on the marketplace: close the new listing.
		if _, err := m.CloseListing(ctx, ev.Attributes.ResourceID); err != nil {
			return err
		}
		got <- ev.Attributes.EventType + " " + ev.Attributes.ResourceID
		return nil
	})
	app.Handle("GET /users/{id}", nil, func(w http.ResponseWriter, r *http.Request) {
		raw, err := m.ShowUser(r.Context(), r.PathValue("id"))
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, map[string]any) {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		return res.StatusCode, out
	}

	status, body := get("/users/" + alice)
	if status != 200 || body["data"].(map[string]any)["id"] != alice {
		t.Fatalf("show user: %d %v", status, body)
	}
	// A marketplace refusal reaches the caller as the envelope with the
	// marketplace's own error in original_error.
	status, body = get("/users/00000000-0000-0000-0000-000000000000")
	if status != 404 || body["error"] != "marketplace_not_found" || body["error_code"] != float64(404) {
		t.Fatalf("unknown user: %d %v", status, body)
	}
	orig, _ := body["original_error"].(map[string]any)
	if errs, _ := orig["errors"].([]any); len(errs) == 0 || errs[0].(map[string]any)["code"] != "not-found" {
		t.Errorf("original_error = %v, want the marketplace's not-found error", body["original_error"])
	}
	_, err = m.ShowUser(ctx, "00000000-0000-0000-0000-000000000000")
	var me *backlot.MarketplaceError
	if !errors.Is(err, backlot.ErrMarketplaceNotFound) || !errors.As(err, &me) || me.Code != "not-found" {
		t.Errorf("ShowUser(unknown) = %v; want a *MarketplaceError matching ErrMarketplaceNotFound", err)
	}
	if _, err := m.Integration(ctx, "GET", "../auth/token", nil, nil); err == nil {
		t.Error("Integration accepted a path outside the Integration API")
	}

	// Wait for the poller's first poll (start: now), then create a listing.
	time.Sleep(500 * time.Millisecond)
	lid := sim.AddListing(alice, marketplace.Listing{Title: "Bike"})
	select {
	case s := <-got:
		if s != "listing/created "+lid {
			t.Errorf("worker got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event job within 10 s")
	}
	raw, err := m.QueryListings(ctx, url.Values{"authorId": {alice}})
	if err != nil || !strings.Contains(string(raw), `"state":"closed"`) {
		t.Errorf("listing not closed by the worker: %s %v", raw, err)
	}
}
