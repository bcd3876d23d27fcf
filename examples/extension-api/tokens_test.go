package extensionapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/sandbox/issuer"
)

var b64 = base64.RawURLEncoding

// claimsFor is a valid payload for rc's issuer, for forged tokens.
func claimsFor(rc *recipe) jwt.MapClaims {
	now := time.Now().Unix()
	return jwt.MapClaims{
		"iss": rc.issuerURL, "aud": "backlot", "sub": "u-forged", "name": "forger@example.com",
		"tenant": "PARTNER_X", "iat": now, "exp": now + 300,
	}
}

// currentRSAKey returns the kid and public key that sign RS256 tokens now.
func currentRSAKey(t *testing.T, iss *issuer.Issuer) (string, *rsa.PublicKey) {
	t.Helper()
	kid, ok := iss.Current(issuer.RS256)
	if !ok {
		t.Fatal("issuer has no RS256 key")
	}
	for _, k := range iss.JWKS().Keys {
		if k.Kid != kid {
			continue
		}
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("JWK %s: bad n or e", kid)
		}
		return kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	t.Fatalf("kid %s not published", kid)
	return "", nil
}

// tamper changes the tenant in a signed token, keeping its signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c["tenant"] = "SOMEONE_ELSES_PARTNER"
	raw, _ = json.Marshal(c)
	parts[1] = b64.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// unsigned is a token with "alg": "none" and an empty signature.
func unsigned(t *testing.T, rc *recipe) string {
	t.Helper()
	kid, _ := rc.iss.Current(issuer.RS256)
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(claimsFor(rc))
	return b64.EncodeToString(h) + "." + b64.EncodeToString(p) + "."
}

// hmacWithPublicKey is the algorithm-confusion attack: an HS256 token
// whose HMAC key is the issuer's RSA public key in PEM, as a verifier that
// trusts the token's alg would compute it.
func hmacWithPublicKey(t *testing.T, rc *recipe) string {
	t.Helper()
	kid, pub := currentRSAKey(t, rc.iss)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor(rc))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// foreignKey signs a valid payload with a key the issuer never published,
