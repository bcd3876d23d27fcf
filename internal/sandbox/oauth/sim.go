package oauth

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// Fault is a failure injected into one route. A Fault with a Status answers
// that status instead of the real handler; one with OAuthError answers 200
// with that error in the body (as some providers' token endpoints do);
// one with only Latency delays the real answer.
type Fault struct {
	// Status is the status to answer: 429 or 500-599. 0: no status fault.
	Status int
	// RetryAfter is sent as Retry-After (whole seconds, rounded up). Zero
	// with Status 429 sends 1 s, as rate limiters always say when to
	// come back; zero with a 5xx sends none.
	RetryAfter time.Duration
	// Latency delays the answer, faulty or not. A Latency longer than the
	// client's timeout simulates a server that does not answer in time; the
	// wait ends early when the client goes away.
	Latency time.Duration
	// OAuthError makes the route answer 200 with {"error": OAuthError,
	// "error_description": ...}. Ignored when Status is set.
	OAuthError string
	// Count is how many requests the fault applies to; 0 means until
	// cleared.
	Count int
}

// faultJSON is a Fault as POST /_sim/faults takes it: durations as
// milliseconds and seconds rather than Go's nanoseconds.
type faultJSON struct {
	Route             string `json:"route"`
	Status            int    `json:"status"`
	RetryAfterSeconds int    `json:"retry_after_seconds"`
	LatencyMS         int    `json:"latency_ms"`
	OAuthError        string `json:"oauth_error"`
	Count             int    `json:"count"`
}

// faultRoutes are the routes faults can be injected into: the simulated
// server's, not the /_sim/ controls.
func faultRoutes() []string {
	return []string{RouteAuthorize, RouteToken, RouteRevoke, RouteUserinfo, RouteMetadata}
}

// newFaults returns the fault registry: the routes are exact (no "*"), a
// fault replaces the one on its route, a fault may be a mere counter, and
// Retry-After goes with 429 (default 1 s) and with any status whose fault
// gives one.
func (s *Server) newFaults() *simkit.Registry {
	return simkit.NewRegistry(simkit.Options{
		Routes:         faultRoutes(),
		NoWildcard:     true,
		AllowNoop:      true,
		RetryAnyStatus: true,
		Answer:         answerFault,
		OnTake: func(string, simkit.Fault) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.stats.FaultsInjected++
		},
	})
}

// answerFault answers an injected status in OAuth's error shape, or an
// OAuthError in a 200 answer.
func answerFault(w http.ResponseWriter, _ *http.Request, _ string, f simkit.Fault) {
	if f.Status == 0 {
		writeError(w, http.StatusOK, f.Extra.(string), "fault injected: an error in a 200 answer")
		return
	}
	code := "temporarily_unavailable"
	if f.Status != http.StatusTooManyRequests && f.Status != http.StatusServiceUnavailable {
		code = "server_error"
	}
	writeError(w, f.Status, code, fmt.Sprintf("fault injected: %d", f.Status))
}

func (f Fault) sim(route string) simkit.Fault {
	sf := simkit.Fault{Route: route, Status: f.Status, RetryAfter: f.RetryAfter, Latency: f.Latency, Count: f.Count}
	// OAuthError is ignored when Status is set.
	if f.OAuthError != "" && f.Status == 0 {
		sf.Extra = f.OAuthError
	}
	return sf
}

