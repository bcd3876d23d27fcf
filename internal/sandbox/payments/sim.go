package payments

import (
	"net/http"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// Fault is what the simulator does to requests on one route instead of (or
// before) answering them normally.
type Fault struct {
	// Latency delays the answer.
	Latency time.Duration
	// Status, when non-zero (429 or 5xx), is answered instead of the
	// route's result, with the simulator's error body.
	Status int
	// RetryAfter is sent as Retry-After (whole seconds, at least 1) with a
	// 429 Status. Default 1 s.
	RetryAfter time.Duration
	// Hang holds the request without answering until the client gives up,
	// the simulator is reset, or HangMax passes: a timeout, seen from the
	// client.
	Hang bool
	// Count limits the fault to the next Count requests; 0 means until
	// cleared or reset.
	Count int
}

func (f Fault) sim(route string) simkit.Fault {
	return simkit.Fault{Route: route, Status: f.Status, RetryAfter: f.RetryAfter, Latency: f.Latency, Hang: f.Hang, Count: f.Count}
}

// HangMax bounds a hanging request, so a test that forgets its client
// timeout still ends.
const HangMax = 2 * time.Minute

// faultOptions are the fault rules of this simulator and the partner's: a
// fault on a route replaces the one there, a fault on the route wins over
// "*", Retry-After goes with 429 only. routes, when not nil, are the
// routes a fault may name.
func faultOptions(routes []string) simkit.Options {
	return simkit.Options{Routes: routes, ExactFirst: true, HangMax: HangMax}
}

// Faults holds per-route fault injection for a simulator. Route "*"
// applies to every route. The zero value is not usable; use NewFaults. It
// is safe for concurrent use; the partner simulator shares the type.
type Faults struct {
	reg *simkit.Registry
}

// NewFaults returns an empty set of faults.
func NewFaults() *Faults { return &Faults{reg: simkit.NewRegistry(faultOptions(nil))} }

// Set installs f on route, replacing any fault there.
func (fs *Faults) Set(route string, f Fault) { fs.reg.Set(f.sim(route)) }

// Reset clears every fault and releases requests that are hanging.
func (fs *Faults) Reset() { fs.reg.Clear() }

// Apply runs the fault for route, if any. It returns true when the request
// has been dealt with (answered with the fault's status, or hung until
// released) and the route must not run. writeError answers a status in the
// simulator's own error format.
func (fs *Faults) Apply(w http.ResponseWriter, r *http.Request, route string, writeError func(w http.ResponseWriter, status int)) bool {
	return fs.reg.ApplyAnswer(w, r, route, func(w http.ResponseWriter, _ *http.Request, _ string, f simkit.Fault) {
		writeError(w, f.Status)
	})
}

// FaultRequest is the body of POST /_sim/faults.
type FaultRequest struct {
	Route       string `json:"route"` // a known route, or "*"
	LatencyMS   int    `json:"latency_ms"`
	Status      int    `json:"status"`
	RetryAfterS int    `json:"retry_after_s"`
	Hang        bool   `json:"hang"`
	Count       int    `json:"count"`
}

// ParseFaultRequest decodes and validates a POST /_sim/faults body against
// the simulator's routes. The error is safe to show to the caller.
func ParseFaultRequest(r *http.Request, routes []string) (string, Fault, error) {
	var fr FaultRequest
	if err := simkit.DecodeStrict(nil, r, &fr); err != nil {
		return "", Fault{}, err
	}
	f := Fault{
		Latency:    time.Duration(fr.LatencyMS) * time.Millisecond,
		Status:     fr.Status,
		RetryAfter: time.Duration(fr.RetryAfterS) * time.Second,
		Hang:       fr.Hang,
		Count:      fr.Count,
	}
	if err := faultOptions(routes).Validate(f.sim(fr.Route)); err != nil {
		return "", Fault{}, err
	}
	return fr.Route, f, nil
}

// RateLimiter counts requests per key in fixed windows, on an injectable
// clock; the partner simulator shares it.
type RateLimiter = simkit.RateLimiter

// NewRateLimiter allows limit requests per key per window; limit <= 0
// disables limiting.
func NewRateLimiter(limit int, window time.Duration, now func() time.Time) *RateLimiter {
	return simkit.NewRateLimiter(limit, window, now)
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1, for a
// Retry-After header.
func RetryAfterSeconds(d time.Duration) string { return simkit.RetryAfter(d) }
