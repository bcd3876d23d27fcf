// Package cors answers cross-origin requests from the configured allowlist
// (SPEC 5.3) with github.com/rs/cors: exact origins and "*." subdomain
// wildcards only, Vary: Origin on every response, preflights answered
// before authentication, and no CORS headers at all for a disallowed
// origin, method or header.
package cors

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	rscors "github.com/rs/cors"

	"github.com/backlothq/backlot/config"
)

// New returns the CORS middleware for cfg, or an error naming the first
// origin that is neither exact nor a "scheme://*.domain" wildcard.
//
// Preflights (OPTIONS with Access-Control-Request-Method) are answered
// 204 here and never reach the handler, whatever the path, so they need no
// credentials. Actual requests always pass on to the handler; an allowed
// origin gets Access-Control-Allow-Origin (the origin itself, never "*")
// and, with allow_credentials, Access-Control-Allow-Credentials.
func New(cfg config.CORS) (func(http.Handler) http.Handler, error) {
	m, err := newMatcher(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	methods := config.CORSAllowedMethodsDefault()
	if len(cfg.AllowedMethods) > 0 {
		methods = make([]string, 0, len(cfg.AllowedMethods))
		for _, v := range cfg.AllowedMethods {
			v = strings.ToUpper(strings.TrimSpace(v))
			if v == "" || v == "*" || strings.ContainsAny(v, " \t,") {
				return nil, fmt.Errorf("cors.allowed_methods: invalid method %q", v)
			}
			methods = append(methods, v)
		}
	}
	headers := config.CORSAllowedHeadersDefault()
	if len(cfg.AllowedHeaders) > 0 {
		headers = make([]string, 0, len(cfg.AllowedHeaders))
		for _, v := range cfg.AllowedHeaders {
			v = strings.TrimSpace(v)
			if v == "" || v == "*" || strings.ContainsAny(v, " \t,:") {
				return nil, fmt.Errorf("cors.allowed_headers: invalid header name %q", v)
			}
			headers = append(headers, v)
		}
	}
	maxAge := cfg.MaxAge.D()
	if maxAge == 0 {
		maxAge = config.CORSMaxAgeDefault
	}
	secs := int(maxAge / time.Second)
	if secs <= 0 {
		secs = -1 // rs/cors: a negative value sends "Access-Control-Max-Age: 0"
	}
	c := rscors.New(rscors.Options{
		AllowOriginFunc:  m.allowed,
		AllowedMethods:   methods,
		AllowedHeaders:   headers,
		AllowCredentials: cfg.AllowCredentials,
		MaxAge:           secs,
	})
	credentials := cfg.AllowCredentials
	return func(next http.Handler) http.Handler {
		mark := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if credentials {
				if o := r.Header.Get("Origin"); o != "" && m.allowed(o) {
					r = r.WithContext(context.WithValue(r.Context(), credentialedKey{}, true))
				}
			}
			next.ServeHTTP(w, r)
		})
		h := c.Handler(mark)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, normalizeRequestHeaders(r))
		})
	}, nil
}

