package authn

// The jwks authenticator keeps its own small key cache instead of using
// github.com/MicahParks/keyfunc/v3: keyfunc refreshes on a fixed interval
// and has neither a Cache-Control-driven lifetime nor a limit on how long
// stale keys may be served when the issuer is down, both of which SPEC 5.2
// requires. The JWK → public key step is done here with the standard library
// too (RSA n/e, EC x/y via ecdsa.ParseUncompressedPublicKey, which checks
// the point is on the curve; Ed25519), which is about 60 lines and keeps the
// key-type checks — RSA only for RS*/PS*, the right curve for each ES* — in
// one visible place rather than split between two libraries.
//
// Verification reads an immutable key map through an atomic pointer, so the
// hot path takes no lock; refreshes are single-flight under a mutex.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/config"
)

// JWKS cache policy (SPEC 5.2).
const (
	// JWKSMaxAgeDefault is how long keys are fresh when the JWKS response
	// has no Cache-Control max-age.
	JWKSMaxAgeDefault = 5 * time.Minute
	// JWKSMinRefetch is the least time between two fetches (an unknown kid
	// refetches at once, but no more often than this).
	JWKSMinRefetch = 10 * time.Second
	// JWKSStaleFor is how long keys are still used past their freshness
	// while the issuer cannot be reached.
	JWKSStaleFor = time.Hour
	// jwksMaxAgeCap bounds an issuer's max-age so rotations are seen within a day.
	jwksMaxAgeCap  = 24 * time.Hour
	jwksMaxBody    = 1 << 20
	jwksMinRSABits = 2048
	jwksTimeout    = 10 * time.Second
)

// jwksAlgorithms are the asymmetric algorithms a jwks authenticator may
// allow. Never none, never HS*: a public key is not a shared secret.
var jwksAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// JWKS verifies JWTs signed by a third party that publishes its public keys
// as a JSON Web Key Set.
type JWKS struct {
	jwtVerifier
	url    string
	client *http.Client
	log    *slog.Logger

	keys atomic.Pointer[keySet]

	fetchMu     sync.Mutex // single-flight fetches; guards the fields below
	lastAttempt time.Time
	fetches     int // attempts, for tests and logs
}

var _ auth.Authenticator = (*JWKS)(nil)

// keySet is one fetched JWKS; never modified after it is published.
type keySet struct {
	byKID      map[string][]jwkKey
	noKID      []jwkKey
	freshUntil time.Time
}

type jwkKey struct {
	kid string
	alg string // "" when the JWK does not pin one
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

func newJWKS(name string, cfg config.Authenticator, deps Deps) (*JWKS, error) {
	deps = deps.withDefaults()
	if cfg.JWKSURL == "" {
		return nil, errors.New("jwks_url is required")
	}
	if !strings.HasPrefix(cfg.JWKSURL, "https://") && !strings.HasPrefix(cfg.JWKSURL, "http://") {
		return nil, fmt.Errorf("jwks_url %q must be an http(s) URL", cfg.JWKSURL)
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{"RS256"}
	}
	for _, a := range algs {
		if !jwksAlgorithms[a] {
			return nil, fmt.Errorf("algorithms: %q is not accepted (allowed: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA; never none or HS*)", a)
		}
	}
	j := &JWKS{url: cfg.JWKSURL, client: deps.HTTPClient, log: deps.Logger}
	j.init(name, claimsWithDefaults(cfg.Claims), cfg.Issuer, cfg.Audience, algs, deps.Now, j.lookup)
	return j, nil
}

// NewJWKS builds a jwks authenticator from its configuration.
func NewJWKS(name string, cfg config.Authenticator, deps Deps) (*JWKS, error) {
	return newJWKS(name, cfg, deps)
}

// Name implements Authenticator.
func (j *JWKS) Name() string { return j.name }

// Type implements Authenticator.
func (j *JWKS) Type() string { return config.AuthJWKS }

// Start fetches the keys once so the first request does not wait. An
// unreachable issuer is logged, not fatal: keys are fetched on demand.
func (j *JWKS) Start(ctx context.Context) error {
	if j.keys.Load() != nil {
		return nil
	}
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	if j.keys.Load() != nil {
		return nil
	}
	j.fetchLocked(ctx, j.now())
	return nil
}

// Stop implements Starter; there is no background work to stop.
func (j *JWKS) Stop(context.Context) error { return nil }

// Fetches returns how many times the JWKS was requested.
func (j *JWKS) Fetches() int {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	return j.fetches
}

// Authenticate implements Authenticator.
func (j *JWKS) Authenticate(r *http.Request) (*auth.Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, auth.ErrNoCredential
	}
	return j.Verify(tok)
}

