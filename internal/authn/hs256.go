package authn

import (
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
	// MinHS256SecretBytes is the shortest accepted hs256 secret.
	MinHS256SecretBytes = 32
	// DefaultMintTTL is the lifetime of minted tokens when ttl is not set.
	DefaultMintTTL = 15 * time.Minute
)

// HS256 verifies (and mints) backlot-issued tokens signed with a shared
// secret.
type HS256 struct {
	name     string
	secret   []byte
	issuer   string
	audience string
	ttl      time.Duration
	claims   config.ClaimsMap
	now      func() time.Time
	parser   *jwt.Parser
	keyFunc  jwt.Keyfunc
	cache    tokenCache
}

var _ auth.Authenticator = (*HS256)(nil)

func newHS256(name string, cfg config.Authenticator, deps Deps) (*HS256, error) {
	deps = deps.withDefaults()
	if len(cfg.Secret) < MinHS256SecretBytes {
		return nil, fmt.Errorf("secret must be at least %d bytes, got %d", MinHS256SecretBytes, len(cfg.Secret))
	}
	a := &HS256{
		name: name, secret: []byte(cfg.Secret), issuer: cfg.Issuer, audience: cfg.Audience,
		ttl: cfg.TTL.D(), claims: claimsWithDefaults(cfg.Claims), now: deps.Now,
	}
	if a.ttl <= 0 {
		a.ttl = DefaultMintTTL
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(deps.Now),
	}
	if a.issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.issuer))
	}
	if a.audience != "" {
		opts = append(opts, jwt.WithAudience(a.audience))
	}
	a.parser = jwt.NewParser(opts...)
	a.keyFunc = func(*jwt.Token) (any, error) { return a.secret, nil }
	return a, nil
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
	if strings.Count(tok, ".") != 2 {
		return nil, &auth.Failure{Reason: "malformed token", Foreign: true}
	}
	now := a.now()
	if p := a.cache.get(tok, a, now); p != nil {
		return p, nil
	}
	claims := jwt.MapClaims{}
	t, err := a.parser.ParseWithClaims(tok, claims, a.keyFunc)
	if err != nil {
		return nil, jwtFailure(err, t, []string{"HS256"})
	}
	p := principalFromClaims(a.name, claims, a.claims)
	a.cache.put(tok, a, p, claims, now)
	return p, nil
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

// jwtFailure turns a golang-jwt error into a Failure with a reason fit for
// error_description.
func jwtFailure(err error, t *jwt.Token, allowed []string) *auth.Failure {
	var f *auth.Failure
	if errors.As(err, &f) {
		return f // from our keyfunc
	}
	reason := "invalid token"
	foreign := false
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason, foreign = "malformed token", true
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && t != nil && t.Method != nil && !slices.Contains(allowed, t.Method.Alg()):
		reason = "algorithm " + t.Method.Alg() + " is not accepted"
		foreign = t.Method.Alg() != "none"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "unverifiable token (unknown or missing algorithm)"
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
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason = "token has no expiry (exp)"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		reason = "invalid claims"
	}
	// The library's messages name claims and algorithms, never the token.
	return &auth.Failure{Reason: reason, Err: err, Foreign: foreign}
}
