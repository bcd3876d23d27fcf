// Package proxy serves the `routes` of the configuration: each forwards an
// authenticated front-end call to an upstream API, adding a credential the
// front-end never sees (a static header, basic auth, fields merged into
// the JSON body, a token looked up from the partner's middleware, or the
// caller's OAuth token), and answers upstream errors in backlot's error
// envelope with the upstream's body as original_error.
//
// Every upstream and lookup URL is dialled through internal/netguard: the
// address is checked after DNS resolution (loopback and private networks
// only with allow_private), redirects are never followed and proxy
// environment variables are ignored. Caller paths are joined under the
// upstream's base URL with netguard.JoinPath, which refuses anything that
// could change the host.
//
// Success bodies are streamed with a fixed-size buffer; only routes that
// must change the JSON body (body credentials, strip_fields, lookup
// body_fields) read it, capped at max_body_bytes.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/netguard"
)

// Limits and retry timing.
const (
	// RetryAfterMax is the longest upstream Retry-After the proxy waits
	// out; a longer one is answered at once with 503 and the hint.
	RetryAfterMax = 30 * time.Second
	// BackoffBase is the first retry's delay, doubled per retry (with
	// jitter) up to BackoffMax.
	BackoffBase = 100 * time.Millisecond
	BackoffMax  = 2 * time.Second
	// ErrorBodyMax is how much of an upstream error body is read into
	// original_error; a longer body is carried as a (cut) string.
	ErrorBodyMax = 64 << 10
	// LookupAnswerMax bounds the middleware's answer to a lookup.
	LookupAnswerMax = 64 << 10
	// copyBufferSize is the one buffer a streamed body goes through.
	copyBufferSize = 32 << 10
)

// TokenSource gives a proxy route with a `connection` credential the
// caller's OAuth access token. The connections feature implements it;
// the route calls Refresh once when the upstream answers 401.
type TokenSource interface {
	// Token returns the caller's current access token.
	Token(ctx context.Context, p *auth.Principal) (string, error)
	// Refresh renews the caller's token because the upstream refused
	// stale, and returns the new one (another request may have renewed
	// it already: then no second refresh happens).
	Refresh(ctx context.Context, p *auth.Principal, stale string) (string, error)
}

// Deps are the proxy's collaborators.
type Deps struct {
	// Logger receives retry and failure lines (never a credential).
	// Default: discard.
	Logger *slog.Logger
	// Metrics registers backlot_upstream_request_duration_seconds. Default: none.
	Metrics prometheus.Registerer
	// MaxBodyBytes caps a JSON body the proxy must read. Default
	// config.MaxBodyBytesDefault.
	MaxBodyBytes int64
	// Resolver resolves upstream host names (tests use their own so no DNS
	// packet is sent). Default: the system resolver.
	Resolver netguard.Resolver
	// Connections gives the tokens of `connection` credentials, by
	// connection name.
	Connections map[string]TokenSource
	// SleepFunc waits between retries; it must return early with ctx's
	// error. Default: a timer. Tests record the waits instead.
	SleepFunc func(ctx context.Context, d time.Duration) error
	// JitterFunc spreads a backoff delay. Default: uniform in [d/2, d].
	JitterFunc func(d time.Duration) time.Duration
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = config.MaxBodyBytesDefault
	}
	if d.SleepFunc == nil {
		d.SleepFunc = httpapi.Sleep
	}
	if d.JitterFunc == nil {
		d.JitterFunc = func(d time.Duration) time.Duration {
			if d <= 1 {
				return d
			}
			return d/2 + rand.N(d/2+1)
		}
	}
	return d
}

// Set is the proxy routes of one configuration.
type Set struct {
	deps    Deps
	routes  []*route
	latency *prometheus.HistogramVec
	bufs    sync.Pool
}

// upstream is one entry of `upstreams`, with its own SSRF-guarded client.
type upstream struct {
	name    string
	base    *url.URL
	baseQ   url.Values
	client  *http.Client
	timeout time.Duration
	retries int
}

// New builds the routes. Call it with a validated configuration
// (config.Load or Config.Prepare); it re-checks only what it needs.
func New(upstreams map[string]config.Upstream, routes []config.Route, deps Deps) (*Set, error) {
	deps = deps.withDefaults()
	s := &Set{deps: deps}
	s.bufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	s.latency = registerHistogram(deps.Metrics, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "backlot_upstream_request_duration_seconds",
		Help:    "Time from sending a request to an upstream (or a lookup middleware) until its response headers, by upstream and status class (2xx, 3xx, 4xx, 5xx, error, timeout).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"upstream", "status_class"}))

	ups := map[string]*upstream{}
	for name, u := range upstreams {
		base, err := url.Parse(u.BaseURL)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("upstreams.%s.base_url: want an absolute http(s) URL", name)
		}
		timeout := u.Timeout.D()
		if timeout <= 0 {
			timeout = config.UpstreamTimeoutDefault
		}
		client := netguard.Client(netguard.Options{AllowPrivate: u.AllowPrivate, Resolver: deps.Resolver})
		ups[name] = &upstream{name: name, base: base, baseQ: base.Query(), client: client, timeout: timeout, retries: u.RetryCount()}
	}
	// Lookups share one client per allow_private setting.
	lookupClients := map[bool]*http.Client{}
	for i, rc := range routes {
		rt, err := newRoute(rc, ups, deps, lookupClients)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] (%s): %w", i, rc.Match, err)
		}
		s.routes = append(s.routes, rt)
	}
	return s, nil
}

func registerHistogram(reg prometheus.Registerer, h *prometheus.HistogramVec) *prometheus.HistogramVec {
	if reg == nil {
		return h
	}
	if err := reg.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
				return existing
			}
		}
	}
	return h
}

// Register mounts every route on mux behind its authenticators. It
// returns an error (instead of net/http's panic) when a route's pattern
// conflicts with one already registered.
func (s *Set) Register(mux *http.ServeMux, authSet *authn.Set) (err error) {
	for _, rt := range s.routes {
		if err := authSet.Check(rt.cfg.Auth); err != nil {
			return fmt.Errorf("route %q: %w", rt.cfg.Match, err)
		}
		h := authSet.Require(rt.cfg.Auth, rt.rule)(s.handler(rt))
		if err := handleSafely(mux, rt.cfg.Match, h); err != nil {
			return err
		}
	}
	return nil
}

func handleSafely(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("route %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// Handler returns the handler of the route whose match is pattern,
// without authentication (for tests and benchmarks that put their own
// principal in the context), or nil.
func (s *Set) Handler(pattern string) http.Handler {
	for _, rt := range s.routes {
		if rt.cfg.Match == pattern {
			return s.handler(rt)
		}
	}
	return nil
}

// statusClass labels a latency observation.
func statusClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	default:
		return "2xx"
	}
}

// idempotent reports the methods RFC 9110 defines as idempotent, which
// the proxy may repeat after a request was sent.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// principalAttr reads subject, tenant or email.
func principalAttr(p *auth.Principal, attr string) string {
	if p == nil {
		return ""
	}
	switch attr {
	case "subject":
		return p.Subject
	case "tenant":
		return p.Tenant
	case "email":
		return p.Email
	}
	return ""
}

// safeErr describes a transport error without the request URL (which may
// carry a caller's query) for logs.
func safeErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// validHeaderValue refuses a credential value that would split headers.
func validHeaderValue(v string) bool {
	return v != "" && !strings.ContainsAny(v, "\r\n\x00")
}