// Verify checks a token string and returns its Principal.
func (j *JWKS) Verify(tok string) (*auth.Principal, error) {
	now := j.now()
	// Cache entries are pinned to the key set they were checked against: a
	// refreshed set (a key withdrawn) makes every entry miss. A set past its
	// freshness is not cached against.
	var gen any
	if ks := j.keys.Load(); ks != nil && now.Before(ks.freshUntil) {
		gen = ks
	}
	p, t, f := j.verify(tok, gen, now)
	if f != nil {
		if t != nil && t.Method != nil && strings.HasPrefix(t.Method.Alg(), "HS") {
			f.Foreign = true // an hs256 token, or an attack; another authenticator may want it
		}
		return nil, f
	}
	return p, nil
}

// owns reports whether a JWT whose unverified iss is iss is this
// authenticator's: it names our issuer. Such a token is never sent to a
// remote authenticator, even when it does not verify.
func (j *JWKS) owns(_, iss string) bool { return j.issuer != "" && iss == j.issuer }

// Verified-token cache. An RSA or ECDSA verification costs tens of
// microseconds, more than the rest of a request; a client sends the same
// token many times. Entries are keyed by the SHA-256 of the whole token
// (signature included, so nothing unverified can hit), live at most
// tokenCacheTTL and never past the token's exp, and are bound to the key
// set (or secret) generation that verified them.
const (
	tokenCacheTTL = time.Minute
	tokenCacheMax = 4096
)

type tokenCache struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]tokenCacheEntry
}

type tokenCacheEntry struct {
	p     *auth.Principal
	from  time.Time // the earliest time the token is valid (nbf, iat less the leeway)
	until time.Time
	gen   any
}

func (c *tokenCache) get(tok string, gen any, now time.Time) *auth.Principal {
	k := sha256.Sum256([]byte(tok))
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.gen != gen || !now.Before(e.until) || now.Before(e.from) {
		// now.Before(e.from): the clock went back past nbf or iat.
		return nil
	}
	// A copy, so a handler changing its Principal cannot change another's.
	p := *e.p
	p.Scopes = slices.Clone(p.Scopes)
	p.Claims = maps.Clone(p.Claims)
	return &p
}

func (c *tokenCache) put(tok string, gen any, p *auth.Principal, claims jwt.MapClaims, now time.Time) {
	until := now.Add(tokenCacheTTL)
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return
	}
	if exp.Before(until) {
		until = exp.Time
	}
	if !now.Before(until) {
		return
	}
	var from time.Time
	for _, get := range []func() (*jwt.NumericDate, error){claims.GetNotBefore, claims.GetIssuedAt} {
		if d, err := get(); err == nil && d != nil && d.Add(-jwtLeeway).After(from) {
			from = d.Add(-jwtLeeway)
		}
	}
	cp := *p
	cp.Scopes = slices.Clone(p.Scopes)
	cp.Claims = maps.Clone(p.Claims)
	k := sha256.Sum256([]byte(tok))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[sha256.Size]byte]tokenCacheEntry)
	}
	if len(c.m) >= tokenCacheMax {
		for k, e := range c.m {
			if !now.Before(e.until) || e.gen != gen {
				delete(c.m, k)
			}
		}
		if len(c.m) >= tokenCacheMax {
			clear(c.m) // a flood of distinct tokens: start again rather than grow
		}
	}
	c.m[k] = tokenCacheEntry{p: &cp, from: from, until: until, gen: gen}
}

