package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/console"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

const (
	adminKey  = "blk_console-test-admin-0123456789"
	viewerKey = "blk_console-test-viewer-012345678"
)

type fixture struct {
	st  store.Store
	url string
}

// setup serves a console on loopback over a fresh SQLite store: "admins"
// (API key id "root") may act, "viewers" (id "val") may look.
func setup(t *testing.T) *fixture {
	t.Helper()
	st := testutil.SQLite(t)
	hash := func(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }
	set, err := authn.NewSet(map[string]config.Authenticator{
		"admins":  {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "root", SHA256: hash(adminKey)}}},
		"viewers": {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "val", SHA256: hash(viewerKey)}}},
	}, nil, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(config.Jobs{}, nil, st, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	con, err := console.New(console.Config{
		Console: config.Console{Path: "/_/", Auth: []string{"viewers"}, Admin: []string{"admins"}},
		Store:   st, Engine: eng, Auth: set,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	con.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{st: st, url: srv.URL + "/_/"}
}

// seed inserts n available jobs of kind and fails the first `failed`.
func (f *fixture) seed(t *testing.T, kind string, n, failed int) []int64 {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	batch := make([]store.JobInsert, n)
	for i := range batch {
		batch[i] = store.JobInsert{Kind: kind, Queue: kind, Payload: []byte(`{}`), MaxAttempts: 1}
	}
	res, err := f.st.InsertJobs(ctx, now, batch)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, n)
	for i, r := range res {
		ids[i] = r.ID
	}
	if failed > 0 {
		claimed, err := f.st.ClaimJobs(ctx, store.ClaimParams{Queue: kind, Kinds: []string{kind}, Limit: failed, Now: now, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var fin []store.JobFinish
		for _, j := range claimed {
			fin = append(fin, store.JobFinish{JobRef: store.JobRef{ID: j.ID, Attempt: 1}, State: jobs.StateFailed, Error: "x", At: now})
		}
		if err := f.st.UpdateJobs(ctx, store.JobUpdates{Finishes: fin}); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestActionsAudited: every action kind leaves exactly one audit entry
// naming the actor, the rows, the count and the address; refused
// requests (a viewer, a job in the wrong state, a cross-site POST) leave
// none and change nothing.
func TestActionsAudited(t *testing.T) {
	t.Parallel()
	type action struct {
		name       string
		kind       string // jobs seeded: 3 of this kind, `failed` of them failed
		failed     int
		key        string
		path       func(ids []int64) string
		form       url.Values
		header     http.Header
		status     int
		wantAction string
		wantTarget func(ids []int64) string
		wantCount  int64
		wantState  jobs.State // of every seeded job afterwards ("" = unchanged)
	}
	id0 := func(ids []int64) string { return "jobs/" + strconv.FormatInt(ids[0], 10) }
	tests := []action{
		{name: "retry one", kind: "k.retry", failed: 1, key: adminKey, path: func(ids []int64) string { return id0(ids) + "/retry" },
			status: 303, wantAction: store.AuditJobRetry, wantTarget: func(ids []int64) string { return "job " + strconv.FormatInt(ids[0], 10) }, wantCount: 1},
		{name: "cancel one", kind: "k.cancel", key: adminKey, path: func(ids []int64) string { return id0(ids) + "/cancel" },
			status: 303, wantAction: store.AuditJobCancel, wantTarget: func(ids []int64) string { return "job " + strconv.FormatInt(ids[0], 10) }, wantCount: 1},
		{name: "bulk retry", kind: "k.bulkretry", failed: 3, key: adminKey, path: func([]int64) string { return "jobs/bulk" },
			form: url.Values{"action": {"retry"}, "kind": {"k.bulkretry"}, "state": {"failed"}}, status: 303,
			wantAction: store.AuditJobBulkRetry, wantTarget: func([]int64) string { return "state=failed kind=k.bulkretry" }, wantCount: 3, wantState: jobs.StateAvailable},
		{name: "bulk cancel", kind: "k.bulkcancel", key: adminKey, path: func([]int64) string { return "jobs/bulk" },
			form: url.Values{"action": {"cancel"}, "kind": {"k.bulkcancel"}}, status: 303,
			wantAction: store.AuditJobBulkCancel, wantTarget: func([]int64) string { return "kind=k.bulkcancel" }, wantCount: 3, wantState: jobs.StateCancelled},
		{name: "viewer refused", kind: "k.viewer", failed: 1, key: viewerKey, path: func(ids []int64) string { return id0(ids) + "/retry" }, status: 403},
		{name: "viewer bulk refused", kind: "k.viewerbulk", key: viewerKey, path: func([]int64) string { return "jobs/bulk" },
			form: url.Values{"action": {"cancel"}, "kind": {"k.viewerbulk"}}, status: 403},
		{name: "wrong state", kind: "k.state", key: adminKey, path: func(ids []int64) string { return id0(ids) + "/retry" }, status: 409},
		{name: "cross-site", kind: "k.xsite", key: adminKey, path: func(ids []int64) string { return id0(ids) + "/cancel" },
			header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, status: 403},
		{name: "bad action", kind: "k.bad", key: adminKey, path: func([]int64) string { return "jobs/bulk" },
			form: url.Values{"action": {"delete"}}, status: 400},
		{name: "bad state", kind: "k.badstate", key: adminKey, path: func([]int64) string { return "jobs/bulk" },
			form: url.Values{"action": {"retry"}, "state": {"exploded"}}, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			ids := f.seed(t, tt.kind, 3, tt.failed)
			before := map[int64]jobs.State{}
			for _, id := range ids {
				j, _ := f.st.GetJob(context.Background(), id)
				before[id] = j.State
			}
			req, _ := http.NewRequest("POST", f.url+tt.path(ids), strings.NewReader(tt.form.Encode()))
			req.Header.Set("Authorization", "Bearer "+tt.key)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.header {
				req.Header[k] = v
			}
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			entries, err := f.st.ListAudit(context.Background(), store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantAction == "" {
				if len(entries) != 0 {
					t.Fatalf("refused request wrote %+v", entries)
				}
				for _, id := range ids {
					if j, _ := f.st.GetJob(context.Background(), id); j.State != before[id] {
						t.Fatalf("refused request changed job %d: %s → %s", id, before[id], j.State)
					}
				}
				return
			}
			if len(entries) != 1 {
				t.Fatalf("%d audit entries, want 1: %+v", len(entries), entries)
			}
			e := entries[0]
			if e.Action != tt.wantAction || e.Actor != "admins:root" || e.Address != "127.0.0.1" ||
				e.Target != tt.wantTarget(ids) || e.Count != tt.wantCount || time.Since(e.At) > time.Minute {
				t.Fatalf("entry = %+v", e)
			}
			for _, id := range ids[:tt.wantCount] {
				if !strings.Contains(e.Detail, strconv.FormatInt(id, 10)) {
					t.Errorf("detail %s does not name job %d", e.Detail, id)
				}
			}
			if tt.wantState != "" {
				for _, id := range ids {
					if j, _ := f.st.GetJob(context.Background(), id); j.State != tt.wantState {
						t.Errorf("job %d is %s, want %s", id, j.State, tt.wantState)
					}
				}
			}
		})
	}
}

// TestViewerPages: a viewer gets every page and no action controls; the
// bulk action is capped and a count above the cap reads "10,000+".
func TestViewerPages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed(t, "k.pages", 3, 1)
	for _, p := range []string{"jobs", "jobs?state=failed", "jobs/1", "webhooks", "connections", "keys", "audit", "jobs/bulk?action=retry"} {
		req, _ := http.NewRequest("GET", f.url+p, nil)
		req.Header.Set("Authorization", "Bearer "+viewerKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(raw)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
			continue
		}
		if resp.Header.Get("Content-Security-Policy") == "" || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: headers %v", p, resp.Header)
		}
		if p != "jobs/bulk?action=retry" && (strings.Contains(body, `id="retry"`) || strings.Contains(body, `id="bulk"`) || strings.Contains(body, "csrf_token")) {
			t.Errorf("%s shows action controls to a viewer", p)
		}
	}
	// Unauthenticated: a browser gets the sign-in page (no session
	// authenticator here: it says so), anything else the JSON envelope.
	for _, tt := range []struct{ accept, want string }{{"text/html", "accepts no session"}, {"", `"error":"`}} {
		req, _ := http.NewRequest("GET", f.url+"jobs", nil)
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(raw), tt.want) {
			t.Errorf("Accept %q: %d %s", tt.accept, resp.StatusCode, raw)
		}
	}
}
