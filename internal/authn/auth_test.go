package authn_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
)

// ---- shared test helpers (names prefixed to stay clear of sibling files) ----

func newTestClock() *testutil.Clock { return testutil.NewClock(time.Unix(1_800_000_000, 0)) }

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type authFixture struct {
	set   *authn.Set
	reg   *prometheus.Registry
	logs  *lockedBuffer
	clock *testutil.Clock
}

const (
	testHSSecret = "0123456789abcdef0123456789abcdef-test"
	testAPIKey   = "ops-key-9f8e7d6c5b4a"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newAuthFixture(t testing.TB, cfgs map[string]config.Authenticator, clock *testutil.Clock) *authFixture {
	t.Helper()
	if clock == nil {
		clock = newTestClock()
	}
	f := &authFixture{reg: prometheus.NewRegistry(), logs: &lockedBuffer{}, clock: clock}
	set, err := authn.NewSet(cfgs, nil, authn.Deps{
		Logger:  slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: f.reg,
		Now:     clock.Now,
	})
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	f.set = set
	return f
}

// serve starts a real server: GET /whoami-ish routes guarded by Require,
// echoing the principal, plus the set's own endpoints.
func (f *authFixture) serve(t testing.TB, names []string, rule auth.Rule) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	f.set.Register(mux)
	mux.Handle("/api/", f.set.Require(names, rule)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok {
			t.Error("handler reached without a principal")
		}
		st := httpapi.StateFrom(r.Context())
		b, _ := io.ReadAll(r.Body)
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"principal": p, "state_subject": st.Subject, "state_auth": st.Auth, "body": string(b)})
	})))
	// Stand-in for the server's outer middleware: request state with an id.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &httpapi.State{ID: "req-" + r.Header.Get("X-Test-Id")}
		if ip := r.Header.Get("X-Test-IP"); ip != "" {
			st.ClientIP = netip.MustParseAddr(ip)
		}
		mux.ServeHTTP(w, r.WithContext(httpapi.WithState(r.Context(), st)))
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type testResp struct {
	status int
	header http.Header
	body   []byte
	env    httpapi.Envelope
}

func doReq(t testing.TB, method, url string, hdr map[string]string, body string) testResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := testResp{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &out.env); err != nil {
			t.Fatalf("error body is not the envelope: %v: %s", err, b)
		}
	}
	return out
}

func bearerHdr(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// counterValue reads backlot_auth_decisions_total{authenticator,outcome}.
func counterValue(t testing.TB, reg *prometheus.Registry, authn, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "backlot_auth_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var a, o string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "authenticator":
					a = l.GetValue()
				case "outcome":
					o = l.GetValue()
				}
			}
			if a == authn && o == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hsCfg() config.Authenticator {
	return config.Authenticator{Type: config.AuthHS256, Secret: testHSSecret, Issuer: "backlot", Audience: "backlot"}
}

