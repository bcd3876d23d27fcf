package extensionapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backlothq/backlot/internal/sandbox/issuer"
	"github.com/backlothq/backlot/internal/testutil"
)

// extensionPage serves the page an extension front-end would be: a blank
// document the test drives with fetch.
func extensionPage(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>extension</title></head><body>extension</body></html>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fetchResult is what the page could see of one fetch.
type fetchResult struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	Error  string          `json:"error"` // set when fetch rejected (a CORS refusal is a TypeError)
}

// fetchWithToken opens pageURL and, from that page, fetches target with
// the bearer token and credentials: "include", as the extension does.
func fetchWithToken(t *testing.T, ctx context.Context, pageURL, target, token string) fetchResult {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("open %s: %v", pageURL, err)
	}
	u, _ := json.Marshal(target)
	tok, _ := json.Marshal("Bearer " + token)
	js := fmt.Sprintf(`(async () => {
  try {
    const r = await fetch(%s, {credentials: "include", headers: {Authorization: %s}});
    const text = await r.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) {}
    return {status: r.status, body: body, error: ""};
  } catch (e) {
    return {status: 0, body: null, error: e.name + ": " + e.message};
  }
})()`, u, tok)
	res, err := chromedp.Run(sctx, chromedp.Evaluate[fetchResult](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s from %s: %v", target, pageURL, err)
	}
	return res
}

// requestsLogged counts backlot's request log lines for method and path,
// once every line of the requests made so far is written.
func requestsLogged(t *testing.T, p *testutil.Proc, method, path string) int {
	t.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(p.SettledStderr(t)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct{ Msg, Method, Path string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "request" && line.Method == method && line.Path == path {
			n++
		}
	}
	return n
}

// TestBrowser drives a real Chromium against the recipe. Pages on two
// allowlisted origins (an exact one and one matched by a "*." wildcard)
// call GET /auth/whoami with the bearer token and credentials, and read
// the principal, or the envelope when the token has expired; the same
// call from a page on another origin is rejected by the browser after
// the preflight, and never reaches backlot.
//
// Browser origins include the port, so the allowlist is the recipe's
// shape with loopback origins (BACKLOT_CORS_ALLOWED_ORIGINS): the page
// server's http://localhost:P and http://*.app.localhost:P (Chromium
// resolves *.localhost to loopback by itself), while the same server as
// http://127.0.0.1:P is a different, unlisted origin.
func TestBrowser(t *testing.T) {
	t.Parallel()
	browser := testutil.Browser(t)
	page := extensionPage(t)
	pu, err := url.Parse(page.URL)
	if err != nil {
		t.Fatal(err)
	}
	port := pu.Port()
	exact := "http://localhost:" + port
	wildcardPage := "http://ext.app.localhost:" + port
	disallowed := "http://127.0.0.1:" + port

	rc := startRecipe(t, nil, "BACKLOT_CORS_ALLOWED_ORIGINS="+exact+",http://*.app.localhost:"+port)
	whoami := rc.base + "/auth/whoami"
	token := rc.mint(t, issuer.Claims{Subject: "u-browser", Name: "eve@example.com", Tenant: "INITECH"})

	allowed := []struct {
		name, page, token string
		status            int
	}{
		{"exact origin", exact, token, 200},
		{"wildcard origin", wildcardPage, token, 200},
		{"exact origin, expired token", exact, rc.mint(t, issuer.Claims{TTL: -10 * time.Minute}), 401},
	}
	for _, c := range allowed {
		t.Run(c.name, func(t *testing.T) {
			r := fetchWithToken(t, browser, c.page+"/", whoami, c.token)
			if r.Error != "" || r.Status != c.status {
				t.Fatalf("fetch from %s: %+v, want status %d", c.page, r, c.status)
			}
			if c.status == 200 {
				var p principal
				decodeStrict(t, r.Body, &p)
				if p.Authenticator != "extension" || p.Subject != "u-browser" || p.Email != "eve@example.com" || p.Tenant != "INITECH" {
					t.Errorf("principal %+v", p)
				}
				return
			}
			var e envelope
			decodeStrict(t, r.Body, &e)
			if e.ErrorCode != c.status || e.Error != "invalid_token" || e.ErrorMessage == "" {
				t.Errorf("the page read the envelope %+v", e)
			}
		})
	}
	if t.Failed() {
		return
	}

	t.Run("disallowed origin", func(t *testing.T) {
		gets := requestsLogged(t, rc.proc, http.MethodGet, "/auth/whoami")
		preflights := requestsLogged(t, rc.proc, http.MethodOptions, "/auth/whoami")
		r := fetchWithToken(t, browser, disallowed+"/", whoami, token)
		if r.Error == "" || r.Status != 0 || r.Body != nil && string(r.Body) != "null" {
			t.Fatalf("fetch from %s: %+v, want it rejected by the browser", disallowed, r)
		}
		if !strings.Contains(r.Error, "TypeError") {
			t.Errorf("fetch rejected with %q, want a TypeError", r.Error)
		}
		// The preflight reached backlot and got no CORS headers, so the
		// browser never sent the request carrying the token.
		deadline := time.Now().Add(5 * time.Second)
		for requestsLogged(t, rc.proc, http.MethodOptions, "/auth/whoami") == preflights && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := requestsLogged(t, rc.proc, http.MethodOptions, "/auth/whoami"); got != preflights+1 {
			t.Errorf("preflights logged %d, want %d", got, preflights+1)
		}
		if got := requestsLogged(t, rc.proc, http.MethodGet, "/auth/whoami"); got != gets {
			t.Errorf("GET /auth/whoami logged %d times, want still %d: the token was sent", got, gets)
		}
	})
}
