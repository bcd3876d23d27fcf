package authn

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/config"
)

// JWT checks common to hs256 and jwks.
const (
	jwtLeeway = 30 * time.Second
)

// HS256 verifies (and mints) backlot-issued tokens signed with a shared
// secret.
type HS256 struct {
	jwtVerifier
	secret []byte
	ttl    time.Duration
}

var _ auth.Authenticator = (*HS256)(nil)

func newHS256(name string, cfg config.Authenticator, deps Deps) (*HS256, error) {
	deps = deps.withDefaults()
	if len(cfg.Secret) < config.HS256SecretMinBytes {
		return nil, fmt.Errorf("secret must be at least %d bytes, got %d", config.HS256SecretMinBytes, len(cfg.Secret))
	}
	a := &HS256{secret: []byte(cfg.Secret), ttl: cfg.TTL.D()}
	if a.ttl <= 0 {
		a.ttl = config.HS256TTLDefault
	}
	a.init(name, claimsWithDefaults(cfg.Claims), cfg.Issuer, cfg.Audience, []string{jwt.SigningMethodHS256.Alg()},
		deps.Now, a.key)
	return a, nil
}

// key is the key function: the secret, for a token without crit.
func (a *HS256) key(t *jwt.Token) (any, error) {
	if f := checkCrit(t); f != nil {
		return nil, f
	}
	return a.secret, nil
}

// NewHS256 builds an hs256 authenticator from its configuration (for the
// CLI's token mint and for Go users).
func NewHS256(name string, cfg config.Authenticator, deps Deps) (*HS256, error) {
	return newHS256(name, cfg, deps)
}

// Name implements Authenticator.
func (a *HS256) Name() string { return a.name }

// Type implements Authenticator.
func (a *HS256) Type() string { return config.AuthHS256 }

// TTL is the default lifetime of minted tokens.
func (a *HS256) TTL() time.Duration { return a.ttl }

// Authenticate implements Authenticator.
func (a *HS256) Authenticate(r *http.Request) (*auth.Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, auth.ErrNoCredential
	}
	return a.Verify(tok)
}

// Verify checks a token string and returns its Principal.
func (a *HS256) Verify(tok string) (*auth.Principal, error) {
	p, _, f := a.verify(tok, a, a.now()) // cache entries bound to this secret
	if f != nil {
		return nil, f
	}
	return p, nil
}

// owns reports whether tok, a JWT whose unverified iss is iss, is this
// authenticator's own: it names our issuer, or it carries a valid HS256
// signature under our secret (whatever else is wrong with it). Such a
// token is never sent to a remote authenticator.
func (a *HS256) owns(tok, iss string) bool {
	if a.issuer != "" && iss == a.issuer {
		return true
	}
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte(tok[:i]))
	return hmac.Equal(m.Sum(nil), sig)
}

