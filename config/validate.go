package config

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/backlothq/backlot/internal/yamlschema"
	"github.com/robfig/cron/v3"
)

// Prepare fills defaults and validates, for a Config built in code; Load
// already does both. Like Load, it refuses the keys this version does not
// implement yet (Validate alone does not).
func (c *Config) Prepare() error {
	return c.finish(nil, nil, notYetAvailable())
}

// validator collects issues, placing each at the line its key came from.
type validator struct {
	c      *Config
	issues []Issue
}

func (v *validator) add(path, format string, args ...any) {
	is := Issue{File: v.c.File, Path: path, Msg: fmt.Sprintf(format, args...)}
	for p := path; p != ""; p = parentPath(p) {
		if o, ok := v.c.origins[p]; ok {
			if o.Env != "" {
				is.File = "$" + o.Env
			} else {
				is.Line = o.Line
			}
			break
		}
	}
	v.issues = append(v.issues, is)
}

// parentPath strips the last ".key" or "[i]" from a key path.
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Validate reports unreachable or unsafe combinations, naming the key (and,
// for a loaded file, the line). It returns nil or an *Error. Fields left
// zero where a default exists are accepted; Load fills defaults first.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.server()
	v.store()
	v.keys()
	v.cors()
	v.authenticators()
	v.marketplaces()
	v.connections()
	v.upstreams()
	v.routes()
	v.webhooks()
	v.jobs()
	v.schedules()
	v.console()
	v.audit()
	if len(v.issues) == 0 {
		return nil
	}
	sortIssues(v.issues)
	return &Error{Issues: v.issues}
}

func (v *validator) nonNegative(path string, d Duration) {
	if d < 0 {
		v.add(path, "must not be negative")
	}
}

// absURL checks s is an absolute http or https URL.
func (v *validator) absURL(path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(path, "want an absolute http(s) URL, got %q", clip(s))
	}
}

// names checks that every name in list is a configured authenticator.
func (v *validator) authNames(path string, list []string) {
	for i, n := range list {
		if _, ok := v.c.Authenticators[n]; !ok {
			v.add(fmt.Sprintf("%s[%d]", path, i), "no authenticator named %q%s", n, v.known(mapKeys(v.c.Authenticators)))
		}
	}
}

func (v *validator) known(keys []string) string {
	if len(keys) == 0 {
		return " (none are configured)"
	}
	return " (have " + strings.Join(keys, ", ") + ")"
}

func mapKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

func (v *validator) server() {
	s := v.c.Server
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil {
		v.add("server.listen", "want host:port such as \":8080\" or \"127.0.0.1:8080\", got %q", clip(s.Listen))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add("server.listen", "invalid port %q", clip(port))
	} else if !s.TLS.Enabled() && !s.HTTPOverride && !isLoopbackHost(host) {
		v.add("server.listen", "plain HTTP on non-loopback address %q: set server.tls, or server.http_override: true when TLS ends at a load balancer", s.Listen)
	}
	if s.PublicURL != "" {
		v.absURL("server.public_url", s.PublicURL)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		v.add("server.tls", "cert_file and key_file must be set together")
	}
	for i, p := range s.TrustedProxies {
		if !isCIDROrAddr(p) {
			v.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "want a CIDR or an IP address, got %q", clip(p))
		}
	}
	if s.MaxBodyBytes < 0 {
		v.add("server.max_body_bytes", "must not be negative")
	}
	v.nonNegative("server.read_timeout", s.ReadTimeout)
	v.inflightBudget()
	if s.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(s.MetricsListen); err != nil {
			v.add("server.metrics_listen", "want host:port such as \"127.0.0.1:9090\", got %q", clip(s.MetricsListen))
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			v.add("server.metrics_listen", "invalid port %q", clip(port))
		} else if s.MetricsListen == s.Listen {
			v.add("server.metrics_listen", "must differ from server.listen")
		}
	}
	v.nonNegative("server.shutdown_timeout", s.ShutdownTimeout)
}

