package authn_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/authn"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/cors"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/testutil"
)

// TestMain tears down the shared PostgreSQL server the session tests use.
func TestMain(m *testing.M) { testutil.Main(m) }

const sessAllowedOrigin = "https://dash.example.com"

// sessionStores runs fn once per store backend.
func sessionStores(t *testing.T, fn func(t *testing.T, open func(t *testing.T) store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, func(t *testing.T) store.Store { return testutil.SQLite(t) })
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, func(t *testing.T) store.Store { return testutil.PostgresStore(t) })
	})
}

type sessFixture struct {
	set   *authn.Set
	store store.Store
	clock *testutil.Clock
	url   string
	logs  *lockedBuffer
}

func sessCfgs(mod func(staff *config.Authenticator)) map[string]config.Authenticator {
	staff := config.Authenticator{Type: config.AuthSession, Login: "users"}
	if mod != nil {
		mod(&staff)
	}
	return map[string]config.Authenticator{
		"users": hsCfg(),
		"ops":   {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "ops", SHA256: sha256Hex(testAPIKey)}}},
		"staff": staff,
	}
}

// newSessFixture serves the set's endpoints and an /api/ route accepting
// staff (echoing principal and body) behind the CORS middleware, as the
// server chain would.
func newSessFixture(t *testing.T, st store.Store, cfgs map[string]config.Authenticator) *sessFixture {
	t.Helper()
	f := &sessFixture{store: st, clock: newTestClock(), logs: &lockedBuffer{}}
	set, err := authn.NewSet(cfgs, nil, authn.Deps{
		Logger:  slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: prometheus.NewRegistry(),
		Now:     f.clock.Now,
		Store:   st,
	})
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	set.SetFailureLimit(1000, 1000)
	f.set = set
	mux := http.NewServeMux()
	set.Register(mux)
	mux.Handle("/api/", set.Require([]string{"staff"}, auth.Rule{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		var body strings.Builder
		if r.Body != nil {
			buf := make([]byte, 4096)
			for {
				n, err := r.Body.Read(buf)
				body.Write(buf[:n])
				if err != nil {
					break
				}
			}
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"principal": p, "body": body.String()})
	})))
	mw, err := cors.New(config.CORS{AllowedOrigins: []string{sessAllowedOrigin}, AllowCredentials: true,
		AllowedMethods: []string{"GET", "POST", "DELETE"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw(mux))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// login exchanges a fresh users token for a session: cookie value and
// CSRF token.
func (f *sessFixture) login(t *testing.T, sub string) (cookie, csrf string) {
	t.Helper()
	r := doReq(t, "POST", f.url+"/auth/session", bearerHdr(f.mint(t, sub)), "")
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	var body struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.CSRFToken == "" {
		t.Fatalf("login body %s: %v", r.body, err)
	}
	c := findCookie(r.header, "backlot_session")
	if c == nil || c.Value == "" {
		t.Fatalf("login set no session cookie: %v", r.header.Values("Set-Cookie"))
	}
	return c.Value, body.CSRFToken
}

func (f *sessFixture) mint(t *testing.T, sub string) string {
	t.Helper()
	a, _ := f.set.Get("users")
	tok, err := a.(*authn.HS256).Mint(sub, "t1", []string{"read"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func findCookie(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func cookieHdr(v string) map[string]string {
	return map[string]string{"Cookie": "backlot_session=" + v}
}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestSessionLogin(t *testing.T) {
	t.Parallel()
	sessionStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		f := newSessFixture(t, open(t), sessCfgs(nil))
		expiredTok := func() string {
			a, _ := f.set.Get("users")
			tok, err := a.(*authn.HS256).Mint("alice", "", nil, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}()
		cases := []struct {
			name     string
			query    string
			hdr      map[string]string
			advance  time.Duration
			status   int
			code     string
			loggedIn bool
		}{
			{name: "valid hs256 token", hdr: bearerHdr(f.mint(t, "alice")), status: 200, loggedIn: true},
			{name: "named authenticator", query: "?authenticator=staff", hdr: bearerHdr(f.mint(t, "alice")), status: 200, loggedIn: true},
			{name: "no credential", status: 401, code: "missing_credentials"},
			{name: "forged token", hdr: bearerHdr(f.mint(t, "alice") + "x"), status: 401, code: "invalid_token"},
			{name: "credential of another authenticator", hdr: bearerHdr(testAPIKey), status: 401, code: "invalid_token"},
			{name: "expired token", hdr: bearerHdr(expiredTok), advance: 2 * time.Hour, status: 401, code: "invalid_token"},
			{name: "cross-site login", hdr: with(bearerHdr(f.mint(t, "alice")), "Sec-Fetch-Site", "cross-site"), status: 403, code: "csrf_failed"},
			{name: "foreign origin login", hdr: with(bearerHdr(f.mint(t, "alice")), "Origin", "https://evil.example.net"), status: 403, code: "csrf_failed"},
			{name: "allowed CORS origin login", hdr: with(bearerHdr(f.mint(t, "alice")), "Origin", sessAllowedOrigin, "Sec-Fetch-Site", "cross-site"), status: 200, loggedIn: true},
			{name: "unknown session authenticator", query: "?authenticator=users", hdr: bearerHdr(f.mint(t, "alice")), status: 400, code: "unknown_authenticator"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if tc.advance != 0 {
					f.clock.Advance(tc.advance)
					defer f.clock.Advance(-tc.advance)
				}
				r := doReq(t, "POST", f.url+"/auth/session"+tc.query, tc.hdr, "")
				if r.status != tc.status || r.env.Error != tc.code {
					t.Fatalf("got %d %q (%s), want %d %q", r.status, r.env.Error, r.body, tc.status, tc.code)
				}
				c := findCookie(r.header, "backlot_session")
				if !tc.loggedIn {
					if c != nil {
						t.Fatalf("refused login set a cookie: %v", c)
					}
					return
				}
				if c == nil {
					t.Fatal("no session cookie")
				}
				var body struct {
					CSRFToken string         `json:"csrf_token"`
					ExpiresAt time.Time      `json:"expires_at"`
					Principal auth.Principal `json:"principal"`
				}
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatal(err)
				}
				if body.CSRFToken == "" || body.Principal.Subject != "alice" || body.Principal.Authenticator != "staff" {
					t.Errorf("body = %s", r.body)
				}
				if want := f.clock.Now().Add(config.SessionTTLDefault); !body.ExpiresAt.Equal(want) {
					t.Errorf("expires_at = %v, want %v", body.ExpiresAt, want)
				}
				if strings.Contains(string(r.body), c.Value) {
					t.Error("the response body carries the session id")
				}
				// The cookie alone now authenticates.
				who := doReq(t, "GET", f.url+"/auth/whoami", cookieHdr(c.Value), "")
				if who.status != 200 || !strings.Contains(string(who.body), `"authenticator":"staff"`) ||
					!strings.Contains(string(who.body), `"subject":"alice"`) {
					t.Fatalf("whoami with the cookie: %d %s", who.status, who.body)
				}
			})
		}
	})
}

func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	no := false
	cases := []struct {
		name string
		mod  func(*config.Authenticator)
		want []string // substrings of Set-Cookie
		not  []string
	}{
		{name: "defaults", want: []string{"backlot_session=", "Path=/", "Max-Age=43200", "HttpOnly", "Secure", "SameSite=Lax"}, not: []string{"Domain="}},
		{name: "insecure strict custom", mod: func(a *config.Authenticator) {
			a.Cookie = config.SessionCookie{Name: "sid", Secure: &no, SameSite: "strict", Path: "/app", Domain: "example.com"}
			a.TTL = config.Duration(time.Hour)
		}, want: []string{"sid=", "Path=/app", "Domain=example.com", "Max-Age=3600", "HttpOnly", "SameSite=Strict"}, not: []string{"Secure"}},
		{name: "same_site none", mod: func(a *config.Authenticator) { a.Cookie.SameSite = "none" },
			want: []string{"HttpOnly", "Secure", "SameSite=None"}},
		{name: "__Host- prefix", mod: func(a *config.Authenticator) { a.Cookie.Name = "__Host-sid" },
			want: []string{"__Host-sid=", "Path=/", "Secure"}, not: []string{"Domain="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newSessFixture(t, testutil.SQLite(t), sessCfgs(tc.mod))
			r := doReq(t, "POST", f.url+"/auth/session", bearerHdr(f.mint(t, "alice")), "")
			if r.status != 200 {
				t.Fatalf("login: %d %s", r.status, r.body)
			}
			sc := strings.Join(r.header.Values("Set-Cookie"), "\n")
			for _, w := range tc.want {
				if !strings.Contains(sc, w) {
					t.Errorf("Set-Cookie %q lacks %q", sc, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(sc, w) {
					t.Errorf("Set-Cookie %q has %q", sc, w)
				}
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
			}
		})
	}
}

func TestSessionConfigErrors(t *testing.T) {
	t.Parallel()
	no := false
	cases := []struct {
		name    string
		mod     func(cfgs map[string]config.Authenticator)
		noStore bool
		wantErr string
	}{
		{name: "no login", mod: func(c map[string]config.Authenticator) { s := c["staff"]; s.Login = ""; c["staff"] = s }, wantErr: "login"},
		{name: "unknown login", mod: func(c map[string]config.Authenticator) { s := c["staff"]; s.Login = "nobody"; c["staff"] = s }, wantErr: `"nobody"`},
		{name: "login is a session", mod: func(c map[string]config.Authenticator) {
			c["a_staff"] = config.Authenticator{Type: config.AuthSession, Login: "users"}
			s := c["staff"]
			s.Login = "a_staff"
			c["staff"] = s
		}, wantErr: "itself a session"},
		{name: "none without secure", mod: func(c map[string]config.Authenticator) {
			s := c["staff"]
			s.Cookie = config.SessionCookie{SameSite: "none", Secure: &no}
			c["staff"] = s
		}, wantErr: "same_site"},
		{name: "bad same_site", mod: func(c map[string]config.Authenticator) { s := c["staff"]; s.Cookie.SameSite = "loose"; c["staff"] = s }, wantErr: "same_site"},
		{name: "bad cookie name", mod: func(c map[string]config.Authenticator) { s := c["staff"]; s.Cookie.Name = "a;b"; c["staff"] = s }, wantErr: "cookie.name"},
		{name: "__Host- with path", mod: func(c map[string]config.Authenticator) {
			s := c["staff"]
			s.Cookie = config.SessionCookie{Name: "__Host-x", Path: "/app"}
			c["staff"] = s
		}, wantErr: "__Host-"},
		{name: "bad path", mod: func(c map[string]config.Authenticator) { s := c["staff"]; s.Cookie.Path = "app"; c["staff"] = s }, wantErr: "cookie.path"},
		{name: "negative ttl", mod: func(c map[string]config.Authenticator) {
			s := c["staff"]
			s.TTL = config.Duration(-time.Second)
			c["staff"] = s
		}, wantErr: "ttl"},
		{name: "no store", noStore: true, wantErr: "store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfgs := sessCfgs(nil)
			if tc.mod != nil {
				tc.mod(cfgs)
			}
			deps := authn.Deps{}
			if !tc.noStore {
				deps.Store = testutil.SQLite(t)
			}
			_, err := authn.NewSet(cfgs, nil, deps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewSet error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSessionCSRF(t *testing.T) {
	t.Parallel()
	sessionStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		f := newSessFixture(t, open(t), sessCfgs(nil))
		cookie, csrf := f.login(t, "alice")
		_, otherCSRF := f.login(t, "bob")
		randomID := make([]byte, 32)
		rand.Read(randomID)
		ck := cookieHdr(cookie)
		cases := []struct {
			name     string
			method   string
			hdr      map[string]string
			body     string
			status   int
			code     string
			wantBody string // what the handler read, when it ran
		}{
			{name: "GET needs no token", method: "GET", hdr: ck, status: 200},
			{name: "HEAD needs no token", method: "HEAD", hdr: ck, status: 200},
			{name: "POST without token", method: "POST", hdr: ck, status: 403, code: "csrf_failed"},
			{name: "POST wrong header token", method: "POST", hdr: with(ck, "X-CSRF-Token", csrf+"x"), status: 403, code: "csrf_failed"},
			{name: "POST another session's token", method: "POST", hdr: with(ck, "X-CSRF-Token", otherCSRF), status: 403, code: "csrf_failed"},
			{name: "POST right header token", method: "POST", hdr: with(ck, "X-CSRF-Token", csrf), status: 200},
			{name: "DELETE right header token", method: "DELETE", hdr: with(ck, "X-CSRF-Token", csrf), status: 200},
			{name: "POST right token in JSON body", method: "POST", hdr: with(ck, "Content-Type", "application/json"),
				body: `{"a":1,"csrf_token":"` + csrf + `","b":{"c":"d"}}`, status: 200, wantBody: `{"a":1,"b":{"c":"d"}}`},
			{name: "POST wrong token in JSON body", method: "POST", hdr: with(ck, "Content-Type", "application/json"),
				body: `{"csrf_token":"nope"}`, status: 403, code: "csrf_failed"},
			{name: "POST token in a non-JSON body", method: "POST", hdr: with(ck, "Content-Type", "application/x-www-form-urlencoded"),
				body: `csrf_token=` + csrf, status: 403, code: "csrf_failed"},
			{name: "POST token in JSON with trailing data", method: "POST", hdr: with(ck, "Content-Type", "application/json"),
				body: `{"csrf_token":"` + csrf + `"} {}`, status: 403, code: "csrf_failed"},
			{name: "POST JSON body without token", method: "POST", hdr: with(ck, "Content-Type", "application/json"),
				body: `{"a":1}`, status: 403, code: "csrf_failed"},
			{name: "header token wins, body untouched", method: "POST", hdr: with(ck, "X-CSRF-Token", csrf, "Content-Type", "application/json"),
				body: `{"a":1}`, status: 200, wantBody: `{"a":1}`},
			{name: "cross-site with right token", method: "POST", hdr: with(ck, "X-CSRF-Token", csrf, "Sec-Fetch-Site", "cross-site"), status: 403, code: "csrf_failed"},
			{name: "same-site foreign origin with right token", method: "POST",
				hdr: with(ck, "X-CSRF-Token", csrf, "Sec-Fetch-Site", "same-site", "Origin", "https://other.example.com"), status: 403, code: "csrf_failed"},
			{name: "foreign Origin without Sec-Fetch-Site", method: "POST", hdr: with(ck, "X-CSRF-Token", csrf, "Origin", "https://evil.example.net"), status: 403, code: "csrf_failed"},
			{name: "same-origin fetch with right token", method: "POST", hdr: with(ck, "X-CSRF-Token", csrf, "Sec-Fetch-Site", "same-origin"), status: 200},
			{name: "allowed CORS origin with right token", method: "POST",
				hdr: with(ck, "X-CSRF-Token", csrf, "Sec-Fetch-Site", "cross-site", "Origin", sessAllowedOrigin), status: 200},
			{name: "allowed CORS origin without token", method: "POST",
				hdr: with(ck, "Sec-Fetch-Site", "cross-site", "Origin", sessAllowedOrigin), status: 403, code: "csrf_failed"},
			{name: "malformed cookie", method: "GET", hdr: cookieHdr("not-a-session"), status: 401, code: "invalid_token"},
			{name: "unknown session", method: "GET", hdr: cookieHdr(base64.RawURLEncoding.EncodeToString(randomID)), status: 401, code: "invalid_token"},
			{name: "no cookie", method: "POST", hdr: map[string]string{"X-CSRF-Token": csrf}, status: 401, code: "missing_credentials"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := doReq(t, tc.method, f.url+"/api/thing", tc.hdr, tc.body)
				if r.status != tc.status || r.env.Error != tc.code {
					t.Fatalf("got %d %q (%s), want %d %q", r.status, r.env.Error, r.body, tc.status, tc.code)
				}
				if tc.status != 200 || tc.method == "HEAD" {
					return
				}
				var out struct {
					Principal auth.Principal `json:"principal"`
					Body      string         `json:"body"`
				}
				if err := json.Unmarshal(r.body, &out); err != nil {
					t.Fatal(err)
				}
				if out.Principal.Subject != "alice" || out.Principal.Authenticator != "staff" {
					t.Errorf("principal = %+v", out.Principal)
				}
				if out.Body != tc.wantBody {
					t.Errorf("handler read body %q, want %q", out.Body, tc.wantBody)
				}
			})
		}
		t.Run("GET /auth/csrf returns the login token", func(t *testing.T) {
			r := doReq(t, "GET", f.url+"/auth/csrf", ck, "")
			if r.status != 200 || !strings.Contains(string(r.body), `"csrf_token":"`+csrf+`"`) {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			r = doReq(t, "GET", f.url+"/auth/csrf", nil, "")
			if r.status != 401 {
				t.Fatalf("without a session: %d %s", r.status, r.body)
			}
		})
		t.Run("Set.CSRFToken", func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Cookie", "backlot_session="+cookie)
			if got, ok := f.set.CSRFToken(req); !ok || got != csrf {
				t.Fatalf("CSRFToken = %q, %v", got, ok)
			}
		})
	})
}

func TestSessionRevocation(t *testing.T) {
	t.Parallel()
	sessionStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		f := newSessFixture(t, open(t), sessCfgs(func(a *config.Authenticator) { a.TTL = config.Duration(time.Hour) }))
		alive := func(t *testing.T, cookie string) int {
			t.Helper()
			return doReq(t, "GET", f.url+"/api/x", cookieHdr(cookie), "").status
		}

		t.Run("logout", func(t *testing.T) {
			cookie, csrf := f.login(t, "carol")
			for _, bad := range []map[string]string{
				cookieHdr(cookie), // no token
				with(cookieHdr(cookie), "X-CSRF-Token", csrf, "Sec-Fetch-Site", "cross-site"),
				with(cookieHdr(cookie), "X-CSRF-Token", "wrong"),
			} {
				r := doReq(t, "POST", f.url+"/auth/logout", bad, "")
				if r.status != 403 || r.env.Error != "csrf_failed" {
					t.Fatalf("forged logout: %d %s", r.status, r.body)
				}
				if c := findCookie(r.header, "backlot_session"); c != nil {
					t.Fatalf("forged logout touched the cookie: %v", c)
				}
			}
			if s := alive(t, cookie); s != 200 {
				t.Fatalf("session gone after refused logouts: %d", s)
			}
			r := doReq(t, "POST", f.url+"/auth/logout", with(cookieHdr(cookie), "Content-Type", "application/json"), `{"csrf_token":"`+csrf+`"}`)
			if r.status != http.StatusNoContent {
				t.Fatalf("logout: %d %s", r.status, r.body)
			}
			c := findCookie(r.header, "backlot_session")
			if c == nil || c.Value != "" || c.MaxAge >= 0 {
				t.Errorf("logout did not clear the cookie: %v", r.header.Values("Set-Cookie"))
			}
			if s := alive(t, cookie); s != 401 {
				t.Fatalf("session alive after logout: %d", s)
			}
			r = doReq(t, "POST", f.url+"/auth/logout", with(cookieHdr(cookie), "X-CSRF-Token", csrf), "")
			if r.status != 401 {
				t.Fatalf("second logout: %d %s", r.status, r.body)
			}
		})

		t.Run("logout rejects unknown JSON fields", func(t *testing.T) {
			cookie, csrf := f.login(t, "carol2")
			r := doReq(t, "POST", f.url+"/auth/logout", with(cookieHdr(cookie), "X-CSRF-Token", csrf, "Content-Type", "application/json"), `{"everywhere":true}`)
			if r.status != 400 {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if s := alive(t, cookie); s != 200 {
				t.Fatalf("refused logout ended the session: %d", s)
			}
		})

		t.Run("revoked by subject", func(t *testing.T) {
			c1, _ := f.login(t, "dave")
			c2, _ := f.login(t, "dave")
			other, _ := f.login(t, "erin")
			n, err := f.store.DeleteSessionsBySubject(context.Background(), "staff", "dave")
			if err != nil || n != 2 {
				t.Fatalf("DeleteSessionsBySubject = %d, %v", n, err)
			}
			for _, c := range []string{c1, c2} {
				if s := alive(t, c); s != 401 {
					t.Errorf("revoked session answered %d", s)
				}
			}
			if s := alive(t, other); s != 200 {
				t.Errorf("another subject's session answered %d", s)
			}
		})

		t.Run("relogin replaces the old session", func(t *testing.T) {
			old, _ := f.login(t, "frank")
			r := doReq(t, "POST", f.url+"/auth/session", with(bearerHdr(f.mint(t, "frank")), "Cookie", "backlot_session="+old), "")
			if r.status != 200 {
				t.Fatalf("relogin: %d %s", r.status, r.body)
			}
			if s := alive(t, old); s != 401 {
				t.Errorf("old session answered %d after relogin", s)
			}
			if c := findCookie(r.header, "backlot_session"); c == nil || alive(t, c.Value) != 200 {
				t.Error("new session does not work")
			}
		})

		t.Run("expired", func(t *testing.T) {
			cookie, _ := f.login(t, "grace")
			f.clock.Advance(59 * time.Minute)
			if s := alive(t, cookie); s != 200 {
				t.Fatalf("session dead before its ttl: %d", s)
			}
			f.clock.Advance(time.Minute)
			r := doReq(t, "GET", f.url+"/api/x", cookieHdr(cookie), "")
			if r.status != 401 || r.env.Error != "invalid_token" || !strings.Contains(r.env.ErrorDescription, "expired") {
				t.Fatalf("expired session: %d %s", r.status, r.body)
			}
			// The next login sweeps expired rows away.
			f.clock.Advance(time.Hour)
			f.login(t, "heidi")
			hash := sessionHash(t, cookie)
			if _, err := f.store.GetSession(context.Background(), hash); err == nil {
				t.Error("expired session still stored after a sweep")
			}
		})
	})
}

func sessionHash(t *testing.T, cookie string) []byte {
	t.Helper()
	id, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(id)
	return h[:]
}
