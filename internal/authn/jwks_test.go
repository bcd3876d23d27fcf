package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/testutil"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
)

// jwksServer is a local JWKS endpoint whose keys, Cache-Control and health
// the test controls, counting requests.
type jwksServer struct {
	mu           sync.Mutex
	keys         []map[string]any
	cacheControl string
	status       int
	hits         int
	srv          *httptest.Server
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys, cacheControl: "max-age=300"}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		if s.status != 0 && s.status != 200 {
			w.WriteHeader(s.status)
			return
		}
		if s.cacheControl != "" {
			w.Header().Set("Cache-Control", s.cacheControl)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) URL() string { return s.srv.URL + "/.well-known/jwks.json" }

func (s *jwksServer) set(fn func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *jwksServer) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(pub.N.Bytes()), "e": b64u(big.NewInt(int64(pub.E)).Bytes())}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(b) - 1) / 2
	crv := map[int]string{32: "P-256", 48: "P-384", 66: "P-521"}[size]
	return map[string]any{"kty": "EC", "kid": kid, "crv": crv, "x": b64u(b[1 : 1+size]), "y": b64u(b[1+size:])}
}

type testKeys struct {
	rsa1, rsa2, rsa3, rsaOther *rsa.PrivateKey
	ec1                        *ecdsa.PrivateKey
	ed1                        ed25519.PrivateKey
}

var (
	testKeysOnce sync.Once
	testKeysVal  testKeys
)

// sharedTestKeys generates the RSA keys once per test binary (they are slow).
func sharedTestKeys(t testing.TB) testKeys {
	testKeysOnce.Do(func() {
		gen := func() *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			return k
		}
		testKeysVal.rsa1, testKeysVal.rsa2, testKeysVal.rsa3, testKeysVal.rsaOther = gen(), gen(), gen(), gen()
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		testKeysVal.ec1 = ec
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		testKeysVal.ed1 = ed
	})
	return testKeysVal
}

func signJWT(t testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testIssuer = "https://market.example.com"

func jwksCfg(url string) config.Authenticator {
	return config.Authenticator{Type: config.AuthJWKS, JWKSURL: url, Issuer: testIssuer, Audience: "backlot",
		Algorithms: []string{"RS256", "ES256", "EdDSA"},
		Claims:     config.ClaimsMap{Subject: "sub", Tenant: "tenant", Email: "name", Scopes: "scope"}}
}

func extClaims(clock *testutil.Clock, mod func(jwt.MapClaims)) jwt.MapClaims {
	now := clock.Now().Unix()
	c := jwt.MapClaims{"sub": "abf32c52", "iss": testIssuer, "aud": "backlot", "iat": now, "exp": now + 36000,
		"tenant": "PARTNER_ID", "name": "user@example.com", "scope": "read write"}
	if mod != nil {
		mod(c)
	}
	return c
}

func newJWKSAuth(t testing.TB, url string, clock *testutil.Clock) *authn.JWKS {
	t.Helper()
	j, err := authn.NewJWKS("extension", jwksCfg(url), authn.Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJWKSVerify(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	edJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": b64u(k.ed1.Public().(ed25519.PublicKey))}
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey), ecJWK("ec1", &k.ec1.PublicKey), edJWK)
	clock := newTestClock()
	f := newAuthFixture(t, map[string]config.Authenticator{"extension": jwksCfg(js.URL())}, clock)
	srv := f.serve(t, []string{"extension"}, auth.Rule{})

	pemBytes, err := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pemBytes})
	now := clock.Now().Unix()
	c := func(mod func(jwt.MapClaims)) jwt.MapClaims { return extClaims(clock, mod) }

	cases := []struct {
		name   string
		tok    string
		status int
		desc   string
	}{
		{"RS256", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, c(nil)), 200, ""},
		{"ES256", signJWT(t, jwt.SigningMethodES256, "ec1", k.ec1, c(nil)), 200, ""},
		{"EdDSA", signJWT(t, jwt.SigningMethodEdDSA, "ed1", k.ed1, c(nil)), 200, ""},
		{"no kid", signJWT(t, jwt.SigningMethodRS256, "", k.rsa1, c(nil)), 200, ""},
		{"malformed", "a.b", 401, "malformed token"},
		{"bad signature", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsaOther, c(nil)), 401, "bad signature"},
		{"expired", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, c(func(m jwt.MapClaims) { m["exp"] = now - 31 })), 401, "token expired"},
		{"not yet valid", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, c(func(m jwt.MapClaims) { m["nbf"] = now + 31 })), 401, "token not valid yet"},
		{"future iat", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, c(func(m jwt.MapClaims) { m["iat"] = now + 3600 })), 401, "issued in the future"},
		{"no exp", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, c(func(m jwt.MapClaims) { delete(m, "exp") })), 401, "no expiry"},
		{"wrong issuer", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, c(func(m jwt.MapClaims) { m["iss"] = "https://evil" })), 401, "wrong issuer"},
		{"wrong audience", signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, c(func(m jwt.MapClaims) { m["aud"] = "other" })), 401, "wrong audience"},
		{"alg none", jwtUnsigned(c(nil)), 401, "algorithm none is not accepted"},
		{"HS256 with the RSA public key", signJWT(t, jwt.SigningMethodHS256, "rs1", pubPEM, c(nil)), 401, "algorithm HS256 is not accepted"},
		{"HS256 with the raw modulus", signJWT(t, jwt.SigningMethodHS256, "rs1", k.rsa1.N.Bytes(), c(nil)), 401, "algorithm HS256 is not accepted"},
		{"alg outside the allowlist", signJWT(t, jwt.SigningMethodPS256, "rs1", k.rsa1, c(nil)), 401, "algorithm PS256 is not accepted"},
		{"ES256 header on an RSA key", signJWT(t, jwt.SigningMethodES256, "rs1", k.ec1, c(nil)), 401, "unknown signing key"},
		{"unknown kid", signJWT(t, jwt.SigningMethodRS256, "nope", k.rsa1, c(nil)), 401, "unknown signing key"},
	}
	for i, tc := range cases {
		hdr := bearerHdr(tc.tok)
		hdr["X-Test-IP"] = fmt.Sprintf("10.2.0.%d", i+1)
		res := doReq(t, "GET", srv.URL+"/api/x", hdr, "")
		if res.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, res.status, tc.status, res.body)
			continue
		}
		if tc.status == 200 {
			var got struct{ Principal auth.Principal }
			json.Unmarshal(res.body, &got)
			p := got.Principal
			if p.Subject != "abf32c52" || p.Tenant != "PARTNER_ID" || p.Email != "user@example.com" || !p.HasScope("write") || p.Authenticator != "extension" {
				t.Errorf("%s: principal %+v", tc.name, p)
			}
			continue
		}
		if res.env.Error != "invalid_token" || !strings.Contains(res.env.ErrorDescription, tc.desc) ||
			!strings.Contains(res.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %+v %q, want %q", tc.name, res.env, res.header.Get("WWW-Authenticate"), tc.desc)
		}
	}
	// One initial fetch, and unknown kids within 10 s did not refetch.
	if h := js.Hits(); h != 1 {
		t.Errorf("JWKS fetched %d times, want 1", h)
	}
}

