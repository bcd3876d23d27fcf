package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/internal/sandbox/idv"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/jobs"
)

type env struct {
	t    *testing.T
	mkt  *marketplace.Marketplace
	mURL string
	idv  *idv.IDV
	base string
	app  *backlot.App
}

// start runs the example in-process against the marketplace and vendor
// simulators on loopback, with backlot.yaml as shipped except for the
// URLs, the database and a short retry backoff.
func start(t *testing.T) *env {
	t.Helper()
	mkt := marketplace.New(marketplace.Options{ClientID: "mkt-client", IntegrationClientID: "integ-client", IntegrationClientSecret: "integ-secret"})
	msrv := httptest.NewServer(mkt)
	t.Cleanup(msrv.Close)
	vendorSim, err := idv.New(idv.Options{APIToken: "idv-token", APISecret: "idv-secret", CallbackBackoffFunc: func(int) time.Duration { return 50 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	vsrv := httptest.NewServer(vendorSim)
	t.Cleanup(func() { vendorSim.Close(); vsrv.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	for k, v := range map[string]string{
		"SHARETRIBE_CLIENT_ID": "mkt-client", "SHARETRIBE_INTEGRATION_CLIENT_ID": "integ-client",
		"SHARETRIBE_INTEGRATION_CLIENT_SECRET": "integ-secret", "SHARETRIBE_API_URL": msrv.URL, "SHARETRIBE_INTEGRATION_API_URL": msrv.URL,
		"BACKLOT_KEY_K1": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"IDV_API_URL":    vsrv.URL, "IDV_API_TOKEN": "idv-token", "IDV_API_SECRET": "idv-secret",
	} {
		t.Setenv(k, v)
	}
	cfg, err := os.ReadFile("backlot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := strings.NewReplacer(
		"sqlite://id-verification.db", "sqlite://"+filepath.Join(dir, "idv.db"),
		`public_url: "http://127.0.0.1:8080"`, `public_url: "`+base+`"`,
		"max_attempts: 5, backoff: exponential, base: 1s", "max_attempts: 2, backoff: exponential, base: 10ms",
	).Replace(string(cfg))
	path := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, mkt: mkt, mURL: msrv.URL, idv: vendorSim, base: base}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var once sync.Once
	appReady := make(chan struct{})
	go func() {
		served <- run(ctx, path, ln, func(a *backlot.App) { e.app = a; once.Do(func() { close(appReady) }) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-appReady:
	case err := <-served:
		t.Fatalf("run: %v", err)
	}
	return e
}

// user is a signed-in simulator user: tokens and SDK cookie.
type user struct {
	id, access, refresh string
	cookie              *http.Cookie
}

// user adds a simulator user and signs them in.
func (e *env) user(email string) user {
	e.t.Helper()
	return e.login(e.mkt.AddUser(email, "secret-pass", marketplace.Profile{FirstName: "Jane", LastName: "Doe"}), email)
}

// login signs the simulator user id in with a fresh session.
func (e *env) login(id, email string) user {
	e.t.Helper()
	resp, err := http.PostForm(e.mURL+"/v1/auth/token", url.Values{"client_id": {"mkt-client"}, "grant_type": {"password"},
		"username": {email}, "password": {"secret-pass"}, "scope": {"user"}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	tok["token_type"] = "bearer"
	b, _ := json.Marshal(tok)
	return user{id: id, access: tok["access_token"].(string), refresh: tok["refresh_token"].(string),
		cookie: &http.Cookie{Name: "st-mkt-client-token", Value: url.PathEscape(string(b))}}
}

func (e *env) call(method, path string, u user, bearerOnly bool) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, nil)
	if bearerOnly {
		req.Header.Set("Authorization", "Bearer "+u.access)
	} else {
		req.AddCookie(u.cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) status(u user) string {
	e.t.Helper()
	code, out := e.call("GET", "/api/idv/status", u, false)
	if code != 200 {
		e.t.Fatalf("status: %d %v", code, out)
	}
	s, _ := out["status"].(string)
	return s
}

func (e *env) waitStatus(u user, want string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e.status(u) == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("status never became %q (last %q)", want, e.status(u))
}

// startCheck starts a check and returns the vendor's transaction reference.
func (e *env) startCheck(u user) string {
	e.t.Helper()
	code, out := e.call("POST", "/api/idv/start", u, false)
	if code != 200 || out["redirect_url"] == "" {
		e.t.Fatalf("start: %d %v", code, out)
	}
	return out["transaction_reference"].(string)
}

// postCallback posts a form to the webhook endpoint from src and returns
// the status and job id.
func (e *env) postCallback(src string, form url.Values) (int, int64) {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := c.PostForm(e.base+"/webhooks/idv", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		JobID json.Number `json:"job_id"`
	}
	_ = json.Unmarshal(body, &out)
	id, _ := out.JobID.Int64()
	return resp.StatusCode, id
}

// waitJob waits for a job to finish and returns it.
func (e *env) waitJob(id int64) *jobs.Job {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		j, err := e.app.Jobs().Get(context.Background(), id)
		if err == nil && (j.State == jobs.StateCompleted || j.State == jobs.StateFailed) {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("job %d never finished", id)
	return nil
}

// approvedForm is the form the vendor sends for an approved scan.
func approvedForm(ref, customerID string) url.Values {
	return url.Values{"callBackType": {"NETVERIFYID"}, "jumioIdScanReference": {ref}, "verificationStatus": {"APPROVED_VERIFIED"},
		"customerId": {customerID}, "callbackDate": {time.Now().Format(time.RFC3339Nano)}}
}

func TestVerifiedEndToEnd(t *testing.T) {
	e := start(t)
	u := e.user("jane@example.com")
	if s := e.status(u); s != "none" {
		t.Fatalf("status before = %q", s)
	}
	ref := e.startCheck(u)
	if s := e.status(u); s != "pending" {
		t.Fatalf("status after start = %q", s)
	}
	if err := e.idv.Decide(ref, idv.DecisionApprove, "203.0.113.9"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(u, "verified")

	// The user rewrites their own privateData: tampered, never verified.
	body := strings.NewReader(`{"privateData":{"idVerification":{"status":"verified","updatedAt":"2099-01-01T00:00:00Z"}}}`)
	req, _ := http.NewRequest("POST", e.mURL+"/v1/api/current_user/update_profile", body)
	req.Header.Set("Authorization", "Bearer "+u.access)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("user's own update: %v %v", resp, err)
	}
	resp.Body.Close()
	if s := e.status(u); s != "tampered" {
		t.Fatalf("status after the user's edit = %q, want tampered", s)
	}
}

func TestDenied(t *testing.T) {
	e := start(t)
	u := e.user("fraud@example.com")
	ref := e.startCheck(u)
	if err := e.idv.Decide(ref, idv.DecisionFraud, ""); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(u, "denied")
}

func TestStartNeedsTheCookie(t *testing.T) {
	e := start(t)
	u := e.user("bearer@example.com")
	code, out := e.call("POST", "/api/idv/start", u, true)
	if code != 400 || out["error"] != "refresh_token_required" {
		t.Fatalf("start with a bearer token = %d %v", code, out)
	}
	if code, _ := e.call("POST", "/api/idv/start", user{cookie: &http.Cookie{Name: "x", Value: "y"}}, false); code != 401 {
		t.Fatalf("start without credentials = %d", code)
	}
}

// TestBadCallbacks: nothing but a real callback for a live reference
// writes anything, and each refusal is visible (403, or a failed job).
func TestBadCallbacks(t *testing.T) {
	e := start(t)
	u := e.user("victim@example.com")
	e.startCheck(u) // pending; the vendor's own callback never comes here

	// From an address outside allow_ips: refused before anything is stored.
	if code, _ := e.postCallback("127.0.0.1", approvedForm("scan-1", "AAAAAAAAAAAAAAAAAAAAAA")); code != http.StatusForbidden {
		t.Fatalf("callback from 127.0.0.1 = %d, want 403", code)
	}
	failures := []struct{ name, customerID, wantErr string }{
		{"forged handle", "AAAAAAAAAAAAAAAAAAAAAA", "unknown"},
		{"forged inline", strings.Repeat("A", 80), "does not open"},
		{"over 100 characters", strings.Repeat("A", 101), "101 characters"},
		{"empty", "", "0 characters"},
	}
	for _, f := range failures {
		code, id := e.postCallback("127.0.0.2", approvedForm("scan-"+f.name, f.customerID))
		if code != http.StatusAccepted || id == 0 {
			t.Fatalf("%s: callback = %d, job %d", f.name, code, id)
		}
		j := e.waitJob(id)
		if j.State != jobs.StateFailed || !strings.Contains(j.LastError, f.wantErr) {
			t.Fatalf("%s: job %s %q, want failed with %q", f.name, j.State, j.LastError, f.wantErr)
		}
	}
	if s := e.status(u); s != "pending" {
		t.Fatalf("status after forged callbacks = %q, want pending (nothing written)", s)
	}
}

func TestReplayedReference(t *testing.T) {
	e := start(t)
	u := e.user("replay@example.com")
	ref := e.startCheck(u)
	if err := e.idv.Decide(ref, idv.DecisionFraud, ""); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(u, "denied")
	// Replay the vendor's callback (job 1, the only one so far) with the
	// same reference, now "approved".
	first := e.waitJob(1)
	var form map[string]any
	if err := json.Unmarshal(first.Payload, &form); err != nil || first.State != jobs.StateCompleted {
		t.Fatalf("first callback job: %s %v", first.State, err)
	}
	customerID, _ := form["customerId"].(string)
	if len(customerID) != 22 {
		t.Fatalf("customerId %q is not a handle", customerID)
	}
	code, id := e.postCallback("127.0.0.2", approvedForm(ref, customerID))
	if code != http.StatusAccepted {
		t.Fatalf("replay = %d", code)
	}
	if j := e.waitJob(id); j.State != jobs.StateFailed {
		t.Fatalf("replayed job %s %q, want failed", j.State, j.LastError)
	}
	if s := e.status(u); s != "denied" {
		t.Fatalf("status after replay = %q, want denied", s)
	}
}

func TestRevokedRefreshToken(t *testing.T) {
	e := start(t)
	u := e.user("revoked@example.com")
	ref := e.startCheck(u)
	// The user signs out everywhere: the refresh token backlot sealed dies.
	req, _ := http.NewRequest("POST", e.mURL+"/v1/auth/revoke", strings.NewReader(url.Values{"token": {u.refresh}}.Encode()))
	req.Header.Set("Authorization", "Bearer "+u.access)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := e.idv.Decide(ref, idv.DecisionApprove, ""); err != nil {
		t.Fatal(err)
	}
	// The callback is accepted and its job fails: the user cannot be acted for.
	var jobID int64
	deadline := time.Now().Add(10 * time.Second)
	for jobID == 0 && time.Now().Before(deadline) {
		for _, a := range e.idv.Callbacks() {
			if a.TransactionReference == ref && a.Delivered {
				jobID = 1
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if jobID == 0 {
		t.Fatal("callback never delivered")
	}
	j := e.waitJob(1)
	if j.State != jobs.StateFailed || !strings.Contains(j.LastError, "act as user") {
		t.Fatalf("job %s %q, want failed acting as the user", j.State, j.LastError)
	}
	// A fresh session can read: still pending, nothing written.
	if s := e.status(e.login(u.id, "revoked@example.com")); s != "pending" {
		t.Fatalf("status = %q, want pending", s)
	}
}