// lookup is the jwt.Keyfunc: the keys for the token's kid that fit its
// algorithm, refreshing the set when it is stale or the kid is unknown.
func (j *JWKS) lookup(t *jwt.Token) (any, error) {
	alg := t.Method.Alg() // already checked against the allowlist by the parser
	if f := checkCrit(t); f != nil {
		return nil, f
	}
	if j.issuer != "" {
		// Checked before any fetch so another issuer's tokens cannot make us
		// refetch; the parser checks it again after the signature.
		if c, ok := t.Claims.(jwt.MapClaims); ok {
			if reason := issuerProblem(c); reason != "" {
				return nil, &auth.Failure{Reason: reason, Foreign: true}
			}
			if iss, _ := c["iss"].(string); iss != j.issuer {
				return nil, &auth.Failure{Reason: "wrong issuer", Foreign: true}
			}
		}
	}
	kid, _ := t.Header["kid"].(string)
	now := j.now()
	ks := j.keys.Load()
	if ks == nil || !now.Before(ks.freshUntil) {
		ks = j.refresh(ks, now, false)
	}
	keys := ks.find(kid, alg)
	if len(keys) == 0 && ks != nil && kid != "" {
		ks = j.refresh(ks, now, true)
		keys = ks.find(kid, alg)
	}
	if ks == nil || now.After(ks.freshUntil.Add(JWKSStaleFor)) {
		return nil, &auth.Failure{Reason: "signing keys unavailable"}
	}
	switch len(keys) {
	case 0:
		if kid == "" {
			return nil, &auth.Failure{Reason: "no signing key fits the token's algorithm " + alg}
		}
		return nil, &auth.Failure{Reason: "unknown signing key (kid)"}
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// find returns the keys usable for kid and alg. A token without a kid may
// be verified by any key of the set that fits alg.
func (ks *keySet) find(kid, alg string) []jwt.VerificationKey {
	if ks == nil {
		return nil
	}
	var cands []jwkKey
	if kid != "" {
		cands = ks.byKID[kid]
	} else {
		cands = ks.noKID
		for _, v := range ks.byKID {
			cands = append(cands[:len(cands):len(cands)], v...)
		}
	}
	var out []jwt.VerificationKey
	for _, k := range cands {
		if (k.alg == "" || k.alg == alg) && keyFits(alg, k.key) {
			out = append(out, k.key)
		}
	}
	return out
}

// keyFits reports whether key is of the type alg needs.
func keyFits(alg string, key any) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok := key.(*rsa.PublicKey)
		return ok
	case "ES256", "ES384", "ES512":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		return k.Curve == want
	case "EdDSA":
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// refresh fetches the JWKS unless another goroutine just did or the
// minimum interval has not passed, and returns the current set. An expiry
// refresh with usable stale keys in hand does not wait for a fetch already
// in flight.
func (j *JWKS) refresh(seen *keySet, now time.Time, unknownKID bool) *keySet {
	usable := seen != nil && now.Before(seen.freshUntil.Add(JWKSStaleFor))
	if !unknownKID && usable {
		if !j.fetchMu.TryLock() {
			return seen
		}
	} else {
		j.fetchMu.Lock()
	}
	defer j.fetchMu.Unlock()
	if cur := j.keys.Load(); cur != seen {
		return cur // refreshed while we waited
	}
	if !j.lastAttempt.IsZero() && now.Sub(j.lastAttempt) < JWKSMinRefetch {
		return seen
	}
	// Detached from any one request: the fetch serves every waiter.
	ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
	defer cancel()
	j.fetchLocked(ctx, now)
	return j.keys.Load()
}

// fetchLocked fetches and publishes the key set. Called with fetchMu held.
func (j *JWKS) fetchLocked(ctx context.Context, now time.Time) {
	j.lastAttempt = now
	j.fetches++
	ks, err := j.fetch(ctx, now)
	if err != nil {
		j.log.WarnContext(ctx, "jwks fetch failed; keeping the keys we have", "authenticator", j.name, "url", j.url, "error", err.Error())
		return
	}
	j.keys.Store(ks)
}

func (j *JWKS) fetch(ctx context.Context, now time.Time) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", j.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", j.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("fetch jwks %s: status %d", j.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks %s: %w", j.url, err)
	}
	if len(body) > jwksMaxBody {
		return nil, fmt.Errorf("read jwks %s: larger than %d bytes", j.url, jwksMaxBody)
	}
	ks, skipped, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("parse jwks %s: %w", j.url, err)
	}
	for _, s := range skipped {
		j.log.DebugContext(ctx, "jwks key skipped", "authenticator", j.name, "reason", s)
	}
	ks.freshUntil = now.Add(cacheMaxAge(resp.Header.Get("Cache-Control")))
	return ks, nil
}

