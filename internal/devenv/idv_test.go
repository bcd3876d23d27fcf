package devenv_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/devenv"
)

// marketplaceCookie signs a demo user in with a password, as the SDK does,
// and returns the user's id, the access token and the SDK cookie header
// (st-<client id>-token, the token response as URL-encoded JSON).
func marketplaceCookie(t *testing.T, env *devenv.Env, email string) (id, access, cookie string) {
	t.Helper()
	var user devenv.DemoUser
	for _, u := range env.DemoUsers() {
		if u.Email == email {
			user = u
		}
	}
	a := do(t, nil, "POST", env.URLs.Demo+"api/marketplace-login", []byte(`{"email":"`+email+`","password":"`+user.Password+`"}`),
		map[string]string{"Content-Type": "application/json"})
	var out struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(a.body, &out); err != nil || out.Status != 200 {
		t.Fatalf("marketplace login: %d %s", a.status, a.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(out.Body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("marketplace login: no access token in %s", out.Body)
	}
	return user.ID, tok.AccessToken, "st-backlot-dev-marketplace-token=" + url.PathEscape(string(out.Body))
}

// waitFor polls fn every 100 ms for up to 30 s.
func waitFor(t *testing.T, what string, fn func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, last := fn()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s; last: %s", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIDVerification runs the demo's ID check without a browser: the
// recipe's start refuses what it must, starts with the SDK cookie (pending
// in privateData), the vendor's callback from 127.0.0.2 becomes a job
// whose worker writes verified, the privateData writes come back as
// marketplace event jobs, and the console lists them to the staff session
// only.
func TestIDVerification(t *testing.T) {
	t.Parallel()
	env := start(t, t.TempDir(), nil)
	id, access, cookie := marketplaceCookie(t, env, "bob@backlot.dev")
	startURL, statusURL := env.URLs.Demo+"api/idv/start", env.URLs.Demo+"api/idv/status"

	refusals := []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"no credential", nil, 401, "missing_credentials"},
		{"bearer token alone: no refresh token to act on later", map[string]string{"Authorization": "Bearer " + access}, 400, "refresh_token_required"},
		{"cookie from another site", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403, ""},
		{"malformed cookie", map[string]string{"Cookie": "st-backlot-dev-marketplace-token=%7Bnot-json"}, 401, ""},
	}
	for _, r := range refusals {
		a := do(t, nil, "POST", startURL, nil, r.header)
		if a.status != r.status || !strings.Contains(string(a.body), r.code) {
			t.Errorf("%s: %d %s, want %d %s", r.name, a.status, a.body, r.status, r.code)
		}
	}
	status := func() string {
		a := do(t, nil, "GET", statusURL, nil, map[string]string{"Cookie": cookie})
		if a.status != 200 {
			t.Fatalf("status: %d %s", a.status, a.body)
		}
		s, _ := a.json(t)["status"].(string)
		return s
	}
	if s := status(); s != "none" {
		t.Fatalf("status before any check: %q, want none", s)
	}

	a := do(t, nil, "POST", startURL, nil, map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin"})
	if a.status != 200 {
		t.Fatalf("start: %d %s", a.status, a.body)
	}
	started := a.json(t)
	redirect, _ := started["redirect_url"].(string)
	if !strings.HasPrefix(redirect, env.URLs.IDV) {
		t.Fatalf("start: redirect_url %q is not the vendor's page", redirect)
	}
	if s := status(); s != "pending" {
		t.Fatalf("status after start: %q, want pending", s)
	}

	// The vendor's hosted page: approve, and come back to the demo page.
	page := do(t, nil, "GET", redirect, nil, nil)
	m := regexp.MustCompile(`name="authorizationToken" value="([^"]+)"`).FindSubmatch(page.body)
	if page.status != 200 || m == nil {
		t.Fatalf("vendor page: %d %s", page.status, page.body)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"authorizationToken": {string(m[1])}, "decision": {"approve"}}
	d := do(t, noFollow, "POST", env.URLs.IDV+"/web/v4/app", []byte(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if d.status != http.StatusSeeOther || !strings.HasPrefix(d.header.Get("Location"), env.URLs.Demo+"?step=idv") {
		t.Fatalf("decision: %d Location %q", d.status, d.header.Get("Location"))
	}
	waitFor(t, "privateData verified", func() (bool, string) { s := status(); return s == "verified", s })

	// The callback's job completed, its log says what the worker did.
	jobsOf := func(kind string) []map[string]any {
		a := do(t, nil, "GET", env.URLs.Demo+"api/jobs?kind="+kind, nil, nil)
		var out struct{ Jobs []map[string]any }
		if err := json.Unmarshal(a.body, &out); err != nil {
			t.Fatalf("jobs: %d %s", a.status, a.body)
		}
		return out.Jobs
	}
	cb := jobsOf("idv.callback")
	if len(cb) != 1 || cb[0]["state"] != "completed" || !strings.Contains(jsonText(cb[0]["log"]), "idVerification is verified") {
		t.Errorf("idv.callback jobs: %s", jsonText(cb))
	}
	// Both privateData writes (pending, verified) are user/updated events
	// of this user, polled into jobs and logged by the dev worker.
	waitFor(t, "marketplace events of the user", func() (bool, string) {
		n := 0
		js := jobsOf("marketplace.event")
		for _, j := range js {
			if j["state"] == "completed" && strings.Contains(jsonText(j["log"]), "user/updated of user "+id) {
				n++
			}
		}
		return n >= 2, jsonText(js)
	})

	// The console: the staff session sees the jobs; no session, no page.
	if a := do(t, nil, "GET", env.URLs.Backlot+"/_/jobs", nil, nil); a.status != 401 {
		t.Errorf("console without a session: %d, want 401", a.status)
	}
	c := staffSession(t, env)
	a = do(t, c, "GET", env.URLs.Backlot+"/_/jobs", nil, nil)
	for _, want := range []string{"idv.callback", "marketplace.event", "staff:support@backlot.dev (admin)"} {
		if a.status != 200 || !strings.Contains(string(a.body), want) {
			t.Errorf("console jobs page: %d, lacks %q", a.status, want)
		}
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
