package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
)

func testConfig() config.CORS {
	return config.CORS{
		AllowedOrigins:   []string{"https://market.example.com", "https://*.example.com", "http://127.0.0.1:5173"},
		AllowedMethods:   []string{"GET", "post", "DELETE"},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "X-CSRF-Token"},
		AllowCredentials: true,
		MaxAge:           config.Duration(5 * time.Minute),
	}
}

// serve runs one request through the middleware in front of a handler
// that answers 401 (as an authenticated endpoint would), and reports
// whether that handler ran and whether it saw a credentialed origin.
func serve(t *testing.T, cfg config.CORS, req *http.Request) (rec *httptest.ResponseRecorder, ran, credentialed bool) {
	t.Helper()
	mw, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var calls atomic.Int32
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		credentialed = CredentialedOrigin(r)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, calls.Load() > 0, credentialed
}

func TestCORS(t *testing.T) {
	t.Parallel()
	type want struct {
		status       int
		allowOrigin  string // "" = header must be absent
		credentials  bool
		allowMethods string
		allowHeaders string
		maxAge       string
		vary         []string // each must appear in Vary
		handlerRan   bool
		credentialed bool
	}
	preflight := func(origin, method, headers string) *http.Request {
		r := httptest.NewRequest(http.MethodOptions, "/no/such/path", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		r.Header.Set("Access-Control-Request-Method", method)
		if headers != "" {
			r.Header.Set("Access-Control-Request-Headers", headers)
		}
		return r
	}
	actual := func(method, origin string) *http.Request {
		r := httptest.NewRequest(method, "/auth/whoami", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return r
	}
	preVary := []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}
	cases := []struct {
		name string
		cfg  func(*config.CORS)
		req  *http.Request
		want want
	}{
		{name: "actual exact origin", req: actual("GET", "https://market.example.com"),
			want: want{status: 401, allowOrigin: "https://market.example.com", credentials: true, vary: []string{"Origin"}, handlerRan: true, credentialed: true}},
		{name: "actual wildcard subdomain", req: actual("POST", "https://shop.example.com"),
			want: want{status: 401, allowOrigin: "https://shop.example.com", credentials: true, vary: []string{"Origin"}, handlerRan: true, credentialed: true}},
		{name: "actual wildcard deep subdomain", req: actual("GET", "https://a.b.example.com"),
			want: want{status: 401, allowOrigin: "https://a.b.example.com", credentials: true, vary: []string{"Origin"}, handlerRan: true, credentialed: true}},
		{name: "actual loopback with port", req: actual("GET", "http://127.0.0.1:5173"),
			want: want{status: 401, allowOrigin: "http://127.0.0.1:5173", credentials: true, vary: []string{"Origin"}, handlerRan: true, credentialed: true}},
		{name: "wildcard does not cover the bare domain", req: actual("GET", "https://example.com"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "wildcard scheme must match", req: actual("GET", "http://shop.example.com"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "wildcard port must match", req: actual("GET", "https://shop.example.com:8443"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "suffix lookalike", req: actual("GET", "https://evilexample.com"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "suffix appended", req: actual("GET", "https://market.example.com.evil.net"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "exact port must match", req: actual("GET", "http://127.0.0.1:5174"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "null origin", req: actual("GET", "null"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "disallowed origin", req: actual("GET", "https://evil.net"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "disallowed method on actual request", req: actual("PUT", "https://market.example.com"),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true, credentialed: true}},
		{name: "no origin still varies", req: actual("GET", ""),
			want: want{status: 401, vary: []string{"Origin"}, handlerRan: true}},
		{name: "credentials off", cfg: func(c *config.CORS) { c.AllowCredentials = false }, req: actual("GET", "https://market.example.com"),
			want: want{status: 401, allowOrigin: "https://market.example.com", vary: []string{"Origin"}, handlerRan: true}},

		{name: "preflight allowed", req: preflight("https://market.example.com", "POST", "authorization,content-type,x-csrf-token"),
			want: want{status: 204, allowOrigin: "https://market.example.com", credentials: true, allowMethods: "POST",
				allowHeaders: "authorization,content-type,x-csrf-token", maxAge: "300", vary: preVary}},
		{name: "preflight wildcard origin", req: preflight("https://app.example.com", "DELETE", ""),
			want: want{status: 204, allowOrigin: "https://app.example.com", credentials: true, allowMethods: "DELETE", maxAge: "300", vary: preVary}},
		{name: "preflight disallowed origin", req: preflight("https://evil.net", "POST", "authorization"),
			want: want{status: 204, vary: preVary}},
		{name: "preflight disallowed method", req: preflight("https://market.example.com", "PATCH", ""),
			want: want{status: 204, vary: preVary}},
		{name: "preflight disallowed header", req: preflight("https://market.example.com", "POST", "authorization,x-evil"),
			want: want{status: 204, vary: preVary}},
		{name: "preflight without origin", req: preflight("", "POST", ""),
			want: want{status: 204, vary: preVary}},
		{name: "default max age", cfg: func(c *config.CORS) { c.MaxAge = 0 }, req: preflight("https://market.example.com", "GET", ""),
			want: want{status: 204, allowOrigin: "https://market.example.com", credentials: true, allowMethods: "GET", maxAge: "600", vary: preVary}},
		{name: "default methods refuse DELETE", cfg: func(c *config.CORS) { c.AllowedMethods = nil }, req: preflight("https://market.example.com", "DELETE", ""),
			want: want{status: 204, vary: preVary}},
		{name: "default headers allow X-CSRF-Token", cfg: func(c *config.CORS) { c.AllowedHeaders = nil },
			req: preflight("https://market.example.com", "POST", "x-csrf-token"),
			want: want{status: 204, allowOrigin: "https://market.example.com", credentials: true, allowMethods: "POST",
				allowHeaders: "x-csrf-token", maxAge: "300", vary: preVary}},
		{name: "no origins configured", cfg: func(c *config.CORS) { c.AllowedOrigins = nil }, req: preflight("https://market.example.com", "GET", ""),
			want: want{status: 204, vary: preVary}},
		{name: "plain OPTIONS is not a preflight", req: actual("OPTIONS", "https://market.example.com"),
			want: want{status: 401, allowOrigin: "https://market.example.com", credentials: true, vary: []string{"Origin"}, handlerRan: true, credentialed: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			rec, ran, cred := serve(t, cfg, tc.req)
			h := rec.Header()
			if rec.Code != tc.want.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.want.status)
			}
			check := func(name, want string) {
				t.Helper()
				got, present := h[http.CanonicalHeaderKey(name)]
				switch {
				case want == "" && present:
					t.Errorf("%s = %q, want absent", name, got)
				case want != "" && strings.Join(got, ",") != want:
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			check("Access-Control-Allow-Origin", tc.want.allowOrigin)
			creds := ""
			if tc.want.credentials {
				creds = "true"
			}
			check("Access-Control-Allow-Credentials", creds)
			check("Access-Control-Allow-Methods", tc.want.allowMethods)
			check("Access-Control-Allow-Headers", tc.want.allowHeaders)
			check("Access-Control-Max-Age", tc.want.maxAge)
			vary := strings.Join(h.Values("Vary"), ", ")
			for _, v := range tc.want.vary {
				if !strings.Contains(vary, v) {
					t.Errorf("Vary = %q, want it to name %s", vary, v)
				}
			}
			if ran != tc.want.handlerRan {
				t.Errorf("handler ran = %v, want %v", ran, tc.want.handlerRan)
			}
			if cred != tc.want.credentialed {
				t.Errorf("CredentialedOrigin = %v, want %v", cred, tc.want.credentialed)
			}
		})
	}
}

func TestNewRejectsBadOrigins(t *testing.T) {
	t.Parallel()
	cases := []struct{ origin, wantErr string }{
		{"*", `"*"`},
		{"https://*", "https://*"},
		{"https://*.com", "two labels"},
		{"https://*example.com", "first label"},
		{"https://shop.*.example.com", "first label"},
		{"https://*.*.example.com", "first label"},
		{"example.com", "scheme://"},
		{"ftp://example.com", "scheme"},
		{"https://example.com/", "no path"},
		{"https://example.com/app", "no path"},
		{"https://user@example.com", "no path"},
		{"https://exa mple.com", "no path"},
		{"https://", "invalid host"},
		{"https://example.com:", "port"},
		{"https://-bad.example.com", "invalid host name"},
		{"https://*.1.2.3.4", "two labels"},
	}
	for _, tc := range cases {
		t.Run(tc.origin, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.AllowedOrigins = []string{"https://ok.example.net", tc.origin}
			_, err := New(cfg)
			if err == nil {
				t.Fatalf("New accepted origin %q", tc.origin)
			}
			if !strings.Contains(err.Error(), tc.origin) {
				t.Errorf("error %q does not name the origin %q", err, tc.origin)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewRejectsBadMethodsAndHeaders(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mod  func(*config.CORS)
	}{
		{"method star", func(c *config.CORS) { c.AllowedMethods = []string{"*"} }},
		{"method with comma", func(c *config.CORS) { c.AllowedMethods = []string{"GET,POST"} }},
		{"header star", func(c *config.CORS) { c.AllowedHeaders = []string{"*"} }},
		{"header with colon", func(c *config.CORS) { c.AllowedHeaders = []string{"X-A: b"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			tc.mod(&cfg)
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestDefaultPortNormalised(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.AllowedOrigins = []string{"https://Shop.Example.org:443"}
	rec, _, _ := serve(t, cfg, func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Origin", "https://shop.example.org")
		return r
	}())
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "https://shop.example.org" {
		t.Fatalf("Access-Control-Allow-Origin = %q, want the origin echoed", got)
	}
}

// FuzzOriginAllowed checks the matcher against an independent statement of
// the rule: an allowed Origin is exactly one of the listed origins, or a
// subdomain of the wildcard's domain with the same scheme and port.
func FuzzOriginAllowed(f *testing.F) {
	for _, s := range []string{"https://market.example.com", "https://a.example.com", "https://example.com",
		"http://127.0.0.1:5173", "null", "https://a.example.com:443", "https://A.Example.COM", "https://x.example.com.evil",
		"https://a..example.com", "https://a.example.com/", "https://user@a.example.com"} {
		f.Add(s)
	}
	m, err := newMatcher([]string{"https://market.example.com", "https://*.example.com", "http://127.0.0.1:5173"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		if !m.allowed(origin) {
			return
		}
		o := strings.ToLower(strings.TrimSuffix(origin, ":443"))
		switch {
		case o == "https://market.example.com", o == "http://127.0.0.1:5173":
		case strings.HasPrefix(o, "https://") && strings.HasSuffix(o, ".example.com"):
			sub := strings.TrimSuffix(strings.TrimPrefix(o, "https://"), ".example.com")
			for _, label := range strings.Split(sub, ".") {
				if label == "" || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
					t.Fatalf("allowed %q: bad subdomain label %q", origin, label)
				}
			}
		default:
			t.Fatalf("allowed %q", origin)
		}
	})
}

// TestPreflightHeaderNamesCaseInsensitive: header names in
// Access-Control-Request-Headers are compared case-insensitively, in any
// order, with any spacing and repeats, as browsers and clients send them.
func TestPreflightHeaderNamesCaseInsensitive(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		values  []string // Access-Control-Request-Headers lines
		allowed bool
	}{
		{"capitalised", []string{"Authorization"}, true},
		{"upper case", []string{"AUTHORIZATION"}, true},
		{"mixed, unsorted", []string{"X-CSRF-Token, Content-Type, Authorization"}, true},
		{"spaces and tabs", []string{" authorization ,\tContent-Type "}, true},
		{"repeated name", []string{"Authorization, authorization"}, true},
		{"two lines", []string{"Content-Type", "Authorization"}, true},
		{"empty elements", []string{"authorization,,content-type,"}, true},
		{"lower case (as browsers send)", []string{"authorization,content-type"}, true},
		{"one disallowed among allowed", []string{"Authorization, X-Evil"}, false},
		{"disallowed alone", []string{"X-Evil"}, false},
		{"lookalike", []string{"Authorizationx"}, false},
		{"name with inner space", []string{"Author ization"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodOptions, "/api/x", nil)
			r.Header.Set("Origin", "https://market.example.com")
			r.Header.Set("Access-Control-Request-Method", "POST")
			for _, v := range tc.values {
				r.Header.Add("Access-Control-Request-Headers", v)
			}
			rec, ran, _ := serve(t, testConfig(), r)
			if ran {
				t.Fatal("a preflight reached the handler")
			}
			got := rec.Header().Get("Access-Control-Allow-Origin")
			if tc.allowed {
				if got != "https://market.example.com" || rec.Header().Get("Access-Control-Allow-Headers") == "" {
					t.Fatalf("refused: %v", rec.Header())
				}
				for _, h := range strings.Split(rec.Header().Get("Access-Control-Allow-Headers"), ",") {
					if h != strings.ToLower(strings.TrimSpace(h)) || h == "" {
						t.Fatalf("Access-Control-Allow-Headers %q", rec.Header().Get("Access-Control-Allow-Headers"))
					}
				}
				return
			}
			for k := range rec.Header() {
				if strings.HasPrefix(k, "Access-Control-Allow") {
					t.Fatalf("disallowed preflight got %s: %v", k, rec.Header())
				}
			}
		})
	}
}
