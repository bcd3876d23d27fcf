// Package paymentsdashboard_test runs the payments-dashboard recipe end to
// end: the real backlot binary with examples/payments-dashboard/backlot.yaml,
// against the payments and middleware simulators on loopback.
package paymentsdashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/sandbox/partner"
	"github.com/backlothq/backlot/internal/sandbox/payments"
	"github.com/backlothq/backlot/internal/testutil"
)

// TestMain removes the built backlot binary after the tests.
func TestMain(m *testing.M) { testutil.Main(m) }

const (
	jwtSecret    = "dashboard-e2e-jwt-secret-0123456789abcdef"
	mwSecret     = "dashboard-e2e-middleware-secret"
	clientSecret = "dashboard-e2e-client-secret"
)

// dashboard is the recipe running: backlot and its two simulators.
type dashboard struct {
	bk  *testutil.Proc
	pay *payments.Payments
}

func startDashboard(t *testing.T, origin string) *dashboard {
	t.Helper()
	pay := payments.New(payments.Options{ClientSecret: clientSecret, RateLimit: -1})
	paySrv := httptest.NewServer(pay)
	t.Cleanup(paySrv.Close)
	mwSrv := httptest.NewServer(partner.New(partner.Options{Secret: mwSecret, Payments: pay, RateLimit: -1}))
	t.Cleanup(mwSrv.Close)
	clientID, _ := pay.ClientCredentials()

	cfg, err := filepath.Abs("backlot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	bk := testutil.StartBacklot(t, testutil.BacklotCmd{
		Bin:  testutil.BuildBacklot(t),
		Dir:  dir,
		Args: []string{"serve", "--config", cfg, "--log-level", "debug"},
		Env: []string{
			"LISTEN=127.0.0.1:" + fmt.Sprint(port),
			"PUBLIC_URL=" + base,
			"STORE_URL=sqlite://" + filepath.Join(dir, "dashboard.db"),
			"DASHBOARD_ORIGIN=" + origin,
			"JWT_SECRET=" + jwtSecret,
			"COOKIE_SECURE=false",
			"PAYMENTS_URL=" + paySrv.URL + "/v2",
			"MIDDLEWARE_URL=" + mwSrv.URL,
			"MW_SECRET=" + mwSecret,
			"WEPAY_CLIENT_ID=" + fmt.Sprint(clientID),
			"WEPAY_CLIENT_SECRET=" + clientSecret,
			"ALLOW_PRIVATE=true",
		},
		URL: base,
	})
	return &dashboard{bk: bk, pay: pay}
}

func staffToken(t *testing.T) string {
	t.Helper()
	a, err := authn.NewHS256("staff_tokens", config.Authenticator{Type: config.AuthHS256, Secret: jwtSecret,
		Issuer: "backlot", Audience: "backlot"}, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Mint("support@platform.example", "", nil, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// session is a Go client signed in to the dashboard.
type session struct {
	base   string
	client *http.Client
	csrf   string
	seen   *strings.Builder // every answer, for the leak check
}

func login(t *testing.T, base string) *session {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	s := &session{base: base, client: &http.Client{Jar: jar, Timeout: 20 * time.Second}, seen: &strings.Builder{}}
	req, _ := http.NewRequest("POST", base+"/auth/session", nil)
	req.Header.Set("Authorization", "Bearer "+staffToken(t))
	status, body := s.do(t, req)
	if status != 200 {
		t.Fatalf("login: %d %s", status, body)
	}
	var lr struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := json.Unmarshal(body, &lr); err != nil || lr.CSRFToken == "" {
		t.Fatalf("login answer %s", body)
	}
	s.csrf = lr.CSRFToken
	return s
}

func (s *session) do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(s.seen, "%d %v %s\n", resp.StatusCode, resp.Header, b)
	return resp.StatusCode, b
}

// post calls a dashboard endpoint as the front-end does: POST, JSON, the
// CSRF token in the header.
func (s *session) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if s.csrf != "" {
		req.Header.Set("X-CSRF-Token", s.csrf)
	}
	return s.do(t, req)
}

func obj(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s", b)
	}
	return m
}

func list(t *testing.T, b []byte) []any {
	t.Helper()
	var l []any
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("not a JSON array: %s", b)
	}
	return l
}

