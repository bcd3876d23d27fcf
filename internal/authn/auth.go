// Package authn holds the built-in authenticators (hs256, jwks, stripe_app,
// sharetribe, session, api_key) and the Set that runs a route's
// authenticators in order, decides the answer, limits failures per client and
// serves /auth/whoami. Users see only the public auth package.
package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/ratelimit"
	"github.com/backlothq/backlot/internal/store"
)

// Deps are what authenticators need from the process around them.
type Deps struct {
	// Logger receives one line per refusal (info) and per success (debug). Default: discard.
	Logger *slog.Logger
	// Metrics registers backlot_auth_decisions_total. Default: not registered.
	Metrics prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// HTTPClient fetches JWKS documents and calls marketplaces. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Store keeps sessions; nil when no authenticator needs it.
	Store store.Store
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return d
}

// Challenger is implemented by authenticators whose 401 challenge is not
// `Bearer realm="backlot"` (a scheme name without parameters, e.g. "Stripe-Signature").
type Challenger interface {
	Challenge() string
}

// Starter is implemented by authenticators with background work or a
// warm-up (a JWKS prefetch). Set.Start and Set.Stop call them.
type Starter interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// RouteRegistrar is implemented by authenticators that serve endpoints of
// their own (session: /auth/session, /auth/csrf, /auth/logout). Set.Register
// calls it once per authenticator type, on the first such authenticator in
// name order.
type RouteRegistrar interface {
	RegisterRoutes(mux *http.ServeMux)
}

// Decision outcomes counted in backlot_auth_decisions_total.
const (
	OutcomeOK        = "ok"
	OutcomeMissing   = "missing"
	OutcomeInvalid   = "invalid"
	OutcomeForbidden = "forbidden"
	OutcomeLimited   = "limited" // refused before verifying: too many failures from the client
	OutcomeError     = "error"   // the authenticator could not decide (marketplace down, body too large)
)

// Failure rate limit per client IP: a burst, then a steady rate.
const (
	FailureBurstDefault = 20
	FailureRateDefault  = rate.Limit(2)
	maxLimitedClients   = 10000
)

const realm = "backlot"

type entry struct {
	a             auth.Authenticator
	invalidStatus int
	challenge     string
	counters      map[string]prometheus.Counter
}

func (e *entry) count(outcome string) {
	if c := e.counters[outcome]; c != nil {
		c.Inc()
	}
}

// Set is the configured authenticators by name, and the middleware that
// applies them to routes.
type Set struct {
	deps    Deps
	mu      sync.RWMutex // guards entries (Add after construction)
	entries map[string]*entry
	names   []string // sorted
	// whoami is the order whoami tries: names sorted, but authenticators
	// that verify by calling a remote service (sharetribe) last, so a
	// locally verifiable token is never sent to a third party.
	whoami []string

	decisions *prometheus.CounterVec
	limiter   *ratelimit.Failures
}