// inflightBudget checks server.max_inflight_body_bytes can hold the
// largest body any endpoint accepts: a smaller budget would refuse such a
// body every time. 0 (not filled yet) is left to the defaults.
func (v *validator) inflightBudget() {
	s := v.c.Server
	budget := s.MaxInflightBodyBytes
	if budget < 0 {
		v.add("server.max_inflight_body_bytes", "must not be negative")
		return
	}
	if budget == 0 {
		return
	}
	if s.MaxBodyBytes > budget {
		v.add("server.max_inflight_body_bytes", "%d is below server.max_body_bytes (%d): a body that large could never be accepted", budget, s.MaxBodyBytes)
	}
	for i, w := range v.c.Webhooks {
		if w.MaxBodyBytes > budget {
			v.add("server.max_inflight_body_bytes", "%d is below webhooks[%d].max_body_bytes (%d): a body that large could never be accepted", budget, i, w.MaxBodyBytes)
		}
	}
}

func isCIDROrAddr(s string) bool {
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

func (v *validator) store() {
	u := v.c.Store.URL
	switch {
	case u == "":
	case strings.HasPrefix(u, "sqlite://"):
		if strings.TrimPrefix(u, "sqlite://") == "" {
			v.add("store.url", "sqlite:// needs a file path, e.g. sqlite://backlot.db")
		}
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		if _, err := url.Parse(u); err != nil {
			v.add("store.url", "invalid postgres URL") // the URL may hold a password: not echoed
		}
	default:
		v.add("store.url", "want sqlite://<path> or postgres://…")
	}
}

func (v *validator) keys() {
	seen := map[string]int{}
	for i, k := range v.c.Keys {
		p := fmt.Sprintf("keys[%d]", i)
		if k.ID == "" {
			v.add(p+".id", "is required")
		} else if j, dup := seen[k.ID]; dup {
			v.add(p+".id", "duplicate key id %q (also keys[%d])", k.ID, j)
		} else {
			seen[k.ID] = i
		}
		if n, ok := decodeBase64(k.Secret); !ok || n != 32 {
			v.add(p+".secret", "want base64 of exactly 32 random bytes (e.g. from `backlot keys new`)")
		}
	}
	if len(v.c.Keys) == 0 && len(v.c.Connections) > 0 {
		v.add("connections", "need at least one entry in keys: connection tokens are stored encrypted")
	}
}

// decodeBase64 returns the decoded length of standard or URL base64, padded or not.
func decodeBase64(s string) (int, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return len(b), true
		}
	}
	return 0, false
}

func (v *validator) cors() {
	c := v.c.CORS
	for i, o := range c.AllowedOrigins {
		p := fmt.Sprintf("cors.allowed_origins[%d]", i)
		if o == "*" {
			// Exact origins and *. subdomain wildcards only: "*" with
			// credentials would hand every site the caller's session.
			v.add(p, `"*" is not allowed: list the origins (wildcards only as https://*.example.com)`)
			continue
		}
		if msg := checkOrigin(o); msg != "" {
			v.add(p, "%s", msg)
		}
	}
	for i, m := range c.AllowedMethods {
		if !isToken(m) || strings.ToUpper(m) != m {
			v.add(fmt.Sprintf("cors.allowed_methods[%d]", i), "want an upper-case HTTP method, got %q", clip(m))
		}
	}
	for i, h := range c.AllowedHeaders {
		if !isToken(h) {
			v.add(fmt.Sprintf("cors.allowed_headers[%d]", i), "want a header name, got %q", clip(h))
		}
	}
	v.nonNegative("cors.max_age", c.MaxAge)
}

// checkOrigin accepts "scheme://host[:port]" and "scheme://*.domain[:port]".
func checkOrigin(o string) string {
	bad := fmt.Sprintf("want an origin such as https://app.example.com or https://*.example.com, got %q", clip(o))
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") || rest == "" || strings.ContainsAny(rest, "/?#@ ") {
		return bad
	}
	host := rest
	if h, port, err := net.SplitHostPort(rest); err == nil {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return bad
		}
		host = h
	}
	if d, wild := strings.CutPrefix(host, "*."); wild {
		if !strings.Contains(d, ".") {
			return "wildcard origins need a domain with at least two labels, e.g. https://*.example.com"
		}
		host = d
	}
	if host == "" || strings.Contains(host, "*") {
		return bad
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ""
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || !isHostLabel(label) {
			return bad
		}
	}
	return ""
}