// TestDashboardEndpoints calls every endpoint of the recipe the way the
// dashboard's front-end does.
func TestDashboardEndpoints(t *testing.T) {
	d := startDashboard(t, "http://localhost:3000")
	s := login(t, d.bk.URL)
	ada := d.pay.Merchants()[0]

	for _, tt := range []struct {
		path, body string
		check      func(t *testing.T, b []byte)
	}{
		{"/api/user", `{"email":"ada@example.com"}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["user_id"] != float64(payments.DemoUserAda) {
				t.Errorf("user %v", m)
			}
		}},
		{"/api/user", `{"account_id":1003}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["user_id"] != float64(payments.DemoUserGrace) {
				t.Errorf("user %v", m)
			}
		}},
		{"/api/account", `{"account_id":1001}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["name"] != "Ada's Pottery" {
				t.Errorf("account %v", m)
			}
		}},
		{"/api/account/find", `{"email":"ada@example.com"}`, func(t *testing.T, b []byte) {
			if l := list(t, b); len(l) != 2 {
				t.Errorf("accounts %v", l)
			}
		}},
		{"/api/checkout", `{"account_id":1001,"checkout_id":5001}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["checkout_id"] != float64(payments.DemoCheckoutRecent) {
				t.Errorf("checkout %v", m)
			}
		}},
		{"/api/checkout/find", `{"account_id":1001}`, func(t *testing.T, b []byte) {
			if l := list(t, b); len(l) == 0 {
				t.Errorf("checkouts %v", l)
			}
		}},
		{"/api/withdrawal", `{"account_id":1001}`, func(t *testing.T, b []byte) { list(t, b) }},
		{"/api/reserve", `{"account_id":1001}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["account_id"] != float64(1001) {
				t.Errorf("reserve %v", m)
			}
		}},
		{"/api/preapproval", `{"account_id":1001,"preapproval_id":6001}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["preapproval_id"] != float64(payments.DemoPreapproval) {
				t.Errorf("preapproval %v", m)
			}
		}},
		{"/api/credit_card", `{"credit_card_id":7001}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["credit_card_id"] != float64(payments.DemoCreditCard) {
				t.Errorf("card %v", m)
			}
		}},
		{"/api/payer", `{"email":"` + payments.DemoPayerEmail + `"}`, func(t *testing.T, b []byte) {
			if cs, _ := obj(t, b)["checkouts"].([]any); len(cs) == 0 {
				t.Errorf("payer %s", b)
			}
		}},
		{"/api/refund", `{"account_id":1001,"checkout_id":5001,"refund_reason":"damaged","amount":5}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["checkout_id"] != float64(payments.DemoCheckoutRecent) {
				t.Errorf("refund %v", m)
			}
		}},
		{"/api/preapproval/cancel", `{"account_id":1001,"preapproval_id":6001}`, func(t *testing.T, b []byte) {
			if m := obj(t, b); m["state"] != "cancelled" {
				t.Errorf("cancel %v", m)
			}
		}},
	} {
		status, b := s.post(t, tt.path, tt.body)
		if status != 200 {
			t.Errorf("%s %s: %d %s", tt.path, tt.body, status, b)
			continue
		}
		tt.check(t, b)
	}

	// The seed's error: one envelope, the original error inside.
	status, b := s.post(t, "/api/refund", `{"account_id":1001,"checkout_id":5004,"refund_reason":"late"}`)
	e := obj(t, b)
	orig, _ := e["original_error"].(map[string]any)
	if status != 400 || e["error_code"] != float64(400) || e["error_message"] != "Cannot refund checkout after 60 days" ||
		orig["error_code"] != float64(1003) {
		t.Errorf("old refund: %d %s", status, b)
	}
	// Another merchant's checkout through Ada's account: refused by the API.
	if status, b := s.post(t, "/api/checkout", `{"account_id":1001,"checkout_id":5101}`); status != 403 {
		t.Errorf("foreign checkout: %d %s", status, b)
	}
	// No CSRF token, no call.
	noCSRF := *s
	noCSRF.csrf = ""
	if status, b := noCSRF.post(t, "/api/account", `{"account_id":1001}`); status != 403 || obj(t, b)["error"] != "csrf_failed" {
		t.Errorf("without CSRF: %d %s", status, b)
	}
	// CSRF token in the body instead of the header works too (and is
	// not forwarded: the payments API refuses unknown fields).
	s2 := *s
	s2.csrf = ""
	if status, b := s2.post(t, "/api/account", `{"account_id":1001,"csrf_token":"`+s.csrf+`"}`); status != 200 {
		t.Errorf("CSRF in body: %d %s", status, b)
	}
	// Only POST.
	req, _ := http.NewRequest("GET", s.base+"/api/account", nil)
	if status, _ := s.do(t, req); status != 405 {
		t.Errorf("GET: %d", status)
	}

	req, _ = http.NewRequest("GET", s.base+"/metrics", nil)
	status, metrics := s.do(t, req)
	if status != 200 || !strings.Contains(string(metrics), `backlot_upstream_request_duration_seconds_count{status_class="2xx",upstream="payments"}`) ||
		!strings.Contains(string(metrics), `upstream="lookup:`) {
		t.Errorf("/metrics lacks the upstream histogram: %d", status)
	}
	logs := d.bk.SettledStderr(t)
	for where, text := range map[string]string{"responses": s.seen.String(), "logs": logs} {
		for name, secret := range map[string]string{"middleware secret": mwSecret, "client secret": clientSecret, "merchant token": ada.AccessToken} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain the %s", where, name)
			}
		}
	}
}

