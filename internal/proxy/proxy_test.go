package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/proxy"
	"github.com/backlothq/backlot/internal/sandbox/idv"
	"github.com/backlothq/backlot/internal/sandbox/payments"
)

// envelope is the error envelope with original_error kept raw.
type envelope struct {
	ErrorCode        int             `json:"error_code"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
	ErrorMessage     string          `json:"error_message"`
	RequestID        string          `json:"request_id"`
	OriginalError    json.RawMessage `json:"original_error"`
}

func decodeEnvelope(t *testing.T, b []byte) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not an envelope: %v: %s", err, b)
	}
	return e
}

func obj(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

var simUpstreams = map[string]config.Upstream{
	"payments":   {BaseURL: "PAY/v2", AllowPrivate: true},
	"middleware": {BaseURL: "MW", AllowPrivate: true},
}

func lookupCred(path string, fields ...string) config.Credential {
	return config.Credential{Lookup: &config.LookupCredential{URL: "MW" + path, Secret: "SECRETMW", AllowPrivate: true, BodyFields: fields}}
}

// tokenSource is a connection's token store for the proxy: it hands out
// a stale token first, and the merchant's real token after a refresh.
type tokenSource struct {
	current   atomic.Value
	fresh     string
	refreshes atomic.Int32
}

func (s *tokenSource) Token(ctx context.Context, p *auth.Principal) (string, error) {
	if p == nil || p.Subject != "staff-1" {
		return "", fmt.Errorf("no connection for %v", p)
	}
	return s.current.Load().(string), nil
}

func (s *tokenSource) Refresh(ctx context.Context, p *auth.Principal, stale string) (string, error) {
	s.refreshes.Add(1)
	s.current.Store(s.fresh)
	return s.fresh, nil
}

// TestCredentialKinds runs every credential kind against a simulator that
// checks it the way the real service does.
func TestCredentialKinds(t *testing.T) {
	t.Parallel()
	const idvToken, idvSecret = "idv-api-token", "idv-api-secret-9f8e"
	idvSim, err := idv.New(idv.Options{APIToken: idvToken, APISecret: idvSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idvSim.Close() })
	idvSrv := httptest.NewServer(idvSim)
	t.Cleanup(idvSrv.Close)

	ts := &tokenSource{}
	ts.current.Store("STAGE_stale")
	ups := map[string]config.Upstream{"idv": {BaseURL: idvSrv.URL, AllowPrivate: true}}
	for k, v := range simUpstreams {
		ups[k] = v
	}
	f := newFixture(t, setup{
		upstreams: ups,
		routes: []config.Route{
			{Match: "POST /api/account", Upstream: "payments", Path: "/account", Credential: lookupCred("/account", "account_id")},
			{Match: "POST /api/checkout", Upstream: "payments", Path: "/checkout", StripFields: []string{"account_id"},
				Credential: lookupCred("/account", "account_id")},
			{Match: "POST /api/user", Upstream: "payments", Path: "/user", StripFields: []string{"email"},
				Credential: config.Credential{Lookup: &config.LookupCredential{URL: "MW/user", Secret: "SECRETMW", AllowPrivate: true,
					PrincipalFields: map[string]string{"email": "email"}, BodyFields: nil}}},
			{Match: "POST /api/payer", Upstream: "middleware", Path: "/payer",
				Credential: config.Credential{Header: map[string]string{"Authorization": "SECRETMW"}}},
			{Match: "POST /api/credit_card", Upstream: "payments", Path: "/credit_card",
				Credential: config.Credential{Body: map[string]string{"client_id": clientIDStr, "client_secret": "SECRETPAY"}}},
			{Match: "POST /api/idv/start", Upstream: "idv", Path: "/api/v4/initiate",
				Credential: config.Credential{Basic: &config.BasicCredential{User: idvToken, Password: idvSecret}}},
			{Match: "POST /api/me", Upstream: "payments", Path: "/user", Credential: config.Credential{Connection: "payments"}},
		},
		deps: func(d *proxy.Deps) { d.Connections = map[string]proxy.TokenSource{"payments": ts} },
	})
	ts.fresh = f.pay.Merchants()[0].AccessToken

	for _, tt := range []struct {
		name, path, body string
		check            func(t *testing.T, m map[string]any)
	}{
		{"lookup", "/api/account", `{"account_id":1001}`, func(t *testing.T, m map[string]any) {
			if m["name"] != "Ada's Pottery" {
				t.Errorf("account: %v", m)
			}
		}},
		{"lookup, field stripped", "/api/checkout", `{"checkout_id":5001,"account_id":1001}`, func(t *testing.T, m map[string]any) {
			if m["checkout_id"] != float64(payments.DemoCheckoutRecent) || m["state"] != "captured" {
				t.Errorf("checkout: %v", m)
			}
		}},
		{"header", "/api/payer", `{"email":"` + payments.DemoPayerEmail + `"}`, func(t *testing.T, m map[string]any) {
			if cs, _ := m["checkouts"].([]any); len(cs) == 0 {
				t.Errorf("payer: %v", m)
			}
		}},
		{"body", "/api/credit_card", `{"credit_card_id":7001}`, func(t *testing.T, m map[string]any) {
			if m["credit_card_id"] != float64(payments.DemoCreditCard) {
				t.Errorf("credit card: %v", m)
			}
		}},
		{"basic", "/api/idv/start", `{"customerInternalReference":"shop","userReference":"u-1"}`, func(t *testing.T, m map[string]any) {
			if s, _ := m["transactionReference"].(string); s == "" {
				t.Errorf("initiate: %v", m)
			}
		}},
		{"connection, refreshed once on 401", "/api/me", ``, func(t *testing.T, m map[string]any) {
			if m["user_id"] != float64(payments.DemoUserAda) || ts.refreshes.Load() != 1 {
				t.Errorf("user %v after %d refreshes", m, ts.refreshes.Load())
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := f.call(t, "POST", tt.path, tt.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			tt.check(t, obj(t, b))
		})
	}

	t.Run("lookup with principal fields", func(t *testing.T) {
		// The token's principal has no email: the middleware refuses, and
		// its error is carried through.
		resp, b := f.call(t, "POST", "/api/user", `{}`)
		e := decodeEnvelope(t, b)
		if resp.StatusCode != 400 || e.Error != "lookup_failed" || !strings.Contains(string(e.OriginalError), "email") {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("body credential cannot be overridden", func(t *testing.T) {
		for _, body := range []string{
			`{"credit_card_id":7001,"client_secret":"guess"}`,
			`{"credit_card_id":7001,"Client_Id":1}`,
			`{"credit_card_id":7001,"CLIENT_SECRET":"x"}`,
		} {
			resp, b := f.call(t, "POST", "/api/credit_card", body)
			if e := decodeEnvelope(t, b); resp.StatusCode != 400 || e.Error != "invalid_request" {
				t.Errorf("%s: status %d: %s", body, resp.StatusCode, b)
			}
		}
	})
	t.Run("body not JSON", func(t *testing.T) {
		for _, tc := range []struct {
			body, ct string
			status   int
		}{
			{`[1,2]`, "application/json", 400},
			{`{"a":1}{"b":2}`, "application/json", 400},
			{`null`, "application/json", 400},
			{`credit_card_id=7001`, "application/x-www-form-urlencoded", 415},
		} {
			resp, b := f.call(t, "POST", "/api/credit_card", tc.body, "Content-Type", tc.ct)
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status %d, want %d: %s", tc.body, resp.StatusCode, tc.status, b)
			}
		}
	})
	t.Run("lookup of an unknown merchant keeps the middleware's 404", func(t *testing.T) {
		resp, b := f.call(t, "POST", "/api/account", `{"account_id":99999}`)
		e := decodeEnvelope(t, b)
		if resp.StatusCode != 404 || e.Error != "lookup_failed" || obj(t, e.OriginalError)["error"] != "not_found" {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("unauthenticated caller never reaches the upstream", func(t *testing.T) {
		req, _ := http.NewRequest("POST", f.front.URL+"/api/payer", strings.NewReader(`{"email":"a@b.c"}`))
		resp, b := do(t, req)
		if resp.StatusCode != 401 {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
}

// TestLookupWrongSecretIs502: a middleware refusing backlot's secret is
// backlot's configuration problem, not the caller's.
func TestLookupWrongSecretIs502(t *testing.T) {
	t.Parallel()
	f := newFixture(t, setup{upstreams: simUpstreams, routes: []config.Route{
		{Match: "POST /api/account", Upstream: "payments", Path: "/account",
			Credential: config.Credential{Lookup: &config.LookupCredential{URL: "MW/account", Secret: "wrong", AllowPrivate: true, BodyFields: []string{"account_id"}}}},
	}})
	resp, b := f.call(t, "POST", "/api/account", `{"account_id":1001}`)
	if e := decodeEnvelope(t, b); resp.StatusCode != 502 || e.Error != "lookup_failed" || len(e.OriginalError) == 0 {
		t.Errorf("status %d: %s", resp.StatusCode, b)
	}
}

// TestHeaders: the caller's credentials and hop-by-hop headers never go
// upstream; the upstream's cookies and CORS/security headers never come
// back; other headers pass both ways.
func TestHeaders(t *testing.T) {
	t.Parallel()
	rec, up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Set-Cookie", "upstream_session=abc; Path=/")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Security-Policy", "default-src *")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("X-Upstream", "kept")
		h.Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
	f := newFixture(t, setup{noSims: true,
		upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL + "/base", AllowPrivate: true}},
		routes: []config.Route{{Match: "POST /api/x", Upstream: "up", Path: "/x",
			Credential: config.Credential{Header: map[string]string{"X-Api-Key": "server-key-123"}}}},
	})
	resp, b := f.call(t, "POST", "/api/x?page=2", `{"a":1}`,
		"Cookie", "backlot_session=sess", "X-CSRF-Token", "csrf-abc", "Connection", "X-Private", "X-Private", "p",
		"Proxy-Authorization", "Basic eA==", "X-Api-Key", "caller-guess", "X-Custom", "passes", "Origin", "https://app.example",
		"X-Forwarded-For", "10.0.0.1")
	if resp.StatusCode != 200 || string(b) != `{"ok":true}` {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	for _, h := range []string{"Set-Cookie", "Access-Control-Allow-Origin", "Content-Security-Policy", "X-Hop"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("response header %s = %q passed back", h, v)
		}
	}
	if resp.Header.Get("X-Upstream") != "kept" {
		t.Errorf("X-Upstream not passed back")
	}
	got := rec.got()
	if len(got) != 1 {
		t.Fatalf("%d upstream requests", len(got))
	}
	g := got[0]
	for _, h := range []string{"Authorization", "Cookie", "X-Csrf-Token", "X-Private", "Proxy-Authorization", "Origin", "X-Forwarded-For"} {
		if v := g.header.Get(h); v != "" {
			t.Errorf("upstream got %s = %q", h, v)
		}
	}
	if g.header.Get("X-Api-Key") != "server-key-123" || len(g.header.Values("X-Api-Key")) != 1 {
		t.Errorf("X-Api-Key = %q", g.header.Values("X-Api-Key"))
	}
	if g.header.Get("X-Custom") != "passes" || g.header.Get("X-Request-Id") == "" {
		t.Errorf("headers: %v", g.header)
	}
	if g.path != "/base/x" || g.query != "page=2" || string(g.body) != `{"a":1}` {
		t.Errorf("upstream got %s?%s %s", g.path, g.query, g.body)
	}
}

// TestStreamsBodiesUnchanged: a large request and response go through
// byte for byte.
func TestStreamsBodiesUnchanged(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte(`{"k":"0123456789abcdef"},`), 200_000) // ~5 MB
	rec, up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(big)
	})
	f := newFixture(t, setup{noSims: true,
		upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}},
		routes: []config.Route{{Match: "PUT /api/blob", Upstream: "up", Path: "/blob",
			Credential: config.Credential{Header: map[string]string{"X-Api-Key": "k"}}}},
	})
	resp, b := f.call(t, "PUT", "/api/blob", string(big), "Content-Type", "application/octet-stream")
	if resp.StatusCode != 200 || !bytes.Equal(b, big) {
		t.Fatalf("status %d, %d bytes back (want %d)", resp.StatusCode, len(b), len(big))
	}
	if g := rec.got(); len(g) != 1 || !bytes.Equal(g[0].body, big) {
		t.Errorf("upstream got %d bytes", len(g[0].body))
	}
}

// TestSSRF: upstreams and lookups on loopback are refused at dial time
// without allow_private, whether named by address or by a name that
// resolves there; redirects are never followed.
func TestSSRF(t *testing.T) {
	t.Parallel()
	rec, up := newRecorder(t)
	port := up.Listener.Addr().(*net.TCPAddr).Port
	target, targetSrv := newRecorder(t)
	_, redirector := newRecorder(t, answer(302, "", "Location", targetSrv.URL+"/stolen"))
	f := newFixture(t, setup{noSims: true,
		upstreams: map[string]config.Upstream{
			"literal":  {BaseURL: up.URL},
			"named":    {BaseURL: fmt.Sprintf("http://upstream.test:%d", port)},
			"mapped":   {BaseURL: fmt.Sprintf("http://[::ffff:127.0.0.1]:%d", port)},
			"rebind":   {BaseURL: fmt.Sprintf("http://mixed.test:%d", port)},
			"open":     {BaseURL: up.URL, AllowPrivate: true},
			"redirect": {BaseURL: redirector.URL, AllowPrivate: true, Retries: intp(0)},
		},
		routes: []config.Route{
			{Match: "GET /literal", Upstream: "literal", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}},
			{Match: "GET /named", Upstream: "named", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}},
			{Match: "GET /mapped", Upstream: "mapped", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}},
			{Match: "GET /rebind", Upstream: "rebind", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}},
			{Match: "GET /lookup", Upstream: "open", Credential: config.Credential{Lookup: &config.LookupCredential{
				URL: fmt.Sprintf("http://middleware.test:%d/user", port), Secret: "s"}}},
			{Match: "GET /lookup-literal", Upstream: "open", Credential: config.Credential{Lookup: &config.LookupCredential{
				URL: up.URL + "/user", Secret: "s"}}},
			{Match: "GET /redirect", Upstream: "redirect", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}},
		},
	})
	f.resolver.mu.Lock()
	f.resolver.table["upstream.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	f.resolver.table["middleware.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	// A public answer mixed with loopback: refused as a whole.
	f.resolver.table["mixed.test"] = []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1")}
	f.resolver.mu.Unlock()

	for _, tt := range []struct{ path, code string }{
		{"/literal", "upstream_prohibited"},
		{"/named", "upstream_prohibited"},
		{"/mapped", "upstream_prohibited"},
		{"/rebind", "upstream_prohibited"},
		{"/lookup", "lookup_prohibited"},
		{"/lookup-literal", "lookup_prohibited"},
		{"/redirect", "upstream_redirect"},
	} {
		resp, b := f.call(t, "GET", tt.path, "")
		if e := decodeEnvelope(t, b); resp.StatusCode != 502 || e.Error != tt.code {
			t.Errorf("%s: status %d: %s", tt.path, resp.StatusCode, b)
		}
	}
	if n := len(rec.got()); n != 0 {
		t.Errorf("the loopback upstream was reached %d times", n)
	}
	if n := len(target.got()); n != 0 {
		t.Errorf("the redirect was followed (%d requests)", n)
	}
	if len(f.sleeps.all()) != 0 {
		t.Errorf("a refused dial was retried: %v", f.sleeps.all())
	}
}

// TestPathInjection: whatever a caller puts in a wildcard, the request
// stays on the upstream's host and under its base path; the only name
// ever resolved is the upstream's own.
func TestPathInjection(t *testing.T) {
	t.Parallel()
	rec, up := newRecorder(t)
	port := up.Listener.Addr().(*net.TCPAddr).Port
	f := newFixture(t, setup{noSims: true,
		upstreams: map[string]config.Upstream{"up": {BaseURL: fmt.Sprintf("http://upstream.test:%d/base", port), AllowPrivate: true}},
		routes: []config.Route{
			{Match: "GET /api/checkout/{id}", Upstream: "up", Path: "/checkout/{id}", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}},
			{Match: "GET /api/files/{rest...}", Upstream: "up", Path: "/files/{rest}", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}},
		},
	})
	f.resolver.mu.Lock()
	f.resolver.table["upstream.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	f.resolver.mu.Unlock()

	for _, target := range []string{
		"/api/checkout/%2F%2Fevil.example",
		"/api/checkout/@evil.example",
		"/api/checkout/user@evil.example",
		"/api/checkout/%40evil.example",
		"/api/checkout/a%2Fb",
		"/api/checkout/a%252Fb",
		"/api/checkout/%2E%2E",
		"/api/checkout/..%2F..%2Fadmin",
		"/api/checkout/http:%2F%2Fevil.example",
		"/api/checkout/http%3A%2F%2Fevil.example%2Fx",
		"/api/checkout/%5C%5Cevil.example",
		"/api/checkout/a%00b",
		"/api/checkout/a%0D%0AHost:%20evil.example",
		"/api/checkout/a%3Fx=1",
		"/api/checkout/a%23frag",
		"/api/files//evil.example/x",
		"/api/files/%2F%2Fevil.example/x",
		"/api/files/a/%2E%2E/%2E%2E/admin",
		"/api/files/a/..;/admin",
		"/api/files/http://evil.example/x",
		"/api/files/https:%2F%2Fevil.example",
		"/api/files/%EF%BC%8E%EF%BC%8E/admin",
		"/api/files/@evil.example",
		"/api/files/a\\b",
	} {
		req, err := http.NewRequest("GET", f.front.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = target // sent exactly as written
		req.Header.Set("Authorization", "Bearer "+f.token)
		resp, b := do(t, req)
		if resp.StatusCode == 200 {
			// Forwarded: it must have landed under /base on the upstream.
			got := rec.got()
			last := got[len(got)-1]
			if !strings.HasPrefix(last.rawPath, "/base/") || last.host != fmt.Sprintf("upstream.test:%d", port) {
				t.Errorf("%s reached %s%s", target, last.host, last.rawPath)
			}
			// A single-segment wildcard never adds segments.
			if strings.HasPrefix(target, "/api/checkout/") && strings.Count(last.rawPath, "/") != 3 {
				t.Errorf("%s reached %s: more segments than the template has", target, last.rawPath)
			}
			continue
		}
		if resp.StatusCode != 400 && resp.StatusCode != 404 && resp.StatusCode != 301 && resp.StatusCode != 307 {
			t.Errorf("%s: status %d: %s", target, resp.StatusCode, b)
		}
	}
	for _, g := range rec.got() {
		if !strings.HasPrefix(g.rawPath, "/base/") || strings.Contains(g.rawPath, "..") || strings.Contains(g.rawPath, "evil") && !strings.HasPrefix(g.rawPath, "/base/checkout/") && !strings.HasPrefix(g.rawPath, "/base/files/") {
			t.Errorf("upstream got %s", g.rawPath)
		}
	}
	for _, h := range f.resolver.hosts() {
		if h != "upstream.test" {
			t.Errorf("resolved %q", h)
		}
	}
	// A plain value still works.
	resp, b := f.call(t, "GET", "/api/checkout/5001", "")
	if resp.StatusCode != 200 {
		t.Fatalf("plain id: %d %s", resp.StatusCode, b)
	}
	if got := rec.got(); got[len(got)-1].rawPath != "/base/checkout/5001" {
		t.Errorf("plain id reached %s", got[len(got)-1].rawPath)
	}
	// A caller may not repeat a parameter the base URL sets.
	f2 := newFixture(t, setup{noSims: true,
		upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL + "/base?api_key=server", AllowPrivate: true}},
		routes:    []config.Route{{Match: "GET /q", Upstream: "up", Path: "/q", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}}},
	})
	if resp, b := f2.call(t, "GET", "/q?api_key=mine", ""); resp.StatusCode != 400 {
		t.Errorf("query override: %d %s", resp.StatusCode, b)
	}
	if resp, b := f2.call(t, "GET", "/q?page=1", ""); resp.StatusCode != 200 {
		t.Errorf("query: %d %s", resp.StatusCode, b)
	} else if got := rec.got(); got[len(got)-1].query != "api_key=server&page=1" {
		t.Errorf("query sent: %q", got[len(got)-1].query)
	}
}

// TestRetryPolicy covers when the proxy repeats a request and how long it
// waits (the waits are recorded, not slept).
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	cred := config.Credential{Header: map[string]string{"X-K": "k"}}
	newRoute := func(method string) []config.Route {
		return []config.Route{{Match: method + " /r", Upstream: "up", Path: "/r", Credential: cred}}
	}

	t.Run("GET retried on 503 with backoff", func(t *testing.T) {
		t.Parallel()
		rec, up := newRecorder(t, answer(503, `{"e":1}`), answer(503, `{"e":2}`), answer(200, `{"ok":true}`))
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}}, routes: newRoute("GET")})
		resp, b := f.call(t, "GET", "/r", "")
		if resp.StatusCode != 200 || string(b) != `{"ok":true}` || len(rec.got()) != 3 {
			t.Fatalf("status %d after %d attempts: %s", resp.StatusCode, len(rec.got()), b)
		}
		if w := f.sleeps.all(); len(w) != 2 || w[0] != proxy.BackoffBase || w[1] != 2*proxy.BackoffBase {
			t.Errorf("waits %v", w)
		}
	})
	t.Run("GET gives up after retries with a 502 envelope", func(t *testing.T) {
		t.Parallel()
		rec, up := newRecorder(t, answer(503, `{"error":"down"}`))
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}}, routes: newRoute("GET")})
		resp, b := f.call(t, "GET", "/r", "")
		e := decodeEnvelope(t, b)
		if resp.StatusCode != 502 || e.Error != "upstream_error" || string(e.OriginalError) != `{"error":"down"}` || len(rec.got()) != 3 {
			t.Errorf("status %d after %d attempts: %s", resp.StatusCode, len(rec.got()), b)
		}
	})
	t.Run("POST not retried once written", func(t *testing.T) {
		t.Parallel()
		rec, up := newRecorder(t, answer(503, `{"e":1}`), answer(200, `{"ok":true}`))
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}}, routes: newRoute("POST")})
		resp, b := f.call(t, "POST", "/r", `{"refund":1}`)
		if resp.StatusCode != 502 || len(rec.got()) != 1 || len(f.sleeps.all()) != 0 {
			t.Errorf("status %d after %d attempts: %s", resp.StatusCode, len(rec.got()), b)
		}
	})
	t.Run("Retry-After beyond 30s fails fast with 503 and the hint", func(t *testing.T) {
		t.Parallel()
		rec, up := newRecorder(t, answer(503, `{"error":"maintenance"}`, "Retry-After", "3600"))
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}}, routes: newRoute("GET")})
		resp, b := f.call(t, "GET", "/r", "")
		e := decodeEnvelope(t, b)
		if resp.StatusCode != 503 || e.Error != "upstream_unavailable" || resp.Header.Get("Retry-After") != "3600" ||
			!strings.Contains(e.ErrorDescription, "3600") || string(e.OriginalError) != `{"error":"maintenance"}` {
			t.Errorf("status %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		if len(rec.got()) != 1 || len(f.sleeps.all()) != 0 {
			t.Errorf("%d attempts, waits %v", len(rec.got()), f.sleeps.all())
		}
	})
	t.Run("Retry-After within 30s is honoured", func(t *testing.T) {
		t.Parallel()
		rec, up := newRecorder(t, answer(429, `{"error":"throttled"}`, "Retry-After", "3"), answer(200, `{}`))
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}}, routes: newRoute("GET")})
		resp, b := f.call(t, "GET", "/r", "")
		if resp.StatusCode != 200 || len(rec.got()) != 2 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if w := f.sleeps.all(); len(w) != 1 || w[0] != 3*time.Second {
			t.Errorf("waits %v", w)
		}
	})
	t.Run("no wait beyond the request's deadline", func(t *testing.T) {
		t.Parallel()
		rec, up := newRecorder(t, answer(429, `{"error":"throttled"}`, "Retry-After", "20"))
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}}, routes: newRoute("GET")})
		h := f.front.Config.Handler
		f.front.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			h.ServeHTTP(w, r.WithContext(ctx))
		})
		resp, b := f.call(t, "GET", "/r", "")
		e := decodeEnvelope(t, b)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "20" || string(e.OriginalError) != `{"error":"throttled"}` {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
		if len(rec.got()) != 1 || len(f.sleeps.all()) != 0 {
			t.Errorf("%d attempts, waits %v", len(rec.got()), f.sleeps.all())
		}
	})
	t.Run("connection refused before writing is retried for POST", func(t *testing.T) {
		t.Parallel()
		// A port with nothing listening; the upstream comes up during the
		// first wait, and the POST body arrives whole on the second try.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		rec := &recorder{}
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: "http://" + addr, AllowPrivate: true}}, routes: newRoute("POST")})
		var once sync.Once
		f.sleeps.onSleep = func(int) {
			once.Do(func() {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("relisten %s: %v", addr, err)
					return
				}
				srv := &http.Server{Handler: rec}
				go srv.Serve(ln)
				t.Cleanup(func() { srv.Close() })
			})
		}
		resp, b := f.call(t, "POST", "/r", `{"amount":10}`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if g := rec.got(); len(g) != 1 || string(g[0].body) != `{"amount":10}` || len(f.sleeps.all()) != 1 {
			t.Errorf("upstream got %v after waits %v", g, f.sleeps.all())
		}
	})
	t.Run("connection refused on every try", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: "http://" + addr, AllowPrivate: true, Retries: intp(3)}}, routes: newRoute("POST")})
		resp, b := f.call(t, "POST", "/r", `{}`)
		if e := decodeEnvelope(t, b); resp.StatusCode != 502 || e.Error != "upstream_unreachable" || len(f.sleeps.all()) != 3 {
			t.Errorf("status %d after waits %v: %s", resp.StatusCode, f.sleeps.all(), b)
		}
	})
	t.Run("retries: 0 turns retries off", func(t *testing.T) {
		t.Parallel()
		rec, up := newRecorder(t, answer(503, `{}`), answer(200, `{}`))
		f := newFixture(t, setup{noSims: true, upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true, Retries: intp(0)}}, routes: newRoute("GET")})
		if resp, _ := f.call(t, "GET", "/r", ""); resp.StatusCode != 502 || len(rec.got()) != 1 {
			t.Errorf("status %d after %d attempts", resp.StatusCode, len(rec.got()))
		}
	})
}

// TestEnvelope: upstream errors come back in the envelope with the
// upstream's body verbatim.
func TestEnvelope(t *testing.T) {
	t.Parallel()
	// Whitespace, key order and characters encoding/json would escape
	// must all survive.
	weird := "{\n  \"error\": \"invalid_request\",\n  \"error_description\": \"amount <must> be & > 0\",\n  \"z\": 1, \"a\": [1.50, 2e3]\n}\n"
	_, up := newRecorder(t,
		answer(400, weird, "Content-Type", "application/json"),
		answer(404, "<html>Not here</html>", "Content-Type", "text/html"),
		answer(500, `{"error":"boom","trace":"at x.go:12"}`),
		answer(401, ``),
	)
	f := newFixture(t, setup{noSims: true,
		upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true, Retries: intp(0)}},
		routes:    []config.Route{{Match: "POST /e", Upstream: "up", Credential: config.Credential{Header: map[string]string{"X-K": "k"}}}},
	})

	resp, b := f.call(t, "POST", "/e", `{}`)
	e := decodeEnvelope(t, b)
	if resp.StatusCode != 400 || e.ErrorCode != 400 || e.Error != "upstream_error" || e.ErrorMessage != "amount <must> be & > 0" || e.RequestID == "" {
		t.Errorf("4xx: %d %s", resp.StatusCode, b)
	}
	if !bytes.Contains(b, []byte(`"original_error":`+strings.TrimSpace(weird)+"}")) {
		t.Errorf("original_error not byte-identical:\n%s", b)
	}

	resp, b = f.call(t, "POST", "/e", `{}`)
	e = decodeEnvelope(t, b)
	var s string
	if resp.StatusCode != 404 || json.Unmarshal(e.OriginalError, &s) != nil || s != "<html>Not here</html>" {
		t.Errorf("non-JSON: %d %s", resp.StatusCode, b)
	}

	resp, b = f.call(t, "POST", "/e", `{}`)
	e = decodeEnvelope(t, b)
	if resp.StatusCode != 502 || e.ErrorCode != 502 || string(e.OriginalError) != `{"error":"boom","trace":"at x.go:12"}` ||
		strings.Contains(e.ErrorMessage, "boom") {
		t.Errorf("5xx: %d %s", resp.StatusCode, b)
	}

	resp, b = f.call(t, "POST", "/e", `{}`)
	e = decodeEnvelope(t, b)
	if resp.StatusCode != 401 || e.OriginalError != nil || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("empty 401: %d %s", resp.StatusCode, b)
	}
}

// TestWePayErrorShape: the seed's own example, end to end through the
// simulator: a refund after 60 days.
func TestWePayErrorShape(t *testing.T) {
	t.Parallel()
	f := newFixture(t, setup{upstreams: simUpstreams, routes: []config.Route{
		{Match: "POST /api/refund", Upstream: "payments", Path: "/checkout/refund", StripFields: []string{"account_id"},
			Credential: lookupCred("/account", "account_id")},
	}})
	resp, b := f.call(t, "POST", "/api/refund", fmt.Sprintf(`{"account_id":%d,"checkout_id":%d,"refund_reason":"late"}`,
		payments.DemoAccountPottery, payments.DemoCheckoutOld))
	e := decodeEnvelope(t, b)
	if resp.StatusCode != 400 || e.ErrorMessage != "Cannot refund checkout after 60 days" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if o := obj(t, e.OriginalError); o["error"] != "invalid_request" || o["error_code"] != float64(1003) ||
		o["error_description"] != "Cannot refund checkout after 60 days" || len(o) != 3 {
		t.Errorf("original_error %s", e.OriginalError)
	}
}

// TestTimeout: an upstream that does not answer within its timeout gives
// a 504 envelope (and is not retried: a timed-out attempt may have
// happened).
func TestTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, setup{
		upstreams: map[string]config.Upstream{"payments": {BaseURL: "PAY/v2", AllowPrivate: true, Timeout: config.Duration(200 * time.Millisecond)},
			"middleware": {BaseURL: "MW", AllowPrivate: true}},
		routes: []config.Route{{Match: "POST /api/account", Upstream: "payments", Path: "/account", Credential: lookupCred("/account", "account_id")}},
	})
	f.pay.SetFault("/account", payments.Fault{Hang: true})
	start := time.Now()
	resp, b := f.call(t, "POST", "/api/account", `{"account_id":1001}`)
	e := decodeEnvelope(t, b)
	if resp.StatusCode != 504 || e.Error != "upstream_timeout" {
		t.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	if n := f.observations(t, "payments", "timeout"); n != 1 {
		t.Errorf("%d timeout observations in metrics, want 1", n)
	}
	f.pay.Reset()
}

// TestCredentialsNeverLeak sends successes and failures of every kind and
// greps everything the caller, the logs and /metrics can see for the
// server-held secrets and the merchant's token.
func TestCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	f := newFixture(t, setup{upstreams: simUpstreams, routes: []config.Route{
		{Match: "POST /api/account", Upstream: "payments", Path: "/account", Credential: lookupCred("/account", "account_id")},
		{Match: "POST /api/payer", Upstream: "middleware", Path: "/payer", Credential: config.Credential{Header: map[string]string{"Authorization": "SECRETMW"}}},
		{Match: "POST /api/credit_card", Upstream: "payments", Path: "/credit_card",
			Credential: config.Credential{Body: map[string]string{"client_id": clientIDStr, "client_secret": "SECRETPAY"}}},
		{Match: "POST /api/refund", Upstream: "payments", Path: "/checkout/refund", StripFields: []string{"account_id"}, Credential: lookupCred("/account", "account_id")},
	}})
	merchant := f.pay.Merchants()[0].AccessToken
	var seen strings.Builder
	for _, c := range []struct{ path, body string }{
		{"/api/account", `{"account_id":1001}`},
		{"/api/account", `{"account_id":1003}`},
		{"/api/account", `{"account_id":424242}`},
		{"/api/account", `{"account_id":"x"}`},
		{"/api/payer", `{"email":"` + payments.DemoPayerEmail + `"}`},
		{"/api/payer", `{"email":"nope"}`},
		{"/api/credit_card", `{"credit_card_id":7001}`},
		{"/api/credit_card", `{"credit_card_id":1}`},
		{"/api/refund", `{"account_id":1001,"checkout_id":5004,"refund_reason":"x"}`},
		{"/api/refund", `{"account_id":1001,"checkout_id":5101,"refund_reason":"x"}`},
	} {
		resp, b := f.call(t, "POST", c.path, c.body)
		fmt.Fprintf(&seen, "%d %v %s\n", resp.StatusCode, resp.Header, b)
	}
	f.pay.SetFault("*", payments.Fault{Status: 500})
	resp, b := f.call(t, "POST", "/api/account", `{"account_id":1001}`)
	fmt.Fprintf(&seen, "%d %v %s\n", resp.StatusCode, resp.Header, b)
	f.pay.Reset()

	all := map[string]string{"responses": seen.String(), "logs": f.logs.String(), "metrics": f.metricsText(t)}
	for where, text := range all {
		for name, secret := range map[string]string{"middleware secret": mwSecret, "client secret": f.paySecret, "merchant token": merchant} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain the %s", where, name)
			}
		}
	}
	if !strings.Contains(all["metrics"], "backlot_upstream_request_duration_seconds") || !strings.Contains(all["metrics"], "lookup:") {
		t.Errorf("metrics lack the upstream histogram:\n%s", all["metrics"])
	}
	if !strings.Contains(all["logs"], "proxy failure") {
		t.Errorf("the 5xx was not logged:\n%s", all["logs"])
	}
}

// TestRegisterConflict: a route that collides with another is an error at
// start-up, not a panic; a connection route needs its token source.
func TestRegisterConflict(t *testing.T) {
	t.Parallel()
	_, up := newRecorder(t)
	cred := config.Credential{Header: map[string]string{"X-K": "k"}}
	set, err := proxy.New(map[string]config.Upstream{"up": {BaseURL: up.URL}}, []config.Route{
		{Match: "GET /a/{x}", Auth: []string{"users"}, Upstream: "up", Path: "/a/{x}", Credential: cred},
		{Match: "GET /a/{y}", Auth: []string{"users"}, Upstream: "up", Path: "/a/{y}", Credential: cred},
	}, proxy.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if h := set.Handler("GET /a/{x}"); h == nil {
		t.Error("Handler: nil")
	}
	as, err := authn.NewSet(map[string]config.Authenticator{"users": {Type: config.AuthHS256,
		Secret: jwtSecret, InvalidStatus: 401, TTL: config.Duration(time.Hour)}}, nil, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Register(http.NewServeMux(), as); err == nil || !strings.Contains(err.Error(), "GET /a/{y}") {
		t.Errorf("conflict: %v", err)
	}
	if _, err := proxy.New(map[string]config.Upstream{"up": {BaseURL: up.URL}}, []config.Route{
		{Match: "GET /c", Auth: []string{"users"}, Upstream: "up", Credential: config.Credential{Connection: "acme"}},
	}, proxy.Deps{}); err == nil || !strings.Contains(err.Error(), "acme") {
		t.Errorf("connection without a token source: %v", err)
	}
}
