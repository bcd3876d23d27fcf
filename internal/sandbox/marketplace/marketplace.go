// Package marketplace is a local stand-in for a Sharetribe marketplace: the
// Authentication API (/v1/auth/...), a subset of the Marketplace API
// (/v1/api/...) and of the Integration API (/v1/integration_api/...), with
// users, listings, transactions, tokens and events held in memory. It
// speaks JSON (and Transit, which the Sharetribe SDKs ask for) with the
// paths, shapes and errors of the real service, so backlot's Sharetribe
// client and authenticator can be tested over real HTTP and `backlot dev`
// can run without a Sharetribe account.
//
// Like the real service it can rate-limit per client IP (Options.RateLimits,
// DevRateLimits), keeps events for a retention period on the injected
// clock, and refuses with Sharetribe's error body. For tests it adds fault
// injection per route (Marketplace.InjectFault, /_sim/faults), a reset
// (/_sim/reset) and request counters (Marketplace.Stats); any route it does
// not know answers 404 with the list of routes it does.
package marketplace

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// AccessTokenTTLDefault is how long an access token lives unless
// Options.AccessTokenTTL says otherwise: 86400 s, the expires_in of the
// real responses the Sharetribe SDK's fake adapter was copied from.
const AccessTokenTTLDefault = 24 * time.Hour

// Token scopes, as the real Authentication API names them.
const (
	ScopePublicRead  = "public-read"  // anonymous Marketplace API access
	ScopeUser        = "user"         // a logged-in marketplace user
	ScopeTrustedUser = "trusted:user" // a user token exchanged by a trusted (secret-holding) client
	ScopeIntegration = "integ"        // Integration API access
)

// Options configures a Marketplace.
type Options struct {
	// ClientID is the Marketplace API application's (public) client id.
	// client_credentials with it alone yields an anonymous token. Required.
	ClientID string
	// ClientSecret is the Marketplace API application's secret, needed
	// only for token_exchange (trusted:user tokens). Default: none, and
	// token_exchange is refused.
	ClientSecret string
	// IntegrationClientID and IntegrationClientSecret are an Integration
	// API application's credentials. Default: none.
	IntegrationClientID     string
	IntegrationClientSecret string
	// AccessTokenTTL is the lifetime of every access token. Default
	// AccessTokenTTLDefault (24 h). Refresh tokens do not expire.
	AccessTokenTTL time.Duration
	// Now is the clock: token expiry, event timestamps and retention, and
	// the rate limiter's buckets all read it. Default time.Now.
	Now func() time.Time
	// EventRetention is how long events stay queryable. Default
	// EventRetentionDefault (7 days, as in Sharetribe's dev and test
	// environments; live keeps 90).
	EventRetention time.Duration
	// RateLimits, when set, limits the Marketplace and Integration APIs per
	// client IP as Sharetribe does, answering 429 with Retry-After.
	// DevRateLimits returns the dev and test environments' limits.
	// Default nil: unlimited, so unit tests need not pace themselves.
	RateLimits *RateLimits
}

// EventRetentionDefault is how long events are kept unless
// Options.EventRetention says otherwise.
const EventRetentionDefault = 7 * 24 * time.Hour

// Profile is a user's profile as Sharetribe stores it.
type Profile struct {
	FirstName string
	LastName  string
	// DisplayName defaults, as in Sharetribe, to the first name and the
	// initial of the last name ("Joe D").
	DisplayName   string
	Bio           string
	PublicData    map[string]any
	ProtectedData map[string]any
	PrivateData   map[string]any
	Metadata      map[string]any
}

type user struct {
	id            string
	email         string
	passwordHash  [32]byte
	emailVerified bool
	banned        bool
	deleted       bool
	createdAt     time.Time
	profile       Profile
}

// session is what one login (or one integration client_credentials grant)
// created: the current refresh token and every access token issued from it,
// so revoking the refresh token revokes them all.
type session struct {
	clientID string
	scope    string
	userID   string // "" for integration sessions
	refresh  string // current refresh token; rotated on each refresh grant
	access   map[string]struct{}
}

type accessToken struct {
	clientID string
	scope    string
	userID   string
	expires  time.Time
	sess     *session // nil for anonymous tokens
}