func isHostLabel(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// isToken reports whether s is an HTTP token (method or header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 126 || r <= 32 || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}

// authFields lists the keys each authenticator type uses besides type and
// invalid_status.
func authFields(typ string) []string {
	switch typ {
	case AuthHS256:
		return []string{"secret", "issuer", "audience", "ttl"}
	case AuthJWKS:
		return []string{"jwks_url", "issuer", "audience", "algorithms", "claims"}
	case AuthStripeApp:
		return []string{"secrets", "tolerance"}
	case AuthSharetribe:
		return []string{"marketplace"}
	case AuthSession:
		return []string{"login", "cookie", "ttl"}
	case AuthAPIKey:
		return []string{"keys"}
	}
	return nil
}

func isJWKSAlgorithm(a string) bool {
	switch a {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

func (v *validator) authenticators() {
	for _, name := range mapKeys(v.c.Authenticators) {
		a := v.c.Authenticators[name]
		p := "authenticators." + name
		if name == "" {
			v.add("authenticators", "an authenticator name must not be empty")
		}
		allowed := authFields(a.Type)
		if allowed == nil {
			if a.Type == "" {
				v.add(p+".type", "is required (hs256, jwks, stripe_app, sharetribe, session or api_key)")
			} else {
				v.add(p+".type", "unknown type %q (want hs256, jwks, stripe_app, sharetribe, session or api_key)", clip(a.Type))
			}
			continue
		}
		// Keys of another type are an unreachable combination, not noise.
		rv := reflect.ValueOf(a)
		for _, f := range yamlschema.Fields(rv.Type()) {
			if f.Key == "type" || f.Key == "invalid_status" || slices.Contains(allowed, f.Key) {
				continue
			}
			if !rv.Field(f.Index).IsZero() {
				v.add(p+"."+f.Key, "does not apply to type %s", a.Type)
			}
		}
		switch a.InvalidStatus {
		case 0, 401, 403:
		default:
			v.add(p+".invalid_status", "want 401 or 403, got %d", a.InvalidStatus)
		}
		switch a.Type {
		case AuthHS256:
			if a.Secret == "" {
				v.add(p+".secret", "is required")
			} else if len(a.Secret) < HS256SecretMinBytes {
				v.add(p+".secret", "must be at least %d bytes (got %d)", HS256SecretMinBytes, len(a.Secret))
			}
			v.nonNegative(p+".ttl", a.TTL)
		case AuthJWKS:
			if a.JWKSURL == "" {
				v.add(p+".jwks_url", "is required")
			} else {
				v.absURL(p+".jwks_url", a.JWKSURL)
			}
			for i, alg := range a.Algorithms {
				ap := fmt.Sprintf("%s.algorithms[%d]", p, i)
				switch {
				case strings.EqualFold(alg, "none"):
					v.add(ap, `"none" is never accepted`)
				case strings.HasPrefix(strings.ToUpper(alg), "HS"):
					v.add(ap, "%s is a shared-secret algorithm: use an authenticator of type hs256", alg)
				case !isJWKSAlgorithm(alg):
					v.add(ap, "unknown algorithm %q (want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", clip(alg))
				}
			}
		case AuthStripeApp:
			if len(a.Secrets) == 0 {
				v.add(p+".secrets", "at least one secret is required")
			}
			for i, s := range a.Secrets {
				if s == "" {
					v.add(fmt.Sprintf("%s.secrets[%d]", p, i), "must not be empty")
				}
			}
			v.nonNegative(p+".tolerance", a.Tolerance)
		case AuthSharetribe:
			if a.Marketplace == "" {
				v.add(p+".marketplace", "is required")
			} else if _, ok := v.c.Marketplaces[a.Marketplace]; !ok {
				v.add(p+".marketplace", "no marketplace named %q%s", a.Marketplace, v.known(mapKeys(v.c.Marketplaces)))
			}
		case AuthSession:
			switch l, ok := v.c.Authenticators[a.Login]; {
			case a.Login == "":
				v.add(p+".login", "is required: the authenticator whose credential opens a session")
			case !ok:
				v.add(p+".login", "no authenticator named %q%s", a.Login, v.known(mapKeys(v.c.Authenticators)))
			case l.Type == AuthSession:
				v.add(p+".login", "%q is itself a session authenticator", a.Login)
			}
			v.nonNegative(p+".ttl", a.TTL)
			ck := a.Cookie
			if ck.Name != "" && !isToken(ck.Name) {
				v.add(p+".cookie.name", "invalid cookie name %q", clip(ck.Name))
			}
			switch ck.SameSite {
			case "", "lax", "strict":
			case "none":
				if ck.Secure != nil && !*ck.Secure {
					v.add(p+".cookie.same_site", "none requires secure: true (browsers drop the cookie otherwise)")
				}
			default:
				v.add(p+".cookie.same_site", "want lax, strict or none, got %q", clip(ck.SameSite))
			}
			if ck.Path != "" && !strings.HasPrefix(ck.Path, "/") {
				v.add(p+".cookie.path", "must start with /")
			}
		case AuthAPIKey:
			if len(a.APIKeys) == 0 {
				v.add(p+".keys", "at least one key is required")
			}
			seen := map[string]bool{}
			for i, k := range a.APIKeys {
				kp := fmt.Sprintf("%s.keys[%d]", p, i)
				if k.ID == "" {
					v.add(kp+".id", "is required")
				} else if seen[k.ID] {
					v.add(kp+".id", "duplicate id %q", k.ID)
				}
				seen[k.ID] = true
				if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
					v.add(kp+".sha256", "want the hex SHA-256 of the key (64 hex digits)")
				}
			}
		}
	}
}

// eventType is a Sharetribe event type: resource/change.
var eventType = regexp.MustCompile(`^[a-z][a-z_-]*/[a-z][a-z_-]*$`)

func (v *validator) marketplaces() {
	for _, name := range mapKeys(v.c.Marketplaces) {
		m := v.c.Marketplaces[name]
		p := "marketplaces." + name
		if m.Type != "" && m.Type != "sharetribe" {
			v.add(p+".type", "unknown type %q (want sharetribe)", clip(m.Type))
		}
		if m.ClientID == "" {
			v.add(p+".client_id", "is required")
		}
		if (m.Integration.ClientID == "") != (m.Integration.ClientSecret == "") {
			v.add(p+".integration", "client_id and client_secret must be set together")
		}
		if m.APIURL != "" {
			v.absURL(p+".api_url", m.APIURL)
		}
		if m.IntegrationAPIURL != "" {
			v.absURL(p+".integration_api_url", m.IntegrationAPIURL)
		}
		switch m.Environment {
		case "", "dev", "test", "live":
		default:
			v.add(p+".environment", "unknown environment %q (want dev, test or live)", clip(m.Environment))
		}
		v.nonNegative(p+".events.poll", m.Events.Poll)
		if m.Events.Poll > 0 && m.Events.Poll.D() < MarketplacePollMin {
			v.add(p+".events.poll", "at least %s (each poll is a query against the marketplace's rate limit)", MarketplacePollMin)
		}
		switch m.Events.Start {
		case "", "now", "beginning":
		default:
			v.add(p+".events.start", "want now or beginning, got %q", clip(m.Events.Start))
		}
		for i, t := range m.Events.Types {
			if !eventType.MatchString(t) {
				v.add(fmt.Sprintf("%s.events.types[%d]", p, i), "want an event type like listing/updated, got %q", clip(t))
			}
		}
		if len(m.Events.Types) == 0 && (m.Events.Job != "" || m.Events.Start != "") {
			v.add(p+".events.types", "list the event types to poll (polling is on when types are set)")
		}
		if len(m.Events.Types) > 0 && m.Integration.ClientID == "" {
			v.add(p+".events", "polling events needs integration credentials (integration.client_id and client_secret)")
		}
	}
}

func (v *validator) connections() {
	for _, name := range mapKeys(v.c.Connections) {
		cn := v.c.Connections[name]
		p := "connections." + name
		for _, f := range []struct {
			key, val string
			required bool
		}{
			{"authorize_url", cn.AuthorizeURL, true},
			{"token_url", cn.TokenURL, true},
			{"revoke_url", cn.RevokeURL, false},
			{"userinfo_url", cn.UserinfoURL, false},
			{"return_to", cn.ReturnTo, false},
			{"issuer", cn.Issuer, false},
		} {
			switch {
			case f.val != "":
				v.absURL(p+"."+f.key, f.val)
			case f.required:
				v.add(p+"."+f.key, "is required")
			}
		}
		if cn.ClientID == "" {
			v.add(p+".client_id", "is required")
		}
		if len(cn.Auth) == 0 {
			v.add(p+".auth", "at least one authenticator is required: it identifies who connects")
		}
		v.authNames(p+".auth", cn.Auth)
		v.nonNegative(p+".refresh_before", cn.RefreshBefore)
		for i, s := range cn.ScopeBy {
			if s != "tenant" && s != "subject" {
				v.add(fmt.Sprintf("%s.scope_by[%d]", p, i), "want tenant or subject, got %q", clip(s))
			}
		}
	}
}

func (v *validator) upstreams() {
	for _, name := range mapKeys(v.c.Upstreams) {
		u := v.c.Upstreams[name]
		p := "upstreams." + name
		if u.BaseURL == "" {
			v.add(p+".base_url", "is required")
		} else {
			v.proxyURL(p+".base_url", u.BaseURL)
		}
		v.nonNegative(p+".timeout", u.Timeout)
		if u.Retries != nil && *u.Retries < 0 {
			v.add(p+".retries", "must not be negative")
		} else if u.Retries != nil && *u.Retries > 10 {
			v.add(p+".retries", "at most 10 (got %d): retries multiply the load on a struggling upstream", *u.Retries)
		}
	}
}

// proxyURL checks an upstream or lookup URL: absolute http(s), no user
// info (credentials belong in a route's credential, where they are kept
// out of logs), no fragment, and a host that is not an ambiguous numeric
// form.
func (v *validator) proxyURL(path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		v.add(path, "want an absolute http(s) URL, got %q", clip(s))
		return
	}
	if u.User != nil {
		v.add(path, "must not carry user info: use a basic credential on the route")
	}
	if u.Fragment != "" {
		v.add(path, "must not have a fragment")
	}
	if h := u.Hostname(); h != "" && isAmbiguousNumericHost(h) {
		v.add(path, "host %q is a numeric form some resolvers read as an IPv4 address: write the address canonically", clip(h))
	}
}

// isAmbiguousNumericHost mirrors netguard.CheckHost (config cannot import
// internal packages): all-numeric labels that are not a canonical IP.
func isAmbiguousNumericHost(host string) bool {
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(labels) > 4 {
		return false
	}
	for _, l := range labels {
		ll := strings.ToLower(l)
		if ll == "" {
			return false
		}
		digits := ll
		if strings.HasPrefix(ll, "0x") {
			digits = strings.TrimLeft(ll[2:], "0123456789abcdef")
		} else {
			digits = strings.TrimLeft(ll, "0123456789")
		}
		if digits != "" {
			return false
		}
	}
	return true
}

// principalAttrs are the Principal attributes a lookup may send.
var principalAttrs = []string{"subject", "tenant", "email"}

func (v *validator) routes() {
	seen := map[string]int{}
	for i, r := range v.c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		rm, err := ParseRouteMatch(r.Match)
		if err != nil {
			v.add(p+".match", "%v", err)
		} else if j, dup := seen[rm.Method+" "+rm.Path]; dup {
			v.add(p+".match", "duplicate route %q (also routes[%d])", r.Match, j)
		} else {
			seen[rm.Method+" "+rm.Path] = i
		}
		if len(r.Auth) == 0 {
			v.add(p+".auth", "at least one authenticator is required: a proxy route adds a server-held credential, so it is never public")
		}
		v.authNames(p+".auth", r.Auth)
		if r.Upstream == "" {
			v.add(p+".upstream", "is required")
		} else if _, ok := v.c.Upstreams[r.Upstream]; !ok {
			v.add(p+".upstream", "no upstream named %q%s", r.Upstream, v.known(mapKeys(v.c.Upstreams)))
		}
		if r.Path != "" && err == nil {
			if _, perr := ParsePathTemplate(r.Path, rm.Wildcards); perr != nil {
				v.add(p+".path", "%v", perr)
			}
		} else if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
			v.add(p+".path", "must start with /")
		}
		for k, f := range r.StripFields {
			if f == "" {
				v.add(fmt.Sprintf("%s.strip_fields[%d]", p, k), "must not be empty")
			}
		}
		v.credential(p+".credential", r.Credential)
	}
}