func TestJWKSRotationAndRefetchLimit(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	clock := newTestClock()
	j := newJWKSAuth(t, js.URL(), clock)
	verify := func(kid string, key *rsa.PrivateKey) error {
		_, err := j.Verify(signJWT(t, jwt.SigningMethodRS256, kid, key, extClaims(clock, nil)))
		return err
	}
	if err := verify("rs1", k.rsa1); err != nil {
		t.Fatal(err)
	}
	js.set(func(s *jwksServer) { s.keys = append(s.keys, rsaJWK("rs2", &k.rsa2.PublicKey)) })
	clock.Advance(authn.JWKSMinRefetch)
	if err := verify("rs2", k.rsa2); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if h := js.Hits(); h != 2 {
		t.Fatalf("hits %d, want 2 (one refetch for the unknown kid)", h)
	}
	js.set(func(s *jwksServer) { s.keys = append(s.keys, rsaJWK("rs3", &k.rsa3.PublicKey)) })
	clock.Advance(authn.JWKSMinRefetch - time.Second)
	if err := verify("rs3", k.rsa3); err == nil || !strings.Contains(err.Error(), "unknown signing key") {
		t.Fatalf("second unknown kid within 10 s: %v", err)
	}
	if err := verify("rs4", k.rsa3); err == nil {
		t.Fatal("nonexistent kid accepted")
	}
	if h := js.Hits(); h != 2 {
		t.Fatalf("hits %d, want 2 (refetch is limited to once per 10 s)", h)
	}
	clock.Advance(time.Second)
	if err := verify("rs3", k.rsa3); err != nil {
		t.Fatalf("after 10 s: %v", err)
	}
	if h := js.Hits(); h != 3 {
		t.Fatalf("hits %d, want 3", h)
	}
	if j.Fetches() != 3 {
		t.Fatalf("Fetches() = %d", j.Fetches())
	}
}