// NewSet builds the configured authenticators. marketplaces are looked up
// by sharetribe authenticators. Session authenticators are built last,
// since they name another authenticator as their login.
func NewSet(ctx context.Context, cfgs map[string]config.Authenticator, marketplaces map[string]config.Marketplace, deps Deps) (*Set, error) {
	deps = deps.withDefaults()
	s := &Set{
		deps:    deps,
		entries: map[string]*entry{},
		decisions: registerCounterVec(deps.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backlot_auth_decisions_total",
			Help: "Authentication decisions by authenticator and outcome (ok, missing, invalid, forbidden, limited, error).",
		}, []string{"authenticator", "outcome"})),
		limiter: ratelimit.NewFailures(FailureRateDefault, FailureBurstDefault, maxLimitedClients),
	}
	names := make([]string, 0, len(cfgs))
	for n := range cfgs {
		names = append(names, n)
	}
	slices.Sort(names)
	build := func(name string, cfg config.Authenticator) error {
		var (
			a   auth.Authenticator
			err error
		)
		switch cfg.Type {
		case config.AuthHS256:
			a, err = newHS256(name, cfg, deps)
		case config.AuthJWKS:
			a, err = newJWKS(name, cfg, deps)
		case config.AuthStripeApp:
			a, err = newStripeApp(name, cfg, deps)
		case config.AuthAPIKey:
			a, err = newAPIKey(name, cfg, deps)
		case config.AuthSharetribe:
			mkt, ok := marketplaces[cfg.Marketplace]
			if !ok {
				return fmt.Errorf("authenticator %s: marketplace %q is not configured", name, cfg.Marketplace)
			}
			a, err = newSharetribe(name, cfg, mkt, deps)
		case config.AuthSession:
			a, err = newSession(name, cfg, s, deps)
		default:
			return fmt.Errorf("authenticator %s: unknown type %q", name, cfg.Type)
		}
		if err != nil {
			return fmt.Errorf("authenticator %s (%s): %w", name, cfg.Type, err)
		}
		s.add(a, cfg.InvalidStatus)
		return nil
	}
	for _, n := range names {
		if cfgs[n].Type != config.AuthSession {
			if err := build(n, cfgs[n]); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range names {
		if cfgs[n].Type == config.AuthSession {
			if err := build(n, cfgs[n]); err != nil {
				return nil, err
			}
		}
	}
	_ = ctx // reserved for constructors that need I/O; warm-ups happen in Start
	return s, nil
}

func registerCounterVec(reg prometheus.Registerer, cv *prometheus.CounterVec) *prometheus.CounterVec {
	if reg == nil {
		return cv
	}
	if err := reg.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return cv
}

// Add registers a custom authenticator (for Go users of backlot). Its
// invalid credentials are answered 401. It replaces one of the same name.
func (s *Set) Add(a auth.Authenticator) { s.add(a, 0) }

func (s *Set) add(a auth.Authenticator, invalidStatus int) {
	if invalidStatus != http.StatusForbidden {
		invalidStatus = http.StatusUnauthorized
	}
	e := &entry{a: a, invalidStatus: invalidStatus, challenge: `Bearer realm="` + realm + `"`, counters: map[string]prometheus.Counter{}}
	if c, ok := a.(Challenger); ok && c.Challenge() != "" {
		e.challenge = c.Challenge()
	}
	for _, o := range []string{OutcomeOK, OutcomeMissing, OutcomeInvalid, OutcomeForbidden, OutcomeError} {
		e.counters[o] = s.decisions.WithLabelValues(a.Name(), o)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[a.Name()]; !ok {
		s.names = append(s.names, a.Name())
		slices.Sort(s.names)
	}
	s.entries[a.Name()] = e
	order := make([]string, 0, len(s.names)) // new slice: whoami readers hold the old one
	for _, remote := range []bool{false, true} {
		for _, n := range s.names {
			if (s.entries[n].a.Type() == config.AuthSharetribe) == remote {
				order = append(order, n)
			}
		}
	}
	s.whoami = order
}

// Get returns the authenticator called name.
func (s *Set) Get(name string) (auth.Authenticator, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[name]
	if !ok {
		return nil, false
	}
	return e.a, true
}

// Names returns the authenticators' names in sorted order, the order
// whoami tries them in.
func (s *Set) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.names)
}

// SetFailureLimit changes the per-client-IP limit on authentication
// failures (default FailureBurstDefault, then FailureRateDefault per
// second). Call it before serving; it is not synchronised with requests.
func (s *Set) SetFailureLimit(r rate.Limit, burst int) {
	s.limiter = ratelimit.NewFailures(r, burst, maxLimitedClients)
}

// Start starts every authenticator implementing Starter.
func (s *Set) Start(ctx context.Context) error {
	for _, e := range s.list(s.Names()) {
		if st, ok := e.a.(Starter); ok {
			if err := st.Start(ctx); err != nil {
				return fmt.Errorf("start authenticator %s: %w", e.a.Name(), err)
			}
		}
	}
	return nil
}