func (v *validator) credential(p string, cr Credential) {
	kinds := 0
	for _, set := range []bool{cr.Connection != "", cr.Header != nil, cr.Basic != nil, cr.Body != nil, cr.Lookup != nil} {
		if set {
			kinds++
		}
	}
	switch kinds {
	case 0:
		v.add(p, "exactly one of connection, header, basic, body or lookup is required")
	case 1:
	default:
		v.add(p, "exactly one of connection, header, basic, body or lookup may be set (got %d)", kinds)
	}
	if cr.Connection != "" {
		if _, ok := v.c.Connections[cr.Connection]; !ok {
			v.add(p+".connection", "no connection named %q%s", clip(cr.Connection), v.known(mapKeys(v.c.Connections)))
		}
	}
	if cr.Header != nil {
		if len(cr.Header) == 0 {
			v.add(p+".header", "at least one header is required")
		}
		for _, h := range mapKeys(cr.Header) {
			switch {
			case !isToken(h):
				v.add(p+".header", "invalid header name %q", clip(h))
			case isHopHeader(h):
				v.add(p+".header", "%s is a hop-by-hop or framing header and cannot carry a credential", h)
			case cr.Header[h] == "":
				v.add(p+".header."+h, "must not be empty")
			case strings.ContainsAny(cr.Header[h], "\r\n\x00"):
				v.add(p+".header."+h, "must not contain line breaks or NUL")
			}
		}
	}
	if b := cr.Basic; b != nil {
		if b.User == "" {
			v.add(p+".basic.user", "is required")
		} else if strings.Contains(b.User, ":") {
			v.add(p+".basic.user", "must not contain a colon (basic auth splits user and password at the first one)")
		}
	}
	if cr.Body != nil {
		if len(cr.Body) == 0 {
			v.add(p+".body", "at least one field is required")
		}
		lower := map[string]string{}
		for _, k := range mapKeys(cr.Body) {
			if k == "" {
				v.add(p+".body", "a field name must not be empty")
			}
			if other, dup := lower[strings.ToLower(k)]; dup {
				v.add(p+".body."+k, "differs from %q only by case", other)
			}
			lower[strings.ToLower(k)] = k
		}
	}
	if l := cr.Lookup; l != nil {
		lp := p + ".lookup"
		if l.URL == "" {
			v.add(lp+".url", "is required")
		} else {
			v.proxyURL(lp+".url", l.URL)
		}
		if l.Secret == "" {
			v.add(lp+".secret", "is required: the middleware's shared secret")
		} else if strings.ContainsAny(l.Secret, "\r\n\x00") {
			v.add(lp+".secret", "must not contain line breaks or NUL")
		}
		if l.Field != "" {
			for _, part := range strings.Split(l.Field, ".") {
				if part == "" {
					v.add(lp+".field", "want a field name or a dotted path such as data.token, got %q", clip(l.Field))
					break
				}
			}
		}
		for k, f := range l.BodyFields {
			if f == "" {
				v.add(fmt.Sprintf("%s.body_fields[%d]", lp, k), "must not be empty")
			}
		}
		for _, k := range mapKeys(l.PrincipalFields) {
			if !slices.Contains(principalAttrs, l.PrincipalFields[k]) {
				v.add(lp+".principal_fields."+k, "want subject, tenant or email, got %q", clip(l.PrincipalFields[k]))
			}
			if slices.Contains(l.BodyFields, k) {
				v.add(lp+".principal_fields."+k, "is also in body_fields: the caller could not be told which one is sent")
			}
		}
	}
}

