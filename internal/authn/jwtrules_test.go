package authn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/authn"
)

// TestJWTHardRules: the rules every JWT must meet at hs256 and jwks alike.
// A crit header is refused, sub must be a non-empty string, and a missing
// iss or aud is named as such.
func TestJWTHardRules(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	clock := newTestClock()
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	jw := newJWKSAuth(t, js.URL(), clock)
	hs, err := authn.NewHS256("users", hsCfg(), authn.Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	type verifier interface {
		Verify(string) (*auth.Principal, error)
	}
	now := clock.Now().Unix()
	kinds := []struct {
		name string
		v    verifier
		sign func(hdr map[string]any, c jwt.MapClaims) string
		iss  string
	}{
		{"hs256", hs, func(hdr map[string]any, c jwt.MapClaims) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
			for k, v := range hdr {
				tok.Header[k] = v
			}
			s, err := tok.SignedString([]byte(testHSSecret))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "backlot"},
		{"jwks", jw, func(hdr map[string]any, c jwt.MapClaims) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
			tok.Header["kid"] = "rs1"
			for k, v := range hdr {
				tok.Header[k] = v
			}
			s, err := tok.SignedString(k.rsa1)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, testIssuer},
	}
	cases := []struct {
		name string
		hdr  map[string]any
		mod  func(jwt.MapClaims)
		desc string // "" = accepted
	}{
		{"valid", nil, nil, ""},
		{"crit with an extension", map[string]any{"crit": []string{"x-must-understand"}, "x-must-understand": true}, nil, "crit"},
		{"crit empty list", map[string]any{"crit": []string{}}, nil, "crit"},
		{"crit null", map[string]any{"crit": nil}, nil, "crit"},
		{"crit naming exp", map[string]any{"crit": []string{"exp"}}, nil, "crit"},
		{"no sub", nil, func(c jwt.MapClaims) { delete(c, "sub") }, "token has no subject (sub)"},
		{"empty sub", nil, func(c jwt.MapClaims) { c["sub"] = "" }, "token has no subject (sub)"},
		{"numeric sub", nil, func(c jwt.MapClaims) { c["sub"] = 42 }, "subject (sub) is not a string"},
		{"array sub", nil, func(c jwt.MapClaims) { c["sub"] = []string{"a"} }, "subject (sub) is not a string"},
		{"null sub", nil, func(c jwt.MapClaims) { c["sub"] = nil }, "subject (sub) is not a string"},
		{"no iss", nil, func(c jwt.MapClaims) { delete(c, "iss") }, "token has no issuer (iss)"},
		{"empty iss", nil, func(c jwt.MapClaims) { c["iss"] = "" }, "token has no issuer (iss)"},
		{"numeric iss", nil, func(c jwt.MapClaims) { c["iss"] = 7 }, "issuer (iss) is not a string"},
		{"no aud", nil, func(c jwt.MapClaims) { delete(c, "aud") }, "token has no audience (aud)"},
		{"empty aud", nil, func(c jwt.MapClaims) { c["aud"] = "" }, "token has no audience (aud)"},
		{"numeric aud", nil, func(c jwt.MapClaims) { c["aud"] = 7 }, "audience (aud) is not a string"},
		{"no exp", nil, func(c jwt.MapClaims) { delete(c, "exp") }, "token has no expiry (exp)"},
		{"no exp and no aud", nil, func(c jwt.MapClaims) { delete(c, "exp"); delete(c, "aud") }, "token has no expiry (exp)"},
		{"string exp", nil, func(c jwt.MapClaims) { c["exp"] = "soon" }, "expiry (exp) is not a number"},
	}
	for _, kind := range kinds {
		for i, tc := range cases {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				c := jwt.MapClaims{"sub": "u1", "iss": kind.iss, "aud": "backlot", "iat": now, "exp": now + 600 + int64(i)}
				if tc.mod != nil {
					tc.mod(c)
				}
				p, err := kind.v.Verify(kind.sign(tc.hdr, c))
				if tc.desc == "" {
					if err != nil || p.Subject != "u1" {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				var f *auth.Failure
				if !errors.As(err, &f) {
					t.Fatalf("accepted or not a Failure: %+v %v", p, err)
				}
				if !strings.Contains(f.Reason, tc.desc) {
					t.Fatalf("reason %q, want %q", f.Reason, tc.desc)
				}
			})
		}
	}
}
