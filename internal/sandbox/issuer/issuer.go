// Package issuer is a local stand-in for a marketplace's token service
// (the kind a platform extension exchanges its session for): it publishes
// its public keys as a JWKS and mints short-lived RS256 or ES256 JWTs with
// the claims iss, aud, sub, name, tenant, iat and exp, so backlot's JWKS
// authenticator can be tested over real HTTP, key rotation included.
//
// Routes:
//
//	GET  /.well-known/jwks.json   the public keys (Cache-Control: max-age)
//	GET  /token?sub=&tenant=&name=&ttl=&alg=RS256|ES256&aud=
//	                              a signed JWT as text/plain (ttl in seconds, negative for an expired token)
//	POST /rotate?alg=             a new key for alg that signs from then on; older keys stay published
//	POST /retire?kid=             stop publishing a key that no longer signs
//	GET|POST|DELETE /_sim/faults  list, add, clear injected faults
//	POST /_sim/reset              back to the keys it started with, no faults
//
// The paths, defaults and answers are those of the Node issuer the
// benchmarks use, so either can stand behind the same test.
package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// Defaults.
const (
	// AudienceDefault is the aud claim unless a request or Options says
	// otherwise.
	AudienceDefault = "backlot"
	// TTLDefault is a token's lifetime unless the request gives ttl: five
	// minutes, short like the real secure tokens.
	TTLDefault = 5 * time.Minute
	// JWKSMaxAgeDefault is the Cache-Control max-age of the JWKS.
	JWKSMaxAgeDefault = 5 * time.Minute
	// SubjectDefault, NameDefault and TenantDefault are the claims of a
	// token whose request names none: the example payload of the platform
	// extension documentation.
	SubjectDefault = "abf32c52-801c-4a40-8da0-82096fe455dd"
	NameDefault    = "user@example.com"
	TenantDefault  = "PARTNER_ID"
)

// Signing algorithms.
const (
	RS256 = "RS256" // RSA PKCS#1 v1.5 with SHA-256, 2048-bit keys
	ES256 = "ES256" // ECDSA on P-256 with SHA-256
)

// Options configures an Issuer.
type Options struct {
	// Issuer is the iss claim. Default: the URL the request came in on
	// ("http://" + Host), so tokens name the address the JWKS is served at.
	Issuer string
	// Audience is the aud claim unless the request gives aud. Default
	// AudienceDefault.
	Audience string
	// TTL is a token's lifetime unless the request gives ttl. Default
	// TTLDefault.
	TTL time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS. Default
	// JWKSMaxAgeDefault.
	JWKSMaxAge time.Duration
	// Now is the clock for iat and exp. Default time.Now.
	Now func() time.Time
}

type signingKey struct {
	alg    string
	kid    string
	signer crypto.Signer
	jwk    JWK
}