// isHopHeader reports the headers a proxy never passes on, so a
// credential cannot live in them.
func isHopHeader(h string) bool {
	switch strings.ToLower(h) {
	case "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
		"host", "content-length", "content-type":
		return true
	}
	return false
}

func (v *validator) webhooks() {
	seen := map[string]int{}
	for i, w := range v.c.Webhooks {
		p := fmt.Sprintf("webhooks[%d]", i)
		if !strings.HasPrefix(w.Path, "/") || strings.ContainsAny(w.Path, " \t{}") {
			v.add(p+".path", "want a path starting with /, got %q", clip(w.Path))
		} else if j, dup := seen[w.Path]; dup {
			v.add(p+".path", "duplicate path %q (also webhooks[%d])", w.Path, j)
		} else {
			seen[w.Path] = i
		}
		vf := w.Verify
		vp := p + ".verify"
		switch vf.Scheme {
		case SchemeStandard, SchemeStripe, SchemeGitHub, SchemeShopify, SchemeHMAC:
			if len(vf.Secrets) == 0 {
				v.add(vp+".secrets", "at least one secret is required for scheme %s", vf.Scheme)
			}
			for k, s := range vf.Secrets {
				sp := fmt.Sprintf("%s.secrets[%d]", vp, k)
				switch {
				case s == "":
					v.add(sp, "must not be empty")
				case vf.Scheme == SchemeStandard:
					if n, ok := decodeBase64(strings.TrimPrefix(s, "whsec_")); !ok || n == 0 {
						v.add(sp, "want a Standard Webhooks secret: whsec_ followed by base64")
					}
				}
			}
		case SchemeNone:
			if len(vf.Secrets) > 0 {
				v.add(vp+".secrets", "do not apply to scheme none")
			}
			if len(w.AllowIPs) == 0 {
				v.add(p+".allow_ips", "scheme none (no signature) requires allow_ips: an unsigned endpoint open to everyone accepts forged events")
			}
		case "":
			v.add(vp+".scheme", "is required (standard, stripe, github, shopify, hmac or none)")
		default:
			v.add(vp+".scheme", "unknown scheme %q (want standard, stripe, github, shopify, hmac or none)", clip(vf.Scheme))
		}
		if vf.Scheme == SchemeHMAC {
			if vf.Header == "" {
				v.add(vp+".header", "is required for scheme hmac: the header carrying the signature")
			} else if !isToken(vf.Header) {
				v.add(vp+".header", "invalid header name %q", clip(vf.Header))
			}
			if vf.Encoding != "" && vf.Encoding != "hex" && vf.Encoding != "base64" {
				v.add(vp+".encoding", "want hex or base64, got %q", clip(vf.Encoding))
			}
			if vf.Algorithm != "" && vf.Algorithm != "sha256" && vf.Algorithm != "sha512" {
				v.add(vp+".algorithm", "want sha256 or sha512, got %q", clip(vf.Algorithm))
			}
		} else {
			for _, f := range []struct{ key, val string }{
				{"header", vf.Header}, {"encoding", vf.Encoding}, {"algorithm", vf.Algorithm}, {"prefix", vf.Prefix},
			} {
				if f.val != "" {
					v.add(vp+"."+f.key, "applies only to scheme hmac")
				}
			}
		}
		v.nonNegative(vp+".tolerance", vf.Tolerance)
		for k, ip := range w.AllowIPs {
			if !isCIDROrAddr(ip) {
				v.add(fmt.Sprintf("%s.allow_ips[%d]", p, k), "want a CIDR or an IP address, got %q", clip(ip))
			}
		}
		if _, err := ParseDedupe(w.Dedupe); err != nil {
			v.add(p+".dedupe", "%s", err)
		}
		if w.Job == "" && w.Forward == nil {
			v.add(p+".job", "is required (the job kind a Go worker handles), unless forward is set")
		}
		v.queueExists(p+".queue", w.Queue)
		if w.MaxBodyBytes < 0 {
			v.add(p+".max_body_bytes", "must not be negative")
		}
		if f := w.Forward; f != nil {
			if f.URL == "" {
				v.add(p+".forward.url", "is required")
			} else {
				v.absURL(p+".forward.url", f.URL)
			}
			if n, ok := decodeBase64(strings.TrimPrefix(f.Secret, "whsec_")); !strings.HasPrefix(f.Secret, "whsec_") || !ok || n == 0 {
				v.add(p+".forward.secret", "want whsec_ followed by base64 (the receiver verifies Standard Webhooks signatures with it)")
			}
			v.nonNegative(p+".forward.timeout", f.Timeout)
		}
	}
}

