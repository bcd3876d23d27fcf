package simkit

import (
	"net/http"
	"slices"
	"time"
)

// JSONFault is a fault in the common wire shape of /_sim/faults, the one
// FaultsHandler serves.
type JSONFault struct {
	// Route is a route as the not-simulated answer lists it (for example
	// "POST /api/v4/initiate"), or "*" for every simulated route.
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

// Fault converts the wire shape.
func (j JSONFault) Fault() Fault {
	return Fault{
		Route:      j.Route,
		Status:     j.Status,
		RetryAfter: time.Duration(j.RetryAfter) * time.Second,
		Latency:    time.Duration(j.LatencyMS) * time.Millisecond,
		Hang:       j.Timeout,
		Count:      j.Count,
	}
}

// JSON converts e to the wire shape, its count being what is left.
func (e Entry) JSON() JSONFault {
	return JSONFault{
		Route:      e.Route,
		Status:     e.Status,
		LatencyMS:  int(e.Latency / time.Millisecond),
		Timeout:    e.Hang,
		RetryAfter: int(e.RetryAfter / time.Second),
		Count:      e.Remaining,
	}
}

// FaultsHandler serves /_sim/faults in the common shape: GET lists
// {"faults":[JSONFault...]}, POST adds one JSONFault and answers it with
// 201, DELETE clears the faults (releasing held requests) with 204. A bad
// fault is 400 {"error":"invalid_fault"}.
func FaultsHandler(g *Registry) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			list := []JSONFault{}
			for _, e := range g.Snapshot() {
				list = append(list, e.JSON())
			}
			WriteJSON(w, http.StatusOK, map[string]any{"faults": list})
		case http.MethodPost:
			var jf JSONFault
			err := DecodeStrict(w, r, &jf)
			if err == nil {
				err = g.Validate(jf.Fault())
			}
			if err != nil {
				WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_fault", "error_description": err.Error()})
				return
			}
			g.Add(jf.Fault())
			WriteJSON(w, http.StatusCreated, jf)
		case http.MethodDelete:
			g.Clear()
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			WriteJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "method_not_allowed"})
		}
	}
}

// JSONOptions are the fault rules that go with the common wire shape:
// faults on routes, 429 or a 5xx, Retry-After (default 1 s) with 429 and
// 503 and with any status whose fault gives one.
func JSONOptions(routes []string) Options {
	return Options{
		Routes:         routes,
		RetryStatuses:  []int{http.StatusTooManyRequests, http.StatusServiceUnavailable},
		RetryAnyStatus: true,
	}
}

// Router registers a simulator's routes ("METHOD /path" patterns) on a
// ServeMux, each subject to injected faults, and remembers them for the
// not-simulated answer and for validating faults.
type Router struct {
	mux    *http.ServeMux
	routes []string
	faults *Registry // made by Controls, once every route is known
}

// NewRouter returns a Router on mux.
func NewRouter(mux *http.ServeMux) *Router { return &Router{mux: mux} }

// Handle registers h on route; an injected fault runs first.
func (rt *Router) Handle(route string, h http.HandlerFunc) {
	rt.routes = append(rt.routes, route)
	rt.mux.HandleFunc(route, func(w http.ResponseWriter, r *http.Request) {
		if rt.faults.Apply(w, r, route) {
			return
		}
		h(w, r)
	})
}

// Routes returns the routes handled so far.
func (rt *Router) Routes() []string { return slices.Clone(rt.routes) }

// Controls registers the common controls after the routes: /_sim/faults
// (FaultsHandler, with JSONOptions), POST /_sim/reset (calls reset,
// answers 204) and the not-simulated answer for anything else, naming the
// simulator name. It returns the fault registry.
func (rt *Router) Controls(name string, reset func()) *Registry {
	rt.faults = NewRegistry(JSONOptions(rt.Routes()))
	rt.mux.HandleFunc("/_sim/faults", FaultsHandler(rt.faults))
	rt.mux.HandleFunc("POST /_sim/reset", ResetHandler(reset, http.StatusNoContent, nil))
	routes := rt.Routes()
	rt.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		NotSimulated(w, r, name, "", routes, nil)
	})
	return rt.faults
}
