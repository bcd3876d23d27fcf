package authn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
)

const (
	localHSSecret  = "0123456789abcdef0123456789abcdef-local"
	localIssuer    = "https://partner.example.com"
	localGoodKey   = "blk_Vh2d9Qm8aZ1kX0pL4rT7yU3iO6eW5qS2dF8gH1jK9lM"
	localLegacyKey = "legacy-ops-key-4711"
)

// localFixture is a Set with local authenticators (hs256, jwks, api_key)
// and a sharetribe one backed by the marketplace simulator, which counts
// the current_user/show calls it receives.
type localFixture struct {
	st    *stFixture
	set   *Set
	app   *httptest.Server
	ecKey *ecdsa.PrivateKey
}

func localSetup(t *testing.T) *localFixture {
	t.Helper()
	f := &localFixture{st: stSetup(t, time.Hour)}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.ecKey = ec
	pub, err := ec.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "kid": "p1", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub[1:33]), "y": base64.RawURLEncoding.EncodeToString(pub[33:])}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	t.Cleanup(jwks.Close)

	f.set, err = NewSet(map[string]config.Authenticator{
		"shoppers": {Type: config.AuthSharetribe, Marketplace: "main"},
		"users":    {Type: config.AuthHS256, Secret: localHSSecret, Issuer: "backlot", Audience: "backlot"},
		"partners": {Type: config.AuthJWKS, JWKSURL: jwks.URL, Issuer: localIssuer, Audience: "backlot", Algorithms: []string{"ES256"}},
		"ops": {Type: config.AuthAPIKey, APIKeys: []config.APIKey{
			{ID: "nightly", SHA256: sha256HexLocal(localGoodKey)},
			{ID: "legacy", SHA256: sha256HexLocal(localLegacyKey)},
		}},
	}, map[string]config.Marketplace{"main": {Type: "sharetribe", ClientID: stClientID, APIURL: f.st.srv.URL}},
		Deps{Now: f.st.clock.Now, HTTPClient: f.st.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	f.set.SetFailureLimit(rate.Inf, 1000) // this test refuses many credentials from one address
	mux := http.NewServeMux()
	f.set.Register(mux)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		httpapi.WriteJSON(w, http.StatusOK, p)
	})
	// The marketplace first: the order a careless config might use.
	mux.Handle("GET /api/mixed", f.set.Require([]string{"shoppers", "users", "partners", "ops"}, auth.Rule{})(echo))
	mux.Handle("GET /api/shoppers", f.set.Require([]string{"shoppers"}, auth.Rule{})(echo))
	f.app = httptest.NewServer(mux)
	t.Cleanup(f.app.Close)
	return f
}