// cacheMaxAge reads max-age from a Cache-Control header: no-store and
// no-cache mean 0 (refetch when next needed, subject to JWKSMinRefetch);
// absent means JWKSMaxAgeDefault.
func cacheMaxAge(h string) time.Duration {
	if h == "" {
		return JWKSMaxAgeDefault
	}
	age := JWKSMaxAgeDefault
	for d := range strings.SplitSeq(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(k) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			n, err := strconv.ParseUint(strings.Trim(v, `"`), 10, 64)
			switch {
			case errors.Is(err, strconv.ErrRange) || err == nil && n > uint64(jwksMaxAgeCap/time.Second):
				// Compared in seconds: n seconds as a Duration would
				// overflow and turn negative. RFC 9111 1.2.2 reads a value
				// too large to represent as a very long time.
				age = jwksMaxAgeCap
			case err == nil:
				age = time.Duration(n) * time.Second
			}
		}
	}
	return age
}

// jwkJSON is the subset of RFC 7517/7518/8037 fields read.
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// Private parts: a JWK carrying them is refused outright.
	D string `json:"d"`
	K string `json:"k"`
}

// parseJWKS parses a JWKS document. Keys that cannot be used (not for
// signatures, unknown type, too small) are skipped and reported; a set
// with no usable key is an error.
func parseJWKS(body []byte) (*keySet, []string, error) {
	var doc struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	ks := &keySet{byKID: map[string][]jwkKey{}}
	var skipped []string
	n := 0
	for i, raw := range doc.Keys {
		if raw.Use != "" && raw.Use != "sig" {
			skipped = append(skipped, fmt.Sprintf("key %d (%s): use %q", i, raw.Kid, raw.Use))
			continue
		}
		if raw.Alg != "" && !jwksAlgorithms[raw.Alg] {
			skipped = append(skipped, fmt.Sprintf("key %d (%s): alg %q", i, raw.Kid, raw.Alg))
			continue
		}
		key, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (%s): %v", i, raw.Kid, err))
			continue
		}
		k := jwkKey{kid: raw.Kid, alg: raw.Alg, key: key}
		if raw.Kid == "" {
			ks.noKID = append(ks.noKID, k)
		} else {
			ks.byKID[raw.Kid] = append(ks.byKID[raw.Kid], k)
		}
		n++
	}
	if n == 0 {
		return nil, skipped, fmt.Errorf("no usable signing key among %d", len(doc.Keys))
	}
	return ks, skipped, nil
}

func parseJWK(k jwkJSON) (any, error) {
	if k.D != "" || k.K != "" {
		return nil, errors.New("contains private or symmetric key material")
	}
	switch k.Kty {
	case "RSA":
		n, err := b64uInt(k.N)
		if err != nil {
			return nil, fmt.Errorf("n: %w", err)
		}
		e, err := b64uInt(k.E)
		if err != nil {
			return nil, fmt.Errorf("e: %w", err)
		}
		if n.BitLen() < jwksMinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too small", n.BitLen())
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, errors.New("bad RSA exponent")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var (
			c    elliptic.Curve
			size int
		)
		switch k.Crv {
		case "P-256":
			c, size = elliptic.P256(), 32
		case "P-384":
			c, size = elliptic.P384(), 48
		case "P-521":
			c, size = elliptic.P521(), 66
		default:
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinates")
		}
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(c, pt)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return pub, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("unsupported OKP curve %q", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported kty %q", k.Kty)
}

func b64uInt(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("not base64url")
	}
	return new(big.Int).SetBytes(b), nil
}
