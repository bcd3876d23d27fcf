// Package simkit is the machinery every third-party simulator under
// internal/sandbox shares, so each simulator is only the service it stands
// in for. A simulator gets from it:
//
//   - a fault Registry: per-route latency, an injected 429 or 5xx (4xx where
//     the simulator allows it) with Retry-After, a hang that holds the
//     request until the client gives up or the faults are cleared, a count
//     of requests the fault applies to, and a hook for a simulator's own
//     kind of fault (the OAuth simulator's "200 with an error field");
//   - the HTTP controls: FaultsHandler for GET/POST/DELETE /_sim/faults in
//     the common JSON shape (JSONFault, with JSONOptions), DecodeStrict for
//     simulators that keep their own wire shape, and ResetHandler for POST
//     /_sim/reset; a Router registers a simulator's routes behind its
//     faults and adds all the common controls at once;
//   - NotSimulated, the 404 {"error":"not_simulated",...,"routes":[...]}
//     answer for a route the simulator does not know, so a client pointed
//     at the wrong path finds out at once;
//   - RateLimiter, a fixed-window limiter per key on an injectable clock,
//     and RetryAfter, the Retry-After value of a wait.
//
// Where simulators differ (how a fault route matches a request, whether a
// newer fault on a route replaces the older, the error body a fault
// answers, which statuses carry Retry-After), Options says so; the
// simulator keeps its exported Fault type and methods as thin wrappers.
//
// Tests of the simulators use the settable clock of internal/testutil.
package simkit

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; an encoding error can only be a gone client.
	_ = json.NewEncoder(w).Encode(v)
}

// NotSimulated answers 404 for a route the simulator does not know:
// {"error":"not_simulated","error_description":desc,"routes":routes} plus
// any extra fields (the payments simulators add their error_code). desc
// defaults to "<METHOD> <path> is not simulated by the <name> simulator".
func NotSimulated(w http.ResponseWriter, r *http.Request, name, desc string, routes []string, extra map[string]any) {
	if desc == "" {
		desc = fmt.Sprintf("%s %s is not simulated by the %s simulator", r.Method, r.URL.Path, name)
	}
	body := map[string]any{"error": "not_simulated", "error_description": desc, "routes": routes}
	for k, v := range extra {
		body[k] = v
	}
	WriteJSON(w, http.StatusNotFound, body)
}

// ResetHandler serves POST /_sim/reset: it calls reset and answers
// status, with body as JSON unless it is nil.
func ResetHandler(reset func(), status int, body any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reset()
		if body == nil {
			w.WriteHeader(status)
			return
		}
		WriteJSON(w, status, body)
	}
}

// MaxControlBody bounds the body of a control request.
const MaxControlBody = 64 << 10

// DecodeStrict decodes one JSON value of at most MaxControlBody bytes from
// r's body into v, refusing unknown fields, so a misspelt fault field
// fails loudly instead of injecting nothing.
func DecodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode fault: %w", err)
	}
	return nil
}

// RetryAfter renders a wait as a Retry-After value: whole seconds,
// rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(int(math.Ceil(d.Seconds())), 1))
}
