package simkit

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Wildcard is the fault route that matches every simulated route.
const Wildcard = "*"

// HangMaxDefault bounds a hanging request, so a test that forgets its
// client timeout still ends.
const HangMaxDefault = 2 * time.Minute

// Fault makes a simulator misbehave on one route, as a flaky real service
// does. Latency comes first; then Hang, or the answer of Status or Extra.
type Fault struct {
	// Route is the key the fault is registered under: a route as the
	// simulator names it, or Wildcard. Options.Match says what it matches.
	Route string
	// Status, when set, is answered instead of the route's result.
	Status int
	// RetryAfter is sent as Retry-After with Status (see
	// Options.RetryStatuses).
	RetryAfter time.Duration
	// Latency delays the answer, faulty or not; the wait ends early when
	// the client goes away or the faults are cleared.
	Latency time.Duration
	// Hang holds the request without answering until the client gives up,
	// the faults are cleared or Options.HangMax passes, then drops the
	// connection: a timeout, seen from the client.
	Hang bool
	// Count is how many requests the fault applies to; 0 means until
	// cleared.
	Count int
	// Extra is a simulator's own kind of fault, answered by
	// Options.Answer when Status is 0 (the OAuth simulator's error in a
	// 200 answer). Nil for none.
	Extra any
}

// Entry is a registered fault and how many requests it has left.
type Entry struct {
	Fault
	// Remaining is how many more requests a counted fault applies to (0
	// for a spent one kept by Options.KeepSpent); 0 for an uncounted one.
	Remaining int
}

// AnswerFunc writes a fault's answer (Retry-After already set).
type AnswerFunc func(w http.ResponseWriter, r *http.Request, route string, f Fault)

// Options describes how a simulator's faults behave. The zero value is
// the common behaviour.
type Options struct {
	// Routes are the keys a fault may name (Validate). Nil: any non-empty
	// key.
	Routes []string
	// NoWildcard refuses Wildcard as a fault route and never matches it.
	NoWildcard bool
	// Match reports whether a fault registered under key applies to a
	// request on route. Default: key is route, or Wildcard.
	Match func(key, route string, r *http.Request) bool
	// ExactFirst makes a fault registered on exactly the route win over
	// an earlier wildcard one. Default: the first registered match wins.
	ExactFirst bool
	// KeepSpent keeps a counted fault listed once it is used up (it no
	// longer applies). Default: it is removed.
	KeepSpent bool
	// Allow4xx lets a fault answer a 4xx too. Default: 429 or a 5xx.
	Allow4xx bool
	// AllowNoop accepts a fault that does nothing. Default: a fault needs
	// a status, latency, hang or Extra.
	AllowNoop bool
	// RetryStatuses are the statuses whose answer always carries
	// Retry-After: the fault's RetryAfter, or 1 s when it gives none.
	// Default: 429 only.
	RetryStatuses []int
	// RetryAnyStatus also sends a fault's RetryAfter, when it gives one,
	// with statuses outside RetryStatuses.
	RetryAnyStatus bool
	// HangMax bounds a Hang. Default HangMaxDefault.
	HangMax time.Duration
	// Answer writes a fault's Status or Extra answer in the simulator's
	// error format. Default: {"error":"simulated_fault",...} with Status.
	Answer AnswerFunc
	// OnTake is called for each request a fault applies to, outside the
	// registry's lock (for a simulator's counters).
	OnTake func(route string, f Fault)
}