// Stop stops every authenticator implementing Starter.
func (s *Set) Stop(ctx context.Context) error {
	var errs []error
	for _, e := range s.list(s.Names()) {
		if st, ok := e.a.(Starter); ok {
			if err := st.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop authenticator %s: %w", e.a.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// Check reports an error naming the first of names that is not configured.
func (s *Set) Check(names []string) error {
	if len(names) == 0 {
		return errors.New("no authenticators named")
	}
	for _, n := range names {
		if _, ok := s.Get(n); !ok {
			return fmt.Errorf("authenticator %q is not configured", n)
		}
	}
	return nil
}

func (s *Set) list(names []string) []*entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*entry, 0, len(names))
	for _, n := range names {
		if e, ok := s.entries[n]; ok {
			out = append(out, e)
		}
	}
	return out
}

// Register adds GET /auth/whoami, and the endpoints of authenticators that
// serve their own (RouteRegistrar, once per type).
func (s *Set) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/whoami", s.HandleWhoami)
	seen := map[string]bool{}
	for _, e := range s.list(s.Names()) {
		if rr, ok := e.a.(RouteRegistrar); ok && !seen[e.a.Type()] {
			seen[e.a.Type()] = true
			rr.RegisterRoutes(mux)
		}
	}
}

// Require returns middleware that admits a request only if one of the
// named authenticators accepts it and the principal meets rule. It panics
// if a name is not configured (validate with Check first): that is a
// wiring mistake, not a request-time condition.
//
// Authenticators are tried in the order given, except that those that
// verify by calling a remote service (sharetribe) go after the local ones,
// so a valid local credential is never sent out. One without a credential of
// its kind passes to the next; one that finds an invalid credential is
// remembered and the next is still tried, so a route accepting two kinds of
// bearer token works with either. The first success wins; if none
// succeeds, the most relevant failure is answered.
func (s *Set) Require(names []string, rule auth.Rule) func(http.Handler) http.Handler {
	if err := s.Check(names); err != nil {
		panic("auth.Require: " + err.Error())
	}
	entries := localFirst(s.list(names))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := s.authenticate(w, r, entries, rule)
			if !ok {
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), p)))
		})
	}
}

// HandleWhoami answers GET /auth/whoami with the caller's Principal,
// trying every configured authenticator: in name order, those that call a
// remote service last.
func (s *Set) HandleWhoami(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	order := s.whoami
	s.mu.RUnlock()
	p, ok := s.authenticate(w, r, s.list(order), auth.Rule{})
	if !ok {
		return
	}
	out := *p
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	if out.Claims == nil {
		out.Claims = map[string]any{}
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, &out)
}

// Authenticate runs the named authenticators against r without writing a
// response: the Principal, or an *httpapi.Error saying how to refuse.
// Metrics and logs are as for Require; the failure rate limit is not applied.
func (s *Set) Authenticate(r *http.Request, names []string, rule auth.Rule) (*auth.Principal, error) {
	p, _, herr := s.decide(r, localFirst(s.list(names)), rule)
	if herr != nil {
		return nil, herr
	}
	return p, nil
}

// authenticate decides and, on refusal, writes the error envelope.
func (s *Set) authenticate(w http.ResponseWriter, r *http.Request, entries []*entry, rule auth.Rule) (*auth.Principal, bool) {
	ip := clientIP(r)
	now := s.deps.Now()
	if wait, limited := s.limiter.Blocked(ip, now); limited {
		s.decisions.WithLabelValues("", OutcomeLimited).Inc()
		s.deps.Logger.InfoContext(r.Context(), "auth refused", "outcome", OutcomeLimited,
			"client_ip", ip, "request_id", httpapi.RequestIDFrom(r.Context()))
		e := httpapi.Errorf(http.StatusTooManyRequests, "too_many_failures",
			"too many failed authentication attempts from this address; retry in %d s", wait)
		e.Header = http.Header{"Retry-After": []string{fmt.Sprint(wait)}}
		httpapi.WriteError(w, r, e)
		return nil, false
	}
	p, countsAsFailure, herr := s.decide(r, entries, rule)
	if herr != nil {
		if countsAsFailure {
			s.limiter.Fail(ip, now)
		}
		httpapi.WriteError(w, r, herr)
		return nil, false
	}
	return p, true
}

