// Package connect is backlot's OAuth 2.0 connections: for each configured
// connection, the endpoints under /connect/<name>/ through which a caller
// connects their account at a third party (login, callback, userinfo,
// status, logout), and the token store behind them.
//
// Tokens are sealed with the keyring, bound to (kind "connection", the
// caller's scope, the connection's name), in the connections table, which
// joins key rotation like every encrypted table. An access token is
// refreshed refresh_before its expiry by one caller at a time across every
// instance: the refresh holds the connection's row lock (PostgreSQL SELECT
// … FOR UPDATE, SQLite's single writer), re-reads the row, calls the token
// endpoint and commits the rotated tokens in the same transaction, on a
// context no request can cancel. Inside one process a singleflight in front
// of the lock keeps waiters off the database.
package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// Timings and limits.
const (
	// StateTTL is how long a login's state stays usable.
	StateTTL = 10 * time.Minute
	// HTTPTimeoutDefault bounds each call to the third party.
	HTTPTimeoutDefault = 10 * time.Second
	// RefreshTimeoutDefault bounds a whole refresh: waiting for the row
	// lock, the token call and the commit.
	RefreshTimeoutDefault = 30 * time.Second
	// RetryBaseDefault and RetryMaxDefault bound the backoff between
	// refresh attempts while a connection is failing.
	RetryBaseDefault = 2 * time.Second
	RetryMaxDefault  = 5 * time.Minute
	// maxProviderBody bounds what is read from a third party's answer.
	maxProviderBody = 1 << 20
)

// Errors of Token. Match with errors.Is.
var (
	// ErrNotConnected: the caller has not connected this account (or
	// logged out).
	ErrNotConnected = errors.New("not connected")
	// ErrExpired: the third party refused the refresh token
	// (invalid_grant); the user must connect again.
	ErrExpired = errors.New("connection expired: the user must connect again")
	// ErrUnavailable: the access token has expired and refreshing it
	// failed (network, 5xx); it is retried with backoff. Wrapped in an
	// *UnavailableError carrying when.
	ErrUnavailable = errors.New("connection temporarily unavailable")
)

// UnavailableError is ErrUnavailable with the earliest next attempt.
type UnavailableError struct {
	RetryAt time.Time
	Err     error // the refresh failure, if this call saw it
}

func (e *UnavailableError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%v (retry after %s): %v", ErrUnavailable, e.RetryAt.Format(time.RFC3339), e.Err)
	}
	return fmt.Sprintf("%v (retry after %s)", ErrUnavailable, e.RetryAt.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Enqueuer adds a job inside a store transaction (the job engine).
type Enqueuer interface {
	EnqueueTx(ctx context.Context, tx store.Tx, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error)
}

// Deps are what a Set needs from the App.
type Deps struct {
	// Store keeps tokens and pending logins. Required.
	Store store.Store
	// Keys seals tokens. Required, with at least one key.
	Keys *secrets.Keyring
	// Auth identifies callers. Required.
	Auth *authn.Set
	// Enqueuer enqueues on_expired and on_recovered jobs. Required when a
	// connection names one.
	Enqueuer Enqueuer
	// PublicURL is backlot's public base URL: the redirect URI is
	// PublicURL + "/connect/<name>/callback". Required.
	PublicURL string
	// Logger, default discard. Tokens are never logged.
	Logger *slog.Logger
	// Metrics registers backlot_connection_refreshes_total. Optional.
	Metrics prometheus.Registerer
	// HTTPClient calls the third parties. Default: a client with
	// HTTPTimeoutDefault that follows no redirects and ignores proxy
	// environment variables.
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// RefreshTimeout, RetryBase, RetryMax: defaults above.
	RefreshTimeout time.Duration
	RetryBase      time.Duration
	RetryMax       time.Duration
}

// Set is every configured connection.
type Set struct {
	deps      Deps
	conns     map[string]*Conn
	refreshes *prometheus.CounterVec
}

// Conn is one connection.
type Conn struct {
	set       *Set
	name      string
	cfg       config.Connection
	oauth     oauth2.Config
	issuer    string
	tokenHTTP *http.Client // HTTPClient whose 200-with-error token answers fail
	flight    singleflight.Group
	stripe    bool // one of cfg.Auth is a stripe_app authenticator
}

// New builds the connections of cfgs.
func New(cfgs map[string]config.Connection, deps Deps) (*Set, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.RefreshTimeout <= 0 {
		deps.RefreshTimeout = RefreshTimeoutDefault
	}
	if deps.RetryBase <= 0 {
		deps.RetryBase = RetryBaseDefault
	}
	if deps.RetryMax <= 0 {
		deps.RetryMax = RetryMaxDefault
	}
	if deps.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		deps.HTTPClient = &http.Client{
			Transport:     tr,
			Timeout:       HTTPTimeoutDefault,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s := &Set{deps: deps, conns: map[string]*Conn{}}
	if len(cfgs) == 0 {
		return s, nil
	}
	if deps.Store == nil || deps.Auth == nil || deps.Keys == nil {
		return nil, errors.New("connect.New: Store, Auth and Keys are required")
	}
	if deps.Keys.Current() == "" {
		return nil, errors.New("connections need keys: tokens are stored encrypted")
	}
	pub, err := url.Parse(deps.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("server.public_url %q: want an absolute URL to build the callback URL", deps.PublicURL)
	}
	s.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backlot_connection_refreshes_total",
		Help: "Token refreshes by connection and outcome (ok, expired, failed).",
	}, []string{"connection", "outcome"})
	if deps.Metrics != nil {
		if err := deps.Metrics.Register(s.refreshes); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register connection metrics: %w", err)
			}
			s.refreshes = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	for name, cfg := range cfgs {
		c, err := s.newConn(name, cfg)
		if err != nil {
			return nil, fmt.Errorf("connections.%s: %w", name, err)
		}
		s.conns[name] = c
	}
	return s, nil
}

