package extensionapi

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/issuer"
)

// corsHeaders lists the Access-Control-* headers of r.
func corsHeaders(r response) []string {
	var out []string
	for k := range r.header {
		if strings.HasPrefix(k, "Access-Control-") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// listHas reports whether the comma-separated header value list holds
// want, compared case-insensitively.
func listHas(list, want string) bool {
	for v := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(v), want) {
			return true
		}
	}
	return false
}

// TestCORS runs the recipe with backlot.yaml's own allowlist
// (https://market.example.com and https://*.partners.example.com) and
// checks, as a browser would see them, preflights (answered without any
// credential, before authentication) and actual requests, allowed and not.
func TestCORS(t *testing.T) {
	t.Parallel()
	rc := startRecipe(t, nil)
	token := rc.mint(t, issuer.Claims{Subject: "u-1", Name: "ann@example.com", Tenant: "ACME"})

	t.Run("preflight", func(t *testing.T) {
		cases := []struct {
			name, origin, method, headers string
			allowed                       bool
		}{
			{"exact origin", "https://market.example.com", "GET", "authorization", true},
			{"exact origin, POST with JSON", "https://market.example.com", "POST", "authorization,content-type", true},
			{"wildcard subdomain", "https://acme.partners.example.com", "GET", "authorization", true},
			{"wildcard, deeper subdomain", "https://eu.acme.partners.example.com", "GET", "authorization", true},
			{"origin in upper case", "https://MARKET.example.com", "GET", "authorization", true},
			{"wildcard's own domain", "https://partners.example.com", "GET", "authorization", false},
			{"other scheme", "http://market.example.com", "GET", "authorization", false},
			{"other port", "https://market.example.com:8443", "GET", "authorization", false},
			{"suffix trick", "https://market.example.com.evil.test", "GET", "authorization", false},
			{"prefix trick", "https://evilmarket.example.com", "GET", "authorization", false},
			{"sibling of the wildcard", "https://acme.partners-example.com", "GET", "authorization", false},
			{"opaque origin", "null", "GET", "authorization", false},
			{"allowed origin, method not listed", "https://market.example.com", "DELETE", "authorization", false},
			{"allowed origin, header not listed", "https://market.example.com", "GET", "authorization,x-extension-debug", false},
		}
		// Access-Control-Request-Headers as browsers send it (Fetch
		// standard): lower case, sorted, comma-separated.
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				// No Authorization: a browser never sends credentials
				// with a preflight.
				r := rc.do(t, http.MethodOptions, "/auth/whoami", map[string]string{
					"Origin": c.origin, "Access-Control-Request-Method": c.method, "Access-Control-Request-Headers": c.headers,
				})
				checkSecurityHeaders(t, c.name, r)
				if r.status != http.StatusNoContent {
					t.Fatalf("status %d, want 204 before any authentication; body %s", r.status, r.body)
				}
				if !c.allowed {
					if h := corsHeaders(r); len(h) > 0 {
						t.Errorf("CORS headers %v for a refused preflight, want none", h)
					}
					return
				}
				if got := r.header.Get("Access-Control-Allow-Origin"); got != c.origin {
					t.Errorf("Allow-Origin %q, want the origin %q echoed", got, c.origin)
				}
				if got := r.header.Get("Access-Control-Allow-Credentials"); got != "true" {
					t.Errorf("Allow-Credentials %q, want true", got)
				}
				if got := r.header.Get("Access-Control-Allow-Methods"); !listHas(got, c.method) {
					t.Errorf("Allow-Methods %q, want %s", got, c.method)
				}
				for h := range strings.SplitSeq(c.headers, ",") {
					if got := r.header.Get("Access-Control-Allow-Headers"); !listHas(got, strings.TrimSpace(h)) {
						t.Errorf("Allow-Headers %q, want %s", got, h)
					}
				}
				if got := r.header.Get("Access-Control-Max-Age"); got != "600" {
					t.Errorf("Max-Age %q, want 600 (max_age: 10m)", got)
				}
			})
		}
	})

	t.Run("actual requests", func(t *testing.T) {
		cases := []struct {
			name, origin, token string
			status              int
			allowed             bool
		}{
			// The front-end can read the principal...
			{"allowed origin, valid token", "https://market.example.com", token, 200, true},
			{"wildcard origin, valid token", "https://acme.partners.example.com", token, 200, true},
			// ...and the envelope of a refusal, to ask for a new token.
			{"allowed origin, no token", "https://market.example.com", "", 401, true},
			{"allowed origin, expired token", "https://acme.partners.example.com",
				rc.mint(t, issuer.Claims{TTL: -10 * time.Minute}), 401, true},
			// A disallowed page gets the answer without CORS headers,
			// so its browser withholds it.
			{"disallowed origin, valid token", "https://evil.example.com", token, 200, false},
			{"no origin (not a browser)", "", token, 200, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := rc.whoami(t, c.token, c.origin)
				checkSecurityHeaders(t, c.name, r)
				if r.status != c.status {
					t.Fatalf("status %d, want %d; body %s", r.status, c.status, r.body)
				}
				if c.status == 200 {
					var p principal
					decodeStrict(t, r.body, &p)
					if p.Subject != "u-1" || p.Email != "ann@example.com" || p.Tenant != "ACME" {
						t.Errorf("principal %+v", p)
					}
				} else {
					checkEnvelope(t, r, c.status, map[bool]string{true: "missing_credentials", false: "invalid_token"}[c.token == ""], "")
				}
				if !c.allowed {
					if h := corsHeaders(r); len(h) > 0 {
						t.Errorf("CORS headers %v, want none", h)
					}
					return
				}
				if got := r.header.Get("Access-Control-Allow-Origin"); got != c.origin {
					t.Errorf("Allow-Origin %q, want %q", got, c.origin)
				}
				if got := r.header.Get("Access-Control-Allow-Credentials"); got != "true" {
					t.Errorf("Allow-Credentials %q, want true", got)
				}
			})
		}
	})

	// Every response carries the CSP, whatever answers it.
	t.Run("security headers everywhere", func(t *testing.T) {
		cases := []struct {
			name, method, path string
			status             int
		}{
			{"health", "GET", "/healthz", 200},
			{"readiness", "GET", "/readyz", 200},
			{"unknown path", "GET", "/api/nothing-here", 404},
			{"wrong method", "DELETE", "/auth/whoami", 405},
			{"preflight elsewhere", "OPTIONS", "/api/nothing-here", 204},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := rc.do(t, c.method, c.path, map[string]string{
					"Origin": "https://market.example.com", "Access-Control-Request-Method": map[bool]string{true: "GET"}[c.method == "OPTIONS"],
				})
				if r.status != c.status {
					t.Fatalf("status %d, want %d; body %s", r.status, c.status, r.body)
				}
				checkSecurityHeaders(t, c.name, r)
				if c.status >= 400 {
					checkEnvelope(t, r, c.status, map[int]string{404: "not_found", 405: "method_not_allowed"}[c.status], "")
				}
			})
		}
	})
}
