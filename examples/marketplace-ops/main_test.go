package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/internal/sandbox/marketplace"
)

const (
	secret = "marketplace-ops-development-only-secret-0123"
	opsKey = "ops-development-key"
)

type env struct {
	sim  *marketplace.Marketplace
	base string
}

// start runs the example against the marketplace simulator on loopback,
// with the configuration file as shipped except for the URLs, the
// database and (so the test need not wait for 9:00) the schedule.
func start(t *testing.T) *env {
	t.Helper()
	sim := marketplace.New(marketplace.Options{ClientID: "mkt-client", IntegrationClientID: "integ-client", IntegrationClientSecret: "integ-secret"})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for k, v := range map[string]string{
		"SHARETRIBE_CLIENT_ID": "mkt-client", "SHARETRIBE_INTEGRATION_CLIENT_ID": "integ-client",
		"SHARETRIBE_INTEGRATION_CLIENT_SECRET": "integ-secret", "SHARETRIBE_API_URL": srv.URL, "SHARETRIBE_INTEGRATION_API_URL": srv.URL,
	} {
		t.Setenv(k, v)
	}
	cfg, err := os.ReadFile("backlot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := strings.NewReplacer(
		"sqlite://marketplace-ops.db", "sqlite://"+filepath.Join(dir, "ops.db"),
		`cron: "0 9 * * *"`, `cron: "@every 5s"`,
		"poll: 10s", "poll: 200ms",
	).Replace(string(cfg))
	path := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- run(ctx, path, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return &env{sim: sim, base: "http://" + ln.Addr().String()}
}

func (e *env) do(t *testing.T, method, path, auth, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func mint(t *testing.T, sub string, key string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "backlot", "aud": "backlot", "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// eventually retries cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Second)
	}
}

func listingState(t *testing.T, e *env, id string) (string, map[string]any) {
	t.Helper()
	var out struct {
		Data struct {
			Attributes struct {
				State    string         `json:"state"`
				Metadata map[string]any `json:"metadata"`
			} `json:"attributes"`
		} `json:"data"`
	}
	status, b := e.do(t, "GET", "/internal/listings/"+id, opsKey, "")
	if status != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("listing %s: %d %s", id, status, b)
	}
	return out.Data.Attributes.State, out.Data.Attributes.Metadata
}