// pageServer serves the dashboard's stand-in front-end ("/") and a
// forging page ("/forge?action=URL") whose form POSTs cross-site.
func pageServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>dashboard</title></head><body><p>support dashboard</p></body></html>`)
	})
	mux.HandleFunc("GET /forge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body><form method="POST" action="%s" enctype="text/plain">
<input type="hidden" name='{"account_id":1001,"checkout_id":5001,"refund_reason":"forged","x":"' value='"}'></form></body></html>`,
			html.EscapeString(r.URL.Query().Get("action")))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestDashboardInBrowser drives headless Chromium: the dashboard page
// signs in, reads its CSRF token and calls two endpoints with fetch, as
// its front-end does; a form on another site cannot make a refund.
func TestDashboardInBrowser(t *testing.T) {
	browser := testutil.Browser(t)
	app := pageServer(t)
	d := startDashboard(t, app.URL)

	navigate(t, browser, app.URL+"/")
	js := fmt.Sprintf(`(async () => {
  const base = %q;
  const login = await fetch(base + "/auth/session", {method: "POST", credentials: "include",
    headers: {Authorization: "Bearer " + %q}});
  if (login.status !== 200) return {step: "login", status: login.status, body: await login.text()};
  const csrf = (await (await fetch(base + "/auth/csrf", {credentials: "include"})).json()).csrf_token;
  const call = async (path, body) => {
    const r = await fetch(base + path, {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
    return {status: r.status, body: await r.json()};
  };
  const account = await call("/api/account", {account_id: 1001});
  const card = await call("/api/credit_card", {credit_card_id: 7001});
  const cookieVisible = document.cookie.includes("dashboard_session");
  return {step: "done", csrf: csrf.length > 0, account, card, cookieVisible};
})()`, d.bk.URL, staffToken(t))
	type call struct {
		Status int            `json:"status"`
		Body   map[string]any `json:"body"`
	}
	type result struct {
		Step          string `json:"step"`
		Status        int    `json:"status"`
		CSRF          bool   `json:"csrf"`
		Account       call   `json:"account"`
		Card          call   `json:"card"`
		CookieVisible bool   `json:"cookieVisible"`
	}
	sctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	res, err := chromedp.Run(sctx, chromedp.Evaluate[result](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("page script: %v", err)
	}
	if res.Step != "done" || !res.CSRF {
		t.Fatalf("page stopped at %s (%d)", res.Step, res.Status)
	}
	if res.Account.Status != 200 || res.Account.Body["name"] != "Ada's Pottery" {
		t.Errorf("account from the page: %+v", res.Account)
	}
	if res.Card.Status != 200 || res.Card.Body["credit_card_id"] != float64(payments.DemoCreditCard) {
		t.Errorf("credit card from the page: %+v", res.Card)
	}
	if res.CookieVisible {
		t.Error("the session cookie is readable by page scripts")
	}

	// Another site (localhost is not 127.0.0.1's site) submits a form to
	// the refund endpoint in the same browser.
	foreign := pageServer(t)
	foreignURL := "http://localhost:" + portOf(t, foreign.URL)
	navigate(t, browser, foreignURL+"/forge?action="+url.QueryEscape(d.bk.URL+"/api/refund"))
	fctx, fcancel := context.WithTimeout(browser, 20*time.Second)
	defer fcancel()
	resp, err := chromedp.RunResponse(fctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`document.forms[0].submit()`)(ctx, tg)
		return err
	}))
	if err != nil {
		t.Fatalf("forged submit: %v", err)
	}
	if resp.Status != 401 && resp.Status != 403 {
		t.Errorf("forged refund answered %d", resp.Status)
	}
	found := false
	for _, c := range d.pay.PayerCheckouts(payments.DemoPayerEmail) {
		if fmt.Sprint(c["checkout_id"]) == fmt.Sprint(payments.DemoCheckoutRecent) {
			found = true
			if c["state"] != "captured" {
				t.Errorf("checkout %d is %v after the forged POST", payments.DemoCheckoutRecent, c["state"])
			}
		}
	}
	if !found {
		t.Errorf("checkout %d not found", payments.DemoCheckoutRecent)
	}
}

func navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
}

func portOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}