// under a kid it never used.
func foreignKey(t *testing.T, rc *recipe, kid string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claimsFor(rc))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTokens runs the recipe and checks which tokens GET /auth/whoami
// accepts: the issuer's own (RS256 and ES256, claims mapped), and none of
// the expired, misdirected, forged or unpublished ones, each refused with
// the error envelope. Last, the issuer rotates its key: backlot fetches
// the new kid at once, and no more often than its refetch floor.
func TestTokens(t *testing.T) {
	t.Parallel()
	var retired, retiredKid string
	rc := startRecipe(t, func(iss *issuer.Issuer) {
		// A token from a key the issuer has since rotated out and
		// withdrawn from its JWKS.
		var err error
		retiredKid, _ = iss.Current(issuer.RS256)
		if retired, err = iss.Mint(issuer.Claims{}); err != nil {
			t.Fatal(err)
		}
		if _, err := iss.Rotate(issuer.RS256); err != nil {
			t.Fatal(err)
		}
		if err := iss.Retire(retiredKid); err != nil {
			t.Fatal(err)
		}
	})
	if rc.fetches.count() == 0 {
		t.Fatal("backlot did not fetch the JWKS at start")
	}

	t.Run("accepted", func(t *testing.T) {
		// As a newcomer does it: the token from the issuer's /token.
		resp, err := http.Get(rc.issuerURL + "/token?sub=u-42&name=ann%40example.com&tenant=ACME")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /token: %d %v", resp.StatusCode, err)
		}
		fromHTTP := strings.TrimSpace(string(body))

		cases := []struct {
			name, token        string
			sub, email, tenant string
		}{
			{"RS256 from /token", fromHTTP, "u-42", "ann@example.com", "ACME"},
			{"ES256", rc.mint(t, issuer.Claims{Alg: issuer.ES256, Subject: "u-7", Name: "bo@example.com", Tenant: "GLOBEX"}),
				"u-7", "bo@example.com", "GLOBEX"},
			{"defaults of the extension docs", rc.mint(t, issuer.Claims{}),
				issuer.SubjectDefault, issuer.NameDefault, issuer.TenantDefault},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := rc.whoami(t, c.token, "")
				checkSecurityHeaders(t, c.name, r)
				if r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				var p principal
				decodeStrict(t, r.body, &p)
				if p.Authenticator != "extension" || p.Subject != c.sub || p.Email != c.email || p.Tenant != c.tenant {
					t.Errorf("principal %+v, want extension/%s/%s/%s", p, c.sub, c.email, c.tenant)
				}
				if p.Claims["name"] != c.email || p.Claims["tenant"] != c.tenant || p.Claims["iss"] != rc.issuerURL {
					t.Errorf("claims %v", p.Claims)
				}
				if strings.Contains(string(r.body), c.token) || strings.Contains(string(r.body), strings.Split(c.token, ".")[2]) {
					t.Error("whoami echoes the token")
				}
				if cc := r.header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", cc)
				}
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		valid := rc.mint(t, issuer.Claims{})
		cases := []struct {
			name   string
			token  string
			status int
			code   string
			desc   string
		}{
			{"no token", "", 401, "missing_credentials", "no credentials"},
			{"expired", rc.mint(t, issuer.Claims{TTL: -10 * time.Minute}), 401, "invalid_token", "token expired"},
			{"wrong audience", rc.mint(t, issuer.Claims{Audience: "another-api"}), 401, "invalid_token", "wrong audience"},
			{"wrong issuer", rc.mint(t, issuer.Claims{Issuer: "https://elsewhere.example.com"}), 401, "invalid_token", "wrong issuer"},
			{"tampered payload", tamper(t, valid), 401, "invalid_token", "bad signature"},
			{"alg none", unsigned(t, rc), 401, "invalid_token", "none is not accepted"},
			{"HS256 keyed with the RSA public key", hmacWithPublicKey(t, rc), 401, "invalid_token", "HS256 is not accepted"},
			{"unknown kid", foreignKey(t, rc, "es256-not-published"), 401, "invalid_token", "unknown signing key"},
			{"published kid, other key", foreignKey(t, rc, mustCurrent(t, rc.iss, issuer.ES256)), 401, "invalid_token", "signature"},
			{"retired key", retired, 401, "invalid_token", "unknown signing key"},
			{"not a JWT", "not-a-jwt", 401, "invalid_token", "malformed"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := rc.whoami(t, c.token, "")
				checkSecurityHeaders(t, c.name, r)
				e := checkEnvelope(t, r, c.status, c.code, c.desc)
				t.Logf("refused: %s", e.ErrorDescription)
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q, want a Bearer challenge", r.header.Get("WWW-Authenticate"))
				}
			})
		}
	})

	t.Run("rotation", func(t *testing.T) {
		// backlot refetches for an unknown kid at most once per
		// authn.JWKSMinRefetch, on its own clock in another process, so
		// this waits out the floor since its last fetch rather than
		// injecting a clock.
		time.Sleep(time.Until(rc.fetches.last().Add(authn.JWKSMinRefetch + 500*time.Millisecond)))
		before := rc.fetches.count()
		kid, err := rc.iss.Rotate(issuer.ES256)
		if err != nil {
			t.Fatal(err)
		}
		tok := rc.mint(t, issuer.Claims{Alg: issuer.ES256, Subject: "u-rotated"})
		r := rc.whoami(t, tok, "")
		if r.status != 200 {
			t.Fatalf("token of the new key %s: status %d %s", kid, r.status, r.body)
		}
		if got := rc.fetches.count(); got != before+1 {
			t.Errorf("JWKS fetches %d, want %d: one at once for the new kid", got, before+1)
		}
		// A burst of unknown kids right after costs the issuer nothing.
		for i := range 5 {
			r := rc.whoami(t, foreignKey(t, rc, "es256-burst-"+string(rune('a'+i))), "")
			checkEnvelope(t, r, 401, "invalid_token", "unknown signing key")
		}
		if got := rc.fetches.count(); got != before+1 {
			t.Errorf("JWKS fetches %d after a burst of unknown kids, want still %d", got, before+1)
		}
		// The key that just arrived keeps working from the cache.
		if r := rc.whoami(t, tok, ""); r.status != 200 {
			t.Errorf("new key after the burst: status %d %s", r.status, r.body)
		}
	})
}

func mustCurrent(t *testing.T, iss *issuer.Issuer, alg string) string {
	t.Helper()
	kid, ok := iss.Current(alg)
	if !ok {
		t.Fatalf("issuer has no %s key", alg)
	}
	return kid
}
