// Package oauth is a local stand-in for an OAuth 2.0 authorization server:
// an authorize page that signs in a demo user, the authorization code grant
// with PKCE (S256 only), refresh tokens rotated with no grace period, token
// revocation (RFC 7009), a userinfo endpoint and server metadata (RFC 8414).
//
// It refuses the way a strict real server does, so the code that talks to it
// is tested against the failures it will meet in production: a replayed
// authorization code revokes what it issued, a reused refresh token revokes
// its whole family, a missing or wrong code_verifier is invalid_grant, a
// client that authenticates twice in two ways is refused. Faults (latency,
// 5xx, 429 with Retry-After, a 200 that carries an error) can be injected per
// route, from Go or over HTTP under /_sim/, and counters say how often each
// endpoint was called so tests can assert "exactly one refresh".
//
// All state is in memory and owned by one Server; its methods and its HTTP
// handler are safe for concurrent use.
package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// Defaults for the Options fields left zero.
const (
	// AccessTokenTTLDefault is the lifetime of an access token: one hour,
	// the most common choice of real providers.
	AccessTokenTTLDefault = time.Hour
	// CodeTTLDefault is the lifetime of an authorization code: ten minutes,
	// the maximum RFC 6749 section 4.1.2 recommends.
	CodeTTLDefault = 10 * time.Minute
)

// Route paths the simulator answers. Fault takes one of the first five.
const (
	RouteAuthorize = "/authorize"
	RouteToken     = "/token"
	RouteRevoke    = "/revoke"
	RouteUserinfo  = "/userinfo"
	RouteMetadata  = "/.well-known/oauth-authorization-server"

	routeSimFaults = "/_sim/faults"
	routeSimReset  = "/_sim/reset"
	routeSimStats  = "/_sim/stats"
)

// Options configures a Server. The zero value is usable but registers no
// client, so every authorization request is refused until AddClient.
type Options struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414),
	// sent as `iss` in authorization responses (RFC 9207) and used as the
	// base of the endpoint URLs in the metadata. Default: derived from each
	// request, "http://" (or "https://" under TLS) plus its Host header.
	Issuer string
	// Clients are the registered clients. Default: none.
	Clients []Client
	// Users are the demo users the authorize page offers. Default:
	// DefaultUsers().
	Users []User
	// AccessTokenTTL is the lifetime of access tokens. Default
	// AccessTokenTTLDefault (1 h).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of refresh tokens, counted from their
	// issue. Default 0: refresh tokens do not expire.
	RefreshTokenTTL time.Duration
	// CodeTTL is the lifetime of authorization codes. Default
	// CodeTTLDefault (10 min).
	CodeTTL time.Duration
	// RefreshGrace is how long a refresh token stays usable after it was
	// rotated; a reuse within it answers a new access token and the
	// family's current refresh token (as Auth0's "reuse interval" and
	// Okta's grace period do). A reuse after it revokes the whole family.
	// Default 0: no grace, any reuse revokes the family.
	RefreshGrace time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Client is a registered OAuth client.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret is the client_secret. Empty makes a public client, which
	// authenticates with its client_id alone and must use PKCE.
	Secret string
	// RedirectURIs are the registered redirect URIs; an authorization
	// request's redirect_uri must equal one of them exactly (no prefix or
	// port wildcards).
	RedirectURIs []string
	// RequirePKCE refuses authorization requests without an S256
	// code_challenge. A challenge that is sent is always enforced.
	RequirePKCE bool
	// Scopes are the scopes the client may ask for. Default: any scope.
	Scopes []string
}

// User is a demo user the authorize page can sign in.
type User struct {
	// ID is the stable subject identifier (the `sub` of userinfo).
	ID            string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	Name          string `json:"name"`
}

// DefaultUsers returns the demo users used when Options.Users is empty: two
// with verified emails and one whose email is not verified, so code that
// must refuse unverified identities can be tested.
func DefaultUsers() []User {
	return []User{
		{ID: "user-alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice Example"},
		{ID: "user-bob", Email: "bob@example.com", EmailVerified: true, Name: "Bob Example"},
		{ID: "user-mallory", Email: "mallory@example.com", EmailVerified: false, Name: "Mallory Unverified"},
	}
}

// tokenKey is the SHA-256 digest of a code or token: the tables are keyed
// by it so that a lookup's timing says nothing about the secret's value.
type tokenKey [sha256.Size]byte

