package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/jobs"
)

const readerJWTSecret = "e2e-reader-secret-0123456789abcdef01234"

// consoleEnv is a running backlot with the console on, and its database
// opened beside it for seeding and checking.
type consoleEnv struct {
	bk     *testutil.Proc
	db     *sqlite.DB
	opsKey string
}

// startConsole runs the real binary: staff (a session over hs256 users)
// may act; guests (a session over hs256 readers) and ops (an API key) may
// only look.
func startConsole(t *testing.T) *consoleEnv {
	t.Helper()
	bin := testutil.BuildBacklot(t)
	dir := t.TempDir()
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	opsKey := "blk_console-e2e-ops-key-0123456789"
	sum := sha256.Sum256([]byte(opsKey))
	dbPath := filepath.Join(dir, "backlot.db")
	cfg := fmt.Sprintf(`server:
  listen: "127.0.0.1:%d"
  public_url: %q
store:
  url: "sqlite://%s"
authenticators:
  users:   { type: hs256, secret: "${E2E_JWT_SECRET}", issuer: backlot, audience: backlot }
  readers: { type: hs256, secret: "${E2E_READER_SECRET}", issuer: readers, audience: backlot }
  staff:   { type: session, login: users, cookie: { name: backlot_session, secure: false }, ttl: 1h }
  guests:  { type: session, login: readers, cookie: { name: guest_session, secure: false }, ttl: 1h }
  ops:     { type: api_key, keys: [{ id: ops, sha256: %q }] }
webhooks:
  - { path: /hooks/vendor, verify: { scheme: none }, allow_ips: ["127.0.0.1/32"], dedupe: "header:webhook-id", job: vendor.event }
console: { path: /_/, auth: [staff, guests, ops], admin: [staff] }
`, port, base, dbPath, hex.EncodeToString(sum[:]))
	path := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bk := testutil.StartBacklot(t, testutil.BacklotCmd{
		Bin:  bin,
		Dir:  dir,
		Args: []string{"serve", "--config", path},
		Env:  []string{"E2E_JWT_SECRET=" + browserJWTSecret, "E2E_READER_SECRET=" + readerJWTSecret},
		URL:  base,
	})
	db, err := sqlite.Open(context.Background(), dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &consoleEnv{bk: bk, db: db, opsKey: opsKey}
}

// seed inserts n jobs of kind with payload; failed ones are claimed and
// failed on their only attempt.
func (e *consoleEnv) seed(t *testing.T, kind string, n int, payload string, failed bool) []int64 {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	batch := make([]store.JobInsert, n)
	for i := range batch {
		batch[i] = store.JobInsert{Kind: kind, Queue: "parked", Payload: []byte(payload), MaxAttempts: 1}
	}
	res, err := e.db.InsertJobs(ctx, now, batch)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, n)
	for i, r := range res {
		ids[i] = r.ID
	}
	if failed {
		claimed, err := e.db.ClaimJobs(ctx, store.ClaimParams{Queue: "parked", Kinds: []string{kind}, Limit: n, Now: now, Lease: time.Minute})
		if err != nil || len(claimed) != n {
			t.Fatalf("claim: %d, %v", len(claimed), err)
		}
		var fin []store.JobFinish
		for _, j := range claimed {
			fin = append(fin, store.JobFinish{JobRef: store.JobRef{ID: j.ID, Attempt: 1}, State: jobs.StateFailed,
				Error: "smtp: 550 <no such user>", At: now})
		}
		if err := e.db.UpdateJobs(ctx, store.JobUpdates{
			Logs:     []store.JobLogLine{{JobID: ids[0], At: now, Line: "dialling smtp"}},
			Progress: []store.JobProgress{{JobID: ids[0], Percent: 40}},
			Finishes: fin,
		}); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func (e *consoleEnv) state(t *testing.T, id int64) jobs.State {
	t.Helper()
	j, err := e.db.GetJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j.State
}

func mintReaderToken(t *testing.T, sub string) string {
	t.Helper()
	a, err := authn.NewHS256("readers", config.Authenticator{Type: config.AuthHS256, Secret: readerJWTSecret,
		Issuer: "readers", Audience: "backlot"}, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Mint(sub, "", nil, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clickNav clicks the element sel and waits for the navigation it causes.
func clickNav(t *testing.T, ctx context.Context, sel string) int64 {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(sctx, chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf(`document.querySelector(%q).click()`, sel)))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	return resp.Status
}

// eval evaluates a JavaScript expression in the current page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// signIn opens a console page, gets the sign-in form, and signs in.
func signIn(t *testing.T, ctx context.Context, url, as, token string) {
	t.Helper()
	navigate(t, ctx, url)
	if n := eval[int](t, ctx, `document.querySelectorAll("#signin").length`); n != 1 {
		t.Fatalf("no sign-in form at %s: %s", url, eval[string](t, ctx, `document.body.innerText`))
	}
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => {
		const s = document.getElementById("authenticator"); s.value = %q;
		document.getElementById("token").value = %q; })()`, as, token))
	clickNav(t, ctx, "#signin-button")
	if who := eval[string](t, ctx, `(document.getElementById("who")||{}).innerText||""`); !strings.HasPrefix(who, as+":") {
		t.Fatalf("after sign-in the page says %q; body:\n%s", who, eval[string](t, ctx, `document.body.innerText`))
	}
}

// TestBrowserConsole drives chromium against the real binary: sign in,
// filter, open a job, retry it, bulk-cancel by filter after the dry run;
// a cross-site form POST is refused; a viewer sees no action buttons and
// its forged POST is refused; a 2 MB payload stays out of the list page;
// every action left exactly one audit entry with actor and address.
func TestBrowserConsole(t *testing.T) {
	browser := testutil.Browser(t)
	e := startConsole(t)
	base := e.bk.URL + "/_/"

	failed := e.seed(t, "mail.send", 3, `{"to":"a@example.com","note":"<script>alert(1)</script>"}`, true)
	waiting := e.seed(t, "report.build", 5, `{"n":1}`, false)
	big := e.seed(t, "big.payload", 1, `{"blob":"`+strings.Repeat("x", 2<<20)+`"}`, false)[0]

	signIn(t, browser, base+"jobs", "staff", mintUserToken(t, "alice"))
	if who := eval[string](t, browser, `document.getElementById("who").innerText`); who != "staff:alice (admin)" {
		t.Fatalf("who = %q", who)
	}

	t.Run("filter and open", func(t *testing.T) {
		eval[chromedp.Void](t, browser, `document.getElementById("kind").value = "mail.send"`)
		clickNav(t, browser, "#apply")
		ids := eval[[]string](t, browser, `[...document.querySelectorAll("#jobs tbody tr[data-id]")].map(r => r.dataset.id)`)
		if len(ids) != 3 || ids[0] != fmt.Sprint(failed[2]) {
			t.Fatalf("filtered rows = %v, want the 3 mail.send jobs newest first", ids)
		}
		if total := eval[string](t, browser, `document.getElementById("total").innerText`); total != "3 matching" {
			t.Fatalf("total = %q", total)
		}
		clickNav(t, browser, fmt.Sprintf(`#jobs tr[data-id="%d"] a`, failed[0]))
		payload := eval[string](t, browser, `document.getElementById("payload").innerText`)
		if !strings.Contains(payload, `"note": "<script>alert(1)</script>"`) {
			t.Fatalf("payload shown as %q", payload)
		}
		if n := eval[int](t, browser, `document.querySelectorAll("script:not([src])").length`); n != 0 {
			t.Fatal("the payload's script tag became markup")
		}
		for sel, want := range map[string]string{"#last-error": "smtp: 550 <no such user>", "#log": "dialling smtp", "#state": "failed"} {
			if got := eval[string](t, browser, fmt.Sprintf(`document.querySelector(%q).innerText`, sel)); !strings.Contains(got, want) {
				t.Errorf("%s = %q, want %q", sel, got, want)
			}
		}
	})

	t.Run("retry one", func(t *testing.T) {
		if status := clickNav(t, browser, "#retry"); status != 200 {
			t.Fatalf("retry landed with %d", status)
		}
		if got := eval[string](t, browser, `document.getElementById("state").innerText`); got != "available" {
			t.Fatalf("state after retry = %q", got)
		}
		if s := e.state(t, failed[0]); s != jobs.StateAvailable {
			t.Fatalf("stored state = %s", s)
		}
	})

	t.Run("cross-site POST refused", func(t *testing.T) {
		foreign := pageServer(t)
		status, _ := forgeFormPost(t, browser, "http://localhost:"+portOf(t, foreign.URL), fmt.Sprintf("%sjobs/%d/retry", base, failed[1]))
		if status != http.StatusForbidden {
			t.Fatalf("cross-site POST: %d, want 403", status)
		}
		if s := e.state(t, failed[1]); s != jobs.StateFailed {
			t.Fatalf("state after a cross-site POST = %s", s)
		}
	})

	t.Run("bulk cancel by filter", func(t *testing.T) {
		navigate(t, browser, base+"jobs?kind=report.build")
		clickNav(t, browser, "#bulk-cancel")
		if dry := eval[string](t, browser, `document.getElementById("dry-run").innerText`); !strings.HasPrefix(dry, "5 jobs match kind=report.build") {
			t.Fatalf("dry run says %q", dry)
		}
		for _, id := range waiting {
			if s := e.state(t, id); s != jobs.StateAvailable {
				t.Fatalf("the dry run changed job %d: %s", id, s)
			}
		}
		clickNav(t, browser, "#confirm-button")
		for _, id := range waiting {
			if s := e.state(t, id); s != jobs.StateCancelled {
				t.Fatalf("job %d after bulk cancel: %s", id, s)
			}
		}
		if loc := eval[string](t, browser, `location.search`); !strings.Contains(loc, "kind=report.build") {
			t.Fatalf("landed on %q", loc)
		}
	})

	t.Run("big payload stays out of the list", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"jobs", nil)
		req.Header.Set("Authorization", "Bearer "+e.opsKey)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != 200 || len(body) > 64<<10 {
			t.Fatalf("list page: %d, %d bytes", resp.StatusCode, len(body))
		}
		t.Logf("list page with a 2 MB payload: %d bytes in %s", len(body), took)
		navigate(t, browser, base+"jobs")
		shown := eval[int](t, browser, fmt.Sprintf(`document.querySelector('#jobs tr[data-id="%d"] code.payload').textContent.length`, big))
		if shown > 2049 || shown < 2000 {
			t.Fatalf("list shows %d characters of the 2 MB payload, want at most 2 KB", shown)
		}
	})

	t.Run("viewer", func(t *testing.T) {
		viewer := testutil.Browser(t)
		signIn(t, viewer, fmt.Sprintf("%sjobs/%d", base, failed[1]), "guests", mintReaderToken(t, "val"))
		for _, sel := range []string{"#retry", "#cancel", "input[name=csrf_token]"} {
			if n := eval[int](t, viewer, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)); n != 0 {
				t.Errorf("viewer sees %s on the job page", sel)
			}
		}
		navigate(t, viewer, base+"jobs")
		if n := eval[int](t, viewer, `document.querySelectorAll("#bulk, #bulk-retry, #bulk-cancel").length`); n != 0 {
			t.Error("viewer sees bulk actions")
		}
		// A forged POST from the viewer's own page, with its session's CSRF
		// token (same origin, valid session): refused, not an admin.
		csrf := fetchFromPage(t, viewer, e.bk.URL+"/auth/csrf", map[string]any{"credentials": "same-origin"})
		var tok struct {
			CSRFToken string `json:"csrf_token"`
		}
		if err := json.Unmarshal(csrf.Body, &tok); err != nil || tok.CSRFToken == "" {
			t.Fatalf("csrf: %+v", csrf)
		}
		r := fetchFromPage(t, viewer, fmt.Sprintf("%sjobs/%d/retry", base, failed[1]), map[string]any{
			"method": "POST", "credentials": "same-origin", "redirect": "manual",
			"headers": map[string]string{"X-CSRF-Token": tok.CSRFToken},
		})
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), `"forbidden"`) {
			t.Fatalf("viewer POST: %+v", r)
		}
		// The API-key viewer likewise.
		req, _ := http.NewRequest("POST", fmt.Sprintf("%sjobs/%d/cancel", base, failed[1]), nil)
		req.Header.Set("Authorization", "Bearer "+e.opsKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("ops POST: %d", resp.StatusCode)
		}
		if s := e.state(t, failed[1]); s != jobs.StateFailed {
			t.Fatalf("state after the viewers' POSTs = %s", s)
		}
	})

	t.Run("audit", func(t *testing.T) {
		entries, err := e.db.ListAudit(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			action, target string
			count          int64
		}{
			{store.AuditJobBulkCancel, "kind=report.build", 5},
			{store.AuditJobRetry, fmt.Sprintf("job %d", failed[0]), 1},
		}
		if len(entries) != len(want) {
			t.Fatalf("%d audit entries, want %d (refused requests write none): %+v", len(entries), len(want), entries)
		}
		for i, w := range want {
			g := entries[i]
			if g.Action != w.action || g.Target != w.target || g.Count != w.count || g.Actor != "staff:alice" || g.Address != "127.0.0.1" {
				t.Errorf("entry %d = %+v, want %s %q count %d by staff:alice from 127.0.0.1", i, g, w.action, w.target, w.count)
			}
		}
		navigate(t, browser, base+"audit")
		if rows := eval[int](t, browser, `document.querySelectorAll("#audit tbody tr").length`); rows != 2 {
			t.Fatalf("audit page shows %d rows", rows)
		}
	})
}