// normalizeRequestHeaders returns r with the Access-Control-Request-Headers
// of a preflight as one lower-case, sorted, duplicate-free list. rs/cors
// accepts only that form (the one browsers send), so without this a client
// that writes "Authorization" would get no CORS headers; header names are
// case-insensitive (RFC 9110 5.1). Other requests are returned unchanged.
func normalizeRequestHeaders(r *http.Request) *http.Request {
	vals, ok := r.Header["Access-Control-Request-Headers"]
	if !ok || r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return r
	}
	var names []string
	for _, v := range vals {
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.ToLower(strings.Trim(n, " \t")); n != "" {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	if len(names) == 0 {
		delete(r2.Header, "Access-Control-Request-Headers") // only empty elements: asks for nothing
	} else {
		r2.Header["Access-Control-Request-Headers"] = []string{strings.Join(names, ",")}
	}
	return r2
}

type credentialedKey struct{}

// CredentialedOrigin reports whether r came through the middleware from an
// allowed origin while allow_credentials is on: a page the operator trusts
// to make cookie-carrying requests. Cookie authenticators use it to accept
// such a cross-origin request (they still demand the CSRF token).
func CredentialedOrigin(r *http.Request) bool {
	v, _ := r.Context().Value(credentialedKey{}).(bool)
	return v
}

// matcher decides whether an Origin is on the allowlist.
type matcher struct {
	exact     map[string]bool
	wildcards []wildcard
}

// wildcard is "scheme://*.domain[:port]": any subdomain of domain (at any
// depth), not domain itself.
type wildcard struct {
	scheme string
	suffix string // ".domain", lower case
	port   string // "" for the scheme's default
}

func newMatcher(origins []string) (*matcher, error) {
	m := &matcher{exact: map[string]bool{}}
	for _, o := range origins {
		w, isWild, err := parseAllowed(o)
		if err != nil {
			return nil, fmt.Errorf("cors.allowed_origins: %q: %w", o, err)
		}
		if isWild {
			m.wildcards = append(m.wildcards, w)
			continue
		}
		m.exact[originKey(w.scheme, strings.TrimPrefix(w.suffix, "."), w.port)] = true
	}
	return m, nil
}

// parseAllowed parses one configured origin. For an exact origin the
// result's suffix is "." + host.
func parseAllowed(o string) (w wildcard, isWild bool, err error) {
	if o == "*" {
		return w, false, fmt.Errorf(`"*" is not allowed; list the origins (wildcards only as https://*.example.com)`)
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok {
		return w, false, fmt.Errorf("want scheme://host[:port]")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return w, false, fmt.Errorf("scheme must be http or https")
	}
	if strings.ContainsAny(rest, "/?#@\\ ") {
		return w, false, fmt.Errorf("an origin has no path, query, fragment or user (want scheme://host[:port])")
	}
	if strings.HasPrefix(rest, "*.") {
		isWild = true
		rest = rest[2:]
	}
	if strings.Contains(rest, "*") {
		return w, false, fmt.Errorf(`a wildcard is only allowed as the first label, as in https://*.example.com`)
	}
	host, port, err := splitHostPort(scheme, rest)
	if err != nil {
		return w, false, err
	}
	if isWild && (!strings.Contains(host, ".") || net.ParseIP(host) != nil) {
		// *.com or *.1.2.3 would allow far more than intended.
		return w, false, fmt.Errorf("a wildcard needs a domain of at least two labels, as in https://*.example.com")
	}
	return wildcard{scheme: scheme, suffix: "." + host, port: port}, isWild, nil
}

// splitHostPort validates host[:port] and drops the scheme's default port.
func splitHostPort(scheme, hp string) (host, port string, err error) {
	u, err := url.Parse(scheme + "://" + hp)
	if err != nil || u.Host != hp || u.Hostname() == "" {
		return "", "", fmt.Errorf("invalid host %q", hp)
	}
	host = strings.ToLower(u.Hostname())
	port = u.Port()
	if strings.HasSuffix(hp, ":") {
		return "", "", fmt.Errorf("empty port in %q", hp)
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return "", "", fmt.Errorf("invalid host name %q", host)
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	return host, port, nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func originKey(scheme, host, port string) string {
	if port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}

// allowed reports whether the Origin header value o is on the list. "null"
// and anything that is not scheme://host[:port] never are.
func (m *matcher) allowed(o string) bool {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || strings.ContainsAny(rest, "/?#@\\ *") {
		return false
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return false
	}
	host, port, err := splitHostPort(scheme, rest)
	if err != nil {
		return false
	}
	if m.exact[originKey(scheme, host, port)] {
		return true
	}
	for _, w := range m.wildcards {
		if w.scheme == scheme && w.port == port && len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			return true
		}
	}
	return false
}