func (s *Set) newConn(name string, cfg config.Connection) (*Conn, error) {
	if err := s.deps.Auth.Check(cfg.Auth); err != nil {
		return nil, err
	}
	if (cfg.OnExpired != "" || cfg.OnRecovered != "") && s.deps.Enqueuer == nil {
		return nil, errors.New("on_expired and on_recovered need a job engine")
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = config.Duration(config.RefreshBeforeDefault)
	}
	if len(cfg.ScopeBy) == 0 {
		cfg.ScopeBy = []string{"tenant", "subject"}
	}
	issuer := cfg.Issuer
	if issuer == "" {
		u, err := url.Parse(cfg.AuthorizeURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("authorize_url %q: want an absolute URL", cfg.AuthorizeURL)
		}
		issuer = u.Scheme + "://" + u.Host
	}
	c := &Conn{
		set:    s,
		name:   name,
		cfg:    cfg,
		issuer: issuer,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:  cfg.AuthorizeURL,
				TokenURL: cfg.TokenURL,
				// Explicit: auto-detection resends a refused exchange the
				// other way, which a strict server takes for a code replay.
				AuthStyle: oauth2.AuthStyleInHeader,
			},
			RedirectURL: trimSlash(s.deps.PublicURL) + "/connect/" + url.PathEscape(name) + "/callback",
			Scopes:      slices.Clone(cfg.Scopes),
		},
		tokenHTTP: &http.Client{
			Transport:     errorFieldTransport{base: transportOf(s.deps.HTTPClient)},
			Timeout:       s.deps.HTTPClient.Timeout,
			CheckRedirect: s.deps.HTTPClient.CheckRedirect,
		},
	}
	for _, n := range cfg.Auth {
		if a, ok := s.deps.Auth.Get(n); ok && a.Type() == config.AuthStripeApp {
			c.stripe = true
		}
	}
	return c, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

// Get returns the connection named name, or nil.
func (s *Set) Get(name string) *Conn {
	if s == nil {
		return nil
	}
	return s.conns[name]
}

// Names lists the connections.
func (s *Set) Names() []string {
	var out []string
	for n := range s.conns {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Name is the connection's name.
func (c *Conn) Name() string { return c.name }

// scope is the encoded owner of p's connection row, per scope_by.
func (c *Conn) scope(p *auth.Principal) (string, error) {
	if p == nil {
		return "", errors.New("no principal")
	}
	var sc secrets.Scope
	for _, by := range c.cfg.ScopeBy {
		switch by {
		case "tenant":
			if p.Tenant == "" {
				return "", fmt.Errorf("connection %q is scoped by tenant and the caller has none", c.name)
			}
			sc.Tenant = p.Tenant
		case "subject":
			if p.Subject == "" {
				return "", fmt.Errorf("connection %q is scoped by subject and the caller has none", c.name)
			}
			sc.Subject = p.Subject
		}
	}
	return sc.String(), nil
}