func mintHS(t testing.TB, f *authFixture, name, sub, tenant string, scopes []string) string {
	t.Helper()
	a, ok := f.set.Get(name)
	if !ok {
		t.Fatalf("no authenticator %s", name)
	}
	tok, err := a.(*authn.HS256).Mint(sub, tenant, scopes, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ---- core tests ----

func TestRequireStatusRules(t *testing.T) {
	t.Parallel()
	cfgs := map[string]config.Authenticator{
		"users": hsCfg(),
		"seed001": {Type: config.AuthHS256, Secret: testHSSecret + "-other", InvalidStatus: 403,
			Issuer: "backlot", Audience: "backlot"},
		"ops": {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "ops", SHA256: sha256Hex(testAPIKey)}}},
	}
	f := newAuthFixture(t, cfgs, nil)
	srvUsers := f.serve(t, []string{"users"}, auth.Rule{Scopes: []string{"orders:read"}, Tenant: "t1"})
	srv001 := f.serve(t, []string{"seed001"}, auth.Rule{})
	srvBoth := f.serve(t, []string{"ops", "users"}, auth.Rule{})

	good := mintHS(t, f, "users", "u1", "t1", []string{"orders:read", "orders:write"})
	noScope := mintHS(t, f, "users", "u1", "t1", []string{"orders:write"})
	otherTenant := mintHS(t, f, "users", "u1", "t2", []string{"orders:read"})
	seedTok := mintHS(t, f, "seed001", "u9", "", nil)
	forged := good[:len(good)-4] + "AAAA"

	cases := []struct {
		name       string
		url        string
		hdr        map[string]string
		status     int
		code       string
		desc       string // substring of error_description
		wwwAuth    string // substring of WWW-Authenticate, "" = must be absent
		wantSubj   string
		wantAuthn  string
		mustNotLog string
	}{
		{name: "ok", url: srvUsers.URL, hdr: bearerHdr(good), status: 200, wantSubj: "u1", wantAuthn: "users"},
		{name: "missing", url: srvUsers.URL, status: 401, code: "missing_credentials", wwwAuth: `Bearer realm="backlot"`},
		{name: "other scheme", url: srvUsers.URL, hdr: map[string]string{"Authorization": "Basic dTpw"}, status: 401, code: "missing_credentials", wwwAuth: `Bearer realm="backlot"`},
		{name: "forged", url: srvUsers.URL, hdr: bearerHdr(forged), status: 401, code: "invalid_token", desc: "bad signature",
			wwwAuth: `error="invalid_token", error_description="bad signature"`, mustNotLog: forged},
		{name: "garbage", url: srvUsers.URL, hdr: bearerHdr("not-a-jwt"), status: 401, code: "invalid_token", desc: "malformed token", wwwAuth: `error="invalid_token"`},
		{name: "insufficient scope", url: srvUsers.URL, hdr: bearerHdr(noScope), status: 403, code: "insufficient_scope", desc: "orders:read", wwwAuth: `error="insufficient_scope"`},
		{name: "wrong tenant", url: srvUsers.URL, hdr: bearerHdr(otherTenant), status: 403, code: "wrong_tenant"},
		{name: "invalid_status 403", url: srv001.URL, hdr: bearerHdr(good), status: 403, code: "invalid_token", desc: "bad signature"},
		{name: "invalid_status 403 missing is 401", url: srv001.URL, status: 401, code: "missing_credentials", wwwAuth: "Bearer"},
		{name: "seed001 ok", url: srv001.URL, hdr: bearerHdr(seedTok), status: 200, wantSubj: "u9", wantAuthn: "seed001"},
		{name: "second authenticator accepts", url: srvBoth.URL, hdr: bearerHdr(good), status: 200, wantSubj: "u1", wantAuthn: "users"},
		{name: "first authenticator accepts", url: srvBoth.URL, hdr: bearerHdr(testAPIKey), status: 200, wantSubj: "ops", wantAuthn: "ops"},
		{name: "recognised failure wins over foreign", url: srvBoth.URL, hdr: bearerHdr(forged), status: 401, code: "invalid_token", desc: "bad signature", wwwAuth: `error_description="bad signature"`},
		{name: "api key wrong", url: srvBoth.URL, hdr: bearerHdr("nope"), status: 401, code: "invalid_token", desc: "unknown API key", wwwAuth: `error="invalid_token"`},
	}
	for i, c := range cases {
		hdr := map[string]string{"X-Test-Id": c.name}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		// Separate client addresses so the failure limit does not interfere.
		hdr["X-Test-IP"] = "10.0.0." + string(rune('1'+i%9))
		res := doReq(t, "GET", c.url+"/api/x", hdr, "")
		if res.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, res.status, c.status, res.body)
			continue
		}
		if c.status == 200 {
			var got struct {
				Principal    auth.Principal `json:"principal"`
				StateSubject string         `json:"state_subject"`
				StateAuth    string         `json:"state_auth"`
			}
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Principal.Subject != c.wantSubj || got.Principal.Authenticator != c.wantAuthn ||
				got.StateSubject != c.wantSubj || got.StateAuth != c.wantAuthn {
				t.Errorf("%s: got %+v", c.name, got)
			}
			continue
		}
		if res.env.ErrorCode != c.status || res.env.Error != c.code || res.env.RequestID != "req-"+c.name || res.env.ErrorMessage == "" {
			t.Errorf("%s: envelope %+v", c.name, res.env)
		}
		if !strings.Contains(res.env.ErrorDescription, c.desc) {
			t.Errorf("%s: description %q, want it to contain %q", c.name, res.env.ErrorDescription, c.desc)
		}
		wa := strings.Join(res.header.Values("WWW-Authenticate"), " | ")
		if c.wwwAuth == "" && wa != "" {
			t.Errorf("%s: unexpected WWW-Authenticate %q", c.name, wa)
		}
		if c.wwwAuth != "" && !strings.Contains(wa, c.wwwAuth) {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, wa, c.wwwAuth)
		}
		if c.hdr != nil && strings.Contains(string(res.body), strings.TrimPrefix(c.hdr["Authorization"], "Bearer ")) {
			t.Errorf("%s: the credential is echoed in the body", c.name)
		}
		if c.mustNotLog != "" && strings.Contains(f.logs.String(), c.mustNotLog) {
			t.Errorf("%s: the token was logged", c.name)
		}
	}
	if !strings.Contains(f.logs.String(), `"reason":"bad signature"`) {
		t.Errorf("no info line for the refusal: %s", f.logs.String())
	}
	if strings.Contains(f.logs.String(), good) {
		t.Error("a token was logged")
	}
	for _, m := range []struct {
		authn, outcome string
		min            float64
	}{
		{"users", authn.OutcomeOK, 2}, {"users", authn.OutcomeInvalid, 3}, {"users", authn.OutcomeForbidden, 2},
		{"users", authn.OutcomeMissing, 2}, {"seed001", authn.OutcomeInvalid, 1}, {"ops", authn.OutcomeOK, 1}, {"ops", authn.OutcomeInvalid, 1},
	} {
		if v := counterValue(t, f.reg, m.authn, m.outcome); v < m.min {
			t.Errorf("decisions{%s,%s} = %v, want >= %v", m.authn, m.outcome, v, m.min)
		}
	}
}