// Marketplace is the simulator. It is an http.Handler; its methods are safe
// for concurrent use.
type Marketplace struct {
	opts       Options
	mux        *http.ServeMux
	signingKey []byte

	routeList []string // the routes it answers, for "not simulated" errors

	mu           sync.Mutex
	users        map[string]*user // by id
	userOrder    []string         // ids in creation order
	byEmail      map[string]string
	access       map[string]*accessToken
	sessions     map[string]*session // by current refresh token
	listings     map[string]*listing
	listingOrder []string
	txs          map[string]*transaction
	txOrder      []string
	events       []*event // ascending sequence ids
	lastSeq      int64

	// ctl guards the request-level machinery, apart from the data so a
	// slow or hanging fault never holds up other requests.
	ctl      sync.Mutex
	faults   *simkit.Registry          // has its own lock
	buckets  map[string]*clientBuckets // by client IP
	stats    statsState
	inFlight map[string]int
}

// New returns a Marketplace with no users.
func New(opts Options) *Marketplace {
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = AccessTokenTTLDefault
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.EventRetention <= 0 {
		opts.EventRetention = EventRetentionDefault
	}
	m := &Marketplace{
		opts:       opts,
		mux:        http.NewServeMux(),
		signingKey: []byte(newToken()),
	}
	m.faults = newFaults()
	m.resetData()
	m.resetControl()
	m.routes()
	return m
}

// resetData empties every table. Callers hold m.mu (or own m).
func (m *Marketplace) resetData() {
	m.users = map[string]*user{}
	m.userOrder = nil
	m.byEmail = map[string]string{}
	m.access = map[string]*accessToken{}
	m.sessions = map[string]*session{}
	m.listings = map[string]*listing{}
	m.listingOrder = nil
	m.txs = map[string]*transaction{}
	m.txOrder = nil
	m.events = nil
	m.lastSeq = 0
}

// resetControl drops faults, rate-limit buckets and counters. Callers hold
// m.ctl (or own m).
func (m *Marketplace) resetControl() {
	m.faults.Clear()
	m.buckets = map[string]*clientBuckets{}
	m.stats = statsState{perSecond: map[int64]*SecondStats{}}
	m.inFlight = map[string]int{}
}

// Reset forgets everything: users, listings, transactions, events, tokens,
// faults, rate-limit state and counters, as if the simulator were new.
// Sequence ids start again at 1.
func (m *Marketplace) Reset() {
	m.mu.Lock()
	m.resetData()
	m.mu.Unlock()
	m.ctl.Lock()
	m.resetControl()
	m.ctl.Unlock()
}

func (m *Marketplace) handle(pattern string, h http.HandlerFunc) {
	m.mux.HandleFunc(pattern, h)
	m.routeList = append(m.routeList, pattern)
}

func (m *Marketplace) routes() {
	m.handle("POST /v1/auth/token", m.handleToken)
	m.handle("POST /v1/auth/revoke", m.handleRevoke)

	m.handle("GET /v1/api/current_user/show", m.handleCurrentUserShow)
	m.handle("POST /v1/api/current_user/update_profile", m.handleCurrentUserUpdateProfile)
	m.handle("GET /v1/api/listings/query", m.handleMarketplaceListingsQuery)

	m.handle("GET /v1/integration_api/users/show", m.handleUsersShow)
	m.handle("GET /v1/integration_api/users/query", m.handleUsersQuery)
	m.handle("POST /v1/integration_api/users/update_profile", m.handleUsersUpdateProfile)
	m.handle("GET /v1/integration_api/listings/show", m.handleListingsShow)
	m.handle("GET /v1/integration_api/listings/query", m.handleListingsQuery)
	m.handle("POST /v1/integration_api/listings/update", m.handleListingsUpdate)
	m.handle("POST /v1/integration_api/listings/open", m.listingStateHandler("open"))
	m.handle("POST /v1/integration_api/listings/close", m.listingStateHandler("close"))
	m.handle("POST /v1/integration_api/listings/approve", m.listingStateHandler("approve"))
	m.handle("GET /v1/integration_api/transactions/query", m.handleTransactionsQuery)
	m.handle("POST /v1/integration_api/transactions/transition", m.handleTransactionsTransition)
	m.handle("GET /v1/integration_api/events/query", m.handleEventsQuery)

	m.handle("GET /_sim/faults", m.handleFaultsList)
	m.handle("POST /_sim/faults", m.handleFaultsAdd)
	m.handle("DELETE /_sim/faults", m.handleFaultsClear)
	m.handle("POST /_sim/reset", m.handleReset)
	m.handle("GET /_sim/stats", m.handleStats)

	// Anything else under the API prefixes answers in Sharetribe's error
	// format (what its SDKs read); anything else at all says it is not
	// simulated and lists what is.
	for _, prefix := range []string{"/v1/api/", "/v1/integration_api/", "/v1/auth/"} {
		m.mux.HandleFunc(prefix, func(w http.ResponseWriter, r *http.Request) {
			writeAPIError(w, r, http.StatusNotFound, "not-found", "Not found")
		})
	}
	m.mux.HandleFunc("/", m.handleNotSimulated)
}

