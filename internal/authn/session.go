package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/store"
)

// Session internals.
const (
	// sessionIDBytes is the entropy of a session id (the cookie value).
	sessionIDBytes = 32
	// sessionSweepEvery is how often a login also deletes expired sessions.
	sessionSweepEvery = 10 * time.Minute
)

// sessionAuth is the `session` authenticator (SPEC 5.2): a cookie issued by
// POST /auth/session after another authenticator (its login) accepted the
// caller, backed by a row in the store so it can be revoked. Unsafe
// requests must pass Go's cross-origin protection and carry the CSRF token.
type sessionAuth struct {
	name   string
	login  string
	ttl    time.Duration
	cookie http.Cookie // template: Name, Path, Domain, Secure, HttpOnly, SameSite
	deps   Deps
	store  store.SessionStore
	cop    *http.CrossOriginProtection

	mu        sync.Mutex
	lastSweep time.Time
}

var (
	_ auth.Authenticator = (*sessionAuth)(nil)
	_ Challenger         = (*sessionAuth)(nil)
)

// newSession builds a session authenticator; login is the authenticator
// its cfg.Login names (nil when none is configured under that name).
func newSession(name string, cfg config.Authenticator, login auth.Authenticator, deps Deps) (*sessionAuth, error) {
	if deps.Store == nil {
		return nil, errors.New("a session authenticator needs a store")
	}
	if cfg.Login == "" {
		return nil, errors.New("login: name the authenticator that signs callers in")
	}
	if login == nil {
		return nil, fmt.Errorf("login: authenticator %q is not configured", cfg.Login)
	}
	if login.Type() == config.AuthSession {
		return nil, fmt.Errorf("login: %q is itself a session authenticator", cfg.Login)
	}
	a := &sessionAuth{
		name:  name,
		login: cfg.Login,
		ttl:   cfg.TTL.D(),
		deps:  deps,
		store: deps.Store,
		cop:   http.NewCrossOriginProtection(),
	}
	if a.ttl == 0 {
		a.ttl = config.SessionTTLDefault
	}
	if a.ttl < 0 {
		return nil, fmt.Errorf("ttl: must be positive, got %s", a.ttl)
	}
	c, err := sessionCookie(cfg.Cookie)
	if err != nil {
		return nil, err
	}
	a.cookie = c
	return a, nil
}

// sessionCookie validates the cookie config and fills in defaults.
func sessionCookie(cc config.SessionCookie) (http.Cookie, error) {
	c := http.Cookie{Name: cc.Name, Path: cc.Path, Domain: cc.Domain, Secure: true, HttpOnly: true}
	if c.Name == "" {
		c.Name = config.SessionCookieDefault
	}
	if !validCookieName(c.Name) {
		return c, fmt.Errorf("cookie.name: %q is not a valid cookie name", c.Name)
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, ";\x00\r\n") {
		return c, fmt.Errorf("cookie.path: %q must start with / and contain no ';'", c.Path)
	}
	if strings.ContainsAny(c.Domain, ";, \x00\r\n") {
		return c, fmt.Errorf("cookie.domain: %q is not a domain", c.Domain)
	}
	if cc.Secure != nil {
		c.Secure = *cc.Secure
	}
	switch strings.ToLower(cc.SameSite) {
	case "", "lax":
		c.SameSite = http.SameSiteLaxMode
	case "strict":
		c.SameSite = http.SameSiteStrictMode
	case "none":
		if !c.Secure {
			// Browsers drop SameSite=None cookies that are not Secure.
			return c, errors.New("cookie.same_site: none requires cookie.secure: true")
		}
		c.SameSite = http.SameSiteNoneMode
	default:
		return c, fmt.Errorf("cookie.same_site: %q is not lax, strict or none", cc.SameSite)
	}
	switch {
	case strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || c.Path != "/" || c.Domain != ""):
		return c, errors.New("cookie.name: a __Host- cookie needs secure: true, path: / and no domain")
	case strings.HasPrefix(c.Name, "__Secure-") && !c.Secure:
		return c, errors.New("cookie.name: a __Secure- cookie needs secure: true")
	}
	return c, nil
}

func validCookieName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return n != ""
}

func (a *sessionAuth) Name() string { return a.name }

func (a *sessionAuth) Type() string { return config.AuthSession }

// Challenge names the scheme in WWW-Authenticate: a cookie has no RFC
// 7235 scheme, so this tells a developer where the credential goes.
func (a *sessionAuth) Challenge() string { return "Session" }

