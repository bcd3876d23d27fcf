package config

import (
	"net"
	"strings"
	"time"
)

// Every default of the configuration lives in this file: the XDefault
// values, and withDefaults, which fills them into a Config.

// Defaults (see the field docs in config.go).
const (
	ListenDefault          = ":8080"
	MaxBodyBytesDefault    = 1 << 20
	ReadTimeoutDefault     = 15 * time.Second
	MaxInflightBodyDefault = 32 << 20
	CSPDefault             = "default-src 'none'; frame-ancestors 'none'"
	ReferrerPolicyDefault  = "no-referrer"
	ShutdownTimeoutDefault = 10 * time.Second
	StoreURLDefault        = "sqlite://backlot.db"
	CORSMaxAgeDefault      = 10 * time.Minute
	InvalidStatusDefault   = 401
	HS256TTLDefault        = 15 * time.Minute
	// HS256SecretMinBytes is the shortest hs256 secret accepted: HMAC-SHA256
	// wants a key at least as long as its output.
	HS256SecretMinBytes    = 32
	SessionTTLDefault      = 12 * time.Hour
	ConsolePathDefault     = "/_/"
	AuditRetentionDefault  = 90 * 24 * time.Hour
	SessionCookieDefault   = "backlot_session"
	ToleranceDefault       = 5 * time.Minute
	QueueDefault           = "default"
	ConcurrencyDefault     = 20
	MaxAttemptsDefault     = 10
	BackoffDefault         = "exponential"
	RetryBaseDefault       = time.Second
	RetryMaxDefault        = time.Hour
	KeepCompletedDefault   = time.Hour
	KeepFailedDefault      = 24 * time.Hour
	JobTimeoutDefault      = time.Minute
	LeaseDefault           = 10 * time.Second
	UpstreamTimeoutDefault = 10 * time.Second
	UpstreamRetriesDefault = 2
	ForwardTimeoutDefault  = 10 * time.Second
	MarketplacePollDefault = 10 * time.Second
	MarketplaceJobDefault  = "marketplace.event"
	// MarketplacePollMin is the shortest events.poll accepted.
	MarketplacePollMin     = 100 * time.Millisecond
	SharetribeAPIDefault   = "https://flex-api.sharetribe.com"
	SharetribeIntegDefault = "https://flex-integ-api.sharetribe.com"
	LookupFieldDefault     = "access_token"
	RefreshBeforeDefault   = 5 * time.Minute
	// ForwardJobPrefix starts the default job kind of a webhook with
	// forward set and no job: "/webhooks/vendor" → "webhook.webhooks-vendor".
	ForwardJobPrefix = "webhook."
)

// CORSAllowedMethodsDefault is cors.allowed_methods when unset: GET, POST.
func CORSAllowedMethodsDefault() []string { return []string{"GET", "POST"} }

// CORSAllowedHeadersDefault is cors.allowed_headers when unset.
func CORSAllowedHeadersDefault() []string {
	return []string{"Authorization", "Content-Type", "X-CSRF-Token"}
}

func boolPtr(b bool) *bool { return &b }

