// Package authn holds the built-in authenticators (hs256, jwks, stripe_app,
// sharetribe, session, api_key) and the Set that runs a route's
// authenticators in order, decides the answer, limits failures per client and
// serves /auth/whoami. Users see only the public auth package.
package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/backlothq/backlot/auth"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/backlothq/backlot/config"
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
	// CSRFKey keys the session CSRF tokens (derived from the keyring);
	// nil derives them from the session id alone.
	CSRFKey []byte
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
	// whoami is every authenticator in the order whoami tries them:
	// names sorted, remote ones last (localFirst).
	whoami []*entry

	decisions *prometheus.CounterVec
	limiter   *ratelimit.Failures
	// sessions serves /auth/session, /auth/csrf and /auth/logout for the
	// session authenticators.
	sessions sessionRoutes
}

// NewSet builds the configured authenticators. marketplaces are looked up
// by sharetribe authenticators. Session authenticators are built last,
// since they name another authenticator as their login.
func NewSet(cfgs map[string]config.Authenticator, marketplaces map[string]config.Marketplace, deps Deps) (*Set, error) {
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
	s.sessions.set = s
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
			login, _ := s.Get(cfg.Login)
			var sa *sessionAuth
			if sa, err = newSession(name, cfg, login, deps); err == nil {
				s.sessions.sessions = append(s.sessions.sessions, sa)
				a = sa
			}
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
	all := make([]*entry, len(s.names))
	for i, n := range s.names {
		all[i] = s.entries[n]
	}
	s.whoami = localFirst(all) // a new slice: whoami readers keep the old one
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

// Register adds GET /auth/whoami, and the session endpoints when a
// session authenticator is configured.
func (s *Set) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/whoami", s.HandleWhoami)
	if len(s.sessions.sessions) > 0 {
		s.sessions.register(mux)
	}
}