// Registry holds a simulator's injected faults. It is safe for concurrent
// use; make one with NewRegistry.
type Registry struct {
	opts Options

	mu      sync.Mutex
	list    []*Entry
	release chan struct{} // closed by Clear, ending held requests
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry {
	if opts.HangMax <= 0 {
		opts.HangMax = HangMaxDefault
	}
	if opts.RetryStatuses == nil {
		opts.RetryStatuses = []int{http.StatusTooManyRequests}
	}
	if opts.Answer == nil {
		opts.Answer = answerDefault
	}
	if opts.Match == nil {
		noWild := opts.NoWildcard
		opts.Match = func(key, route string, _ *http.Request) bool {
			return key == route || (!noWild && key == Wildcard)
		}
	}
	return &Registry{opts: opts, release: make(chan struct{})}
}

// Validate checks f against the registry's options (Options.Validate).
func (g *Registry) Validate(f Fault) error { return g.opts.Validate(f) }

// Validate checks f against the options: a known route, an allowed
// status, no negative number, and (unless AllowNoop) an effect. The error
// is safe to show to the caller.
func (o Options) Validate(f Fault) error {
	wild := f.Route == Wildcard && !o.NoWildcard
	switch {
	case f.Route == "":
		return errors.New("a fault needs a route")
	case o.Routes != nil && !wild && !slices.Contains(o.Routes, f.Route):
		return fmt.Errorf("unknown route %q; known routes: %v", f.Route, o.Routes)
	case f.Status != 0 && o.Allow4xx && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("status %d: a fault answers a 4xx or a 5xx", f.Status)
	case f.Status != 0 && !o.Allow4xx && f.Status != http.StatusTooManyRequests && (f.Status < 500 || f.Status > 599):
		return fmt.Errorf("status %d: a fault answers 429 or a 5xx", f.Status)
	case f.Latency < 0 || f.Count < 0 || f.RetryAfter < 0:
		return errors.New("latency, count and retry-after must not be negative")
	case !o.AllowNoop && f.Status == 0 && f.Latency == 0 && !f.Hang && f.Extra == nil:
		return errors.New("a fault needs a status, a latency or a hang")
	}
	return nil
}

// Add registers f after the faults already there.
func (g *Registry) Add(f Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.list = append(g.list, &Entry{Fault: f, Remaining: f.Count})
}

// Set registers f in place of the faults on the same route.
func (g *Registry) Set(f Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleteLocked(f.Route)
	g.list = append(g.list, &Entry{Fault: f, Remaining: f.Count})
}

// Delete removes the faults on route.
func (g *Registry) Delete(route string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleteLocked(route)
}

func (g *Registry) deleteLocked(route string) {
	g.list = slices.DeleteFunc(g.list, func(e *Entry) bool { return e.Route == route })
}

// Clear removes every fault and releases the requests a fault holds.
func (g *Registry) Clear() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.list = nil
	close(g.release)
	g.release = make(chan struct{})
}

// Snapshot returns the registered faults, in the order registered.
func (g *Registry) Snapshot() []Entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Entry, 0, len(g.list))
	for _, e := range g.list {
		out = append(out, *e)
	}
	return out
}

// take returns the fault that applies to a request on route, using one of
// its count.
func (g *Registry) take(r *http.Request, route string) (Fault, chan struct{}, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	live := func(e *Entry) bool { return e.Count == 0 || e.Remaining > 0 }
	i := -1
	if g.opts.ExactFirst {
		i = slices.IndexFunc(g.list, func(e *Entry) bool { return live(e) && e.Route == route })
	}
	if i < 0 {
		i = slices.IndexFunc(g.list, func(e *Entry) bool { return live(e) && g.opts.Match(e.Route, route, r) })
	}
	if i < 0 {
		return Fault{}, nil, false
	}
	e := g.list[i]
	if e.Count > 0 {
		e.Remaining--
		if e.Remaining == 0 && !g.opts.KeepSpent {
			g.list = slices.Delete(g.list, i, i+1)
		}
	}
	return e.Fault, g.release, true
}

// Apply runs the fault that applies to a request on route, if any, and
// reports whether it dealt with the request (answered it, or abandoned it
// because the client went away), so the route must not run.
func (g *Registry) Apply(w http.ResponseWriter, r *http.Request, route string) bool {
	return g.ApplyAnswer(w, r, route, g.opts.Answer)
}

// ApplyAnswer is Apply with answer in place of Options.Answer.
func (g *Registry) ApplyAnswer(w http.ResponseWriter, r *http.Request, route string, answer AnswerFunc) bool {
	f, release, ok := g.take(r, route)
	if !ok {
		return false
	}
	if g.opts.OnTake != nil {
		g.opts.OnTake(route, f)
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true // the client gave up; nobody reads an answer
		case <-release:
			t.Stop()
		}
	}
	if f.Hang {
		t := time.NewTimer(g.opts.HangMax)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-release:
		case <-t.C:
		}
		// Close the connection rather than answer, as a dead upstream
		// would.
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 && f.Extra == nil {
		return false
	}
	if f.Status != 0 {
		ra := f.RetryAfter
		if ra == 0 && slices.Contains(g.opts.RetryStatuses, f.Status) {
			ra = time.Second
		}
		if ra > 0 && (g.opts.RetryAnyStatus || slices.Contains(g.opts.RetryStatuses, f.Status)) {
			w.Header().Set("Retry-After", RetryAfter(ra))
		}
	}
	answer(w, r, route, f)
	return true
}

func answerDefault(w http.ResponseWriter, _ *http.Request, route string, f Fault) {
	WriteJSON(w, f.Status, map[string]any{
		"error":             "simulated_fault",
		"error_description": fmt.Sprintf("fault injected on %s", route),
	})
}
