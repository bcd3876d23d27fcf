package authn_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/auth"
)

// jwksRef is the reference check for FuzzJWKSVerify: an independent
// verification with golang-jwt, the known public keys and the documented
// rules (allowlist, exp required, exp/nbf/iat with 30 s leeway, iss, aud,
// no crit, sub a non-empty string, a kid naming a published key).
type jwksRef struct {
	algs  []string
	byKID map[string][]any
	all   []any
}

func (ref *jwksRef) accepts(tok string, now time.Time) (string, bool) {
	p := jwt.NewParser(jwt.WithValidMethods(ref.algs), jwt.WithLeeway(30*time.Second), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithIssuer(testIssuer), jwt.WithAudience("backlot"), jwt.WithTimeFunc(func() time.Time { return now }))
	claims := jwt.MapClaims{}
	_, err := p.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("crit")
		}
		keys := ref.all
		if kid, _ := t.Header["kid"].(string); kid != "" {
			keys = ref.byKID[kid]
		}
		var vk []jwt.VerificationKey
		for _, k := range keys {
			vk = append(vk, k)
		}
		return jwt.VerificationKeySet{Keys: vk}, nil
	})
	if err != nil {
		return "", false
	}
	sub, ok := claims["sub"].(string)
	return sub, ok && sub != ""
}