// queueExists checks a job's queue is served; "" means the default queue.
func (v *validator) queueExists(path, q string) {
	if q == "" {
		q = QueueDefault
	}
	if len(v.c.Jobs.Queues) == 0 && q == QueueDefault {
		return // defaults not filled yet: the default queue will exist
	}
	if _, ok := v.c.Jobs.Queues[q]; !ok {
		v.add(path, "no queue named %q in jobs.queues: its jobs would never run%s", q, v.known(mapKeys(v.c.Jobs.Queues)))
	}
}

func (v *validator) jobs() {
	j := v.c.Jobs
	for _, name := range mapKeys(j.Queues) {
		if name == "" {
			v.add("jobs.queues", "a queue name must not be empty")
		}
		if j.Queues[name].Concurrency < 1 {
			v.add("jobs.queues."+name+".concurrency", "must be at least 1")
		}
	}
	if len(j.Queues) > 0 {
		if _, ok := j.Queues[QueueDefault]; !ok {
			v.add("jobs.queues", "a %q queue is required: jobs enqueued without a queue go there", QueueDefault)
		}
	}
	if j.Retry.MaxAttempts < 0 {
		v.add("jobs.retry.max_attempts", "must not be negative")
	}
	if j.Retry.Backoff != "" && j.Retry.Backoff != BackoffDefault {
		v.add("jobs.retry.backoff", "want exponential, got %q", clip(j.Retry.Backoff))
	}
	v.nonNegative("jobs.retry.base", j.Retry.Base)
	v.nonNegative("jobs.retry.max", j.Retry.Max)
	if j.Retry.Base > 0 && j.Retry.Max > 0 && j.Retry.Base > j.Retry.Max {
		v.add("jobs.retry.base", "is greater than jobs.retry.max (%s)", j.Retry.Max)
	}
	v.nonNegative("jobs.retention.completed", j.Retention.Completed)
	v.nonNegative("jobs.retention.failed", j.Retention.Failed)
	v.nonNegative("jobs.timeout", j.Timeout)
	v.nonNegative("jobs.lease", j.Lease)
	for _, kind := range mapKeys(j.Kinds) {
		k := j.Kinds[kind]
		p := "jobs.kinds." + kind
		v.nonNegative(p+".timeout", k.Timeout)
		if k.MaxAttempts < 0 {
			v.add(p+".max_attempts", "must not be negative")
		}
		if k.Queue != "" {
			v.queueExists(p+".queue", k.Queue)
		}
	}
}

