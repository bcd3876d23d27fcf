package payments

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
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

// HangMax bounds a hanging request, so a test that forgets its client
// timeout still ends.
const HangMax = 2 * time.Minute

// Faults holds per-route fault injection for a simulator. Route "*"
// applies to every route. The zero value is not usable; use NewFaults. It
// is safe for concurrent use; the partner simulator shares the type.
type Faults struct {
	mu     sync.Mutex
	byName map[string]*Fault
	stop   chan struct{} // closed by Reset to release hanging requests
}

// NewFaults returns an empty set of faults.
func NewFaults() *Faults {
	return &Faults{byName: map[string]*Fault{}, stop: make(chan struct{})}
}

// Set installs f on route, replacing any fault there.
func (fs *Faults) Set(route string, f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.byName[route] = &f
}

// Reset clears every fault and releases requests that are hanging.
func (fs *Faults) Reset() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.byName = map[string]*Fault{}
	close(fs.stop)
	fs.stop = make(chan struct{})
}

// take returns the fault that applies to route now, consuming one use of a
// counted fault.
func (fs *Faults) take(route string) (Fault, chan struct{}, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, name := range []string{route, "*"} {
		f, ok := fs.byName[name]
		if !ok {
			continue
		}
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				delete(fs.byName, name)
			}
		}
		return *f, fs.stop, true
	}
	return Fault{}, nil, false
}

// Apply runs the fault for route, if any. It returns true when the request
// has been dealt with (answered with the fault's status, or hung until
// released) and the route must not run. writeError answers a status in the
// simulator's own error format.
func (fs *Faults) Apply(w http.ResponseWriter, r *http.Request, route string, writeError func(w http.ResponseWriter, status int)) bool {
	f, stop, ok := fs.take(route)
	if !ok {
		return false
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-stop:
			t.Stop()
		}
	}
	if f.Hang {
		t := time.NewTimer(HangMax)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-stop:
		case <-t.C:
		}
		// Whoever waited is gone or the simulator was reset: close the
		// connection rather than answer, as a dead upstream would.
		panic(http.ErrAbortHandler)
	}
	if f.Status != 0 {
		if f.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", RetryAfterSeconds(f.RetryAfter))
		}
		writeError(w, f.Status)
		return true
	}
	return false
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
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr); err != nil {
		return "", Fault{}, errorString("invalid JSON body: " + err.Error())
	}
	known := fr.Route == "*"
	for _, rt := range routes {
		known = known || rt == fr.Route
	}
	switch {
	case !known:
		return "", Fault{}, errorString("unknown route " + strconv.Quote(fr.Route))
	case fr.Status != 0 && fr.Status != 429 && (fr.Status < 500 || fr.Status > 599):
		return "", Fault{}, errorString("status must be 429 or 5xx")
	case fr.LatencyMS < 0 || fr.RetryAfterS < 0 || fr.Count < 0:
		return "", Fault{}, errorString("latency_ms, retry_after_s and count must not be negative")
	case fr.LatencyMS == 0 && fr.Status == 0 && !fr.Hang:
		return "", Fault{}, errorString("a fault needs latency_ms, status or hang")
	}
	return fr.Route, Fault{
		Latency:    time.Duration(fr.LatencyMS) * time.Millisecond,
		Status:     fr.Status,
		RetryAfter: time.Duration(fr.RetryAfterS) * time.Second,
		Hang:       fr.Hang,
		Count:      fr.Count,
	}, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// RateLimiter counts requests per key in fixed windows, on an injectable
// clock. It is safe for concurrent use; the partner simulator shares it.
type RateLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]*rateWindow
}

type rateWindow struct {
	start time.Time
	n     int
}

// NewRateLimiter allows limit requests per key per window; limit <= 0
// disables limiting.
func NewRateLimiter(limit int, window time.Duration, now func() time.Time) *RateLimiter {
	return &RateLimiter{limit: limit, window: window, now: now, keys: map[string]*rateWindow{}}
}

// Allow counts one request for key. When the key is over its limit it
// returns false and how long until its window ends.
func (rl *RateLimiter) Allow(key string) (bool, time.Duration) {
	if rl.limit <= 0 {
		return true, 0
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	now := rl.now()
	w := rl.keys[key]
	if w == nil || !now.Before(w.start.Add(rl.window)) {
		w = &rateWindow{start: now}
		rl.keys[key] = w
	}
	if w.n >= rl.limit {
		return false, w.start.Add(rl.window).Sub(now)
	}
	w.n++
	return true, 0
}

// Reset forgets every window.
func (rl *RateLimiter) Reset() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.keys = map[string]*rateWindow{}
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1, for a
// Retry-After header.
func RetryAfterSeconds(d time.Duration) string {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}