func TestMarketplaceOps(t *testing.T) {
	e := start(t)
	sim := e.sim
	alice := sim.AddUser("alice@example.com", "pw", marketplace.Profile{FirstName: "Alice", LastName: "A"})
	bob := sim.AddUser("bob@example.com", "pw", marketplace.Profile{FirstName: "Bob", LastName: "B"})
	project := sim.AddListing(alice, marketplace.Listing{Title: "Build a shop", PublicData: map[string]any{"category": "project"}})
	expert := sim.AddListing(bob, marketplace.Listing{Title: "Go expert", PublicData: map[string]any{"category": "expert"}})
	oldProject := sim.AddListing(bob, marketplace.Listing{Title: "Old project", PublicData: map[string]any{"category": "project"}})
	pending := sim.AddListing(bob, marketplace.Listing{Title: "Awaiting approval", State: marketplace.ListingPendingApproval})
	for _, amount := range []float64{5000, 12000, 8000, 20000} {
		sim.AddTransaction(marketplace.Transaction{ListingID: project, CustomerID: bob, ProtectedData: map[string]any{"offerAmount": amount}})
	}

	t.Run("user tokens", func(t *testing.T) {
		for _, tc := range []struct {
			name, token string
			want        int
		}{
			{"missing", "", 401},
			{"wrong key", mint(t, alice, "another-secret-another-secret-0123456789"), 403},
			{"garbage", "not-a-jwt", 403},
			{"valid", mint(t, alice, secret), 200},
		} {
			status, b := e.do(t, "GET", "/api/me", tc.token, "")
			if status != tc.want {
				t.Errorf("%s: %d %s, want %d", tc.name, status, b, tc.want)
			}
			if tc.want == 200 && !strings.Contains(string(b), alice) {
				t.Errorf("/api/me answered %s", b)
			}
			if tc.want != 200 && !strings.Contains(string(b), `"error_code":`) {
				t.Errorf("%s: no error envelope: %s", tc.name, b)
			}
		}
		// A subject the marketplace does not know: its error passes through.
		status, b := e.do(t, "GET", "/api/me", mint(t, "00000000-0000-0000-0000-000000000000", secret), "")
		if status != 404 || !strings.Contains(string(b), `"original_error":{"errors":[`) {
			t.Errorf("unknown user: %d %s", status, b)
		}
	})

	t.Run("offer analytics", func(t *testing.T) {
		status, b := e.do(t, "GET", "/api/listings/"+project+"/offers", mint(t, alice, secret), "")
		var out struct {
			Count  int      `json:"count"`
			Median *float64 `json:"median"`
		}
		if status != 200 || json.Unmarshal(b, &out) != nil || out.Count != 4 || out.Median == nil || *out.Median != 10000 {
			t.Errorf("offers: %d %s; want count 4, median 10000", status, b)
		}
		status, b = e.do(t, "GET", "/api/listings/"+expert+"/offers", mint(t, alice, secret), "")
		if status != 200 || !strings.Contains(string(b), `"count":0`) || !strings.Contains(string(b), `"median":null`) {
			t.Errorf("no offers: %d %s", status, b)
		}
	})

	t.Run("CSV export", func(t *testing.T) {
		if status, _ := e.do(t, "GET", "/internal/export/users.csv", "", ""); status != 401 {
			t.Errorf("export without a key: %d", status)
		}
		status, b := e.do(t, "GET", "/internal/export/users.csv", opsKey, "")
		if status != 200 {
			t.Fatalf("export: %d %s", status, b)
		}
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 5 || rows[0][0] != "user_id" {
			t.Fatalf("export rows: %v", rows)
		}
		found := false
		for _, r := range rows[1:] {
			if r[0] == alice && r[1] == "alice@example.com" && r[4] == project && r[5] == "Build a shop" {
				found = true
			}
		}
		if !found {
			t.Errorf("alice's listing not joined with alice: %v", rows)
		}
	})

	t.Run("batch close", func(t *testing.T) {
		for _, tc := range []struct{ name, body string }{
			{"empty", `{}`}, {"unknown field", `{"author": "x"}`}, {"not json", `close all`},
		} {
			if status, b := e.do(t, "POST", "/internal/listings/close", opsKey, tc.body); status != 400 {
				t.Errorf("%s: %d %s", tc.name, status, b)
			}
		}
		if status, _ := e.do(t, "POST", "/internal/listings/close", mint(t, alice, secret), `{"author_id":"x"}`); status != 401 {
			t.Errorf("a user token on the internal endpoint: %d, want 401", status)
		}
		// Bob's projects, not his expert profile, not Alice's project.
		status, b := e.do(t, "POST", "/internal/listings/close", opsKey,
			`{"author_id":"`+bob+`","public_data":{"category":"project"}}`)
		if status != 202 {
			t.Fatalf("batch: %d %s", status, b)
		}
		eventually(t, "the old project closed", func() bool { s, _ := listingState(t, e, oldProject); return s == "closed" })
		for _, id := range []string{project, expert} {
			if s, _ := listingState(t, e, id); s != "published" {
				t.Errorf("listing %s is %s, want published", id, s)
			}
		}
	})

	t.Run("events into jobs", func(t *testing.T) {
		// The poller started at "now": a listing created now gets
		// metadata.indexedAt from the event worker.
		time.Sleep(500 * time.Millisecond)
		fresh := sim.AddListing(alice, marketplace.Listing{Title: "Fresh"})
		eventually(t, "the new listing indexed", func() bool { _, md := listingState(t, e, fresh); return md["indexedAt"] != nil })
	})

	t.Run("scheduled reminders", func(t *testing.T) {
		var out struct {
			Data struct {
				Attributes struct {
					Profile struct {
						Metadata map[string]any `json:"metadata"`
					} `json:"profile"`
				} `json:"attributes"`
			} `json:"data"`
		}
		eventually(t, "a reminder to bob", func() bool {
			_, b := e.do(t, "GET", "/api/me", mint(t, bob, secret), "")
			return json.Unmarshal(b, &out) == nil && out.Data.Attributes.Profile.Metadata["reminderListingId"] == pending
		})
	})
}
