// Package config holds backlot's configuration: the Go types of the whole
// YAML schema, loading with ${VAR} expansion, a .env file
// and BACKLOT_<PATH> overrides, and validation that names the key and line
// of every mistake.
//
// The YAML keys are the `yaml` tags below. Field docs end with the default.
package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/backlothq/backlot/internal/yamlschema"
)

// Config is the whole configuration tree.
type Config struct {
	Server         Server                   `yaml:"server"`
	Store          Store                    `yaml:"store"`
	Keys           []Key                    `yaml:"keys"`
	CORS           CORS                     `yaml:"cors"`
	Authenticators map[string]Authenticator `yaml:"authenticators"`
	Marketplaces   map[string]Marketplace   `yaml:"marketplaces"`
	Connections    map[string]Connection    `yaml:"connections"`
	Upstreams      map[string]Upstream      `yaml:"upstreams"`
	Routes         []Route                  `yaml:"routes"`
	Webhooks       []Webhook                `yaml:"webhooks"`
	Jobs           Jobs                     `yaml:"jobs"`
	Schedules      []Schedule               `yaml:"schedules"`
	Console        Console                  `yaml:"console"`
	Audit          Audit                    `yaml:"audit"`

	// File is the path the configuration was read from ("" when built in code).
	File string `yaml:"-"`

	// origins maps key paths to where they were set (filled by Load), so
	// Validate can name the line.
	origins map[string]yamlschema.Origin
}

// Server configures the HTTP listener.
type Server struct {
	// Listen is the address to listen on. Default ":8080".
	Listen string `yaml:"listen"`
	// PublicURL is used to build callback and redirect URLs. Default "http://localhost:<port>".
	PublicURL string `yaml:"public_url"`
	// TLS serves HTTPS when both files are set.
	TLS TLS `yaml:"tls"`
	// HTTPOverride allows plain HTTP on a non-loopback address (TLS ends at a load balancer). Default false.
	HTTPOverride bool `yaml:"http_override"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxBodyBytes limits request bodies. Default 1048576 (1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadTimeout bounds the time to receive a request's headers and body
	// together; slower requests are cut off. Default 15s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// MaxInflightBodyBytes bounds the request body bytes all requests in
	// flight may hold together; beyond it requests get 503 with
	// Retry-After. Default 33554432 (32 MiB); must be at least every body
	// limit (server and webhooks).
	MaxInflightBodyBytes int64 `yaml:"max_inflight_body_bytes"`
	// MetricsListen, when set (e.g. "127.0.0.1:9090"), serves /metrics on
	// its own listener, and Listen answers 404 at /metrics. Default "".
	MetricsListen string `yaml:"metrics_listen"`
	// Headers sets security headers.
	Headers Headers `yaml:"headers"`
	// ShutdownTimeout bounds graceful shutdown. Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// TLS names a certificate and key file.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether both files are set.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// Headers configures security headers sent on every response.
type Headers struct {
	// CSP is the Content-Security-Policy. Default "default-src 'none'; frame-ancestors 'none'".
	CSP string `yaml:"csp"`
	// HSTS sends Strict-Transport-Security when serving TLS. Default true.
	HSTS *bool `yaml:"hsts"`
	// ReferrerPolicy. Default "no-referrer".
	ReferrerPolicy string `yaml:"referrer_policy"`
}

// Store picks the database.
type Store struct {
	// URL is sqlite://path (relative to the working directory) or postgres://…. Default "sqlite://backlot.db".
	URL string `yaml:"url"`
}

// Key is one keyring entry; the first encrypts.
type Key struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"` // 32 random bytes, base64 (standard or URL alphabet)
}

// CORS is the cross-origin allowlist.
type CORS struct {
	// AllowedOrigins are exact origins or "https://*.example.com" wildcards. Default none (no CORS headers).
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedMethods. Default [GET, POST].
	AllowedMethods []string `yaml:"allowed_methods"`
	// AllowedHeaders. Default [Authorization, Content-Type, X-CSRF-Token].
	AllowedHeaders []string `yaml:"allowed_headers"`
	// AllowCredentials. Default false.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge of a preflight answer. Default 10m.
	MaxAge Duration `yaml:"max_age"`
}

// Authenticator types.
const (
	AuthHS256      = "hs256"
	AuthJWKS       = "jwks"
	AuthStripeApp  = "stripe_app"
	AuthSharetribe = "sharetribe"
	AuthSession    = "session"
	AuthAPIKey     = "api_key"
)