func TestJWKSCacheControl(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	js.set(func(s *jwksServer) { s.cacheControl = "public, max-age=60" })
	clock := newTestClock()
	j := newJWKSAuth(t, js.URL(), clock)
	tok := signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, nil))
	step := func(d time.Duration, wantHits int) {
		t.Helper()
		clock.Advance(d)
		if _, err := j.Verify(tok); err != nil {
			t.Fatal(err)
		}
		if h := js.Hits(); h != wantHits {
			t.Fatalf("after +%v: hits %d, want %d", d, h, wantHits)
		}
	}
	step(0, 1)
	step(59*time.Second, 1) // fresh for 60 s
	js.set(func(s *jwksServer) { s.cacheControl = "" })
	step(time.Second, 2) // max-age reached: refetched, now without Cache-Control
	step(5*time.Minute-time.Second, 2)
	js.set(func(s *jwksServer) { s.cacheControl = "no-store" })
	step(time.Second, 3)   // default 5 min reached
	step(5*time.Second, 3) // no-store: stale at once, but refetches are 10 s apart
	step(5*time.Second, 4)
}

func TestJWKSIssuerDown(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	js.set(func(s *jwksServer) { s.cacheControl = "max-age=60" })
	clock := newTestClock()
	f := newAuthFixture(t, map[string]config.Authenticator{"extension": jwksCfg(js.URL())}, clock)
	if err := f.set.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if js.Hits() != 1 {
		t.Fatalf("Start did not prefetch: hits %d", js.Hits())
	}
	srv := f.serve(t, []string{"extension"}, auth.Rule{})
	tok := signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, func(m jwt.MapClaims) { m["exp"] = clock.Now().Add(10 * time.Hour).Unix() }))
	get := func() testResp { return doReq(t, "GET", srv.URL+"/api/x", bearerHdr(tok), "") }

	js.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	clock.Advance(61 * time.Second)
	if res := get(); res.status != 200 {
		t.Fatalf("stale keys not served: %d %s", res.status, res.body)
	}
	if js.Hits() != 2 {
		t.Fatalf("no refresh attempt when stale: hits %d", js.Hits())
	}
	clock.Advance(5 * time.Second)
	get()
	if js.Hits() != 2 {
		t.Fatalf("a down issuer is retried more than once per 10 s: hits %d", js.Hits())
	}
	clock.Advance(59 * time.Minute)
	if res := get(); res.status != 200 {
		t.Fatalf("stale keys refused before 1 h: %d %s", res.status, res.body)
	}
	clock.Advance(2 * time.Minute) // now past freshness + 1 h
	res := get()
	if res.status != 401 || res.env.Error != "invalid_token" || res.env.ErrorDescription != "signing keys unavailable" {
		t.Fatalf("after 1 h stale: %d %+v", res.status, res.env)
	}
	js.set(func(s *jwksServer) { s.status = 0 })
	clock.Advance(authn.JWKSMinRefetch)
	if res := get(); res.status != 200 {
		t.Fatalf("after the issuer recovered: %d %s", res.status, res.body)
	}
}

func TestJWKSIssuerDownFromStart(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	js := newJWKSServer(t)
	js.set(func(s *jwksServer) { s.status = http.StatusBadGateway })
	clock := newTestClock()
	j := newJWKSAuth(t, js.URL(), clock)
	if err := j.Start(context.Background()); err != nil {
		t.Fatalf("Start must not fail when the issuer is down: %v", err)
	}
	_, err := j.Verify(signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, nil)))
	if err == nil || !strings.Contains(err.Error(), "signing keys unavailable") {
		t.Fatalf("err = %v", err)
	}
}

func TestJWKSBadKeys(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	withPriv := rsaJWK("priv", &k.rsa2.PublicKey)
	withPriv["d"] = b64u(k.rsa2.D.Bytes())
	enc := rsaJWK("enc", &k.rsa3.PublicKey)
	enc["use"] = "enc"
	offCurve := ecJWK("offcurve", &k.ec1.PublicKey)
	offCurve["y"] = b64u(make([]byte, 32))
	hsJWK := map[string]any{"kty": "oct", "kid": "oct", "k": b64u([]byte(testHSSecret))}
	js := newJWKSServer(t, rsaJWK("good", &k.rsa1.PublicKey), rsaJWK("small", &small.PublicKey), withPriv, enc, offCurve, hsJWK)
	clock := newTestClock()
	j := newJWKSAuth(t, js.URL(), clock)
	if _, err := j.Verify(signJWT(t, jwt.SigningMethodRS256, "good", k.rsa1, extClaims(clock, nil))); err != nil {
		t.Fatalf("good key: %v", err)
	}
	for _, tc := range []struct {
		kid string
		m   jwt.SigningMethod
		key any
	}{
		{"small", jwt.SigningMethodRS256, small},
		{"priv", jwt.SigningMethodRS256, k.rsa2},
		{"enc", jwt.SigningMethodRS256, k.rsa3},
		{"offcurve", jwt.SigningMethodES256, k.ec1},
		{"oct", jwt.SigningMethodHS256, []byte(testHSSecret)},
	} {
		if _, err := j.Verify(signJWT(t, tc.m, tc.kid, tc.key, extClaims(clock, nil))); err == nil {
			t.Errorf("key %s accepted", tc.kid)
		}
	}
	// A set with no usable key at all is a failed fetch.
	js2 := newJWKSServer(t, rsaJWK("small", &small.PublicKey))
	j2 := newJWKSAuth(t, js2.URL(), clock)
	if _, err := j2.Verify(signJWT(t, jwt.SigningMethodRS256, "small", small, extClaims(clock, nil))); err == nil || !strings.Contains(err.Error(), "signing keys unavailable") {
		t.Fatalf("unusable set: %v", err)
	}
}

