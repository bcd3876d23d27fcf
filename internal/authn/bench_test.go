package authn_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/backlothq/backlot/internal/authn"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
)

type benchCase struct {
	name string
	a    auth.Authenticator
	req  *http.Request
}

func benchCases(b *testing.B) []benchCase {
	b.Helper()
	k := sharedTestKeys(b)
	js := newJWKSServer(b, rsaJWK("rs1", &k.rsa1.PublicKey), ecJWK("ec1", &k.ec1.PublicKey))
	clock := newTestClock()
	f := newAuthFixture(b, map[string]config.Authenticator{
		"users":     hsCfg(),
		"extension": jwksCfg(js.URL()),
		"stripe":    {Type: config.AuthStripeApp, Secrets: []string{stripeTestSecret}},
		"ops":       {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "a", SHA256: sha256Hex("k-a")}, {ID: "b", SHA256: sha256Hex("k-b")}, {ID: "ops", SHA256: sha256Hex(testAPIKey)}}},
	}, clock)
	if err := f.set.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	get := func(name string) auth.Authenticator {
		a, ok := f.set.Get(name)
		if !ok {
			b.Fatalf("no %s", name)
		}
		return a
	}
	req := func(hdr map[string]string) *http.Request {
		r := httptest.NewRequest("GET", "/api/x", nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	now := clock.Now().Unix()
	return []benchCase{
		{"hs256", get("users"), req(bearerHdr(mintHS(b, f, "users", "u1", "t1", []string{"a", "b"})))},
		{"jwks_rs256", get("extension"), req(bearerHdr(signJWT(b, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, nil))))},
		{"jwks_es256", get("extension"), req(bearerHdr(signJWT(b, jwt.SigningMethodES256, "ec1", k.ec1, extClaims(clock, nil))))},
		{"stripe_app", get("stripe"), req(map[string]string{"Stripe-User-Id": stripeTestUser, "Stripe-Account-Id": stripeTestAcct,
			"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", now, stripeSig(stripeTestSecret, now, authn.StripeAppPayload(stripeTestUser, stripeTestAcct)))})},
		{"api_key", get("ops"), req(bearerHdr(testAPIKey))},
	}
}

// BenchmarkVerify measures one authenticator deciding one request.
func BenchmarkVerify(b *testing.B) {
	for _, c := range benchCases(b) {
		b.Run(c.name, func(b *testing.B) {
			if _, err := c.a.Authenticate(c.req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.a.Authenticate(c.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyUncached measures the full verification of the token
// authenticators, with the verified-token cache emptied every iteration.
func BenchmarkVerifyUncached(b *testing.B) {
	for _, c := range benchCases(b) {
		drop, ok := c.a.(interface{ DropTokenCache() })
		if !ok {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				drop.DropTokenCache()
				if _, err := c.a.Authenticate(c.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyParallel shows the verify paths do not serialise on a lock.
func BenchmarkVerifyParallel(b *testing.B) {
	for _, c := range benchCases(b) {
		if c.name != "jwks_rs256" && c.name != "hs256" {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := c.req.Clone(context.Background())
				for pb.Next() {
					if _, err := c.a.Authenticate(r); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkWhoami is GET /auth/whoami with an RS256 token from a JWKS,
// through the Set (rate-limit check, authenticators in order, metrics,
// JSON answer), with hs256 and api_key tried and declining first.
func BenchmarkWhoami(b *testing.B) {
	k := sharedTestKeys(b)
	js := newJWKSServer(b, rsaJWK("rs1", &k.rsa1.PublicKey))
	clock := newTestClock()
	f := newAuthFixture(b, map[string]config.Authenticator{
		"extension": jwksCfg(js.URL()),
		"users":     hsCfg(),
	}, clock)
	tok := signJWT(b, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, nil))
	r := httptest.NewRequest("GET", "/auth/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r = r.WithContext(httpapi.WithState(r.Context(), &httpapi.State{ID: "bench", ClientIP: netip.MustParseAddr("127.0.0.1")}))
	w := httptest.NewRecorder()
	f.set.HandleWhoami(w, r)
	if w.Code != 200 {
		b.Fatalf("whoami %d %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.set.HandleWhoami(w, r)
	}
}

// BenchmarkRequire is a route guarded by Require([extension]) with an
// RS256 token, the SPEC 7 "GET authenticated with an RS256 JWT" path
// without the network.
func BenchmarkRequire(b *testing.B) {
	k := sharedTestKeys(b)
	js := newJWKSServer(b, rsaJWK("rs1", &k.rsa1.PublicKey))
	clock := newTestClock()
	f := newAuthFixture(b, map[string]config.Authenticator{"extension": jwksCfg(js.URL())}, clock)
	h := f.set.Require([]string{"extension"}, auth.Rule{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
	}))
	tok := signJWT(b, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, nil))
	r := httptest.NewRequest("GET", "/api/x", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r = r.WithContext(httpapi.WithState(r.Context(), &httpapi.State{ID: "bench", ClientIP: netip.MustParseAddr("127.0.0.1")}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 204 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