// Authenticate accepts a request carrying a live session cookie; unsafe
// methods must also pass the cross-origin check and present the CSRF
// token (403 csrf_failed otherwise).
func (a *sessionAuth) Authenticate(r *http.Request) (*auth.Principal, error) {
	id, err := a.readCookie(r)
	if err != nil {
		return nil, err
	}
	if !safeMethod(r.Method) {
		if f := checkOrigin(a.cop, r); f != nil {
			return nil, f
		}
		if err := checkCSRF(r, a.deps.CSRFKey, id); err != nil {
			return nil, err
		}
	}
	_, p, err := a.load(r.Context(), id)
	return p, err
}

// readCookie returns the session id in the request's cookie:
// ErrNoCredential without one, a Failure when it is malformed.
func (a *sessionAuth) readCookie(r *http.Request) ([]byte, error) {
	c, err := r.Cookie(a.cookie.Name)
	if err != nil || c.Value == "" {
		return nil, auth.ErrNoCredential
	}
	id, err := base64.RawURLEncoding.Strict().DecodeString(c.Value)
	if err != nil || len(id) != sessionIDBytes {
		return nil, auth.Invalid("malformed session cookie", nil)
	}
	return id, nil
}

func hashID(id []byte) []byte {
	h := sha256.Sum256(id)
	return h[:]
}

// load looks the session up: a Failure when it is unknown (never issued,
// logged out, revoked) or expired.
func (a *sessionAuth) load(ctx context.Context, id []byte) (store.Session, *auth.Principal, error) {
	s, err := a.store.GetSession(ctx, hashID(id))
	if errors.Is(err, store.ErrNotFound) {
		return s, nil, auth.Invalid("session not found: signed out or revoked", nil)
	}
	if err != nil {
		return s, nil, fmt.Errorf("session %s: %w", a.name, err)
	}
	if s.Authenticator != a.name {
		// Another session authenticator's cookie name collided with ours.
		return s, nil, auth.Invalid("session was issued by another authenticator", nil)
	}
	if !a.deps.Now().Before(s.ExpiresAt) {
		return s, nil, auth.Invalid("session expired", nil)
	}
	var p auth.Principal
	if err := json.Unmarshal(s.Principal, &p); err != nil {
		return s, nil, fmt.Errorf("session %s: decode principal: %w", a.name, err)
	}
	p.Authenticator = a.name
	return s, &p, nil
}

// sessionRoutes serve POST /auth/session, GET /auth/csrf and
// POST /auth/logout for every session authenticator of a Set. They belong
// to the Set, whose decision (metrics, failure limits, answers) they use
// to sign callers in through each session's login authenticator.
type sessionRoutes struct {
	set      *Set
	sessions []*sessionAuth // in name order
}

func (rs *sessionRoutes) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /auth/session", rs.handleLogin)
	mux.HandleFunc("GET /auth/csrf", rs.handleCSRF)
	mux.HandleFunc("POST /auth/logout", rs.handleLogout)
}

// entries are the session authenticators as the Set decides with them.
func (rs *sessionRoutes) entries() []*entry {
	names := make([]string, len(rs.sessions))
	for i, s := range rs.sessions {
		names[i] = s.name
	}
	return rs.set.list(names)
}

// loginResponse is the body of POST /auth/session.
type loginResponse struct {
	CSRFToken string          `json:"csrf_token"`
	ExpiresAt time.Time       `json:"expires_at"`
	Principal *auth.Principal `json:"principal"`
}

// handleLogin exchanges a credential accepted by the login authenticator
// for a session cookie. With several session authenticators the query
// parameter `authenticator` picks one.
func (rs *sessionRoutes) handleLogin(w http.ResponseWriter, r *http.Request) {
	sa, herr := rs.pick(r.URL.Query().Get("authenticator"))
	if herr != nil {
		httpapi.WriteError(w, r, herr)
		return
	}
	// A cross-site page must not sign the browser in (login CSRF through
	// an ambient credential such as a marketplace cookie).
	if f := checkOrigin(sa.cop, r); f != nil {
		httpapi.WriteError(w, r, &httpapi.Error{Status: f.Status, Code: f.Code, Description: f.Reason, Err: f})
		return
	}
	p, ok := rs.set.authenticate(w, r, rs.set.list([]string{sa.login}), auth.Rule{})
	if !ok {
		return
	}
	stored := *p
	stored.RefreshToken = "" // never kept in the session row
	principal, err := json.Marshal(&stored)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("session login: encode principal: %w", err))
		return
	}
	id := make([]byte, sessionIDBytes)
	rand.Read(id) // crypto/rand.Read never fails (Go 1.24+)
	now := sa.deps.Now()
	sess := store.Session{
		IDHash:        hashID(id),
		Authenticator: sa.name,
		Subject:       p.Subject,
		Principal:     principal,
		CreatedAt:     now,
		ExpiresAt:     now.Add(sa.ttl),
	}
	ctx := r.Context()
	if err := sa.store.CreateSession(ctx, sess); err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("session login: %w", err))
		return
	}
	// A new login replaces the session the browser held, if any.
	if old, err := sa.readCookie(r); err == nil {
		if err := sa.store.DeleteSession(ctx, hashID(old)); err != nil {
			sa.deps.Logger.WarnContext(ctx, "session login: delete previous session", "error", err.Error())
		}
	}
	sa.sweep(ctx, now)

	c := sa.cookie
	c.Value = base64.RawURLEncoding.EncodeToString(id)
	c.MaxAge = int(sa.ttl / time.Second)
	http.SetCookie(w, &c)
	w.Header().Set("Cache-Control", "no-store")
	out := stored
	out.Authenticator = sa.name
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	if out.Claims == nil {
		out.Claims = map[string]any{}
	}
	httpapi.WriteJSON(w, http.StatusOK, loginResponse{
		CSRFToken: csrfToken(sa.deps.CSRFKey, id),
		ExpiresAt: sess.ExpiresAt.UTC().Truncate(time.Millisecond),
		Principal: &out,
	})
}

