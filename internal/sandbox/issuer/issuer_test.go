package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	iss *Issuer
	srv *httptest.Server
}

func setup(t *testing.T, opts Options) *fixture {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	iss, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(iss)
	t.Cleanup(srv.Close)
	return &fixture{iss: iss, srv: srv}
}

func (f *fixture) do(t *testing.T, method, path string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

func (f *fixture) token(t *testing.T, query string) string {
	t.Helper()
	res, body := f.do(t, "GET", "/token?"+query, "")
	if res.StatusCode != 200 {
		t.Fatalf("GET /token?%s = %d %s", query, res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/plain" {
		t.Fatalf("token Content-Type = %q, want text/plain", ct)
	}
	return string(body)
}

// fetchJWKS reads the published keys the way a verifier does: over HTTP,
// parsing each JWK by hand (no JOSE library).
func (f *fixture) fetchJWKS(t *testing.T) map[string]parsedKey {
	t.Helper()
	res, body := f.do(t, "GET", "/.well-known/jwks.json", "")
	if res.StatusCode != 200 {
		t.Fatalf("GET jwks = %d %s", res.StatusCode, body)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("jwks %s: %v", body, err)
	}
	keys := map[string]parsedKey{}
	for _, k := range set.Keys {
		pk, err := parseJWK(k)
		if err != nil {
			t.Fatalf("jwk %v: %v", k, err)
		}
		keys[k["kid"]] = pk
	}
	return keys
}

type parsedKey struct {
	alg string
	key any
}

func parseJWK(k map[string]string) (parsedKey, error) {
	dec := func(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
	if k["use"] != "sig" || k["kid"] == "" {
		return parsedKey{}, fmt.Errorf("use %q kid %q", k["use"], k["kid"])
	}
	switch k["kty"] {
	case "RSA":
		n, err1 := dec(k["n"])
		e, err2 := dec(k["e"])
		if err := errors.Join(err1, err2); err != nil {
			return parsedKey{}, err
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() != 2048 || pub.E != 65537 {
			return parsedKey{}, fmt.Errorf("RSA key of %d bits, e=%d", pub.N.BitLen(), pub.E)
		}
		return parsedKey{alg: k["alg"], key: pub}, nil
	case "EC":
		if k["crv"] != "P-256" {
			return parsedKey{}, fmt.Errorf("crv %q", k["crv"])
		}
		x, err1 := dec(k["x"])
		y, err2 := dec(k["y"])
		if err := errors.Join(err1, err2); err != nil {
			return parsedKey{}, err
		}
		if len(x) != 32 || len(y) != 32 {
			return parsedKey{}, fmt.Errorf("coordinates of %d and %d bytes, want 32", len(x), len(y))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return parsedKey{}, err
		}
		return parsedKey{alg: k["alg"], key: pub}, nil
	}
	return parsedKey{}, fmt.Errorf("kty %q", k["kty"])
}

// verify checks tok against keys as a careful verifier does: RS256 and
// ES256 only, the key chosen by kid and required to be of the token's alg.
func verify(tok string, keys map[string]parsedKey, now time.Time) (jwt.MapClaims, *jwt.Token, error) {
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		if k.alg != t.Method.Alg() {
			return nil, fmt.Errorf("kid %q is for %s, token says %s", kid, k.alg, t.Method.Alg())
		}
		return k.key, nil
	}, jwt.WithValidMethods([]string{"RS256", "ES256"}), jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	return claims, parsed, err
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	res, _ := f.do(t, "GET", "/.well-known/jwks.json", "")
	if cc := res.Header.Get("Cache-Control"); cc != "max-age=300" {
		t.Errorf("Cache-Control = %q, want max-age=300", cc)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	keys := f.fetchJWKS(t)
	if len(keys) != 2 || keys["rs256-1"].alg != "RS256" || keys["es256-2"].alg != "ES256" {
		t.Fatalf("keys = %v, want rs256-1 (RS256) and es256-2 (ES256)", keys)
	}

	g := setup(t, Options{JWKSMaxAge: 90 * time.Second})
	res, _ = g.do(t, "GET", "/.well-known/jwks.json", "")
	if cc := res.Header.Get("Cache-Control"); cc != "max-age=90" {
		t.Errorf("Cache-Control = %q, want max-age=90", cc)
	}
}

func TestTokensVerify(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	keys := f.fetchJWKS(t)
	tests := []struct {
		name, query string
		want        map[string]any
		wantKid     string
		wantAlg     string
	}{
		{
			name:    "defaults",
			query:   "",
			wantKid: "rs256-1", wantAlg: "RS256",
			want: map[string]any{
				"iss": f.srv.URL, "aud": "backlot", "sub": SubjectDefault, "name": NameDefault, "tenant": TenantDefault,
				"iat": float64(fixedNow.Unix()), "exp": float64(fixedNow.Unix() + 300),
			},
		},
		{
			name:    "ES256 with every claim given",
			query:   "alg=ES256&sub=u-1&tenant=ACME&name=ann%40example.com&ttl=60&aud=other",
			wantKid: "es256-2", wantAlg: "ES256",
			want: map[string]any{
				"iss": f.srv.URL, "aud": "other", "sub": "u-1", "name": "ann@example.com", "tenant": "ACME",
				"iat": float64(fixedNow.Unix()), "exp": float64(fixedNow.Unix() + 60),
			},
		},
		{
			name:    "RS256 explicit, ttl 0 means default",
			query:   "alg=RS256&ttl=0&sub=u-2",
			wantKid: "rs256-1", wantAlg: "RS256",
			want: map[string]any{"sub": "u-2", "exp": float64(fixedNow.Unix() + 300)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := f.token(t, tt.query)
			claims, parsed, err := verify(tok, keys, fixedNow.Add(time.Second))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if parsed.Header["kid"] != tt.wantKid || parsed.Header["alg"] != tt.wantAlg || parsed.Header["typ"] != "JWT" {
				t.Fatalf("header = %v, want kid %s alg %s typ JWT", parsed.Header, tt.wantKid, tt.wantAlg)
			}
			for k, v := range tt.want {
				if claims[k] != v {
					t.Errorf("claim %s = %v (%T), want %v", k, claims[k], claims[k], v)
				}
			}
			if len(claims) != 7 {
				t.Errorf("claims = %v, want exactly iss aud sub name tenant iat exp", claims)
			}
			if _, _, err := verify(tok, keys, fixedNow.Add(time.Hour)); !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("an hour later: err = %v, want expired", err)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{Issuer: "https://tokens.example", Audience: "extension-api", TTL: 2 * time.Minute})
	keys := f.fetchJWKS(t)
	claims, _, err := verify(f.token(t, "sub=x"), keys, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != "https://tokens.example" || claims["aud"] != "extension-api" || claims["exp"] != float64(fixedNow.Unix()+120) {
		t.Fatalf("claims = %v", claims)
	}
	// A negative ttl gives a token that is already expired.
	if _, _, err := verify(f.token(t, "ttl=-10"), keys, fixedNow); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("ttl=-10: err = %v, want expired", err)
	}

	// Mint from Go needs an issuer when Options has none.
	g := setup(t, Options{})
	if _, err := g.iss.Mint(Claims{}); err == nil {
		t.Fatal("Mint without an issuer succeeded")
	}
	tok, err := g.iss.Mint(Claims{Issuer: "http://x", Alg: ES256, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify(tok, g.fetchJWKS(t), fixedNow); err != nil {
		t.Fatalf("minted token: %v", err)
	}
	if _, err := g.iss.Mint(Claims{Issuer: "http://x", Alg: "HS256"}); err == nil {
		t.Fatal("Mint with HS256 succeeded")
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	oldRS := f.token(t, "sub=before")
	oldES := f.token(t, "alg=ES256")

	if res, body := f.do(t, "POST", "/rotate?alg=RS256", ""); res.StatusCode != 204 {
		t.Fatalf("rotate = %d %s", res.StatusCode, body)
	}
	if res, body := f.do(t, "POST", "/rotate", ""); res.StatusCode != 204 { // alg defaults to RS256
		t.Fatalf("rotate = %d %s", res.StatusCode, body)
	}
	if res, body := f.do(t, "POST", "/rotate?alg=ES256", ""); res.StatusCode != 204 {
		t.Fatalf("rotate = %d %s", res.StatusCode, body)
	}
	keys := f.fetchJWKS(t)
	if len(keys) != 5 {
		t.Fatalf("after three rotations %d keys published, want 5", len(keys))
	}
	newRS := f.token(t, "sub=after")
	_, parsed, err := verify(newRS, keys, fixedNow)
	if err != nil || parsed.Header["kid"] != "rs256-4" {
		t.Fatalf("new token: kid %v, err %v; want rs256-4", parsed.Header["kid"], err)
	}
	if _, parsed, err := verify(f.token(t, "alg=ES256"), keys, fixedNow); err != nil || parsed.Header["kid"] != "es256-5" {
		t.Fatalf("new ES256 token: kid %v, err %v; want es256-5", parsed.Header["kid"], err)
	}
	// Tokens signed before the rotation still verify while their key is published.
	for _, tok := range []string{oldRS, oldES} {
		if _, _, err := verify(tok, keys, fixedNow); err != nil {
			t.Fatalf("old token after rotation: %v", err)
		}
	}

	refusals := []struct {
		path string
		code int
		err  string
	}{
		{"/retire?kid=rs256-4", 409, "key_in_use"},
		{"/retire?kid=es256-5", 409, "key_in_use"},
		{"/retire?kid=nope", 404, "unknown_kid"},
		{"/retire", 404, "unknown_kid"},
		{"/rotate?alg=PS256", 400, "invalid_request"},
		{"/rotate?alg=HS256", 400, "invalid_request"},
	}
	for _, r := range refusals {
		res, body := f.do(t, "POST", r.path, "")
		if res.StatusCode != r.code || !strings.Contains(string(body), `"`+r.err+`"`) {
			t.Errorf("POST %s = %d %s, want %d %s", r.path, res.StatusCode, body, r.code, r.err)
		}
	}

	for _, kid := range []string{"rs256-1", "es256-2"} {
		if res, body := f.do(t, "POST", "/retire?kid="+kid, ""); res.StatusCode != 204 {
			t.Fatalf("retire %s = %d %s", kid, res.StatusCode, body)
		}
	}
	keys = f.fetchJWKS(t)
	if _, ok := keys["rs256-1"]; ok || len(keys) != 3 {
		t.Fatalf("after retiring, keys = %v", keys)
	}
	for _, tok := range []string{oldRS, oldES} {
		if _, _, err := verify(tok, keys, fixedNow); err == nil {
			t.Fatal("token of a retired key still verifies")
		}
	}
	if _, _, err := verify(newRS, keys, fixedNow); err != nil {
		t.Fatalf("current token after retiring old keys: %v", err)
	}

	// Reset brings back the original keys (and only them).
	if res, _ := f.do(t, "POST", "/_sim/reset", ""); res.StatusCode != 204 {
		t.Fatalf("reset = %d", res.StatusCode)
	}
	keys = f.fetchJWKS(t)
	if len(keys) != 2 {
		t.Fatalf("after reset %d keys, want 2", len(keys))
	}
	if _, _, err := verify(oldRS, keys, fixedNow); err != nil {
		t.Fatalf("original token after reset: %v", err)
	}
	if _, parsed, _ := verify(f.token(t, ""), keys, fixedNow); parsed.Header["kid"] != "rs256-1" {
		t.Fatalf("after reset signs with %v, want rs256-1", parsed.Header["kid"])
	}
}

func TestTamperedTokensFail(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	keys := f.fetchJWKS(t)
	rs := f.token(t, "sub=alice")
	es := f.token(t, "alg=ES256&sub=alice")

	enc := base64.RawURLEncoding
	part := func(tok string, i int) string { return strings.Split(tok, ".")[i] }
	withPayload := func(tok string, edit func(map[string]any)) string {
		b, _ := enc.DecodeString(part(tok, 1))
		var c map[string]any
		_ = json.Unmarshal(b, &c)
		edit(c)
		nb, _ := json.Marshal(c)
		return part(tok, 0) + "." + enc.EncodeToString(nb) + "." + part(tok, 2)
	}
	withHeader := func(tok string, h map[string]any) string {
		hb, _ := json.Marshal(h)
		return enc.EncodeToString(hb) + "." + part(tok, 1) + "." + part(tok, 2)
	}
	flipSig := func(tok string) string {
		sig, _ := enc.DecodeString(part(tok, 2))
		sig[len(sig)/2] ^= 1
		return part(tok, 0) + "." + part(tok, 1) + "." + enc.EncodeToString(sig)
	}
	// The classic confusion: HS256 keyed with the RSA public key's bytes.
	rsaPub := keys["rs256-1"].key.(*rsa.PublicKey)
	hsInput := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"rs256-1","typ":"JWT"}`)) + "." + part(rs, 1)
	m := hmac.New(sha256.New, rsaPub.N.Bytes())
	m.Write([]byte(hsInput))
	hs := hsInput + "." + enc.EncodeToString(m.Sum(nil))

	tests := map[string]string{
		"sub changed":            withPayload(rs, func(c map[string]any) { c["sub"] = "mallory" }),
		"exp extended":           withPayload(rs, func(c map[string]any) { c["exp"] = c["exp"].(float64) + 3600 }),
		"ES256 tenant changed":   withPayload(es, func(c map[string]any) { c["tenant"] = "OTHER" }),
		"RS256 signature flip":   flipSig(rs),
		"ES256 signature flip":   flipSig(es),
		"alg none":               withHeader(rs, map[string]any{"alg": "none", "kid": "rs256-1", "typ": "JWT"}) + "",
		"kid of the other alg":   withHeader(rs, map[string]any{"alg": "RS256", "kid": "es256-2", "typ": "JWT"}),
		"unknown kid":            withHeader(rs, map[string]any{"alg": "RS256", "kid": "rs256-9", "typ": "JWT"}),
		"HS256 with RSA modulus": hs,
		"signature stripped":     part(rs, 0) + "." + part(rs, 1) + ".",
		"ES signature on RS":     part(rs, 0) + "." + part(rs, 1) + "." + part(es, 2),
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := verify(tok, keys, fixedNow); err == nil {
				t.Fatal("tampered token verified")
			}
		})
	}
	// The untouched ones do verify, so the failures above are the tampering.
	for _, tok := range []string{rs, es} {
		if _, _, err := verify(tok, keys, fixedNow); err != nil {
			t.Fatalf("untouched token: %v", err)
		}
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	tests := []struct {
		method, path string
		code         int
		err          string
	}{
		{"GET", "/token?alg=HS256", 400, "invalid_request"},
		{"GET", "/token?alg=none", 400, "invalid_request"},
		{"GET", "/token?ttl=abc", 400, "invalid_request"},
		{"GET", "/token?ttl=1.5", 400, "invalid_request"},
		{"GET", "/token?ttl=99999999999", 400, "invalid_request"},
		{"GET", "/nope", 404, "not_simulated"},
		{"POST", "/token", 404, "not_simulated"},
		{"GET", "/.well-known/openid-configuration", 404, "not_simulated"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			res, body := f.do(t, tt.method, tt.path, "")
			var e struct {
				Error  string   `json:"error"`
				Routes []string `json:"routes"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if res.StatusCode != tt.code || e.Error != tt.err {
				t.Fatalf("= %d %s, want %d %s", res.StatusCode, body, tt.code, tt.err)
			}
			if tt.err == "not_simulated" && !slices.Contains(e.Routes, "GET /.well-known/jwks.json") {
				t.Fatalf("routes = %v, want the simulated routes", e.Routes)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})

	// Two 503s on the JWKS, then normal service.
	res, body := f.do(t, "POST", "/_sim/faults", `{"route":"GET /.well-known/jwks.json","status":503,"count":2}`)
	if res.StatusCode != 201 {
		t.Fatalf("add fault = %d %s", res.StatusCode, body)
	}
	for i := range 2 {
		res, _ := f.do(t, "GET", "/.well-known/jwks.json", "")
		if res.StatusCode != 503 || res.Header.Get("Retry-After") != "1" {
			t.Fatalf("jwks call %d = %d (Retry-After %q), want 503 with Retry-After 1", i, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	if res, _ := f.do(t, "GET", "/.well-known/jwks.json", ""); res.StatusCode != 200 {
		t.Fatalf("jwks after the faults ran out = %d", res.StatusCode)
	}
	// Other routes are not affected.
	if res, _ := f.do(t, "POST", "/_sim/faults", `{"route":"GET /.well-known/jwks.json","status":500}`); res.StatusCode != 201 {
		t.Fatal("add fault")
	}
	if res, _ := f.do(t, "GET", "/token", ""); res.StatusCode != 200 {
		t.Fatalf("token with a jwks fault = %d", res.StatusCode)
	}
	res, body = f.do(t, "GET", "/_sim/faults", "")
	if res.StatusCode != 200 || !strings.Contains(string(body), `"status":500`) {
		t.Fatalf("list faults = %d %s", res.StatusCode, body)
	}
	if res, _ := f.do(t, "DELETE", "/_sim/faults", ""); res.StatusCode != 204 {
		t.Fatal("clear faults")
	}
	if res, _ := f.do(t, "GET", "/.well-known/jwks.json", ""); res.StatusCode != 200 {
		t.Fatalf("jwks after clearing = %d", res.StatusCode)
	}

	// Latency.
	if err := f.iss.AddFault(Fault{Route: "GET /.well-known/jwks.json", LatencyMS: 80, Count: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if res, _ := f.do(t, "GET", "/.well-known/jwks.json", ""); res.StatusCode != 200 {
		t.Fatalf("slow jwks = %d", res.StatusCode)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("slow jwks answered in %v, want at least 80ms", d)
	}

	// 429 with a given Retry-After on every route.
	if err := f.iss.AddFault(Fault{Route: "*", Status: 429, RetryAfter: 7, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if res, _ := f.do(t, "GET", "/token", ""); res.StatusCode != 429 || res.Header.Get("Retry-After") != "7" {
		t.Fatalf("token = %d Retry-After %q, want 429 7", res.StatusCode, res.Header.Get("Retry-After"))
	}

	// A timeout: the client gives up, nothing is answered.
	if err := f.iss.AddFault(Fault{Route: "GET /.well-known/jwks.json", Timeout: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 150 * time.Millisecond}
	if res, err := c.Get(f.srv.URL + "/.well-known/jwks.json"); err == nil {
		res.Body.Close()
		t.Fatalf("jwks with a timeout fault answered %d", res.StatusCode)
	}

	// Reset clears faults.
	if err := f.iss.AddFault(Fault{Route: "GET /token", Status: 502}); err != nil {
		t.Fatal(err)
	}
	f.do(t, "POST", "/_sim/reset", "")
	if res, _ := f.do(t, "GET", "/token", ""); res.StatusCode != 200 {
		t.Fatalf("token after reset = %d", res.StatusCode)
	}

	bad := []string{
		`{"route":"GET /nope","status":503}`,
		`{"route":"GET /token","status":404}`,
		`{"route":"GET /token"}`,
		`{"route":"GET /token","status":503,"count":-1}`,
		`{"route":"GET /token","status":503,"extra":1}`,
		`not json`,
	}
	for _, b := range bad {
		if res, body := f.do(t, "POST", "/_sim/faults", b); res.StatusCode != 400 {
			t.Errorf("POST /_sim/faults %s = %d %s, want 400", b, res.StatusCode, body)
		}
	}
}
