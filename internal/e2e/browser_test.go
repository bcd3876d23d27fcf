package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/authn"

	"github.com/chromedp/chromedp"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/testutil"
)

const browserJWTSecret = "e2e-browser-secret-0123456789abcdef0123"

// pageServer serves the front-end pages of the test: "/" (an app page that
// the test drives with fetch) and "/forge?action=URL" (a page whose form
// POSTs to URL, as a malicious site would).
func pageServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>app</title></head><body><p>app</p></body></html>`)
	})
	mux.HandleFunc("GET /forge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>forge</title></head><body>
<form method="POST" action="%s"><input type="hidden" name="csrf_token" value="guessed"><input type="hidden" name="everywhere" value="1"></form>
</body></html>`, html.EscapeString(r.URL.Query().Get("action")))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func portOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// startBacklotForBrowser runs the real binary with a session authenticator
// and a CORS allowlist of exactly allowedOrigin.
func startBacklotForBrowser(t *testing.T, allowedOrigin string) *testutil.Proc {
	t.Helper()
	bin := testutil.BuildBacklot(t)
	dir := t.TempDir()
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`server:
  listen: "127.0.0.1:%d"
  public_url: %q
store:
  url: "sqlite://%s"
cors:
  allowed_origins: [%q]
  allowed_methods: [GET, POST]
  allowed_headers: [Authorization, Content-Type, X-CSRF-Token]
  allow_credentials: true
  max_age: 1m
authenticators:
  users: { type: hs256, secret: "${E2E_JWT_SECRET}", issuer: backlot, audience: backlot }
  staff: { type: session, login: users, cookie: { name: backlot_session, secure: false, same_site: lax }, ttl: 1h }
`, port, base, filepath.Join(dir, "backlot.db"), allowedOrigin)
	path := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return testutil.StartBacklot(t, testutil.BacklotCmd{
		Bin:  bin,
		Dir:  dir,
		Args: []string{"serve", "--config", path, "--log-level", "debug"},
		Env:  []string{"E2E_JWT_SECRET=" + browserJWTSecret},
		URL:  base,
	})
}

