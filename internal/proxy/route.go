package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/netguard"
)

// route is one `routes` entry, ready to serve.
type route struct {
	cfg   config.Route
	match config.RouteMatch
	path  []config.PathPart
	up    *upstream
	rule  auth.Rule
	strip []string
	// parse is set when the JSON body must be read and rewritten.
	parse bool

	header   http.Header // header credential
	basic    *config.BasicCredential
	body     map[string]json.RawMessage // body credential, JSON-encoded values
	bodyKeys map[string]string          // lower-cased body credential key → key
	lookup   *lookup
	conn     TokenSource
	connName string
}

func newRoute(rc config.Route, ups map[string]*upstream, deps Deps, lookupClients map[bool]*http.Client) (*route, error) {
	rm, err := config.ParseRouteMatch(rc.Match)
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	up := ups[rc.Upstream]
	if up == nil {
		return nil, fmt.Errorf("no upstream named %q", rc.Upstream)
	}
	tmpl := rc.Path
	if tmpl == "" {
		tmpl = strings.TrimSuffix(rm.Path, "{$}")
	}
	parts, err := config.ParsePathTemplate(tmpl, rm.Wildcards)
	if err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	rt := &route{cfg: rc, match: rm, path: parts, up: up, strip: rc.StripFields,
		rule: auth.Rule{Scopes: rc.Scopes, Tenant: rc.Tenant}}
	cr := rc.Credential
	kinds := 0
	if cr.Header != nil {
		kinds++
		rt.header = http.Header{}
		for k, v := range cr.Header {
			if !validHeaderValue(v) {
				return nil, fmt.Errorf("credential.header.%s: empty or contains a line break", k)
			}
			rt.header.Set(k, v)
		}
	}
	if cr.Basic != nil {
		kinds++
		rt.basic = cr.Basic
	}
	if cr.Body != nil {
		kinds++
		rt.body = map[string]json.RawMessage{}
		rt.bodyKeys = map[string]string{}
		for k, v := range cr.Body {
			b, _ := json.Marshal(v)
			rt.body[k] = b
			rt.bodyKeys[strings.ToLower(k)] = k
		}
	}
	if l := cr.Lookup; l != nil {
		kinds++
		c := lookupClients[l.AllowPrivate]
		if c == nil {
			c = netguard.Client(netguard.Options{AllowPrivate: l.AllowPrivate, Resolver: deps.Resolver})
			lookupClients[l.AllowPrivate] = c
		}
		lk, err := newLookup(*l, c, up.timeout)
		if err != nil {
			return nil, fmt.Errorf("credential.lookup: %w", err)
		}
		rt.lookup = lk
	}
	if cr.Connection != "" {
		kinds++
		ts := deps.Connections[cr.Connection]
		if ts == nil {
			return nil, fmt.Errorf("credential.connection: %q is not available", cr.Connection)
		}
		rt.conn, rt.connName = ts, cr.Connection
	}
	if kinds != 1 {
		return nil, fmt.Errorf("credential: want exactly one kind, got %d", kinds)
	}
	rt.parse = rt.body != nil || len(rt.strip) > 0 || (rt.lookup != nil && len(rt.lookup.cfg.BodyFields) > 0)
	return rt, nil
}

// target builds the upstream URL: the path template with the caller's
// wildcard values (escaped, each segment on its own), joined under the
// base URL by netguard.JoinPath (which refuses anything that could leave
// the base path or change the host), plus the caller's query.
func (rt *route) target(r *http.Request) (*url.URL, error) {
	var b strings.Builder
	for _, p := range rt.path {
		if p.Wildcard == "" {
			b.WriteString(p.Literal)
			continue
		}
		v := r.PathValue(p.Wildcard)
		if p.Wildcard != rt.match.Rest {
			// One segment: a decoded "/" stays encoded (and JoinPath
			// refuses it), so a value can never add segments.
			b.WriteString(url.PathEscape(v))
			continue
		}
		for i, s := range strings.Split(v, "/") {
			if i > 0 {
				b.WriteByte('/')
			}
			b.WriteString(url.PathEscape(s))
		}
	}
	u, err := netguard.JoinPath(rt.up.base, b.String())
	if err != nil {
		return nil, err
	}
	if q := r.URL.RawQuery; q != "" {
		cq, err := url.ParseQuery(q)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		// A caller may not repeat a parameter the base URL sets: some
		// servers read the last one, so it could replace a server-held value.
		for k := range cq {
			if _, ok := rt.up.baseQ[k]; ok {
				return nil, fmt.Errorf("query parameter %q is set by the server", k)
			}
		}
		if u.RawQuery != "" {
			u.RawQuery += "&" + q
		} else {
			u.RawQuery = q
		}
	}
	return u, nil
}

// dropRequestHeaders are never passed upstream: hop-by-hop and framing
// headers, and everything that carries the caller's own credentials or
// browser context (the upstream gets backlot's credential instead).
var dropRequestHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Host": true, "Content-Length": true,
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "X-Csrf-Token": true,
	"Stripe-Signature": true, "Stripe-User-Id": true, "Stripe-Account-Id": true,
	"Accept-Encoding": true, "Origin": true, "Referer": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
	"X-Real-Ip": true, "X-Request-Id": true,
}

// outHeader is the caller's header as it may go upstream.
func outHeader(in http.Header) http.Header {
	out := make(http.Header, len(in))
	conn := connectionTokens(in)
	for k, vs := range in {
		if dropRequestHeaders[k] || conn[k] || strings.HasPrefix(k, "Sec-") {
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// connectionTokens are the headers a Connection header names as hop-by-hop.
func connectionTokens(h http.Header) map[string]bool {
	var m map[string]bool
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				if m == nil {
					m = map[string]bool{}
				}
				m[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	return m
}

// dropResponseHeaders are not passed back to the caller: hop-by-hop
// headers, cookies (the upstream's session is not the caller's), and
// headers whose policy is backlot's (CORS, security headers).
var dropResponseHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Proxy-Authenticate": true,
	"Set-Cookie": true, "Set-Cookie2": true,
	"Strict-Transport-Security": true, "Content-Security-Policy": true, "X-Content-Type-Options": true,
	"Referrer-Policy": true, "X-Frame-Options": true, "Alt-Svc": true, "Www-Authenticate": true,
}

func copyResponseHeader(dst, src http.Header) {
	conn := connectionTokens(src)
	for k, vs := range src {
		if dropResponseHeaders[k] || conn[k] || strings.HasPrefix(k, "Access-Control-") {
			continue
		}
		dst[k] = append(dst[k][:0:0], vs...)
	}
}

// readJSONBody reads the caller's body as one JSON object, at most max
// bytes. An empty body is an empty object.
func readJSONBody(r *http.Request, max int64) (map[string]json.RawMessage, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONType(ct) {
		return nil, httpapi.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "this route takes a JSON body (Content-Type: application/json), got %q", clipStr(ct, 60))
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, err
		}
		return nil, httpapi.Errorf(http.StatusBadRequest, "invalid_request", "could not read the request body")
	}
	if int64(len(data)) > max {
		return nil, &httpapi.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Description: fmt.Sprintf("request body exceeds %d bytes", max)}
	}
	m := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(data)) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return nil, httpapi.Errorf(http.StatusBadRequest, "invalid_request", "the body must be one JSON object")
	}
	return m, nil
}

func isJSONType(ct string) bool {
	mt, _, _ := strings.Cut(strings.ToLower(ct), ";")
	mt = strings.TrimSpace(mt)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func clipStr(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
