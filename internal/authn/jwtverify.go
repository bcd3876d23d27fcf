package authn

import (
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
)

// jwtVerifier is the verification the hs256 and jwks authenticators share:
// the token's shape, the verified-token cache, the signature and the
// registered claims (golang-jwt under jwtRules), the subject rule and the
// Principal. Each authenticator brings its key function and what binds a
// cache entry (its secret, or the key set that verified it).
type jwtVerifier struct {
	name     string
	now      func() time.Time // the clock, also the parser's
	claims   config.ClaimsMap
	issuer   string
	audience string
	parser   *jwt.Parser
	keyFunc  jwt.Keyfunc
	rules    jwtRules
	cache    tokenCache
}

// init sets up the parser and rules for tokens signed with one of algs.
func (v *jwtVerifier) init(name string, claims config.ClaimsMap, issuer, audience string, algs []string,
	now func() time.Time, keyFunc jwt.Keyfunc) {
	v.name, v.now, v.claims, v.issuer, v.audience, v.keyFunc = name, now, claims, issuer, audience, keyFunc
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	v.parser = jwt.NewParser(opts...)
	v.rules = jwtRules{issuer: issuer, audience: audience, algs: algs, subject: claims.Subject}
}

// verify checks tok at now. gen binds cache entries to what verified them;
// a nil gen neither reads nor fills the cache. On refusal the token is
// returned as far as it was parsed (nil if not at all).
func (v *jwtVerifier) verify(tok string, gen any, now time.Time) (*auth.Principal, *jwt.Token, *auth.Failure) {
	if strings.Count(tok, ".") != 2 {
		return nil, nil, &auth.Failure{Reason: "malformed token", Foreign: true}
	}
	if gen != nil {
		if p := v.cache.get(tok, gen, now); p != nil {
			return p, nil, nil
		}
	}
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(tok, claims, v.keyFunc)
	if err != nil {
		return nil, t, v.rules.failure(err, t)
	}
	if f := v.rules.checkSubject(claims); f != nil {
		return nil, t, f
	}
	p := principalFromClaims(v.name, claims, v.claims)
	if gen != nil {
		v.cache.put(tok, gen, p, claims, now)
	}
	return p, t, nil
}
