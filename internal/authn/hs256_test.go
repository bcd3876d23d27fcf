package authn_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/authn"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func signHS(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHS256(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	f := newAuthFixture(t, map[string]config.Authenticator{"users": hsCfg()}, clock)
	srv := f.serve(t, []string{"users"}, auth.Rule{})
	now := clock.Now().Unix()
	base := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "u1", "iss": "backlot", "aud": "backlot", "iat": now, "nbf": now, "exp": now + 600,
			"tenant": "t1", "email": "u1@example.com", "scope": []any{"a", "b"}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := jwt.NewWithClaims(jwt.SigningMethodRS256, base(nil)).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		tok    string
		status int
		desc   string
	}{
		{"valid", signHS(t, testHSSecret, base(nil)), 200, ""},
		{"leeway on exp", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { c["exp"] = now - 20 })), 200, ""},
		{"leeway on nbf", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { c["nbf"] = now + 20 })), 200, ""},
		{"malformed", "abc.def", 401, "malformed token"},
		{"malformed segments", "a.b.c", 401, "malformed token"},
		{"bad signature", signHS(t, testHSSecret+"x", base(nil)), 401, "bad signature"},
		{"expired", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { c["exp"] = now - 31 })), 401, "token expired"},
		{"not yet valid", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { c["nbf"] = now + 60 })), 401, "token not valid yet"},
		{"issued in the future", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { c["iat"] = now + 60 })), 401, "token issued in the future"},
		{"no exp", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { delete(c, "exp") })), 401, "no expiry"},
		{"wrong issuer", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { c["iss"] = "evil" })), 401, "wrong issuer"},
		{"wrong audience", signHS(t, testHSSecret, base(func(c jwt.MapClaims) { c["aud"] = "other" })), 401, "wrong audience"},
		{"alg none", jwtUnsigned(base(nil)), 401, "algorithm none is not accepted"},
		{"RS256", rs, 401, "algorithm RS256 is not accepted"},
	}
	for i, c := range cases {
		hdr := bearerHdr(c.tok)
		hdr["X-Test-IP"] = fmt.Sprintf("10.1.0.%d", i+1) // distinct clients
		res := doReq(t, "GET", srv.URL+"/api/x", hdr, "")
		if res.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, res.status, c.status, res.body)
			continue
		}
		if c.status != 200 {
			if res.env.Error != "invalid_token" || !strings.Contains(res.env.ErrorDescription, c.desc) {
				t.Errorf("%s: %+v, want description %q", c.name, res.env, c.desc)
			}
			if strings.Contains(string(res.body), c.tok) {
				t.Errorf("%s: token echoed", c.name)
			}
		}
	}
}

func TestHS256MintAndClaims(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	a, err := authn.NewHS256("users", hsCfg(), authn.Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Mint("u1", "t1", []string{"orders:read", "orders:write"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "u1" || p.Tenant != "t1" || !p.HasScope("orders:write") || len(p.Scopes) != 2 || p.Authenticator != "users" {
		t.Fatalf("principal %+v", p)
	}
	if exp, _ := p.Claims["exp"].(float64); int64(exp) != clock.Now().Add(config.HS256TTLDefault).Unix() {
		t.Fatalf("exp %v, want now+15m", p.Claims["exp"])
	}
	clock.Advance(config.HS256TTLDefault + 31*time.Second)
	if _, err := a.Verify(tok); err == nil || !strings.Contains(err.Error(), "token expired") {
		t.Fatalf("after ttl: %v", err)
	}
	if _, err := a.Mint("", "", nil, 0); err == nil {
		t.Fatal("mint without a subject succeeded")
	}
	// Scope as a space-separated string and custom claim names.
	cfg := hsCfg()
	cfg.Claims = config.ClaimsMap{Subject: "uid", Email: "mail", Scopes: "scp"}
	b, err := authn.NewHS256("b", cfg, authn.Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now().Unix()
	p, err = b.Verify(signHS(t, testHSSecret, jwt.MapClaims{"uid": "x", "mail": "x@y", "scp": "a b  c", "iss": "backlot", "aud": "backlot", "exp": now + 60}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "x" || p.Email != "x@y" || strings.Join(p.Scopes, ",") != "a,b,c" {
		t.Fatalf("mapped principal %+v", p)
	}
}

func TestHS256ShortSecret(t *testing.T) {
	t.Parallel()
	_, err := authn.NewSet(map[string]config.Authenticator{"u": {Type: "hs256", Secret: strings.Repeat("x", 31)}}, nil, authn.Deps{})
	if err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzJWTVerify: arbitrary bearer strings never panic, never verify, and
// are refused with a Failure.
func FuzzJWTVerify(f *testing.F) {
	clock := newTestClock()
	hs, err := authn.NewHS256("users", hsCfg(), authn.Deps{Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := hs.Mint("u", "t", []string{"a"}, time.Hour)
	parts := strings.Split(tok, ".")
	for _, s := range []string{tok, parts[0] + "." + parts[1] + ".", jwtUnsigned(map[string]any{"sub": "x"}), "..", "a.b.c", parts[0] + ".e30." + parts[2],
		"eyJhbGciOiJSUzI1NiJ9.e30.AAAA", "eyJhbGciOiJub25lIn0.e30."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := hs.Verify(s)
		if err == nil {
			if s != tok {
				// golang-jwt decodes base64url leniently in some trailing
				// bits; the claims must then be exactly the minted ones.
				if p.Subject != "u" || p.Tenant != "t" {
					t.Fatalf("accepted forged %q: %+v", s, p)
				}
			}
			return
		}
		var fl *auth.Failure
		if !errors.As(err, &fl) {
			t.Fatalf("%q: not a Failure: %v", s, err)
		}
		if strings.Contains(fl.Reason, s) && len(s) > 8 {
			t.Fatalf("reason echoes the token: %q", fl.Reason)
		}
	})
}