// A route taking both an hs256 and a jwks authenticator reports the
// failure of the one the token was meant for.
func TestJWKSAndHS256OnOneRoute(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	clock := newTestClock()
	f := newAuthFixture(t, map[string]config.Authenticator{"extension": jwksCfg(js.URL()), "users": hsCfg()}, clock)
	srv := f.serve(t, []string{"extension", "users"}, auth.Rule{})
	now := clock.Now().Unix()
	expiredHS := signHS(t, testHSSecret, jwt.MapClaims{"sub": "u", "iss": "backlot", "aud": "backlot", "exp": now - 100})
	res := doReq(t, "GET", srv.URL+"/api/x", bearerHdr(expiredHS), "")
	if res.status != 401 || res.env.ErrorDescription != "token expired" {
		t.Fatalf("expired hs256 token: %d %+v", res.status, res.env)
	}
	expiredRS := signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, func(m jwt.MapClaims) { m["exp"] = now - 100 }))
	res = doReq(t, "GET", srv.URL+"/api/x", bearerHdr(expiredRS), "")
	if res.status != 401 || res.env.ErrorDescription != "token expired" {
		t.Fatalf("expired jwks token: %d %+v", res.status, res.env)
	}
	for _, tok := range []string{mintHS(t, f, "users", "u", "", nil), signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, nil))} {
		if res := doReq(t, "GET", srv.URL+"/auth/whoami", bearerHdr(tok), ""); res.status != 200 {
			t.Fatalf("whoami: %d %s", res.status, res.body)
		}
	}
}

func TestJWKSTokenCache(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	js.set(func(s *jwksServer) { s.cacheControl = "max-age=60" })
	clock := newTestClock()
	j := newJWKSAuth(t, js.URL(), clock)
	tok := signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, nil))
	p1, err := j.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	p1.Claims["injected"] = true
	p1.Scopes[0] = "admin"
	p2, err := j.Verify(tok) // from the cache
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p2.Claims["injected"]; ok || p2.Scopes[0] != "read" {
		t.Fatalf("cached principal shares state with an earlier caller: %+v", p2)
	}
	// The key is withdrawn: once the set is refreshed, the cached
	// verification no longer counts.
	js.set(func(s *jwksServer) { s.keys = []map[string]any{rsaJWK("rs2", &k.rsa2.PublicKey)} })
	clock.Advance(61 * time.Second)
	if _, err := j.Verify(tok); err == nil || !strings.Contains(err.Error(), "unknown signing key") {
		t.Fatalf("token of a withdrawn key: %v", err)
	}

	// A cached token still expires on time.
	js2 := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	j2 := newJWKSAuth(t, js2.URL(), clock)
	short := signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, func(m jwt.MapClaims) { m["exp"] = clock.Now().Unix() + 20 }))
	if _, err := j2.Verify(short); err != nil {
		t.Fatal(err)
	}
	clock.Advance(51 * time.Second) // past exp and the 30 s leeway
	if _, err := j2.Verify(short); err == nil || !strings.Contains(err.Error(), "token expired") {
		t.Fatalf("expired cached token: %v", err)
	}
}

// FuzzParseJWKS: a hostile JWKS document never panics and never yields a
// key of an unusable type.
func FuzzParseJWKS(f *testing.F) {
	k := sharedTestKeys(f)
	for _, s := range []string{
		fmt.Sprintf(`{"keys":[%s]}`, mustJSON(rsaJWK("a", &k.rsa1.PublicKey))),
		fmt.Sprintf(`{"keys":[%s]}`, mustJSON(ecJWK("b", &k.ec1.PublicKey))),
		`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, `{"keys":null}`, `[]`, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := authn.ParseJWKSKeys(b)
		if err == nil && n == 0 {
			t.Fatal("a set with no usable key parsed without error")
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