// Fault injects f into route (one of the Route constants), replacing any
// fault already there. The zero Fault clears the route.
func (s *Server) Fault(route string, f Fault) error {
	if err := s.faults.Validate(f.sim(route)); err != nil {
		return fmt.Errorf("inject fault into %s: %w", route, err)
	}
	if f == (Fault{}) {
		s.faults.Delete(route)
		return nil
	}
	s.faults.Set(f.sim(route))
	return nil
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// Stats are the simulator's counters since New or the last Reset.
type Stats struct {
	// AuthorizeCalls counts requests to /authorize (GET and POST).
	AuthorizeCalls int `json:"authorize_calls"`
	// TokenCalls counts every request to /token, faulted ones included.
	TokenCalls int `json:"token_calls"`
	// TokenCallsByGrant splits TokenCalls by grant_type ("" when absent).
	TokenCallsByGrant map[string]int `json:"token_calls_by_grant"`
	// TokensIssued counts successful token answers.
	TokensIssued int `json:"tokens_issued"`
	// InvalidGrant counts token answers with error invalid_grant.
	InvalidGrant int `json:"invalid_grant"`
	// InvalidClient counts client authentication failures at /token and
	// /revoke.
	InvalidClient int `json:"invalid_client"`
	// Revocations counts successful POST /revoke answers (unknown tokens
	// included, as they too answer 200).
	Revocations int `json:"revocations"`
	// GrantsRevoked counts token families revoked, whether by /revoke of a
	// refresh token, by a replayed code or by a reused refresh token.
	GrantsRevoked int `json:"grants_revoked"`
	// UserinfoCalls counts requests to /userinfo.
	UserinfoCalls int `json:"userinfo_calls"`
	// FaultsInjected counts requests a fault applied to.
	FaultsInjected int `json:"faults_injected"`
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.TokenCallsByGrant = maps.Clone(s.stats.TokenCallsByGrant)
	return st
}

// route is one path the simulator answers, with a handler per method.
type route struct {
	path     string
	methods  map[string]http.HandlerFunc
	faultKey string // "" for routes faults cannot reach
	form     bool   // POST bodies are forms parsed before the handler runs
}

func (s *Server) registerRoutes() {
	routes := []route{
		{RouteAuthorize, map[string]http.HandlerFunc{"GET": s.handleAuthorize, "POST": s.handleAuthorizeDecision}, RouteAuthorize, false},
		{RouteToken, map[string]http.HandlerFunc{"POST": s.handleToken}, RouteToken, true},
		{RouteRevoke, map[string]http.HandlerFunc{"POST": s.handleRevoke}, RouteRevoke, true},
		// OpenID Connect allows userinfo by GET and POST alike.
		{RouteUserinfo, map[string]http.HandlerFunc{"GET": s.handleUserinfo, "POST": s.handleUserinfo}, RouteUserinfo, false},
		{RouteMetadata, map[string]http.HandlerFunc{"GET": s.handleMetadata}, RouteMetadata, false},
		{routeSimFaults, map[string]http.HandlerFunc{"GET": s.handleSimFaultsList, "POST": s.handleSimFaultsSet, "DELETE": s.handleSimFaultsClear}, "", false},
		{routeSimReset, map[string]http.HandlerFunc{"POST": s.handleSimReset}, "", false},
		{routeSimStats, map[string]http.HandlerFunc{"GET": s.handleSimStats}, "", false},
	}
	for _, rt := range routes {
		for _, m := range slices.Sorted(maps.Keys(rt.methods)) {
			s.routes = append(s.routes, m+" "+rt.path)
		}
		s.mux.HandleFunc(rt.path, s.serveRoute(rt))
	}
	s.mux.HandleFunc("/", s.handleNotSimulated)
}

// serveRoute dispatches on the method, counts the call and applies the
// route's fault before the real handler runs.
func (s *Server) serveRoute(rt route) http.HandlerFunc {
	allow := strings.Join(slices.Sorted(maps.Keys(rt.methods)), ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		h, ok := rt.methods[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "invalid_request", fmt.Sprintf("%s %s is not allowed; use %s", r.Method, rt.path, allow))
			return
		}
		var formErr error
		if rt.form {
			// Parsed before counting and faults, so that faulted calls
			// are counted under their grant type too.
			formErr = parseForm(w, r)
		}
		s.count(r, rt.path)
		if rt.faultKey != "" && s.faults.Apply(w, r, rt.faultKey) {
			return
		}
		if formErr != nil {
			writeError(w, http.StatusBadRequest, errInvalidRequest, formErr.Error())
			return
		}
		h(w, r)
	}
}

// count records one call to path in the stats.
func (s *Server) count(r *http.Request, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch path {
	case RouteAuthorize:
		s.stats.AuthorizeCalls++
	case RouteToken:
		s.stats.TokenCalls++
		s.stats.TokenCallsByGrant[r.PostForm.Get("grant_type")]++
	case RouteUserinfo:
		s.stats.UserinfoCalls++
	}
}

// handleNotSimulated answers any other path with the routes it knows, so a
// client pointed at the wrong path finds out at once.
func (s *Server) handleNotSimulated(w http.ResponseWriter, r *http.Request) {
	simkit.NotSimulated(w, r, "OAuth", "", s.routes, nil)
}

// handleSimFaultsSet injects one fault: POST /_sim/faults with a JSON
// faultJSON. A body with only the route clears that route.
func (s *Server) handleSimFaultsSet(w http.ResponseWriter, r *http.Request) {
	var in faultJSON
	if err := simkit.DecodeStrict(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f := Fault{
		Status:     in.Status,
		RetryAfter: time.Duration(in.RetryAfterSeconds) * time.Second,
		Latency:    time.Duration(in.LatencyMS) * time.Millisecond,
		OAuthError: in.OAuthError,
		Count:      in.Count,
	}
	if err := s.Fault(in.Route, f); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.handleSimFaultsList(w, r)
}

// handleSimFaultsList answers the faults in place, by route.
func (s *Server) handleSimFaultsList(w http.ResponseWriter, r *http.Request) {
	out := map[string]faultJSON{}
	for _, e := range s.faults.Snapshot() {
		oauthErr, _ := e.Extra.(string)
		out[e.Route] = faultJSON{
			Route:             e.Route,
			Status:            e.Status,
			RetryAfterSeconds: int((e.RetryAfter + time.Second - 1) / time.Second),
			LatencyMS:         int(e.Latency / time.Millisecond),
			OAuthError:        oauthErr,
			Count:             e.Remaining,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"faults": out})
}

func (s *Server) handleSimFaultsClear(w http.ResponseWriter, r *http.Request) {
	s.ClearFaults()
	writeJSON(w, http.StatusOK, map[string]any{"faults": map[string]faultJSON{}})
}

func (s *Server) handleSimReset(w http.ResponseWriter, r *http.Request) {
	s.Reset()
	writeJSON(w, http.StatusOK, map[string]any{"reset": true})
}

func (s *Server) handleSimStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}
