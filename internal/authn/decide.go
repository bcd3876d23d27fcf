package authn

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
)

// How a request is decided: the route's authenticators in order (local
// ones before remote ones), the failure limit, the scope and tenant rule,
// and the answer for each outcome.

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
	ip := httpapi.ClientIP(r)
	now := s.deps.Now()
	if wait, limited := s.limiter.Blocked(ip, now); limited {
		s.decisions.WithLabelValues("", OutcomeLimited).Inc()
		s.deps.Logger.InfoContext(r.Context(), "auth refused", "outcome", OutcomeLimited,
			"client_ip", clientIP(r), "request_id", httpapi.RequestIDFrom(r.Context()))
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
	names := namesOf(entries)
	s.logRefusal(r, strings.Join(names, ","), OutcomeMissing, "no credentials", nil)
	he := httpapi.E(http.StatusUnauthorized, "missing_credentials", "no credentials: this endpoint accepts "+strings.Join(names, ", "))
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

// clientIP is httpapi.ClientIP as logs write it; "" when unknown.
func clientIP(r *http.Request) string {
	if a := httpapi.ClientIP(r); a.IsValid() {
		return a.String()
	}
	return ""
}