func (v *validator) schedules() {
	seen := map[string]int{}
	for i, s := range v.c.Schedules {
		p := fmt.Sprintf("schedules[%d]", i)
		if s.Name == "" {
			v.add(p+".name", "is required")
		} else if j, dup := seen[s.Name]; dup {
			v.add(p+".name", "duplicate schedule %q (also schedules[%d])", s.Name, j)
		} else {
			seen[s.Name] = i
		}
		if s.Cron == "" {
			v.add(p+".cron", "is required")
		} else if _, err := cron.ParseStandard(s.Cron); err != nil {
			v.add(p+".cron", "invalid cron expression %q: %v (want 5 fields such as \"0 9 * * *\", or @every 1m, @daily…)", clip(s.Cron), err)
		}
		if s.Job == "" {
			v.add(p+".job", "is required")
		}
		if s.Payload != "" && !json.Valid([]byte(s.Payload)) {
			v.add(p+".payload", "want a JSON document")
		}
	}
}

func (v *validator) console() {
	c := v.c.Console
	if len(c.Auth) == 0 {
		if len(c.Admin) > 0 {
			v.add("console.auth", "at least one authenticator is required when console.admin is set (admin may act, auth may look)")
		} else if c.Path != "" {
			v.add("console.auth", "at least one authenticator is required: the console is an admin UI (it is off without one)")
		}
		return
	}
	if !strings.HasPrefix(c.Path, "/") || !strings.HasSuffix(c.Path, "/") || strings.ContainsAny(c.Path, " \t{}") ||
		strings.Contains(c.Path, "//") {
		v.add("console.path", "want a path that starts and ends with /, such as /_/, got %q", clip(c.Path))
	}
	v.authNames("console.auth", c.Auth)
	v.authNames("console.admin", c.Admin)
}

func (v *validator) audit() {
	if v.c.Audit.Retention < 0 {
		v.add("audit.retention", "must be positive, got %s", v.c.Audit.Retention)
	}
}