// pick returns the session authenticator a login names, or the only one.
func (rs *sessionRoutes) pick(name string) (*sessionAuth, *httpapi.Error) {
	ss := rs.sessions
	if name == "" {
		if len(ss) == 1 {
			return ss[0], nil
		}
		names := make([]string, len(ss))
		for i, s := range ss {
			names[i] = s.name
		}
		return nil, httpapi.BadRequest("authenticator_required",
			"several session authenticators are configured (%s): name one with ?authenticator=", strings.Join(names, ", "))
	}
	for _, s := range ss {
		if s.name == name {
			return s, nil
		}
	}
	return nil, httpapi.BadRequest("unknown_authenticator", "%q is not a session authenticator", name)
}

// sweep deletes expired sessions, at most once per sessionSweepEvery.
func (a *sessionAuth) sweep(ctx context.Context, now time.Time) {
	a.mu.Lock()
	due := now.Sub(a.lastSweep) >= sessionSweepEvery
	if due {
		a.lastSweep = now
	}
	a.mu.Unlock()
	if !due {
		return
	}
	n, err := a.store.DeleteExpiredSessions(ctx, now)
	if err != nil {
		a.deps.Logger.WarnContext(ctx, "delete expired sessions", "error", err.Error())
		return
	}
	if n > 0 {
		a.deps.Logger.DebugContext(ctx, "deleted expired sessions", "count", n)
	}
}

// current authenticates r against the session authenticators and returns
// the one that accepted it with the session id.
func (rs *sessionRoutes) current(w http.ResponseWriter, r *http.Request) (*sessionAuth, []byte, bool) {
	p, ok := rs.set.authenticate(w, r, rs.entries(), auth.Rule{})
	if !ok {
		return nil, nil, false
	}
	for _, s := range rs.sessions {
		if s.name == p.Authenticator {
			if id, err := s.readCookie(r); err == nil {
				return s, id, true
			}
		}
	}
	httpapi.WriteError(w, r, fmt.Errorf("session %s: accepted request has no cookie", p.Authenticator))
	return nil, nil, false
}

// handleCSRF answers GET /auth/csrf with the current session's CSRF token.
func (rs *sessionRoutes) handleCSRF(w http.ResponseWriter, r *http.Request) {
	_, id, ok := rs.current(w, r)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"csrf_token": csrfToken(rs.set.deps.CSRFKey, id)})
}

// handleLogout deletes the session server-side and clears the cookie. It
// is an unsafe request on a cookie session, so it needs the CSRF token: a
// forged logout from another site changes nothing.
func (rs *sessionRoutes) handleLogout(w http.ResponseWriter, r *http.Request) {
	sa, id, ok := rs.current(w, r)
	if !ok {
		return
	}
	if r.ContentLength != 0 {
		// Only csrf_token (already taken out) may be in a JSON body.
		var none struct{}
		if err := httpapi.DecodeJSON(r, &none); err != nil && !isEmptyBody(err) {
			httpapi.WriteError(w, r, err)
			return
		}
	}
	if err := sa.store.DeleteSession(r.Context(), hashID(id)); err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("session logout: %w", err))
		return
	}
	c := sa.cookie
	c.Value = ""
	c.MaxAge = -1 // sends Max-Age=0
	http.SetCookie(w, &c)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func isEmptyBody(err error) bool {
	var he *httpapi.Error
	return errors.As(err, &he) && he.Code == "invalid_json" && he.Description == "request body is empty"
}

// CSRFToken returns the CSRF token for the session cookie r carries, for
// pages that embed it in their HTML (the console). It does not check the
// session is live: call it only after a session authenticator accepted r.
func (s *Set) CSRFToken(r *http.Request) (string, bool) {
	for _, sa := range s.sessions.sessions {
		if id, err := sa.readCookie(r); err == nil {
			return csrfToken(sa.deps.CSRFKey, id), true
		}
	}
	return "", false
}