func TestMissingChallengesPerType(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, map[string]config.Authenticator{
		"users":  hsCfg(),
		"stripe": {Type: config.AuthStripeApp, Secrets: []string{"absec_x"}},
	}, nil)
	srv := f.serve(t, []string{"users", "stripe"}, auth.Rule{})
	res := doReq(t, "GET", srv.URL+"/api/x", nil, "")
	if res.status != 401 || res.env.Error != "missing_credentials" {
		t.Fatalf("got %d %+v", res.status, res.env)
	}
	got := res.header.Values("WWW-Authenticate")
	if len(got) != 2 || got[0] != `Bearer realm="backlot"` || got[1] != `Stripe-Signature realm="backlot"` {
		t.Fatalf("challenges %q", got)
	}
}

func TestFailureRateLimit(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	f := newAuthFixture(t, map[string]config.Authenticator{"users": hsCfg()}, clock)
	srv := f.serve(t, []string{"users"}, auth.Rule{})
	good := mintHS(t, f, "users", "u1", "", nil)
	ip := map[string]string{"X-Test-IP": "192.0.2.7", "Authorization": "Bearer bad.to.ken"}
	for i := 0; i < authn.FailureBurstDefault; i++ {
		if res := doReq(t, "GET", srv.URL+"/api/x", ip, ""); res.status != 401 {
			t.Fatalf("failure %d: status %d", i, res.status)
		}
	}
	res := doReq(t, "GET", srv.URL+"/api/x", ip, "")
	if res.status != 429 || res.env.Error != "too_many_failures" || res.header.Get("Retry-After") == "" {
		t.Fatalf("after the burst: %d %+v %v", res.status, res.env, res.header)
	}
	// Blocked before verification: even a good token waits.
	res = doReq(t, "GET", srv.URL+"/api/x", map[string]string{"X-Test-IP": "192.0.2.7", "Authorization": "Bearer " + good}, "")
	if res.status != 429 {
		t.Fatalf("good token from a blocked address: %d", res.status)
	}
	// whoami is limited too.
	if res := doReq(t, "GET", srv.URL+"/auth/whoami", map[string]string{"X-Test-IP": "192.0.2.7"}, ""); res.status != 429 {
		t.Fatalf("whoami from a blocked address: %d", res.status)
	}
	// Another address is unaffected.
	if res := doReq(t, "GET", srv.URL+"/api/x", map[string]string{"X-Test-IP": "192.0.2.8", "Authorization": "Bearer " + good}, ""); res.status != 200 {
		t.Fatalf("other address: %d", res.status)
	}
	clock.Advance(time.Second)
	if res := doReq(t, "GET", srv.URL+"/api/x", map[string]string{"X-Test-IP": "192.0.2.7", "Authorization": "Bearer " + good}, ""); res.status != 200 {
		t.Fatalf("after a second: %d %s", res.status, res.body)
	}
	if v := counterValue(t, f.reg, "", authn.OutcomeLimited); v != 3 {
		t.Fatalf("limited decisions = %v, want 3", v)
	}
}