// FuzzJWKSVerify drives the jwks authenticator with tokens built from
// fuzzed headers and claims, signed by keys in and out of the JWKS (or by
// HMAC with the public key, or not at all), optionally tampered, checked
// at a fuzzed time. Property: a token is accepted only if the reference
// check accepts it, with the same subject.
func FuzzJWKSVerify(f *testing.F) {
	k := sharedTestKeys(f)
	edJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": b64u(k.ed1.Public().(ed25519.PublicKey))}
	js := newJWKSServer(f, rsaJWK("rs1", &k.rsa1.PublicKey), ecJWK("ec1", &k.ec1.PublicKey), edJWK)
	clock := newTestClock()
	j := newJWKSAuth(f, js.URL(), clock)
	ref := &jwksRef{
		algs: jwksCfg("").Algorithms,
		byKID: map[string][]any{
			"rs1": {&k.rsa1.PublicKey}, "ec1": {&k.ec1.PublicKey}, "ed1": {k.ed1.Public()},
		},
		all: []any{&k.rsa1.PublicKey, &k.ec1.PublicKey, k.ed1.Public()},
	}

	const base = int64(1_800_000_000)
	claims := func(iat, nbf, exp int64, extra string) string {
		return `{"sub":"abf32c52","iss":"` + testIssuer + `","aud":"backlot","iat":` + itoa(iat) + `,"nbf":` + itoa(nbf) +
			`,"exp":` + itoa(exp) + extra + `}`
	}
	seeds := []struct {
		now     int64
		hdr     string
		payload string
		signer  uint8
		tamper  uint16
	}{
		{base, `{"alg":"RS256","kid":"rs1","typ":"JWT"}`, claims(base, base, base+600, ""), 0, 0},
		{base + 629, `{"alg":"RS256","kid":"rs1"}`, claims(base, base, base+600, ""), 0, 0},
		{base + 631, `{"alg":"RS256","kid":"rs1"}`, claims(base, base, base+600, ""), 0, 0},
		{base - 29, `{"alg":"ES256","kid":"ec1"}`, claims(base, base, base+600, ""), 1, 0},
		{base - 31, `{"alg":"ES256","kid":"ec1"}`, claims(base, base, base+600, ""), 1, 0},
		{base, `{"alg":"EdDSA","kid":"ed1"}`, claims(base, base, base+600, `,"scope":"read"`), 2, 0},
		{base, `{"alg":"EdDSA"}`, claims(base, base, base+600, ""), 2, 0},
		{base, `{"alg":"RS256","kid":"rs1"}`, claims(base, base, base+600, ""), 3, 0},
		{base, `{"alg":"HS256","kid":"rs1"}`, claims(base, base, base+600, ""), 4, 0},
		{base, `{"alg":"none"}`, claims(base, base, base+600, ""), 5, 0},
		{base, `{"alg":"RS256","kid":"rs1","crit":["b64"],"b64":false}`, claims(base, base, base+600, ""), 0, 0},
		{base, `{"alg":"RS256","kid":"rs1"}`, `{"iss":"` + testIssuer + `","aud":"backlot","exp":` + itoa(base+60) + `}`, 0, 0},
		{base, `{"alg":"RS256","kid":"rs1"}`, `{"sub":7,"iss":"` + testIssuer + `","aud":["x","backlot"],"exp":` + itoa(base+60) + `}`, 0, 0},
		{base, `{"alg":"RS256","kid":"rs1"}`, `{"sub":"a","aud":"backlot","exp":` + itoa(base+60) + `}`, 0, 0},
		{base, `{"alg":"RS256","kid":"rs1"}`, claims(base, base, base+600, ""), 0, 77},
		{base, `{"alg":"ES256","kid":"rs1"}`, claims(base, base, base+600, ""), 1, 0},
		{base, `{"alg":"PS256","kid":"rs1"}`, claims(base, base, base+600, ""), 6, 0},
		{0, `{"alg":"RS256","kid":"rs1"}`, claims(0, 0, 1, ""), 0, 0},
		{base, "", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", 255, 0},
	}
	for _, s := range seeds {
		f.Add(s.now, []byte(s.hdr), []byte(s.payload), s.signer, s.tamper)
	}
	f.Fuzz(func(t *testing.T, now int64, hdr, payload []byte, signer uint8, tamper uint16) {
		var tok string
		if signer == 255 {
			tok = string(payload) // a raw token string
		} else {
			input := b64u(hdr) + "." + b64u(payload)
			sig := fuzzSign(t, k, signer%8, input)
			if tamper != 0 && len(sig) > 0 {
				sig[int(tamper)%len(sig)] ^= byte(tamper>>8) | 1
			}
			tok = input + "." + base64.RawURLEncoding.EncodeToString(sig)
		}
		at := time.Unix(now, 0)
		clock.Set(at)
		p, err := j.Verify(tok)
		if err != nil {
			var fl *auth.Failure
			if !errors.As(err, &fl) {
				t.Fatalf("refusal is not a Failure: %v", err)
			}
			return
		}
		sub, ok := ref.accepts(tok, at)
		if !ok {
			t.Fatalf("accepted at %d a token the reference refuses: %q", now, tok)
		}
		if p.Subject != sub || p.Subject == "" {
			t.Fatalf("subject %q, reference %q", p.Subject, sub)
		}
	})
}

// fuzzSign signs input: 0 RS256 rs1, 1 ES256 ec1, 2 EdDSA ed1 (all in the
// JWKS), 3 RS256 with a key not in it, 4 HS256 keyed with the RSA modulus,
// 5 no signature, 6 PS256 rs1, 7 RS384 rs1.
func fuzzSign(t *testing.T, k testKeys, which uint8, input string) []byte {
	sum := func(h crypto.Hash) []byte {
		d := h.New()
		d.Write([]byte(input))
		return d.Sum(nil)
	}
	var (
		sig []byte
		err error
	)
	switch which {
	case 0:
		sig, err = rsa.SignPKCS1v15(nil, k.rsa1, crypto.SHA256, sum(crypto.SHA256))
	case 1:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.ec1, sum(crypto.SHA256))
		if err == nil {
			sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
		}
	case 2:
		sig = ed25519.Sign(k.ed1, []byte(input))
	case 3:
		sig, err = rsa.SignPKCS1v15(nil, k.rsaOther, crypto.SHA256, sum(crypto.SHA256))
	case 4:
		m := hmac.New(sha256.New, k.rsa1.N.Bytes())
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case 5:
	case 6:
		sig, err = rsa.SignPSS(rand.Reader, k.rsa1, crypto.SHA256, sum(crypto.SHA256), nil)
	case 7:
		sig, err = rsa.SignPKCS1v15(nil, k.rsa1, crypto.SHA384, sum(crypto.SHA384))
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func itoa(n int64) string { return big.NewInt(n).String() }

// TestTokenCacheClockStepsBack: a token verified (and cached) while valid
// is refused when the clock steps back before its nbf/iat, as it would be
// without the cache.
func TestTokenCacheClockStepsBack(t *testing.T) {
	t.Parallel()
	k := sharedTestKeys(t)
	js := newJWKSServer(t, rsaJWK("rs1", &k.rsa1.PublicKey))
	clock := newTestClock()
	j := newJWKSAuth(t, js.URL(), clock)
	now := clock.Now()
	tok := signJWT(t, jwt.SigningMethodRS256, "rs1", k.rsa1, extClaims(clock, func(c jwt.MapClaims) { c["nbf"] = now.Unix() }))
	cases := []struct {
		at     time.Duration // from the token's nbf/iat
		wantOK bool
	}{
		{0, true}, {-30 * time.Second, true}, {-31 * time.Second, false}, {-10 * time.Minute, false}, {10 * time.Second, true},
	}
	for _, tc := range cases {
		clock.Set(now.Add(tc.at))
		_, err := j.Verify(tok)
		if (err == nil) != tc.wantOK {
			t.Errorf("at %v: err %v, want ok=%v", tc.at, err, tc.wantOK)
		}
	}
}