func mintUserToken(t *testing.T, sub string) string {
	t.Helper()
	a, err := authn.NewHS256("users", config.Authenticator{Type: config.AuthHS256, Secret: browserJWTSecret,
		Issuer: "backlot", Audience: "backlot"}, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Mint(sub, "acme", []string{"read"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fetchResult is what the page reports about one fetch.
type fetchResult struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	Error  string          `json:"error"` // set when fetch rejected (a CORS refusal is a TypeError)
}

// fetchFromPage runs fetch(url, opts) in the current page and returns what
// the page could see of the answer.
func fetchFromPage(t *testing.T, ctx context.Context, url string, opts map[string]any) fetchResult {
	t.Helper()
	u, _ := json.Marshal(url)
	o, _ := json.Marshal(opts)
	js := fmt.Sprintf(`(async () => {
  try {
    const r = await fetch(%s, %s);
    const text = await r.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) {}
    return {status: r.status, body: body, error: ""};
  } catch (e) {
    return {status: 0, body: null, error: e.name + ": " + e.message};
  }
})()`, u, o)
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := chromedp.Run(sctx, chromedp.Evaluate[fetchResult](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s from the page: %v", url, err)
	}
	return res
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// forgeFormPost opens the forging page at pageURL and submits its form to
// action, returning the status of the response the browser navigated to
// and the text it showed.
func forgeFormPost(t *testing.T, ctx context.Context, pageURL, action string) (int64, string) {
	t.Helper()
	navigate(t, ctx, pageURL+"/forge?action="+url.QueryEscape(action))
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(sctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`document.forms[0].submit()`)(ctx, tg)
		return err
	}))
	if err != nil {
		t.Fatalf("submit forged form from %s: %v", pageURL, err)
	}
	text, err := chromedp.Run(sctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatalf("read the page after the forged POST: %v", err)
	}
	if !strings.HasPrefix(resp.URL, action) {
		t.Fatalf("forged form landed on %s, want %s", resp.URL, action)
	}
	return resp.Status, text
}

func principalOf(t *testing.T, r fetchResult) auth.Principal {
	t.Helper()
	var p auth.Principal
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("whoami body %s: %v", r.Body, err)
	}
	return p
}

// TestBrowserCORSAndSession drives a real chromium against the real
// binary: an allowed origin reads whoami with a bearer token and with a
// session cookie; a disallowed origin's fetch is blocked by the browser; a
// cross-site and a same-site-but-foreign-origin form POST cannot log the
// session out; the page's own logout with the CSRF token can.
func TestBrowserCORSAndSession(t *testing.T) {
	browser := testutil.Browser(t)

	allowed := pageServer(t) // http://127.0.0.1:P1, the allowlisted front-end
	foreign := pageServer(t) // visited as http://localhost:P2: another site
	sibling := pageServer(t) // http://127.0.0.1:P3: same site, origin not allowed
	allowedOrigin := allowed.URL
	foreignOrigin := "http://localhost:" + portOf(t, foreign.URL)
	siblingOrigin := sibling.URL

	bk := startBacklotForBrowser(t, allowedOrigin)
	token := mintUserToken(t, "alice")
	whoami := bk.URL + "/auth/whoami"
	bearer := map[string]any{"Authorization": "Bearer " + token}

	var csrf string
	t.Run("allowed origin", func(t *testing.T) {
		navigate(t, browser, allowedOrigin+"/")

		r := fetchFromPage(t, browser, whoami, map[string]any{"credentials": "include", "headers": bearer})
		if r.Error != "" || r.Status != 200 {
			t.Fatalf("whoami with bearer: %+v", r)
		}
		if p := principalOf(t, r); p.Subject != "alice" || p.Authenticator != "users" || p.Tenant != "acme" {
			t.Fatalf("whoami principal = %+v", p)
		}

		r = fetchFromPage(t, browser, bk.URL+"/auth/session", map[string]any{"method": "POST", "credentials": "include", "headers": bearer})
		if r.Error != "" || r.Status != 200 {
			t.Fatalf("POST /auth/session: %+v", r)
		}
		var login struct {
			CSRFToken string         `json:"csrf_token"`
			Principal auth.Principal `json:"principal"`
		}
		if err := json.Unmarshal(r.Body, &login); err != nil || login.CSRFToken == "" || login.Principal.Authenticator != "staff" {
			t.Fatalf("login body %s: %v", r.Body, err)
		}
		csrf = login.CSRFToken

		// Only the cookie now: no Authorization header.
		r = fetchFromPage(t, browser, whoami, map[string]any{"credentials": "include"})
		if r.Error != "" || r.Status != 200 {
			t.Fatalf("whoami with the session cookie: %+v", r)
		}
		if p := principalOf(t, r); p.Subject != "alice" || p.Authenticator != "staff" {
			t.Fatalf("whoami principal = %+v", p)
		}
		// Without credentials the browser sends no cookie.
		r = fetchFromPage(t, browser, whoami, map[string]any{"credentials": "omit"})
		if r.Status != 401 {
			t.Fatalf("whoami without credentials: %+v", r)
		}
		r = fetchFromPage(t, browser, bk.URL+"/auth/csrf", map[string]any{"credentials": "include"})
		if r.Status != 200 || !strings.Contains(string(r.Body), csrf) {
			t.Fatalf("GET /auth/csrf: %+v", r)
		}
		// HttpOnly: page scripts on the cookie's host cannot read it.
		cookies, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.cookie`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(cookies, "backlot_session") {
			t.Fatalf("document.cookie exposes the session cookie: %q", cookies)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("disallowed origin", func(t *testing.T) {
		navigate(t, browser, foreignOrigin+"/")
		// Preflighted (custom header): the preflight gets no CORS headers.
		r := fetchFromPage(t, browser, whoami, map[string]any{"credentials": "include", "headers": bearer})
		if !strings.HasPrefix(r.Error, "TypeError") {
			t.Fatalf("fetch with bearer from %s: %+v, want a TypeError", foreignOrigin, r)
		}
		// Simple request: it is sent, but its answer is withheld from the page.
		r = fetchFromPage(t, browser, whoami, map[string]any{"credentials": "include"})
		if !strings.HasPrefix(r.Error, "TypeError") {
			t.Fatalf("simple fetch from %s: %+v, want a TypeError", foreignOrigin, r)
		}
		navigate(t, browser, siblingOrigin+"/")
		r = fetchFromPage(t, browser, whoami, map[string]any{"credentials": "include"})
		if !strings.HasPrefix(r.Error, "TypeError") {
			t.Fatalf("simple fetch from %s: %+v, want a TypeError", siblingOrigin, r)
		}
	})

	t.Run("forged form posts", func(t *testing.T) {
		// Cross-site: SameSite=Lax keeps the cookie off the request.
		status, text := forgeFormPost(t, browser, foreignOrigin, bk.URL+"/auth/logout")
		if status != 401 || !strings.Contains(text, "missing_credentials") {
			t.Errorf("cross-site forged logout: %d %s", status, text)
		}
		// Same site, other origin: the cookie goes along, so backlot's own
		// checks (Sec-Fetch-Site/Origin, then the CSRF token) must refuse it.
		status, text = forgeFormPost(t, browser, siblingOrigin, bk.URL+"/auth/logout")
		if status != 403 || !strings.Contains(text, "csrf_failed") {
			t.Errorf("same-site forged logout: %d %s", status, text)
		}

		navigate(t, browser, allowedOrigin+"/")
		r := fetchFromPage(t, browser, whoami, map[string]any{"credentials": "include"})
		if r.Status != 200 || principalOf(t, r).Authenticator != "staff" {
			t.Fatalf("session gone after forged logouts: %+v", r)
		}
	})

	t.Run("logout with the CSRF token", func(t *testing.T) {
		navigate(t, browser, allowedOrigin+"/")
		// The page's own logout without the token is refused too.
		r := fetchFromPage(t, browser, bk.URL+"/auth/logout", map[string]any{"method": "POST", "credentials": "include"})
		if r.Status != 403 {
			t.Fatalf("logout without the token: %+v", r)
		}
		r = fetchFromPage(t, browser, bk.URL+"/auth/logout", map[string]any{"method": "POST", "credentials": "include",
			"headers": map[string]any{"X-CSRF-Token": csrf}})
		if r.Error != "" || r.Status != 204 {
			t.Fatalf("logout: %+v", r)
		}
		r = fetchFromPage(t, browser, whoami, map[string]any{"credentials": "include"})
		if r.Status != 401 {
			t.Fatalf("whoami after logout: %+v", r)
		}
	})

	t.Run("server log", func(t *testing.T) {
		logs := []byte(bk.SettledStderr(t))
		// backlot saw every logout attempt and answered only the last with 204.
		var statuses []int
		for _, line := range strings.Split(string(logs), "\n") {
			var rec struct {
				Msg    string `json:"msg"`
				Method string `json:"method"`
				Path   string `json:"path"`
				Status int    `json:"status"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.Method == "POST" && rec.Path == "/auth/logout" {
				statuses = append(statuses, rec.Status)
			}
		}
		if want := []int{401, 403, 403, 204}; fmt.Sprint(statuses) != fmt.Sprint(want) {
			t.Errorf("POST /auth/logout statuses in the log = %v, want %v", statuses, want)
		}
		for name, secret := range map[string]string{"bearer token": token, "CSRF token": csrf} {
			if strings.Contains(string(logs), secret) {
				t.Errorf("the log contains the %s", name)
			}
		}
	})
}
