package authn

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/internal/testutil"
)

const (
	stClientID    = "08ec69f6-d37e-414d-83eb-324e94afddf0"
	stSecret      = "market-secret"
	stIntegID     = "integ-client"
	stIntegSecret = "integ-secret"
	stEmail       = "joe.dunphy@example.com"
	stPassword    = "secret-joe"
)

type stFixture struct {
	sim    *marketplace.Marketplace
	srv    *httptest.Server
	clock  *testutil.Clock
	a      *Sharetribe
	userID string
	calls  atomic.Int64 // current_user/show requests the simulator saw
	// down, when set, makes the marketplace answer with this status instead.
	down atomic.Int64
}

func stSetup(t *testing.T, ttl time.Duration) *stFixture {
	t.Helper()
	f := &stFixture{clock: testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	f.sim = marketplace.New(marketplace.Options{
		ClientID: stClientID, ClientSecret: stSecret,
		IntegrationClientID: stIntegID, IntegrationClientSecret: stIntegSecret,
		AccessTokenTTL: ttl, Now: f.clock.Now,
	})
	f.userID = f.sim.AddUser(stEmail, stPassword, marketplace.Profile{
		FirstName: "Joe", LastName: "Dunphy",
		PublicData:    map[string]any{"role": "customer"},
		ProtectedData: map[string]any{"phone": "+358 40 123"},
		PrivateData:   map[string]any{"idv": "secret-result"},
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/api/current_user/show" {
			f.calls.Add(1)
			if s := f.down.Load(); s != 0 {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(int(s))
				fmt.Fprintf(w, `{"errors":[{"id":"x","status":%d,"code":"overloaded","title":"Overloaded"}]}`, s)
				return
			}
		}
		f.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	a, err := newSharetribe("shoppers",
		config.Authenticator{Type: config.AuthSharetribe, Marketplace: "main"},
		config.Marketplace{Type: "sharetribe", ClientID: stClientID, APIURL: f.srv.URL + "/"},
		Deps{Now: f.clock.Now, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	f.a = a
	return f
}

func (f *stFixture) token(t *testing.T, form url.Values) marketplace.TokenResponse {
	t.Helper()
	res, err := f.srv.Client().PostForm(f.srv.URL+"/v1/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tr marketplace.TokenResponse
	if err := json.NewDecoder(res.Body).Decode(&tr); err != nil || res.StatusCode != 200 {
		t.Fatalf("token %s: %d %v", form.Get("grant_type"), res.StatusCode, err)
	}
	return tr
}

func (f *stFixture) login(t *testing.T) marketplace.TokenResponse {
	t.Helper()
	return f.token(t, url.Values{"client_id": {stClientID}, "grant_type": {"password"},
		"username": {stEmail}, "password": {stPassword}, "scope": {"user"}})
}

func (f *stFixture) anon(t *testing.T) marketplace.TokenResponse {
	t.Helper()
	return f.token(t, url.Values{"client_id": {stClientID}, "grant_type": {"client_credentials"}, "scope": {"public-read"}})
}

func (f *stFixture) revoke(t *testing.T, tok marketplace.TokenResponse) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/auth/revoke", strings.NewReader(url.Values{"token": {tok.RefreshToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
}

// authn runs the authenticator on a request with the given headers.
func (f *stFixture) authn(hdr map[string]string) (*auth.Principal, error) {
	r := httptest.NewRequest("GET", "/api/thing", nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return f.a.Authenticate(r)
}

// encodeURIComponent encodes like JavaScript's function of that name, as
// the SDK's Express cookie store (through res.cookie) does.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// jsCookieEncode encodes like js-cookie 2 (the SDK's browser store):
// encodeURIComponent, then some characters put back as they were.
func jsCookieEncode(s string) string {
	out := encodeURIComponent(s)
	for _, c := range "#$&+/:<=>?@[]^`{|}" {
		out = strings.ReplaceAll(out, fmt.Sprintf("%%%02X", c), string(c))
	}
	return out
}

func sdkCookieJSON(tok marketplace.TokenResponse) string {
	b, _ := json.Marshal(tok)
	return string(b)
}

func (f *stFixture) cookie(v string) map[string]string {
	return map[string]string{"Cookie": "other=1; " + f.a.CookieName() + "=" + v + "; theme=dark"}
}

func TestSharetribeBearer(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	tok := f.login(t)
	p, err := f.authn(map[string]string{"Authorization": "Bearer " + tok.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	if p.Authenticator != "shoppers" || p.Subject != f.userID || p.Email != stEmail || p.RefreshToken != "" {
		t.Errorf("principal %+v", p)
	}
	if len(p.Scopes) != 1 || p.Scopes[0] != "user" {
		t.Errorf("scopes %v", p.Scopes)
	}
	want := map[string]any{"displayName": "Joe D", "firstName": "Joe", "lastName": "Dunphy", "abbreviatedName": "JD", "emailVerified": true}
	for k, v := range want {
		if p.Claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, p.Claims[k], v)
		}
	}
	if pd, _ := p.Claims["publicData"].(map[string]any); pd["role"] != "customer" {
		t.Errorf("publicData claim %v", p.Claims["publicData"])
	}
	b, _ := json.Marshal(p)
	for _, secret := range []string{"secret-result", "+358", "privateData", "protectedData", tok.AccessToken} {
		if strings.Contains(string(b), secret) {
			t.Errorf("principal JSON leaks %q: %s", secret, b)
		}
	}
	// A trusted:user token carries its scope.
	tr := f.token(t, url.Values{"client_id": {stClientID}, "client_secret": {stSecret}, "grant_type": {"token_exchange"},
		"subject_token": {tok.AccessToken}, "scope": {"trusted:user"}})
	p, err = f.authn(map[string]string{"Authorization": "bearer " + tr.AccessToken})
	if err != nil || p.Subject != f.userID || !p.HasScope("trusted:user") {
		t.Fatalf("trusted token: %+v %v", p, err)
	}
}

func TestSharetribeCookie(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	tok := f.login(t)
	other := f.login(t)
	js := sdkCookieJSON(tok)
	tests := []struct {
		name        string
		hdr         map[string]string
		wantRefresh string
	}{
		{"express encodeURIComponent", f.cookie(encodeURIComponent(js)), tok.RefreshToken},
		{"js-cookie", f.cookie(jsCookieEncode(js)), tok.RefreshToken},
		{"quoted", f.cookie(`"` + encodeURIComponent(js) + `"`), tok.RefreshToken},
		{"raw JSON", f.cookie(js), tok.RefreshToken},
		{"express j: prefix", f.cookie(encodeURIComponent("j:" + js)), tok.RefreshToken},
		{"bearer with same cookie", map[string]string{"Authorization": "Bearer " + tok.AccessToken,
			"Cookie": f.a.CookieName() + "=" + encodeURIComponent(js)}, tok.RefreshToken},
		// Another session's cookie must not lend its refresh token.
		{"bearer with other session's cookie", map[string]string{"Authorization": "Bearer " + tok.AccessToken,
			"Cookie": f.a.CookieName() + "=" + encodeURIComponent(sdkCookieJSON(other))}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.authn(tc.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if p.Subject != f.userID || p.RefreshToken != tc.wantRefresh {
				t.Errorf("subject %q refresh %q, want %q %q", p.Subject, p.RefreshToken, f.userID, tc.wantRefresh)
			}
			if b, _ := json.Marshal(p); tok.RefreshToken != "" && strings.Contains(string(b), tok.RefreshToken) {
				t.Errorf("refresh token serialised: %s", b)
			}
		})
	}
	// The refresh token carried is live: the marketplace accepts it.
	p, _ := f.authn(f.cookie(encodeURIComponent(js)))
	f.token(t, url.Values{"client_id": {stClientID}, "grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}})
}

func TestSharetribeRefused(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	expiring := f.login(t)
	f.clock.Advance(time.Hour) // expiring is now expired
	revoked := f.login(t)
	f.revoke(t, revoked)
	bannedID := f.sim.AddUser("banned@example.com", "pw-banned", marketplace.Profile{FirstName: "B"})
	banned := f.token(t, url.Values{"client_id": {stClientID}, "grant_type": {"password"}, "username": {"banned@example.com"}, "password": {"pw-banned"}})
	f.sim.SetBanned(bannedID, true)
	anon := f.anon(t)
	integ := f.token(t, url.Values{"client_id": {stIntegID}, "client_secret": {stIntegSecret}, "grant_type": {"client_credentials"}})
	ck := func(v string) map[string]string { return f.cookie(v) }
	tests := []struct {
		name      string
		hdr       map[string]string
		foreign   bool
		noNetwork bool // refused without asking the marketplace
	}{
		{"anonymous bearer", map[string]string{"Authorization": "Bearer " + anon.AccessToken}, true, false},
		{"anonymous cookie", ck(encodeURIComponent(sdkCookieJSON(anon))), false, true},
		{"integration token", map[string]string{"Authorization": "Bearer " + integ.AccessToken}, true, false},
		{"garbage bearer", map[string]string{"Authorization": "Bearer not-a-marketplace-token"}, true, false},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, false, true},
		{"expired token", map[string]string{"Authorization": "Bearer " + expiring.AccessToken}, true, false},
		{"expired token in cookie", ck(encodeURIComponent(sdkCookieJSON(expiring))), false, false},
		{"revoked token", map[string]string{"Authorization": "Bearer " + revoked.AccessToken}, true, false},
		{"banned user", map[string]string{"Authorization": "Bearer " + banned.AccessToken}, true, false},
		{"cookie not JSON", ck("hello"), false, true},
		{"cookie bad escape", ck("%7B%zz"), false, true},
		{"cookie without access_token", ck(encodeURIComponent(`{"token_type":"bearer","refresh_token":"r"}`)), false, true},
		{"cookie with other token_type", ck(encodeURIComponent(`{"access_token":"a","token_type":"mac"}`)), false, true},
		{"cookie JSON array", ck(encodeURIComponent(`["a"]`)), false, true},
		{"cookie oversized", ck(encodeURIComponent(`{"access_token":"` + strings.Repeat("a", sharetribeMaxCookie) + `"}`)), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.calls.Load()
			p, err := f.authn(tc.hdr)
			var fail *auth.Failure
			if !errors.As(err, &fail) {
				t.Fatalf("got %+v, %v; want a *Failure", p, err)
			}
			if fail.Reason == "" || fail.Foreign != tc.foreign {
				t.Errorf("failure %+v, want a reason and Foreign=%v", fail, tc.foreign)
			}
			for _, secret := range []string{anon.AccessToken, integ.AccessToken, expiring.AccessToken, revoked.AccessToken} {
				if strings.Contains(fail.Error(), secret) {
					t.Errorf("failure text carries a token: %s", fail.Error())
				}
			}
			if asked := f.calls.Load() != before; asked == tc.noNetwork {
				t.Errorf("marketplace asked = %v, want %v", asked, !tc.noNetwork)
			}
		})
	}
}

func TestSharetribeNoCredential(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	tok := f.login(t)
	tests := []struct {
		name string
		hdr  map[string]string
	}{
		{"nothing", nil},
		{"basic auth", map[string]string{"Authorization": "Basic am9lOnNlY3JldA=="}},
		{"other cookies", map[string]string{"Cookie": "session=abc; theme=dark"}},
		{"another marketplace's cookie", map[string]string{"Cookie": "st-other-client-token=" + encodeURIComponent(sdkCookieJSON(tok))}},
		{"cookie name as prefix only", map[string]string{"Cookie": f.a.CookieName() + "x=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.authn(tc.hdr); !errors.Is(err, auth.ErrNoCredential) {
				t.Fatalf("err %v, want ErrNoCredential", err)
			}
		})
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("marketplace asked %d times for requests without a credential", n)
	}
}

func TestSharetribeCache(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	tok := f.login(t)
	hdr := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	for range 3 {
		if _, err := f.authn(hdr); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("marketplace asked %d times for 3 requests, want 1", n)
	}
	// Cached by the token's hash, never the token itself.
	f.a.mu.Lock()
	_, byHash := f.a.cache[sha256.Sum256([]byte(tok.AccessToken))]
	n := len(f.a.cache)
	f.a.mu.Unlock()
	if !byHash || n != 1 {
		t.Fatalf("cache has %d entries, keyed by hash: %v", n, byHash)
	}
	// The same token from the cookie is a cache hit that still carries the refresh token.
	p, err := f.authn(f.cookie(encodeURIComponent(sdkCookieJSON(tok))))
	if err != nil || p.RefreshToken != tok.RefreshToken || f.calls.Load() != 1 {
		t.Fatalf("cookie hit: %+v %v, calls %d", p, err, f.calls.Load())
	}
	// Revoked at the marketplace: trusted from the cache until 60 s are up.
	f.revoke(t, tok)
	f.clock.Advance(SharetribeCacheTTL - time.Second)
	if _, err := f.authn(hdr); err != nil || f.calls.Load() != 1 {
		t.Fatalf("at 59 s: %v, calls %d", err, f.calls.Load())
	}
	f.clock.Advance(time.Second)
	var fail *auth.Failure
	if _, err := f.authn(hdr); !errors.As(err, &fail) || f.calls.Load() != 2 {
		t.Fatalf("at 60 s: %v, calls %d; want a refusal after asking again", err, f.calls.Load())
	}
	// Refusals are cached too.
	if _, err := f.authn(hdr); !errors.As(err, &fail) || f.calls.Load() != 2 {
		t.Fatalf("refusal not cached: %v, calls %d", err, f.calls.Load())
	}
}

func TestSharetribeCacheUntilTokenExpiry(t *testing.T) {
	t.Parallel()
	f := stSetup(t, 30*time.Second) // tokens live less than the cache's 60 s
	tok := f.login(t)
	hdr := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	if _, err := f.authn(hdr); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(29 * time.Second)
	if _, err := f.authn(hdr); err != nil || f.calls.Load() != 1 {
		t.Fatalf("at 29 s: %v, calls %d", err, f.calls.Load())
	}
	f.clock.Advance(time.Second)
	var fail *auth.Failure
	if _, err := f.authn(hdr); !errors.As(err, &fail) || f.calls.Load() != 2 {
		t.Fatalf("at token expiry: %v, calls %d; want a refusal after asking again", err, f.calls.Load())
	}
}

func TestSharetribeConcurrentOneCall(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	tok := f.login(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			p, err := f.authn(map[string]string{"Authorization": "Bearer " + tok.AccessToken})
			if err == nil && p.Subject != f.userID {
				err = fmt.Errorf("subject %q", p.Subject)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("32 concurrent requests made %d marketplace calls, want 1", n)
	}
}

func TestSharetribeMarketplaceDown(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	tok := f.login(t)
	hdr := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	tests := []struct {
		status     int
		wantStatus int
		wantCode   string
		retryAfter string
	}{
		{http.StatusServiceUnavailable, 503, "marketplace_unavailable", ""},
		{http.StatusInternalServerError, 503, "marketplace_unavailable", ""},
		{http.StatusTooManyRequests, 503, "marketplace_unavailable", "7"},
		{http.StatusNotFound, 502, "marketplace_error", ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f.down.Store(int64(tc.status))
			_, err := f.authn(hdr)
			var fail *auth.Failure
			var he *httpapi.Error
			if errors.As(err, &fail) || !errors.As(err, &he) {
				t.Fatalf("err %v, want an *httpapi.Error and no Failure", err)
			}
			if he.Status != tc.wantStatus || he.Code != tc.wantCode || len(he.Original) == 0 {
				t.Errorf("error %+v, want %d %s with the original error", he, tc.wantStatus, tc.wantCode)
			}
			if got := he.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
		})
	}
	// Nothing was cached: once the marketplace is back, the token works.
	f.down.Store(0)
	if p, err := f.authn(hdr); err != nil || p.Subject != f.userID {
		t.Fatalf("after recovery: %+v %v", p, err)
	}
	// Unreachable.
	f.srv.Close()
	fresh := httptest.NewRequest("GET", "/", nil)
	fresh.Header.Set("Authorization", "Bearer another-token")
	_, err := f.a.Authenticate(fresh)
	var he *httpapi.Error
	if !errors.As(err, &he) || he.Status != 503 || he.Code != "marketplace_unavailable" {
		t.Fatalf("unreachable marketplace: %v", err)
	}
}

func TestSharetribeConfig(t *testing.T) {
	t.Parallel()
	cfg := config.Authenticator{Type: config.AuthSharetribe, Marketplace: "main"}
	tests := []struct {
		name string
		mkt  config.Marketplace
	}{
		{"no client id", config.Marketplace{Type: "sharetribe"}},
		{"wrong type", config.Marketplace{Type: "shopify", ClientID: "c"}},
		{"bad api_url scheme", config.Marketplace{ClientID: "c", APIURL: "ftp://example.com"}},
		{"api_url without host", config.Marketplace{ClientID: "c", APIURL: "https://"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newSharetribe("s", cfg, tc.mkt, Deps{}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	a, err := newSharetribe("s", cfg, config.Marketplace{ClientID: "abc"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if a.showURL != "https://flex-api.sharetribe.com/v1/api/current_user/show" || a.CookieName() != "st-abc-token" || a.Type() != "sharetribe" {
		t.Errorf("defaults: %s %s %s", a.showURL, a.CookieName(), a.Type())
	}
}

func TestSharetribeCacheBounded(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	exp := f.clock.Now().Add(time.Minute)
	for i := range sharetribeCacheMax + 100 {
		f.a.store(sha256.Sum256([]byte(fmt.Sprint(i))), sharetribeEntry{p: &auth.Principal{}, expires: exp})
	}
	f.a.mu.Lock()
	n := len(f.a.cache)
	f.a.mu.Unlock()
	if n > sharetribeCacheMax {
		t.Errorf("cache holds %d entries, over %d", n, sharetribeCacheMax)
	}
}

func TestParseSDKCookie(t *testing.T) {
	t.Parallel()
	// js-cookie leaves '+' as is; it must not turn into a space.
	v := jsCookieEncode(`{"access_token":"a+b/c=","token_type":"bearer","refresh_token":"r+1"}`)
	tok, err := parseSDKCookie(v)
	if err != nil || tok.AccessToken != "a+b/c=" || tok.RefreshToken != "r+1" {
		t.Fatalf("%+v %v", tok, err)
	}
}

func FuzzParseSDKCookie(f *testing.F) {
	f.Add(encodeURIComponent(`{"access_token":"a","token_type":"bearer","refresh_token":"r"}`))
	f.Add(`"%7B%7D"`)
	f.Add("j:%7B")
	f.Fuzz(func(t *testing.T, v string) {
		tok, err := parseSDKCookie(v)
		if err == nil && tok.AccessToken == "" {
			t.Fatalf("accepted a cookie without an access token: %q", v)
		}
	})
}

// TestSharetribeSDKCookie logs in with the real Sharetribe SDK (pinned in
// the marketplace simulator's testdata) using its Express cookie store, and
// authenticates with the cookie it wrote. Needs Node; skipped without it
// except under CI=true.
func TestSharetribeSDKCookie(t *testing.T) {
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "internal", "sandbox", "marketplace", "testdata", "sdk")
	node := testutil.Node(t, dir)
	f := stSetup(t, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "cookie.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL="+f.srv.URL, "CLIENT_ID="+stClientID, "EMAIL="+stEmail, "PASSWORD="+stPassword)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node cookie.js: %v\n%s", err, stderr.String())
	}
	var got struct{ Cookies map[string]string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %s: %v", out, err)
	}
	v, ok := got.Cookies[f.a.CookieName()]
	if !ok {
		t.Fatalf("the SDK wrote cookies %v, none named %s", got.Cookies, f.a.CookieName())
	}
	p, err := f.authn(f.cookie(v))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != f.userID || p.Email != stEmail || p.RefreshToken == "" {
		t.Errorf("principal %+v", p)
	}
	// The refresh token carried is the SDK session's: the marketplace takes it.
	f.token(t, url.Values{"client_id": {stClientID}, "grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}})
}

// TestSharetribeThroughSet runs the authenticator as configured, behind
// Set.Require and whoami, over HTTP.
func TestSharetribeThroughSet(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	set, err := NewSet(
		map[string]config.Authenticator{"shoppers": {Type: config.AuthSharetribe, Marketplace: "main"}},
		map[string]config.Marketplace{"main": {Type: "sharetribe", ClientID: stClientID, APIURL: f.srv.URL}},
		Deps{Now: f.clock.Now, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	set.Register(mux)
	mux.Handle("GET /api/me", set.Require([]string{"shoppers"}, auth.Rule{Scopes: []string{"user"}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := auth.FromContext(r.Context())
			fmt.Fprintf(w, "%s %t", p.Subject, p.RefreshToken != "")
		})))
	app := httptest.NewServer(mux)
	defer app.Close()
	tok := f.login(t)
	cookie := f.a.CookieName() + "=" + encodeURIComponent(sdkCookieJSON(tok))
	get := func(path string, hdr map[string]string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", app.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, res.Body); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, b.String(), res.Header
	}
	if status, body, _ := get("/api/me", map[string]string{"Cookie": cookie}); status != 200 || body != f.userID+" true" {
		t.Fatalf("cookie: %d %s", status, body)
	}
	status, body, _ := get("/auth/whoami", map[string]string{"Cookie": cookie})
	if status != 200 || !strings.Contains(body, f.userID) || strings.Contains(body, tok.RefreshToken) || strings.Contains(body, tok.AccessToken) {
		t.Fatalf("whoami: %d %s", status, body)
	}
	status, body, hdr := get("/api/me", map[string]string{"Authorization": "Bearer garbage"})
	if status != 401 || !strings.Contains(body, `"error":"invalid_token"`) || !strings.Contains(hdr.Get("Www-Authenticate"), "invalid_token") {
		t.Fatalf("garbage token: %d %s %v", status, body, hdr)
	}
	if status, body, _ := get("/api/me", nil); status != 401 || !strings.Contains(body, "missing_credentials") {
		t.Fatalf("no credential: %d %s", status, body)
	}
	f.down.Store(http.StatusBadGateway)
	status, body, _ = get("/api/me", map[string]string{"Authorization": "Bearer not-cached-yet"})
	if status != 503 || !strings.Contains(body, `"error":"marketplace_unavailable"`) || !strings.Contains(body, `"original_error"`) {
		t.Fatalf("marketplace down: %d %s", status, body)
	}
}

// TestSharetribeCookieCrossOrigin: the SDK cookie rides along on
// cross-site requests, so an unsafe request authenticated by it must pass
// cross-origin protection; a bearer token needs no such check.
func TestSharetribeCookieCrossOrigin(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	tok := f.login(t)
	cookie := f.a.CookieName() + "=" + encodeURIComponent(sdkCookieJSON(tok))
	tests := []struct {
		name, method, site string
		bearer             bool
		wantOK             bool
	}{
		{"GET cross-site cookie", "GET", "cross-site", false, true},
		{"POST same-origin cookie", "POST", "same-origin", false, true},
		{"POST cross-site cookie", "POST", "cross-site", false, false},
		{"DELETE same-site cookie", "DELETE", "same-site", false, false},
		{"POST cross-site bearer", "POST", "cross-site", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/api/thing", nil)
			r.Header.Set("Sec-Fetch-Site", tc.site)
			if tc.bearer {
				r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			} else {
				r.Header.Set("Cookie", cookie)
			}
			p, err := f.a.Authenticate(r)
			if tc.wantOK {
				if err != nil || p.Subject != f.userID {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fail *auth.Failure
			if !errors.As(err, &fail) || fail.Code != "csrf_failed" {
				t.Fatalf("want csrf_failed refusal, got %v %v", p, err)
			}
		})
	}
}

// TestWhoamiTriesRemoteLast: a locally verifiable token must be accepted
// without being sent to the marketplace, even when the sharetribe
// authenticator's name sorts first.
func TestWhoamiTriesRemoteLast(t *testing.T) {
	t.Parallel()
	f := stSetup(t, time.Hour)
	secret := strings.Repeat("s", 32)
	set, err := NewSet(
		map[string]config.Authenticator{
			"aaa_shoppers": {Type: config.AuthSharetribe, Marketplace: "main"},
			"zzz_users":    {Type: config.AuthHS256, Secret: secret, Issuer: "backlot", Audience: "backlot", TTL: config.Duration(time.Minute)},
		},
		map[string]config.Marketplace{"main": {Type: "sharetribe", ClientID: stClientID, APIURL: f.srv.URL}},
		Deps{HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	users, _ := set.Get("zzz_users")
	tok, err := users.(*HS256).Mint("user-1", "", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	before := f.calls.Load()
	r := httptest.NewRequest("GET", "/auth/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	set.HandleWhoami(w, r)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"authenticator":"zzz_users"`) {
		t.Fatalf("whoami: %d %s", w.Code, w.Body.String())
	}
	if n := f.calls.Load() - before; n != 0 {
		t.Fatalf("hs256 token sent to the marketplace %d times", n)
	}
}