// ServeHTTP implements http.Handler: rate limits and fault injection
// first, then the route.
func (m *Marketplace) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		m.mux.ServeHTTP(w, r)
		return
	}
	// Admission first, so an injected latency counts as time in flight,
	// as a slow answer from the real service would.
	if isAPIPath(r.URL.Path) {
		done, ok := m.admit(w, r)
		if !ok {
			return
		}
		defer done()
	}
	if m.faults.Apply(w, r, "") {
		return
	}
	m.mux.ServeHTTP(w, r)
}

// AddUser creates a user with a verified email and returns its id (a UUID,
// as Sharetribe's are).
func (m *Marketplace) AddUser(email, password string, profile Profile) string {
	if profile.DisplayName == "" {
		profile.DisplayName = defaultDisplayName(profile.FirstName, profile.LastName)
	}
	u := &user{
		id:            newUUID(),
		email:         email,
		passwordHash:  sha256.Sum256([]byte(password)),
		emailVerified: true,
		createdAt:     m.opts.Now().UTC().Truncate(time.Millisecond),
		profile:       profile,
	}
	u.profile.PublicData = maps.Clone(profile.PublicData)
	u.profile.ProtectedData = maps.Clone(profile.ProtectedData)
	u.profile.PrivateData = maps.Clone(profile.PrivateData)
	u.profile.Metadata = maps.Clone(profile.Metadata)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.id] = u
	m.userOrder = append(m.userOrder, u.id)
	m.byEmail[strings.ToLower(email)] = u.id
	m.emit(eventUserCreated, sourceMarketplaceAPI, u.id, "user", userResource(u, true), map[string]any{}, u.id, m.opts.ClientID)
	return u.id
}

// SetBanned bans or unbans a user. A banned user cannot log in.
func (m *Marketplace) SetBanned(userID string, banned bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.users[userID]; u != nil {
		u.banned = banned
	}
}

// ExpireTokens makes every access token issued so far expired, as if its
// lifetime had passed. Refresh tokens stay valid.
func (m *Marketplace) ExpireTokens() {
	m.mu.Lock()
	defer m.mu.Unlock()
	past := m.opts.Now().Add(-time.Second)
	for _, t := range m.access {
		t.expires = past
	}
}

// checkPassword finds the user with email and password. Comparison is of
// SHA-256 digests in constant time.
func (m *Marketplace) checkPassword(email, password string) *user {
	id, ok := m.byEmail[strings.ToLower(email)]
	if !ok {
		return nil
	}
	u := m.users[id]
	h := sha256.Sum256([]byte(password))
	if subtle.ConstantTimeCompare(h[:], u.passwordHash[:]) != 1 {
		return nil
	}
	return u
}

// lookupAccess returns the unexpired access token t, or nil.
func (m *Marketplace) lookupAccess(t string) *accessToken {
	at := m.access[t]
	if at == nil {
		return nil
	}
	if !m.opts.Now().Before(at.expires) {
		delete(m.access, t)
		if at.sess != nil {
			delete(at.sess.access, t)
		}
		return nil
	}
	return at
}

func defaultDisplayName(first, last string) string {
	name := strings.TrimSpace(first)
	if r := []rune(strings.TrimSpace(last)); len(r) > 0 {
		if name != "" {
			name += " "
		}
		name += string(r[0])
	}
	return name
}

func abbreviatedName(first, last string) string {
	var s string
	for _, p := range []string{first, last} {
		if r := []rune(strings.TrimSpace(p)); len(r) > 0 {
			s += strings.ToUpper(string(r[0]))
		}
	}
	return s
}

// newAccessToken mints an access token shaped as a JWT (HS256 under the
// simulator's own random key) whose claims say the client, scope and
// expiry, so clients may read the expiry; only the simulator's token table
// decides validity.
func (m *Marketplace) newAccessToken(clientID, scope string, exp time.Time) string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"client-id": clientID,
		"scope":     scope,
		"iat":       m.opts.Now().Unix(),
		"exp":       exp.Unix(),
		"jti":       newUUID(),
	})
	in := hdr + "." + base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, m.signingKey)
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// newToken returns an opaque random token.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