func sha256HexLocal(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (f *localFixture) hs(t *testing.T, secret string, mod func(jwt.MapClaims)) string {
	t.Helper()
	now := f.st.clock.Now().Unix()
	c := jwt.MapClaims{"sub": "u1", "iss": "backlot", "aud": "backlot", "iat": now, "exp": now + 600}
	if mod != nil {
		mod(c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *localFixture) es(t *testing.T, kid string, key *ecdsa.PrivateKey, mod func(jwt.MapClaims)) string {
	t.Helper()
	now := f.st.clock.Now().Unix()
	c := jwt.MapClaims{"sub": "p1", "iss": localIssuer, "aud": "backlot", "iat": now, "exp": now + 600}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *localFixture) get(t *testing.T, path, bearer string) (int, httpapi.Envelope, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.app.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var env httpapi.Envelope
	if res.StatusCode >= 400 {
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("not an envelope: %s", b)
		}
	}
	return res.StatusCode, env, string(b)
}

// TestLocalCredentialsNeverForwarded: a credential a local authenticator
// recognises as its own but refuses is refused by backlot and never sent
// to the marketplace, whatever the route's order of authenticators.
func TestLocalCredentialsNeverForwarded(t *testing.T) {
	t.Parallel()
	f := localSetup(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		tok  string
		desc string // error_description where a local authenticator on the route judged it
	}{
		{"mistyped blk_ API key", localGoodKey[:len(localGoodKey)-1] + "x", "unknown API key"},
		{"blk_ value shaped like a JWT", "blk_a.b.c", "unknown API key"},
		{"expired hs256 token", f.hs(t, localHSSecret, func(c jwt.MapClaims) { c["exp"] = c["iat"].(int64) - 3600 }), "token expired"},
		{"hs256 wrong audience", f.hs(t, localHSSecret, func(c jwt.MapClaims) { c["aud"] = "other" }), "wrong audience"},
		{"hs256 bad signature", f.hs(t, strings.Repeat("z", 40), nil), "bad signature"},
		{"hs256 crit header", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u1", "iss": "backlot", "aud": "backlot", "exp": f.st.clock.Now().Unix() + 60})
			tok.Header["crit"] = []string{"x-must-understand"}
			s, _ := tok.SignedString([]byte(localHSSecret))
			return s
		}(), "crit"},
		{"jwks expired", f.es(t, "p1", f.ecKey, func(c jwt.MapClaims) { c["exp"] = c["iat"].(int64) - 3600 }), "token expired"},
		{"jwks unknown key", f.es(t, "p9", other, nil), "unknown signing key"},
		{"jwks bad signature", f.es(t, "p1", other, nil), "bad signature"},
		{"jwks wrong audience", f.es(t, "p1", f.ecKey, func(c jwt.MapClaims) { c["aud"] = "other" }), "wrong audience"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/auth/whoami", "/api/mixed", "/api/shoppers"} {
				before := f.st.calls.Load()
				status, env, body := f.get(t, path, tc.tok)
				if n := f.st.calls.Load() - before; n != 0 {
					t.Errorf("%s: sent to the marketplace %d times", path, n)
				}
				if status != http.StatusUnauthorized || env.Error != "invalid_token" {
					t.Errorf("%s: %d %s", path, status, body)
				}
				if path != "/api/shoppers" && !strings.Contains(env.ErrorDescription, tc.desc) {
					t.Errorf("%s: description %q, want %q", path, env.ErrorDescription, tc.desc)
				}
				if strings.Contains(body, tc.tok) {
					t.Errorf("%s: credential echoed", path)
				}
			}
		})
	}
}

// TestNonLocalCredentialsStillReachMarketplace is the control: the
// marketplace's own tokens, and API keys from before the blk_ prefix, are
// still sent (the latter is why new keys carry the prefix).
func TestNonLocalCredentialsStillReachMarketplace(t *testing.T) {
	t.Parallel()
	f := localSetup(t)
	tok := f.st.login(t)
	for _, path := range []string{"/auth/whoami", "/api/mixed", "/api/shoppers"} {
		a, _ := f.set.Get("shoppers")
		st := a.(*Sharetribe)
		st.mu.Lock()
		clear(st.cache) // each route asks afresh
		st.mu.Unlock()
		before := f.st.calls.Load()
		if status, _, body := f.get(t, path, tok.AccessToken); status != 200 || !strings.Contains(body, f.st.userID) {
			t.Errorf("%s: marketplace token: %d %s", path, status, body)
		}
		if n := f.st.calls.Load() - before; n != 1 {
			t.Errorf("%s: marketplace token: %d calls, want 1", path, n)
		}
	}
	before := f.st.calls.Load()
	if status, _, body := f.get(t, "/api/shoppers", localLegacyKey+"x"); status != 401 {
		t.Errorf("mistyped legacy key: %d %s", status, body)
	}
	if n := f.st.calls.Load() - before; n != 1 {
		t.Errorf("mistyped legacy key: %d calls, want 1 (keys without the prefix are not recognised)", n)
	}
	// The good keys and tokens are accepted locally, without a call.
	before = f.st.calls.Load()
	for _, c := range []struct{ tok, authn string }{
		{localGoodKey, "ops"}, {localLegacyKey, "ops"},
		{f.hs(t, localHSSecret, nil), "users"}, {f.es(t, "p1", f.ecKey, nil), "partners"},
	} {
		for _, path := range []string{"/auth/whoami", "/api/mixed"} {
			if status, _, body := f.get(t, path, c.tok); status != 200 || !strings.Contains(body, `"authenticator":"`+c.authn+`"`) {
				t.Errorf("%s %s: %d %s", path, c.authn, status, body)
			}
		}
	}
	if n := f.st.calls.Load() - before; n != 0 {
		t.Errorf("valid local credentials: %d marketplace calls", n)
	}
}