// Mint signs a token for sub. ttl <= 0 uses the configured ttl.
func (a *HS256) Mint(sub, tenant string, scopes []string, ttl time.Duration) (string, error) {
	if sub == "" {
		return "", errors.New("mint token: subject is required")
	}
	if ttl <= 0 {
		ttl = a.ttl
	}
	now := a.now()
	c := jwt.MapClaims{
		"sub": sub,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if a.issuer != "" {
		c["iss"] = a.issuer
	}
	if a.audience != "" {
		c["aud"] = a.audience
	}
	if tenant != "" {
		c[a.claims.Tenant] = tenant
	}
	if len(scopes) > 0 {
		c[a.claims.Scopes] = strings.Join(scopes, " ")
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return s, nil
}

func claimsWithDefaults(c config.ClaimsMap) config.ClaimsMap {
	if c.Subject == "" {
		c.Subject = "sub"
	}
	if c.Tenant == "" {
		c.Tenant = "tenant"
	}
	if c.Email == "" {
		c.Email = "email"
	}
	if c.Scopes == "" {
		c.Scopes = "scope"
	}
	return c
}

// principalFromClaims maps verified claims to a Principal. Scopes may be a
// space-separated string (RFC 8693 "scope") or an array of strings.
func principalFromClaims(name string, claims jwt.MapClaims, m config.ClaimsMap) *auth.Principal {
	p := &auth.Principal{Authenticator: name, Claims: claims}
	p.Subject, _ = claims[m.Subject].(string)
	p.Tenant, _ = claims[m.Tenant].(string)
	p.Email, _ = claims[m.Email].(string)
	switch v := claims[m.Scopes].(type) {
	case string:
		p.Scopes = strings.Fields(v)
	case []any:
		for _, s := range v {
			if s, ok := s.(string); ok && s != "" {
				p.Scopes = append(p.Scopes, s)
			}
		}
	}
	return p
}

// jwtRules are the checks of SPEC-level rules shared by hs256 and jwks that
// golang-jwt does not make, and the naming of what it refuses.
type jwtRules struct {
	issuer, audience string   // "" when not checked
	algs             []string // the allowlist
	subject          string   // the claim mapped to the subject ("sub")
}

// checkCrit refuses a token with a crit header (RFC 7515 4.1.11): backlot
// understands no extension, so it must not accept a token whose issuer
// requires one to be understood. Called from the key functions, before
// any key is looked up.
func checkCrit(t *jwt.Token) *auth.Failure {
	if _, ok := t.Header["crit"]; ok {
		return &auth.Failure{Reason: "token has a crit header; backlot understands no JWT extensions"}
	}
	return nil
}

// checkSubject requires the subject claim to be a non-empty string, so a
// Principal never has an empty subject.
func (r jwtRules) checkSubject(c jwt.MapClaims) *auth.Failure {
	v, ok := c[r.subject]
	if !ok {
		return &auth.Failure{Reason: "token has no subject (" + r.subject + ")"}
	}
	s, isString := v.(string)
	switch {
	case !isString:
		return &auth.Failure{Reason: "subject (" + r.subject + ") is not a string"}
	case s == "":
		return &auth.Failure{Reason: "token has no subject (" + r.subject + ")"}
	}
	return nil
}

// claimProblem names the first registered claim that is missing or of
// the wrong type, in the order exp, nbf, iat, aud, iss; "" if none is.
// aud and iss count only when they are checked.
func (r jwtRules) claimProblem(c jwt.MapClaims) string {
	for _, n := range []struct{ claim, name string }{{"exp", "expiry"}, {"nbf", "not-before"}, {"iat", "issued-at"}} {
		v, ok := c[n.claim]
		if !ok {
			if n.claim == "exp" {
				return "token has no expiry (exp)"
			}
			continue
		}
		switch v := v.(type) {
		case float64:
			if v == 0 && n.claim == "exp" {
				return "token has no expiry (exp)" // golang-jwt reads 0 as absent
			}
		case json.Number:
		default:
			return n.name + " (" + n.claim + ") is not a number"
		}
	}
	if r.audience != "" {
		switch v := c["aud"].(type) {
		case nil:
			if _, ok := c["aud"]; ok {
				return "audience (aud) is not a string"
			}
			return "token has no audience (aud)"
		case string:
			if v == "" {
				return "token has no audience (aud)"
			}
		case []any:
			if len(v) == 0 {
				return "token has no audience (aud)"
			}
			for _, e := range v {
				if _, ok := e.(string); !ok {
					return "audience (aud) is not a string"
				}
			}
		default:
			return "audience (aud) is not a string"
		}
	}
	if r.issuer != "" {
		if reason := issuerProblem(c); reason != "" {
			return reason
		}
	}
	return ""
}

// issuerProblem names a missing or mistyped iss; "" if it is a non-empty string.
func issuerProblem(c jwt.MapClaims) string {
	v, ok := c["iss"]
	if !ok {
		return "token has no issuer (iss)"
	}
	s, isString := v.(string)
	switch {
	case !isString:
		return "issuer (iss) is not a string"
	case s == "":
		return "token has no issuer (iss)"
	}
	return ""
}

// failure turns a golang-jwt error into a Failure with a reason fit for
// error_description.
func (r jwtRules) failure(err error, t *jwt.Token) *auth.Failure {
	var f *auth.Failure
	if errors.As(err, &f) {
		return f // from our keyfunc
	}
	reason := "invalid token"
	foreign := false
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason, foreign = "malformed token", true
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && t != nil && t.Method != nil && !slices.Contains(r.algs, t.Method.Alg()):
		reason = "algorithm " + t.Method.Alg() + " is not accepted"
		foreign = t.Method.Alg() != "none"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "unverifiable token (unknown or missing algorithm)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrInvalidType):
		// Before expired and friends: a claim of the wrong type makes the
		// others unreliable, and the error names what is really wrong.
		reason = "invalid claims"
		if c, ok := claimsOf(t); ok {
			if p := r.claimProblem(c); p != "" {
				reason = p
			}
		}
	case errors.Is(err, jwt.ErrTokenExpired):
		reason = "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		reason = "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		reason = "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason = "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		reason = "invalid claims"
	}
	// The library's messages name claims and algorithms, never the token.
	return &auth.Failure{Reason: reason, Err: err, Foreign: foreign}
}

func claimsOf(t *jwt.Token) (jwt.MapClaims, bool) {
	if t == nil {
		return nil, false
	}
	c, ok := t.Claims.(jwt.MapClaims)
	return c, ok
}