func keyOf(token string) tokenKey { return sha256.Sum256([]byte(token)) }

// grant is one authorization: what a code was exchanged for, and every
// refresh and access token descended from it (the "family" revoked as a
// whole on code replay or refresh token reuse).
type grant struct {
	clientID string
	userID   string
	scope    string
	// currentRaw is the refresh token not yet rotated, kept in clear only
	// so that a reuse within Options.RefreshGrace can be answered with it.
	currentRaw string
	revoked    bool
}

type authCode struct {
	clientID    string
	redirectURI string
	scope       string
	userID      string
	challenge   string // S256 code_challenge, "" when none was sent
	expires     time.Time
	used        bool
	grant       *grant // what the code was exchanged for, once it was
}

type refreshToken struct {
	grant     *grant
	expires   time.Time // zero: never
	rotated   bool
	rotatedAt time.Time
}

type accessToken struct {
	grant   *grant
	scope   string // may be narrower than the grant's (RFC 6749 section 6)
	expires time.Time
	revoked bool
}

// Server is the simulator. It is an http.Handler.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	routes []string // known "METHOD path" entries, for the not-simulated answer
	faults *simkit.Registry

	mu      sync.Mutex
	clients map[string]Client
	users   []User
	codes   map[tokenKey]*authCode
	refresh map[tokenKey]*refreshToken
	access  map[tokenKey]*accessToken
	stats   Stats
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = AccessTokenTTLDefault
	}
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = CodeTTLDefault
	}
	if len(opts.Users) == 0 {
		opts.Users = DefaultUsers()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Issuer = strings.TrimSuffix(opts.Issuer, "/")
	// Copy the caller's slices so later changes to them cannot reach into
	// the server's state unlocked.
	opts.Clients = slices.Clone(opts.Clients)
	opts.Users = slices.Clone(opts.Users)
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.faults = s.newFaults()
	s.resetLocked()
	s.registerRoutes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// AddClient registers c, replacing any client with the same ID, for
// callers that learn a redirect URI (a port) only after New. Reset forgets
// clients added this way and restores those of Options.Clients.
func (s *Server) AddClient(c Client) {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.Scopes = slices.Clone(c.Scopes)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = c
}

// Users returns the demo users.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.users)
}

// Reset forgets every code, token, fault and counter, and restores the
// clients and users of Options, as a fresh New would.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	s.clients = make(map[string]Client, len(s.opts.Clients))
	for _, c := range s.opts.Clients {
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		c.Scopes = slices.Clone(c.Scopes)
		s.clients[c.ID] = c
	}
	s.users = slices.Clone(s.opts.Users)
	s.codes = map[tokenKey]*authCode{}
	s.refresh = map[tokenKey]*refreshToken{}
	s.access = map[tokenKey]*accessToken{}
	s.faults.Clear()
	s.stats = Stats{TokenCallsByGrant: map[string]int{}}
}

// ExpireAccessTokens makes every access token issued so far expired, as if
// its lifetime had passed; refresh tokens stay valid. Tests use it to force
// a refresh without moving the clock.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.opts.Now().Add(-time.Second)
	for _, t := range s.access {
		if t.expires.After(past) {
			t.expires = past
		}
	}
}

// user returns the demo user with id, if any.
func (s *Server) user(id string) (User, bool) {
	for _, u := range s.users {
		if u.ID == id {
			return u, true
		}
	}
	return User{}, false
}

// issuer is the issuer identifier for r: Options.Issuer, or the request's
// own origin.
func (s *Server) issuer(r *http.Request) string {
	if s.opts.Issuer != "" {
		return s.opts.Issuer
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// revokeGrantLocked revokes g and so every token descended from it.
func (s *Server) revokeGrantLocked(g *grant) {
	if g == nil || g.revoked {
		return
	}
	g.revoked = true
	s.stats.GrantsRevoked++
}

// newToken returns an opaque random token: 32 bytes from crypto/rand,
// base64url without padding.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sweepLocked drops codes and access tokens whose lifetime is over, so a
// long `backlot dev` session does not grow without bound. Expired codes
// need no replay detection: any use of them is refused anyway.
func (s *Server) sweepLocked(now time.Time) {
	for k, c := range s.codes {
		if now.After(c.expires) {
			delete(s.codes, k)
		}
	}
	for k, t := range s.access {
		if now.After(t.expires) {
			delete(s.access, k)
		}
	}
}