// Authenticator configures one named authenticator. Type selects which
// fields apply; the others must be empty.
type Authenticator struct {
	Type string `yaml:"type"`
	// InvalidStatus is the status for an invalid credential: 401 or 403. Default 401.
	InvalidStatus int `yaml:"invalid_status"`

	// hs256
	Secret   string   `yaml:"secret"`
	Issuer   string   `yaml:"issuer"`   // hs256, jwks
	Audience string   `yaml:"audience"` // hs256, jwks
	TTL      Duration `yaml:"ttl"`      // hs256 (minted tokens, default 15m), session (default 12h)

	// jwks
	JWKSURL    string    `yaml:"jwks_url"`
	Algorithms []string  `yaml:"algorithms"` // default [RS256]
	Claims     ClaimsMap `yaml:"claims"`

	// stripe_app
	Secrets   []string `yaml:"secrets"`
	Tolerance Duration `yaml:"tolerance"` // default 5m

	// sharetribe
	Marketplace string `yaml:"marketplace"`

	// session
	Login  string        `yaml:"login"`
	Cookie SessionCookie `yaml:"cookie"`

	// api_key
	APIKeys []APIKey `yaml:"keys"`
}

// ClaimsMap names the JWT claims that fill a Principal.
type ClaimsMap struct {
	Subject string `yaml:"subject"` // default "sub"
	Tenant  string `yaml:"tenant"`  // default "tenant"
	Email   string `yaml:"email"`   // default "email"
	Scopes  string `yaml:"scopes"`  // default "scope"
}

// SessionCookie configures the session cookie.
type SessionCookie struct {
	Name     string `yaml:"name"`      // default "backlot_session"
	Secure   *bool  `yaml:"secure"`    // default true
	SameSite string `yaml:"same_site"` // lax|strict|none, default lax
	Domain   string `yaml:"domain"`
	Path     string `yaml:"path"` // default "/"
}

// APIKey is one accepted key, stored as the hex SHA-256 of the key.
type APIKey struct {
	ID     string `yaml:"id"`
	SHA256 string `yaml:"sha256"`
}

// Marketplace configures a Sharetribe marketplace.
type Marketplace struct {
	Type              string            `yaml:"type"` // sharetribe
	ClientID          string            `yaml:"client_id"`
	ClientSecret      string            `yaml:"client_secret"`
	Integration       MarketplaceClient `yaml:"integration"`
	APIURL            string            `yaml:"api_url"`             // default https://flex-api.sharetribe.com
	IntegrationAPIURL string            `yaml:"integration_api_url"` // default https://flex-integ-api.sharetribe.com
	// Environment is dev, test or live: it picks Sharetribe's rate limits
	// and event retention. Default dev.
	Environment string            `yaml:"environment"`
	Events      MarketplaceEvents `yaml:"events"`
}

// MarketplaceClient is a client id and secret.
type MarketplaceClient struct {
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
}

// MarketplaceEvents configures event polling.
type MarketplaceEvents struct {
	Poll  Duration `yaml:"poll"`  // default 10s
	Types []string `yaml:"types"` // polling needs integration credentials
	Job   string   `yaml:"job"`   // default "marketplace.event" when types are set
	// Start is where the first poll begins: "now" (default) or
	// "beginning" (the oldest event the marketplace still keeps).
	Start string `yaml:"start"`
}

// Connection configures an OAuth 2.0 third party users connect to.
type Connection struct {
	AuthorizeURL string   `yaml:"authorize_url"`
	TokenURL     string   `yaml:"token_url"`
	RevokeURL    string   `yaml:"revoke_url"`
	UserinfoURL  string   `yaml:"userinfo_url"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"`
	PKCE         *bool    `yaml:"pkce"` // default true
	Auth         []string `yaml:"auth"`
	ScopeBy      []string `yaml:"scope_by"` // tenant, subject; default [tenant, subject]
	ReturnTo     string   `yaml:"return_to"`
	// Issuer is compared with the `iss` of an authorization response (RFC
	// 9207) when the server sends one. Default: the origin of authorize_url.
	Issuer string `yaml:"issuer"`
	// RefreshBefore is how long before its expiry an access token is
	// refreshed. Default 5m.
	RefreshBefore Duration `yaml:"refresh_before"`
	// OnExpired is the job kind enqueued once when the user must reconnect
	// (the refresh token was refused). Default: none.
	OnExpired string `yaml:"on_expired"`
	// OnRecovered is the job kind enqueued when a refresh succeeds after
	// failures. Default: none.
	OnRecovered string `yaml:"on_recovered"`
	// RequireVerifiedEmail makes GET userinfo refuse a third-party user
	// whose userinfo does not say email_verified: true. Default false.
	RequireVerifiedEmail bool `yaml:"require_verified_email"`
}