// decide runs the authenticators. countsAsFailure says whether a refusal
// should count against the client's failure budget.
func (s *Set) decide(r *http.Request, entries []*entry, rule auth.Rule) (p *auth.Principal, countsAsFailure bool, herr *httpapi.Error) {
	ctx := r.Context()
	if len(r.Header.Values("Authorization")) > 1 {
		// Which one counts would depend on who reads it (backlot, a
		// proxy, the upstream): refuse rather than guess.
		s.logRefusal(r, strings.Join(namesOf(entries), ","), OutcomeInvalid, "more than one Authorization header", nil)
		return nil, false, httpapi.E(http.StatusBadRequest, "invalid_request", "more than one Authorization header")
	}
	var (
		fail      *auth.Failure
		failEntry *entry
		local     = -1 // whether the bearer credential is backlot's own: -1 not yet known, 0 no, 1 yes
	)
	for _, e := range entries {
		if isRemote(e) {
			if local < 0 {
				local = 0
				if s.ownedLocally(r) {
					local = 1
				}
			}
			if local == 1 {
				// Refused here and never sent out: a local secret or token
				// (even a mistyped or expired one) must not leave backlot.
				f := &auth.Failure{Reason: "a backlot API key or token is not sent to the marketplace", Foreign: true}
				if fail == nil {
					fail, failEntry = f, e
				}
				continue
			}
		}
		pr, err := e.a.Authenticate(r)
		if err == nil && pr != nil {
			if pr.Authenticator == "" {
				pr.Authenticator = e.a.Name()
			}
			if herr := checkRule(pr, rule); herr != nil {
				e.count(OutcomeForbidden)
				s.logRefusal(r, e.a.Name(), OutcomeForbidden, herr.Description, nil)
				return nil, false, herr
			}
			e.count(OutcomeOK)
			if st := httpapi.StateFrom(ctx); st != nil {
				st.Subject = pr.Subject
				st.Auth = pr.Authenticator
			}
			if s.deps.Logger.Enabled(ctx, slog.LevelDebug) {
				s.deps.Logger.DebugContext(ctx, "auth accepted", "authenticator", e.a.Name(),
					"subject", pr.Subject, "tenant", pr.Tenant, "request_id", httpapi.RequestIDFrom(ctx))
			}
			return pr, false, nil
		}
		if err == nil || errors.Is(err, auth.ErrNoCredential) {
			continue
		}
		var f *auth.Failure
		if !errors.As(err, &f) {
			// Not a verdict on the credential: the authenticator could not
			// decide (marketplace unreachable, body too large). Answer that.
			e.count(OutcomeError)
			he := httpapi.AsError(err)
			s.logRefusal(r, e.a.Name(), OutcomeError, he.Description, err)
			return nil, false, he
		}
		if fail == nil || (fail.Foreign && !f.Foreign) {
			fail, failEntry = f, e
		}
	}
	if fail != nil {
		failEntry.count(OutcomeInvalid)
		s.logRefusal(r, failEntry.a.Name(), OutcomeInvalid, fail.Reason, fail.Err)
		status := fail.Status
		if status == 0 {
			status = failEntry.invalidStatus
		}
		code := fail.Code
		if code == "" {
			code = "invalid_token"
		}
		he := &httpapi.Error{Status: status, Code: code, Description: fail.Reason, Err: fail}
		if status == http.StatusUnauthorized {
			he.Header = http.Header{"Www-Authenticate": []string{withParams(failEntry.challenge,
				`error="`+code+`", error_description="`+quoteSafe(fail.Reason)+`"`)}}
		}
		if status == http.StatusUnauthorized {
			he.Message = "Your credentials are not valid or have expired. Please sign in again."
		}
		return nil, true, he
	}
	// Nobody found a credential.
	var challenges []string
	for _, e := range entries {
		e.count(OutcomeMissing)
		if !slices.Contains(challenges, e.challenge) {
			challenges = append(challenges, e.challenge)
		}
	}
	s.logRefusal(r, strings.Join(namesOf(entries), ","), OutcomeMissing, "no credentials", nil)
	he := httpapi.E(http.StatusUnauthorized, "missing_credentials", "no credentials: this endpoint accepts "+strings.Join(namesOf(entries), ", "))
	he.Header = http.Header{"Www-Authenticate": challenges}
	return nil, false, he
}

// isRemote reports whether e verifies credentials by sending them to
// another service.
func isRemote(e *entry) bool { return e.a.Type() == config.AuthSharetribe }

