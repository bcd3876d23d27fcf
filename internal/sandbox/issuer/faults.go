package issuer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Fault makes the simulator misbehave on one route, as a flaky real
// service does. It is posted as JSON to /_sim/faults.
type Fault struct {
	// Route is a route as the not-simulated answer lists it (for example
	// "GET /.well-known/jwks.json"), or "*" for every simulated route.
	Route string `json:"route"`
	// Status, when set, is answered instead of the real response: a 5xx,
	// or 429 (with Retry-After).
	Status int `json:"status,omitempty"`
	// LatencyMS delays the answer (real or faulty) by this many
	// milliseconds.
	LatencyMS int `json:"latency_ms,omitempty"`
	// Timeout holds the request without answering until the client gives
	// up (or the simulator is reset), as an overloaded server does.
	Timeout bool `json:"timeout,omitempty"`
	// RetryAfter is the Retry-After value in seconds sent with Status.
	// Default 1 for 429 and 503.
	RetryAfter int `json:"retry_after,omitempty"`
	// Count is how many requests the fault applies to; 0 means until
	// reset.
	Count int `json:"count,omitempty"`
}

// faults holds the injected faults. It is safe for concurrent use.
type faults struct {
	mu     sync.Mutex
	list   []*Fault
	resetC chan struct{} // closed on reset, releasing held requests
}

func newFaults() *faults { return &faults{resetC: make(chan struct{})} }

func (f *faults) add(ft Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, &ft)
}

func (f *faults) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = nil
	close(f.resetC)
	f.resetC = make(chan struct{})
}

func (f *faults) snapshot() []Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Fault, 0, len(f.list))
	for _, ft := range f.list {
		out = append(out, *ft)
	}
	return out
}

// take returns the first fault for route and uses one of its count, or
// nil.
func (f *faults) take(route string) (*Fault, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.list {
		if ft.Route != route && ft.Route != "*" {
			continue
		}
		got := *ft
		if ft.Count > 0 {
			ft.Count--
			if ft.Count == 0 {
				f.list = slices.Delete(f.list, i, i+1)
			}
		}
		return &got, f.resetC
	}
	return nil, nil
}

// apply applies the first fault registered for route before its handler runs. It reports
// whether the request was answered (or abandoned) by a fault.
func (f *faults) apply(w http.ResponseWriter, r *http.Request, route string) bool {
	ft, resetC := f.take(route)
	if ft == nil {
		return false
	}
	if ft.Timeout {
		select {
		case <-r.Context().Done():
		case <-resetC:
		}
		// Drop the connection without an answer.
		panic(http.ErrAbortHandler)
	}
	if ft.LatencyMS > 0 {
		t := time.NewTimer(time.Duration(ft.LatencyMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-resetC:
			t.Stop()
		}
	}
	if ft.Status == 0 {
		return false
	}
	retry := ft.RetryAfter
	if retry == 0 && (ft.Status == http.StatusTooManyRequests || ft.Status == http.StatusServiceUnavailable) {
		retry = 1
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	writeJSON(w, ft.Status, map[string]any{
		"error":             "simulated_fault",
		"error_description": fmt.Sprintf("fault injected on %s", route),
	})
	return true
}

// validate checks a posted fault against the known routes.
func (ft Fault) validate(routes []string) error {
	if ft.Route != "*" && !slices.Contains(routes, ft.Route) {
		return fmt.Errorf("unknown route %q; known routes: %v", ft.Route, routes)
	}
	if ft.Status != 0 && ft.Status != http.StatusTooManyRequests && (ft.Status < 500 || ft.Status > 599) {
		return fmt.Errorf("status %d: a fault answers 429 or a 5xx", ft.Status)
	}
	if ft.LatencyMS < 0 || ft.Count < 0 || ft.RetryAfter < 0 {
		return fmt.Errorf("latency_ms, count and retry_after must not be negative")
	}
	if ft.Status == 0 && ft.LatencyMS == 0 && !ft.Timeout {
		return fmt.Errorf("a fault needs status, latency_ms or timeout")
	}
	return nil
}

// handle serves /_sim/faults: GET lists, POST adds one, DELETE
// clears them.
func (f *faults) handle(routes []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"faults": f.snapshot()})
		case http.MethodPost:
			var ft Fault
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ft); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_fault", "error_description": err.Error()})
				return
			}
			if err := ft.validate(routes); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_fault", "error_description": err.Error()})
				return
			}
			f.add(ft)
			writeJSON(w, http.StatusCreated, ft)
		case http.MethodDelete:
			f.reset()
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "method_not_allowed"})
		}
	}
}

// notSimulated answers a route the simulator does not know, listing the
// ones it does.
func notSimulated(w http.ResponseWriter, r *http.Request, name string, routes []string) {
	writeJSON(w, http.StatusNotFound, map[string]any{
		"error":             "not_simulated",
		"error_description": fmt.Sprintf("%s %s is not simulated by the %s simulator", r.Method, r.URL.Path, name),
		"routes":            routes,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