func TestWhoami(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, map[string]config.Authenticator{
		"users": hsCfg(),
		"ops":   {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "ops", SHA256: sha256Hex(testAPIKey)}}},
	}, nil)
	f.set.Add(&headerAuthn{})
	srv := f.serve(t, []string{"users"}, auth.Rule{})
	if got := f.set.Names(); strings.Join(got, ",") != "custom,ops,users" {
		t.Fatalf("Names() = %v", got)
	}
	tok := mintHS(t, f, "users", "u1", "t1", []string{"a", "b"})

	res := doReq(t, "GET", srv.URL+"/auth/whoami", bearerHdr(tok), "")
	if res.status != 200 || res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("whoami: %d %s", res.status, res.body)
	}
	var m map[string]any
	if err := json.Unmarshal(res.body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"authenticator", "subject", "tenant", "email", "scopes", "claims"} {
		if _, ok := m[k]; !ok {
			t.Errorf("whoami has no %q: %s", k, res.body)
		}
	}
	if len(m) != 6 {
		t.Errorf("whoami has extra keys: %s", res.body)
	}
	if m["authenticator"] != "users" || m["subject"] != "u1" || m["tenant"] != "t1" {
		t.Errorf("whoami: %s", res.body)
	}
	if strings.Contains(string(res.body), tok) || strings.Contains(string(res.body), testHSSecret) || strings.Contains(string(res.body), "refresh") {
		t.Errorf("whoami leaks a secret: %s", res.body)
	}

	// The API key: scopes and claims are [] and {}, not null.
	res = doReq(t, "GET", srv.URL+"/auth/whoami", bearerHdr(testAPIKey), "")
	if res.status != 200 || !strings.Contains(string(res.body), `"scopes":[]`) || !strings.Contains(string(res.body), `"claims":{}`) {
		t.Errorf("whoami api key: %d %s", res.status, res.body)
	}
	// The custom authenticator, which never serialises its refresh token.
	res = doReq(t, "GET", srv.URL+"/auth/whoami", map[string]string{"X-Custom": "c1"}, "")
	if res.status != 200 || !strings.Contains(string(res.body), `"subject":"c1"`) || strings.Contains(string(res.body), "rt-secret") {
		t.Errorf("whoami custom: %d %s", res.status, res.body)
	}
	res = doReq(t, "GET", srv.URL+"/auth/whoami", nil, "")
	if res.status != 401 || res.env.Error != "missing_credentials" || res.header.Get("WWW-Authenticate") == "" {
		t.Errorf("whoami anonymous: %d %s", res.status, res.body)
	}
	res = doReq(t, "GET", srv.URL+"/auth/whoami", bearerHdr(tok+"x"), "")
	if res.status != 401 || res.env.Error != "invalid_token" || res.env.ErrorDescription != "bad signature" {
		t.Errorf("whoami forged: %d %s", res.status, res.body)
	}
}

// headerAuthn is a custom authenticator as a Go user would add.
type headerAuthn struct{}

func (headerAuthn) Name() string { return "custom" }
func (headerAuthn) Type() string { return "custom" }
func (headerAuthn) Authenticate(r *http.Request) (*auth.Principal, error) {
	v := r.Header.Get("X-Custom")
	if v == "" {
		return nil, auth.ErrNoCredential
	}
	return &auth.Principal{Subject: v, RefreshToken: "rt-secret"}, nil
}

func TestNewSetErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]config.Authenticator{
		"short secret":              {Type: config.AuthHS256, Secret: "short"},
		"unknown type":              {Type: "magic"},
		"jwks no url":               {Type: config.AuthJWKS},
		"jwks HS256":                {Type: config.AuthJWKS, JWKSURL: "https://x/jwks", Algorithms: []string{"HS256"}},
		"jwks none":                 {Type: config.AuthJWKS, JWKSURL: "https://x/jwks", Algorithms: []string{"none"}},
		"stripe none":               {Type: config.AuthStripeApp},
		"api key no keys":           {Type: config.AuthAPIKey},
		"api key bad hex":           {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "a", SHA256: "zz"}}},
		"api key no id":             {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{SHA256: sha256Hex("k")}}},
		"sharetribe no marketplace": {Type: config.AuthSharetribe, Marketplace: "nope"},
	}
	for name, cfg := range cases {
		_, err := authn.NewSet(map[string]config.Authenticator{"a": cfg}, nil, authn.Deps{})
		if err == nil || !strings.Contains(err.Error(), "authenticator a") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	set, err := authn.NewSet(map[string]config.Authenticator{"users": hsCfg()}, nil, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Check([]string{"users", "nobody"}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("Check: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Require with an unknown name did not panic")
		}
	}()
	set.Require([]string{"nobody"}, auth.Rule{})
}

func TestMetricsRegisterTwice(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	for i := 0; i < 2; i++ {
		if _, err := authn.NewSet(map[string]config.Authenticator{"users": hsCfg()}, nil, authn.Deps{Metrics: reg}); err != nil {
			t.Fatalf("NewSet %d: %v", i, err)
		}
	}
}

func TestRuleTenantAny(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, map[string]config.Authenticator{"users": hsCfg()}, nil)
	srv := f.serve(t, []string{"users"}, auth.Rule{Tenant: "*"})
	if res := doReq(t, "GET", srv.URL+"/api/x", bearerHdr(mintHS(t, f, "users", "u", "", nil)), ""); res.status != 403 || res.env.Error != "wrong_tenant" {
		t.Errorf("no tenant: %d %s", res.status, res.body)
	}
	if res := doReq(t, "GET", srv.URL+"/api/x", bearerHdr(mintHS(t, f, "users", "u", "t9", nil)), ""); res.status != 200 {
		t.Errorf("any tenant: %d %s", res.status, res.body)
	}
}

// jwtUnsigned crafts "alg: none" tokens by hand.
func jwtUnsigned(claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return b64u(h) + "." + b64u(c) + "."
}

// TestTwoAuthorizationHeaders: a request with two Authorization headers
// is refused with 400 invalid_request wherever authentication runs, even
// when the first one alone would be accepted.
func TestTwoAuthorizationHeaders(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, map[string]config.Authenticator{
		"users": hsCfg(),
		"ops":   {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "ops", SHA256: sha256Hex(testAPIKey)}}},
	}, nil)
	srv := f.serve(t, []string{"users", "ops"}, auth.Rule{})
	good := mintHS(t, f, "users", "u1", "", nil)
	cases := []struct {
		name   string
		values []string
	}{
		{"two valid tokens", []string{"Bearer " + good, "Bearer " + testAPIKey}},
		{"valid then garbage", []string{"Bearer " + good, "Bearer garbage"}},
		{"garbage then valid", []string{"Bearer garbage", "Bearer " + good}},
		{"same token twice", []string{"Bearer " + good, "Bearer " + good}},
		{"empty second", []string{"Bearer " + good, ""}},
		{"basic and bearer", []string{"Basic dXNlcjpwYXNz", "Bearer " + good}},
	}
	for _, tc := range cases {
		for _, path := range []string{"/api/x", "/auth/whoami"} {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			for _, v := range tc.values {
				req.Header.Add("Authorization", v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var env httpapi.Envelope
			json.NewDecoder(res.Body).Decode(&env)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest || env.Error != "invalid_request" {
				t.Errorf("%s %s: %d %+v, want 400 invalid_request", tc.name, path, res.StatusCode, env)
			}
		}
		// Set.Authenticate (used by the server's own endpoints) refuses too.
		r, _ := http.NewRequest("GET", "/", nil)
		for _, v := range tc.values {
			r.Header.Add("Authorization", v)
		}
		_, err := f.set.Authenticate(r, []string{"users", "ops"}, auth.Rule{})
		if he := (*httpapi.Error)(nil); !errors.As(err, &he) || he.Status != 400 || he.Code != "invalid_request" {
			t.Errorf("%s: Authenticate: %v", tc.name, err)
		}
	}
	// One header still works.
	if res := doReq(t, "GET", srv.URL+"/auth/whoami", bearerHdr(good), ""); res.status != 200 {
		t.Errorf("one header: %d %s", res.status, res.body)
	}
}