// Upstream is a third-party API proxied to (SPEC 5.9).
type Upstream struct {
	// BaseURL is the http(s) URL callers' paths are joined under; a route
	// can never change its scheme or host. Required.
	BaseURL string `yaml:"base_url"`
	// Timeout bounds one attempt: connecting, sending, and reading the
	// whole answer. Default 10s.
	Timeout Duration `yaml:"timeout"`
	// Retries is how many times an attempt is repeated (with backoff) when
	// that is safe: idempotent methods on 429/502/503/504, any method
	// when the connection failed before the request was written. nil
	// means the default, 2; 0 turns retries off.
	Retries *int `yaml:"retries"`
	// AllowPrivate lets the upstream be dialled at loopback and private
	// addresses (simulators, internal services). Default false.
	AllowPrivate bool `yaml:"allow_private"`
}

// RetryCount is Retries with its default applied.
func (u Upstream) RetryCount() int {
	if u.Retries == nil {
		return UpstreamRetriesDefault
	}
	return *u.Retries
}

// Route is a proxy route.
type Route struct {
	// Match is a net/http pattern with a method: "POST /api/account",
	// "GET /api/checkout/{id}". Required.
	Match string `yaml:"match"`
	// Auth names the authenticators a caller may use. Required: a proxy
	// route adds a server-held credential, so it is never public.
	Auth   []string `yaml:"auth"`
	Scopes []string `yaml:"scopes"`
	Tenant string   `yaml:"tenant"`
	// Upstream names an entry of upstreams. Required.
	Upstream string `yaml:"upstream"`
	// Path is the upstream path template, joined under the upstream's
	// base_url; {name} is replaced by the match's wildcard of that name.
	// Default: the match's own path.
	Path string `yaml:"path"`
	// StripFields are top-level fields removed from the caller's JSON body
	// before it goes upstream (fields only the lookup needs). Default none.
	StripFields []string   `yaml:"strip_fields"`
	Credential  Credential `yaml:"credential"`
}

// Credential says how a proxy route authenticates upstream; exactly one
// kind is set.
type Credential struct {
	// Connection is the caller's OAuth token from connections.<name>.
	Connection string `yaml:"connection"`
	// Header sets static server-held headers (name: value).
	Header map[string]string `yaml:"header"`
	// Basic is HTTP basic authentication.
	Basic *BasicCredential `yaml:"basic"`
	// Body merges fields into the top level of the JSON body; a caller
	// cannot set (or shadow by case) these fields.
	Body map[string]string `yaml:"body"`
	// Lookup asks the partner middleware for a token per request.
	Lookup *LookupCredential `yaml:"lookup"`
}

// BasicCredential is HTTP basic auth.
type BasicCredential struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// LookupCredential fetches a token from partner middleware for each
// request (never cached): POST url with the secret as the whole
// Authorization value and a JSON object built from the caller, then send
// the token upstream as "Authorization: Bearer <token>".
type LookupCredential struct {
	// URL is dialled under the same SSRF rule as an upstream. Required.
	URL string `yaml:"url"`
	// Secret is sent as the Authorization header value. Required.
	Secret string `yaml:"secret"`
	// AllowPrivate lets URL be on loopback or a private network. Default false.
	AllowPrivate bool `yaml:"allow_private"`
	// Field is the JSON field of the middleware's answer holding the
	// token; dots descend into objects ("data.token"). Default "access_token".
	Field string `yaml:"field"`
	// BodyFields are top-level fields of the caller's JSON body copied into
	// the lookup request when present ("account_id", "email"). Default none.
	BodyFields []string `yaml:"body_fields"`
	// PrincipalFields add the caller's identity to the lookup request:
	// lookup field name → subject, tenant or email. Default none.
	PrincipalFields map[string]string `yaml:"principal_fields"`
}

// Webhook signature schemes.
const (
	SchemeStandard = "standard"
	SchemeStripe   = "stripe"
	SchemeGitHub   = "github"
	SchemeShopify  = "shopify"
	SchemeHMAC     = "hmac"
	SchemeNone     = "none"
)