// withDefaults fills every documented default, in one place.
func (c *Config) withDefaults() {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = ListenDefault
	}
	if s.PublicURL == "" {
		s.PublicURL = derivePublicURL(s.Listen, s.TLS.Enabled())
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = MaxBodyBytesDefault
	}
	if s.ReadTimeout == 0 {
		s.ReadTimeout = Duration(ReadTimeoutDefault)
	}
	if s.MaxInflightBodyBytes == 0 {
		s.MaxInflightBodyBytes = MaxInflightBodyDefault
	}
	if s.Headers.CSP == "" {
		s.Headers.CSP = CSPDefault
	}
	if s.Headers.HSTS == nil {
		s.Headers.HSTS = boolPtr(true)
	}
	if s.Headers.ReferrerPolicy == "" {
		s.Headers.ReferrerPolicy = ReferrerPolicyDefault
	}
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = Duration(ShutdownTimeoutDefault)
	}
	if c.Store.URL == "" {
		c.Store.URL = StoreURLDefault
	}
	if c.CORS.AllowedMethods == nil {
		c.CORS.AllowedMethods = CORSAllowedMethodsDefault()
	}
	if c.CORS.AllowedHeaders == nil {
		c.CORS.AllowedHeaders = CORSAllowedHeadersDefault()
	}
	if c.CORS.MaxAge == 0 {
		c.CORS.MaxAge = Duration(CORSMaxAgeDefault)
	}
	if c.Console.Path == "" && len(c.Console.Auth)+len(c.Console.Admin) > 0 {
		c.Console.Path = ConsolePathDefault
	}
	if c.Audit.Retention == 0 {
		c.Audit.Retention = Duration(AuditRetentionDefault)
	}

	for name, a := range c.Authenticators {
		if a.InvalidStatus == 0 {
			a.InvalidStatus = InvalidStatusDefault
		}
		switch a.Type {
		case AuthHS256:
			if a.TTL == 0 {
				a.TTL = Duration(HS256TTLDefault)
			}
		case AuthJWKS:
			if len(a.Algorithms) == 0 {
				a.Algorithms = []string{"RS256"}
			}
			setDefault(&a.Claims.Subject, "sub")
			setDefault(&a.Claims.Tenant, "tenant")
			setDefault(&a.Claims.Email, "email")
			setDefault(&a.Claims.Scopes, "scope")
		case AuthStripeApp:
			if a.Tolerance == 0 {
				a.Tolerance = Duration(ToleranceDefault)
			}
		case AuthSession:
			if a.TTL == 0 {
				a.TTL = Duration(SessionTTLDefault)
			}
			setDefault(&a.Cookie.Name, SessionCookieDefault)
			if a.Cookie.Secure == nil {
				a.Cookie.Secure = boolPtr(true)
			}
			setDefault(&a.Cookie.SameSite, "lax")
			setDefault(&a.Cookie.Path, "/")
		}
		c.Authenticators[name] = a
	}

	for name, m := range c.Marketplaces {
		setDefault(&m.Type, "sharetribe")
		setDefault(&m.APIURL, SharetribeAPIDefault)
		setDefault(&m.IntegrationAPIURL, SharetribeIntegDefault)
		if m.Events.Poll == 0 {
			m.Events.Poll = Duration(MarketplacePollDefault)
		}
		setDefault(&m.Environment, "dev")
		if len(m.Events.Types) > 0 {
			setDefault(&m.Events.Job, MarketplaceJobDefault)
			setDefault(&m.Events.Start, "now")
		}
		c.Marketplaces[name] = m
	}
	for name, cn := range c.Connections {
		if cn.PKCE == nil {
			cn.PKCE = boolPtr(true)
		}
		if cn.RefreshBefore == 0 {
			cn.RefreshBefore = Duration(RefreshBeforeDefault)
		}
		if len(cn.ScopeBy) == 0 {
			cn.ScopeBy = []string{"tenant", "subject"}
		}
		c.Connections[name] = cn
	}
	for name, u := range c.Upstreams {
		if u.Timeout == 0 {
			u.Timeout = Duration(UpstreamTimeoutDefault)
		}
		c.Upstreams[name] = u
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Path == "" {
			if rm, err := ParseRouteMatch(r.Match); err == nil {
				r.Path = strings.TrimSuffix(rm.Path, "{$}")
			}
		}
		if l := r.Credential.Lookup; l != nil {
			setDefault(&l.Field, LookupFieldDefault)
		}
	}

	for i := range c.Webhooks {
		w := &c.Webhooks[i]
		if w.Verify.Tolerance == 0 {
			w.Verify.Tolerance = Duration(ToleranceDefault)
		}
		if w.Verify.Scheme == SchemeHMAC {
			setDefault(&w.Verify.Encoding, "hex")
			setDefault(&w.Verify.Algorithm, "sha256")
		}
		if w.Dedupe == "" {
			w.Dedupe = DedupeDefault(w.Verify.Scheme)
		}
		setDefault(&w.Queue, QueueDefault)
		if w.MaxBodyBytes == 0 {
			w.MaxBodyBytes = s.MaxBodyBytes
		}
		if w.Forward != nil {
			if w.Job == "" {
				w.Job = ForwardJobPrefix + pathSlug(w.Path)
			}
			if w.Forward.Timeout == 0 {
				w.Forward.Timeout = Duration(ForwardTimeoutDefault)
			}
		}
	}

	j := &c.Jobs
	if len(j.Queues) == 0 {
		j.Queues = map[string]Queue{QueueDefault: {Concurrency: ConcurrencyDefault}}
	}
	if j.Retry.MaxAttempts == 0 {
		j.Retry.MaxAttempts = MaxAttemptsDefault
	}
	setDefault(&j.Retry.Backoff, BackoffDefault)
	if j.Retry.Base == 0 {
		j.Retry.Base = Duration(RetryBaseDefault)
	}
	if j.Retry.Max == 0 {
		j.Retry.Max = Duration(RetryMaxDefault)
	}
	if j.Retention.Completed == 0 {
		j.Retention.Completed = Duration(KeepCompletedDefault)
	}
	if j.Retention.Failed == 0 {
		j.Retention.Failed = Duration(KeepFailedDefault)
	}
	if j.Timeout == 0 {
		j.Timeout = Duration(JobTimeoutDefault)
	}
	if j.Lease == 0 {
		j.Lease = Duration(LeaseDefault)
	}
	for i := range c.Schedules {
		setDefault(&c.Schedules[i].Payload, "{}")
	}
}

func setDefault(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// pathSlug turns "/webhooks/vendor" into "webhooks-vendor".
func pathSlug(p string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(p) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	if b.Len() == 0 {
		return "root"
	}
	return b.String()
}

// derivePublicURL builds "http://localhost:8080" from ":8080".
func derivePublicURL(listen string, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + "://localhost"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