// localFirst returns entries with the remote ones moved last, keeping the
// order otherwise.
func localFirst(entries []*entry) []*entry {
	out := make([]*entry, 0, len(entries))
	for _, remote := range []bool{false, true} {
		for _, e := range entries {
			if isRemote(e) == remote {
				out = append(out, e)
			}
		}
	}
	return out
}

// owner is implemented by local authenticators that can tell a bearer JWT
// is theirs even when they refuse it. iss is the token's unverified iss
// claim ("" when absent).
type owner interface {
	owns(tok, iss string) bool
}

// ownedLocally reports whether r's bearer credential belongs to backlot:
// a value with the API key prefix, or a JWT one of the configured local
// authenticators (on any route) recognises. Such a credential is never
// passed to a remote authenticator.
func (s *Set) ownedLocally(r *http.Request) bool {
	tok, ok := bearer(r)
	if !ok || tok == "" {
		return false
	}
	if strings.HasPrefix(tok, APIKeyPrefix) {
		return true
	}
	if strings.Count(tok, ".") != 2 {
		return false
	}
	iss := unverifiedIssuer(tok)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.entries {
		if o, ok := e.a.(owner); ok && o.owns(tok, iss) {
			return true
		}
	}
	return false
}

// unverifiedIssuer reads the iss claim of a JWT without verifying it; ""
// when there is none. Keys are matched exactly, as golang-jwt does.
func unverifiedIssuer(tok string) string {
	parts := strings.SplitN(tok, ".", 3)
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal(b, &claims) != nil {
		return ""
	}
	var iss string
	if json.Unmarshal(claims["iss"], &iss) != nil {
		return ""
	}
	return iss
}

func namesOf(entries []*entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.a.Name()
	}
	return out
}

func (s *Set) logRefusal(r *http.Request, authn, outcome, reason string, cause error) {
	attrs := []any{"authenticator", authn, "outcome", outcome, "reason", reason,
		"client_ip", clientIP(r), "request_id", httpapi.RequestIDFrom(r.Context())}
	if cause != nil && outcome == OutcomeError {
		// Causes of undecided requests are our own errors (network,
		// marketplace), not credential material.
		attrs = append(attrs, "error", cause.Error())
	}
	s.deps.Logger.InfoContext(r.Context(), "auth refused", attrs...)
}

func checkRule(p *auth.Principal, rule auth.Rule) *httpapi.Error {
	var missing []string
	for _, sc := range rule.Scopes {
		if !p.HasScope(sc) {
			missing = append(missing, sc)
		}
	}
	if len(missing) > 0 {
		e := httpapi.Errorf(http.StatusForbidden, "insufficient_scope", "missing scope %s", strings.Join(missing, " "))
		e.Header = http.Header{"Www-Authenticate": []string{`Bearer realm="` + realm + `", error="insufficient_scope", scope="` +
			quoteSafe(strings.Join(rule.Scopes, " ")) + `"`}}
		return e
	}
	switch {
	case rule.Tenant == "":
	case rule.Tenant == "*":
		if p.Tenant == "" {
			return httpapi.E(http.StatusForbidden, "wrong_tenant", "a tenant is required")
		}
	case p.Tenant != rule.Tenant:
		return httpapi.E(http.StatusForbidden, "wrong_tenant", "the caller's tenant may not use this endpoint")
	}
	return nil
}

// withParams appends auth-params to a challenge ("Bearer realm=…").
func withParams(challenge, params string) string {
	if strings.Contains(challenge, "=") {
		return challenge + ", " + params
	}
	return challenge + " " + params
}

// quoteSafe makes s safe inside an RFC 7235 quoted-string.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

// bearer returns the token of an `Authorization: Bearer` header; ok is
// false when there is no such header.
func bearer(r *http.Request) (token string, ok bool) {
	h := r.Header.Get("Authorization")
	if strings.EqualFold(h, "bearer") { // "Bearer " with its space trimmed in transit
		return "", true
	}
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

// clientIP is httpapi.ClientIP as the failure limiter's key; "" when
// unknown.
func clientIP(r *http.Request) string {
	if a := httpapi.ClientIP(r); a.IsValid() {
		return a.String()
	}
	return ""
}