// Webhook is one ingest endpoint.
type Webhook struct {
	Path     string   `yaml:"path"`
	Verify   Verify   `yaml:"verify"`
	AllowIPs []string `yaml:"allow_ips"`
	// Dedupe is "header:<name>", "json:<path>", "body" (hex SHA-256 of the raw body) or "none". Default depends on the scheme
	// (standard: header:webhook-id, github: header:X-GitHub-Delivery, shopify: header:X-Shopify-Webhook-Id, stripe: json:id; hmac and none: none).
	Dedupe string `yaml:"dedupe"`
	// Job is the job kind enqueued per delivery; required unless Forward is
	// set, then default "webhook.<path slug>" ("/webhooks/vendor" → "webhook.webhooks-vendor").
	Job string `yaml:"job"`
	// Queue must be one of jobs.queues. Default "default".
	Queue        string   `yaml:"queue"`
	MaxBodyBytes int64    `yaml:"max_body_bytes"` // default server.max_body_bytes; may be larger or smaller
	Forward      *Forward `yaml:"forward"`
}

// Verify configures a webhook signature check.
type Verify struct {
	Scheme    string   `yaml:"scheme"`
	Secrets   []string `yaml:"secrets"`
	Tolerance Duration `yaml:"tolerance"` // default 5m
	// hmac scheme only:
	Header    string `yaml:"header"`
	Encoding  string `yaml:"encoding"`  // hex|base64, default hex
	Algorithm string `yaml:"algorithm"` // sha256|sha512, default sha256
	Prefix    string `yaml:"prefix"`    // stripped from the header value, e.g. "sha256="
}

// Forward makes the job for a webhook POST its payload to a URL.
type Forward struct {
	URL     string   `yaml:"url"`
	Secret  string   `yaml:"secret"`  // whsec_…
	Timeout Duration `yaml:"timeout"` // default 10s
}

// Jobs configures the job engine.
type Jobs struct {
	Queues    map[string]Queue `yaml:"queues"` // default {default: {concurrency: 20}}; a "default" queue is required
	Retry     Retry            `yaml:"retry"`
	Retention Retention        `yaml:"retention"`
	Timeout   Duration         `yaml:"timeout"` // default 1m
	// Kinds sets per-kind options.
	Kinds map[string]JobKind `yaml:"kinds"`
	// Lease is how long a fetched job is held before another worker may take it. Default 10s.
	Lease Duration `yaml:"lease"`
}

// Queue configures one queue.
type Queue struct {
	Concurrency int `yaml:"concurrency"`
}

// Retry configures backoff.
type Retry struct {
	MaxAttempts int      `yaml:"max_attempts"` // default 10
	Backoff     string   `yaml:"backoff"`      // exponential (the only one), default exponential
	Base        Duration `yaml:"base"`         // default 1s
	Max         Duration `yaml:"max"`          // default 1h
}

// Retention says how long finished jobs are kept.
type Retention struct {
	Completed Duration `yaml:"completed"` // default 1h
	Failed    Duration `yaml:"failed"`    // default 24h
}

// JobKind holds per-kind overrides.
type JobKind struct {
	Timeout     Duration `yaml:"timeout"`
	MaxAttempts int      `yaml:"max_attempts"`
	Queue       string   `yaml:"queue"`
}

// Schedule fires a job on a cron expression.
type Schedule struct {
	Name    string `yaml:"name"`
	Cron    string `yaml:"cron"`
	Job     string `yaml:"job"`
	Payload string `yaml:"payload"` // JSON, default "{}"
}

// Console configures the admin UI. It is served when Auth names at least
// one authenticator.
type Console struct {
	// Path is where the console is mounted; it starts and ends with "/".
	// Default "/_/".
	Path string `yaml:"path"`
	// Auth names the authenticators whose callers may look.
	Auth []string `yaml:"auth"`
	// Admin names the authenticators whose callers may also act (retry,
	// cancel); they may look too. Default none: a read-only console.
	Admin []string `yaml:"admin"`
}

// Audit configures the audit log.
type Audit struct {
	// Retention is how long entries are kept. Default 2160h (90 days).
	Retention Duration `yaml:"retention"`
}

// Duration is a time.Duration read from a Go duration string ("30s", "1h").
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want a Go duration such as 30s or 1h)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats like time.Duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