// JWK is one published public key (RFC 7517), RSA (n, e) or EC (crv, x, y).
type JWK struct {
	Kty string `json:"kty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is the published key set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// Claims asks Mint for a token. Empty fields take the defaults.
type Claims struct {
	Subject  string
	Name     string
	Tenant   string
	Audience string
	// Issuer is the iss claim; default Options.Issuer. Mint fails when
	// both are empty (over HTTP the request's host fills it).
	Issuer string
	// TTL is the lifetime; 0 means Options.TTL, negative gives a token
	// that is already expired.
	TTL time.Duration
	// Alg is RS256 (default) or ES256.
	Alg string
}

// Fault makes the simulator misbehave on one route, as a flaky real
// service does. It is posted as JSON to /_sim/faults; Route is a route as
// the not-simulated answer lists it (for example "GET /.well-known/jwks.json"), or "*"
// for every simulated route.
type Fault = simkit.JSONFault

// Issuer is the simulator. It is an http.Handler; its methods are safe for
// concurrent use.
type Issuer struct {
	opts   Options
	mux    *http.ServeMux
	routes []string
	faults *simkit.Registry

	mu      sync.Mutex
	keys    []*signingKey // published, oldest first; the newest of an alg signs
	initial []*signingKey // the keys New made, restored by Reset
	seq     int           // numbers kids, never reused
}

// New returns an Issuer with one RS256 and one ES256 key.
func New(opts Options) (*Issuer, error) {
	if opts.Audience == "" {
		opts.Audience = AudienceDefault
	}
	if opts.TTL <= 0 {
		opts.TTL = TTLDefault
	}
	if opts.JWKSMaxAge <= 0 {
		opts.JWKSMaxAge = JWKSMaxAgeDefault
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	i := &Issuer{opts: opts, mux: http.NewServeMux()}
	for _, alg := range []string{RS256, ES256} {
		if _, err := i.Rotate(alg); err != nil {
			return nil, fmt.Errorf("new issuer: %w", err)
		}
	}
	i.initial = slices.Clone(i.keys)
	i.registerRoutes()
	return i, nil
}

func (i *Issuer) registerRoutes() {
	rt := simkit.NewRouter(i.mux)
	rt.Handle("GET /.well-known/jwks.json", i.handleJWKS)
	rt.Handle("GET /token", i.handleToken)
	rt.Handle("POST /rotate", i.handleRotate)
	rt.Handle("POST /retire", i.handleRetire)
	i.faults = rt.Controls("token issuer", i.Reset)
	i.routes = rt.Routes()
}

// ServeHTTP implements http.Handler.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.mux.ServeHTTP(w, r)
}

// Routes lists the simulated routes ("GET /token", ...).
func (i *Issuer) Routes() []string { return slices.Clone(i.routes) }

// Reset drops the keys added by Rotate, publishes again the keys New made
// (so a verifier's cached JWKS stays good), and clears all faults.
func (i *Issuer) Reset() {
	i.mu.Lock()
	i.keys = slices.Clone(i.initial)
	i.mu.Unlock()
	i.faults.Clear()
}

// AddFault injects a fault, as a POST to /_sim/faults does.
func (i *Issuer) AddFault(f Fault) error {
	if err := i.faults.Validate(f.Fault()); err != nil {
		return fmt.Errorf("add fault: %w", err)
	}
	i.faults.Add(f.Fault())
	return nil
}

// Rotate adds a key for alg, which signs every later token of that alg,
// and returns its kid. Older keys stay published until retired.
func (i *Issuer) Rotate(alg string) (string, error) {
	var signer crypto.Signer
	var jwk JWK
	switch alg {
	case RS256:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return "", fmt.Errorf("generate RSA key: %w", err)
		}
		signer = k
		jwk = JWK{Kty: "RSA", N: b64(k.N.Bytes()), E: b64(big.NewInt(int64(k.E)).Bytes())}
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", fmt.Errorf("generate EC key: %w", err)
		}
		signer = k
		// The ecdh form gives the uncompressed point 0x04 || X || Y, each
		// coordinate padded to 32 bytes as RFC 7518 requires.
		pub, err := k.PublicKey.ECDH()
		if err != nil {
			return "", fmt.Errorf("encode EC key: %w", err)
		}
		pt := pub.Bytes()
		jwk = JWK{Kty: "EC", Crv: "P-256", X: b64(pt[1:33]), Y: b64(pt[33:65])}
	default:
		return "", fmt.Errorf("rotate: unsupported alg %q (want RS256 or ES256)", alg)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.seq++
	jwk.Kid = fmt.Sprintf("%s-%d", strings.ToLower(alg), i.seq)
	jwk.Alg = alg
	jwk.Use = "sig"
	i.keys = append(i.keys, &signingKey{alg: alg, kid: jwk.Kid, signer: signer, jwk: jwk})
	return jwk.Kid, nil
}

// Errors of Retire.
var (
	ErrUnknownKey = errors.New("no published key has this kid")
	ErrKeyInUse   = errors.New("the key still signs new tokens; rotate first")
)

// Retire stops publishing the key kid, so tokens it signed no longer
// verify. The key that currently signs for its alg cannot be retired.
func (i *Issuer) Retire(kid string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	idx := slices.IndexFunc(i.keys, func(k *signingKey) bool { return k.kid == kid })
	if idx < 0 {
		return fmt.Errorf("retire %q: %w", kid, ErrUnknownKey)
	}
	if i.currentLocked(i.keys[idx].alg) == i.keys[idx] {
		return fmt.Errorf("retire %q: %w", kid, ErrKeyInUse)
	}
	i.keys = slices.Delete(slices.Clone(i.keys), idx, idx+1)
	return nil
}

// JWKS returns the published keys, oldest first.
func (i *Issuer) JWKS() JWKS {
	i.mu.Lock()
	defer i.mu.Unlock()
	set := JWKS{Keys: make([]JWK, 0, len(i.keys))}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, k.jwk)
	}
	return set
}

// Current returns the kid that signs tokens of alg now.
func (i *Issuer) Current(alg string) (string, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if k := i.currentLocked(alg); k != nil {
		return k.kid, true
	}
	return "", false
}

func (i *Issuer) currentLocked(alg string) *signingKey {
	for _, k := range slices.Backward(i.keys) {
		if k.alg == alg {
			return k
		}
	}
	return nil
}

// Mint signs a token with the current key of c.Alg.
func (i *Issuer) Mint(c Claims) (string, error) {
	if c.Alg == "" {
		c.Alg = RS256
	}
	if c.Issuer == "" {
		c.Issuer = i.opts.Issuer
	}
	if c.Issuer == "" {
		return "", errors.New("mint: no issuer (set Options.Issuer or Claims.Issuer)")
	}
	if c.Subject == "" {
		c.Subject = SubjectDefault
	}
	if c.Name == "" {
		c.Name = NameDefault
	}
	if c.Tenant == "" {
		c.Tenant = TenantDefault
	}
	if c.Audience == "" {
		c.Audience = i.opts.Audience
	}
	if c.TTL == 0 {
		c.TTL = i.opts.TTL
	}
	var method jwt.SigningMethod
	switch c.Alg {
	case RS256:
		method = jwt.SigningMethodRS256
	case ES256:
		method = jwt.SigningMethodES256
	default:
		return "", fmt.Errorf("mint: unsupported alg %q (want RS256 or ES256)", c.Alg)
	}
	i.mu.Lock()
	k := i.currentLocked(c.Alg)
	i.mu.Unlock()
	if k == nil {
		return "", fmt.Errorf("mint: no %s key", c.Alg)
	}
	now := i.opts.Now().Unix()
	tok := jwt.NewWithClaims(method, jwt.MapClaims{
		"name":   c.Name,
		"tenant": c.Tenant,
		"sub":    c.Subject,
		"iss":    c.Issuer,
		"aud":    c.Audience,
		"iat":    now,
		"exp":    now + int64(c.TTL/time.Second),
	})
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.signer)
	if err != nil {
		return "", fmt.Errorf("mint: sign with %s: %w", k.kid, err)
	}
	return s, nil
}

func (i *Issuer) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(i.opts.JWKSMaxAge/time.Second)))
	simkit.WriteJSON(w, http.StatusOK, i.JWKS())
}

func (i *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := Claims{
		Subject:  q.Get("sub"),
		Name:     q.Get("name"),
		Tenant:   q.Get("tenant"),
		Audience: q.Get("aud"),
		Issuer:   i.opts.Issuer,
		Alg:      q.Get("alg"),
	}
	if c.Issuer == "" {
		c.Issuer = requestOrigin(r)
	}
	if s := q.Get("ttl"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			simkit.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "ttl must be a whole number of seconds"})
			return
		}
		if n == 0 {
			n = int64(i.opts.TTL / time.Second)
		}
		c.TTL = time.Duration(n) * time.Second
	}
	if c.Alg != "" && c.Alg != RS256 && c.Alg != ES256 {
		simkit.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "alg must be RS256 or ES256"})
		return
	}
	tok, err := i.Mint(c)
	if err != nil {
		simkit.WriteJSON(w, http.StatusInternalServerError, map[string]any{"error": "server_error", "error_description": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(tok))
}

func (i *Issuer) handleRotate(w http.ResponseWriter, r *http.Request) {
	alg := r.URL.Query().Get("alg")
	if alg == "" {
		alg = RS256
	}
	if alg != RS256 && alg != ES256 {
		simkit.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "alg must be RS256 or ES256"})
		return
	}
	if _, err := i.Rotate(alg); err != nil {
		simkit.WriteJSON(w, http.StatusInternalServerError, map[string]any{"error": "server_error", "error_description": err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (i *Issuer) handleRetire(w http.ResponseWriter, r *http.Request) {
	err := i.Retire(r.URL.Query().Get("kid"))
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrUnknownKey):
		simkit.WriteJSON(w, http.StatusNotFound, map[string]any{"error": "unknown_kid", "error_description": err.Error()})
	case errors.Is(err, ErrKeyInUse):
		simkit.WriteJSON(w, http.StatusConflict, map[string]any{"error": "key_in_use", "error_description": err.Error()})
	default:
		simkit.WriteJSON(w, http.StatusInternalServerError, map[string]any{"error": "server_error", "error_description": err.Error()})
	}
}

// requestOrigin is the scheme and host the request was addressed to.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
