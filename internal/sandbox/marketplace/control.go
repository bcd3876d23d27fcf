package marketplace

import (
	"encoding/json"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// RateLimits are the limits per client IP address: token buckets for
// queries (GET) and commands (POST) that refill at a steady rate and hold
// at most a burst, and a cap on requests in progress at once. A request
// over any of them is answered 429 too-many-requests with Retry-After.
type RateLimits struct {
	QueriesPerSecond  float64
	QueryBurst        int
	CommandsPerSecond float64
	CommandBurst      int
	// MaxConcurrent is the most requests one client may have in progress;
	// 0 means no limit.
	MaxConcurrent int
}

// DevRateLimits returns the limits of Sharetribe's dev and test
// environments: 1 query per second and 1 command per 2 seconds on
// average, per client IP. Sharetribe does not publish the bursts it
// allows; its own Integration SDK's dev limiter configurations
// (devQueryLimiterConfig, devCommandLimiterConfig) start with 100 queries
// and 50 commands in the bucket and say they keep a client within the
// API's limits, so the API tolerates at least those bursts, and they are
// what this uses. The concurrency limit is 10 requests, what backlot's
// client keeps to.
func DevRateLimits() *RateLimits {
	return &RateLimits{QueriesPerSecond: 1, QueryBurst: 100, CommandsPerSecond: 0.5, CommandBurst: 50, MaxConcurrent: 10}
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take takes one token if there is one, else says how long until there
// is.
func (b *tokenBucket) take(now time.Time, rate float64, burst int) (bool, time.Duration) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+el*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if rate <= 0 {
		return false, time.Hour
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

type clientBuckets struct {
	query, command tokenBucket
}

// SecondStats counts the API requests that arrived within one second of
// the simulator's clock.
type SecondStats struct {
	Second   time.Time `json:"second"`
	Queries  int       `json:"queries"`
	Commands int       `json:"commands"`
	Limited  int       `json:"limited"` // answered 429 by the rate limits
}

// Stats counts the Marketplace and Integration API requests the simulator
// has seen since it was made or reset.
type Stats struct {
	Queries  int `json:"queries"`
	Commands int `json:"commands"`
	// Limited is how many were answered 429 by the rate limits (not by
	// injected faults).
	Limited int `json:"limited"`
	// MaxInFlight is the most requests that were in progress at once.
	MaxInFlight int `json:"max_in_flight"`
	// PerSecond has one entry per second that saw a request, oldest first
	// (the last hour's worth at most).
	PerSecond []SecondStats `json:"per_second"`
}

type statsState struct {
	Stats
	perSecond map[int64]*SecondStats
}

const statsSeconds = 3600

// Stats returns a copy of the request counters.
func (m *Marketplace) Stats() Stats {
	m.ctl.Lock()
	defer m.ctl.Unlock()
	s := m.stats.Stats
	s.PerSecond = make([]SecondStats, 0, len(m.stats.perSecond))
	for _, v := range m.stats.perSecond {
		s.PerSecond = append(s.PerSecond, *v)
	}
	slices.SortFunc(s.PerSecond, func(a, b SecondStats) int { return a.Second.Compare(b.Second) })
	return s
}

func isAPIPath(p string) bool {
	return strings.HasPrefix(p, "/v1/api/") || strings.HasPrefix(p, "/v1/integration_api/")
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// admit counts an API request and applies the rate limits, answering the
// 429 itself. On success the caller must call done when the request ends.
func (m *Marketplace) admit(w http.ResponseWriter, r *http.Request) (done func(), ok bool) {
	command := r.Method != http.MethodGet && r.Method != http.MethodHead
	ip := clientIP(r)
	now := m.opts.Now()

	m.ctl.Lock()
	sec := now.Unix()
	ps := m.stats.perSecond[sec]
	if ps == nil {
		ps = &SecondStats{Second: time.Unix(sec, 0).UTC()}
		m.stats.perSecond[sec] = ps
		if len(m.stats.perSecond) > statsSeconds {
			for k := range m.stats.perSecond {
				if k < sec-statsSeconds {
					delete(m.stats.perSecond, k)
				}
			}
		}
	}
	if command {
		m.stats.Commands++
		ps.Commands++
	} else {
		m.stats.Queries++
		ps.Queries++
	}
	var wait time.Duration
	limited := false
	if rl := m.opts.RateLimits; rl != nil {
		b := m.buckets[ip]
		if b == nil {
			b = &clientBuckets{}
			m.buckets[ip] = b
		}
		var allowed bool
		if command {
			allowed, wait = b.command.take(now, rl.CommandsPerSecond, rl.CommandBurst)
		} else {
			allowed, wait = b.query.take(now, rl.QueriesPerSecond, rl.QueryBurst)
		}
		if !allowed {
			limited = true
		} else if rl.MaxConcurrent > 0 && m.inFlight[ip] >= rl.MaxConcurrent {
			limited, wait = true, time.Second
		}
	}
	if limited {
		m.stats.Limited++
		ps.Limited++
		m.ctl.Unlock()
		writeTooManyRequests(w, r, wait)
		return nil, false
	}
	m.inFlight[ip]++
	total := 0
	for _, n := range m.inFlight {
		total += n
	}
	m.stats.MaxInFlight = max(m.stats.MaxInFlight, total)
	m.ctl.Unlock()
	return func() {
		m.ctl.Lock()
		if m.inFlight[ip]--; m.inFlight[ip] <= 0 {
			delete(m.inFlight, ip)
		}
		m.ctl.Unlock()
	}, true
}

func writeTooManyRequests(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	apiError(w, r, http.StatusTooManyRequests, "too-many-requests", "Too many requests", "")
}

// Fault is a failure injected into one route.
type Fault struct {
	// Route is "METHOD /path" or "/path" (any method), an exact path.
	Route string `json:"route"`
	// Status, when set, is answered instead of the route: 429 with
	// Retry-After and too-many-requests, any other status with
	// Sharetribe's error body.
	Status int `json:"status,omitempty"`
	// RetryAfter is the Retry-After of an injected 429, in seconds.
	// Default 1.
	RetryAfter int `json:"retry_after,omitempty"`
	// LatencyMS delays the answer (real time) by this many milliseconds.
	LatencyMS int `json:"latency_ms,omitempty"`
	// Timeout makes the request hang until the client gives up (or one
	// minute passes), never answering.
	Timeout bool `json:"timeout,omitempty"`
	// Times is how many requests the fault affects; 0 means until the
	// faults are cleared.
	Times int `json:"times,omitempty"`
}

func (f Fault) sim() simkit.Fault {
	return simkit.Fault{
		Route:      f.Route,
		Status:     f.Status,
		RetryAfter: time.Duration(f.RetryAfter) * time.Second,
		Latency:    time.Duration(f.LatencyMS) * time.Millisecond,
		Hang:       f.Timeout,
		Count:      f.Times,
	}
}

func faultOf(f simkit.Fault) Fault {
	return Fault{
		Route:      f.Route,
		Status:     f.Status,
		RetryAfter: int(f.RetryAfter / time.Second),
		LatencyMS:  int(f.Latency / time.Millisecond),
		Timeout:    f.Hang,
		Times:      f.Count,
	}
}

// newFaults returns the fault registry: faults match "METHOD /path" or
// "/path" against the request, in the order added; a used-up fault stays
// listed; a fault may answer any 4xx or 5xx; a timeout gives up after a
// minute.
func newFaults() *simkit.Registry {
	return simkit.NewRegistry(simkit.Options{
		Match:     matchFault,
		KeepSpent: true,
		Allow4xx:  true,
		AllowNoop: true,
		HangMax:   time.Minute,
		Answer:    answerFault,
	})
}

func matchFault(key, _ string, r *http.Request) bool {
	method, path, hasMethod := strings.Cut(key, " ")
	if !hasMethod {
		method, path = "", key
	}
	return path == r.URL.Path && (method == "" || method == r.Method)
}

// answerFault answers an injected status in Sharetribe's error format:
// 429 as the rate limits do, others with the code Sharetribe uses for
// the status.
func answerFault(w http.ResponseWriter, r *http.Request, _ string, f simkit.Fault) {
	if f.Status == http.StatusTooManyRequests {
		apiError(w, r, http.StatusTooManyRequests, "too-many-requests", "Too many requests", "")
		return
	}
	code := map[int]string{400: "bad-request", 401: "auth-invalid-access-token", 403: "forbidden", 404: "not-found", 409: "conflict"}[f.Status]
	if code == "" {
		code = "server-error"
	}
	apiError(w, r, f.Status, code, http.StatusText(f.Status), "injected fault")
}

// InjectFault adds a fault. Faults are matched in the order added; the
// first that matches a request and has uses left applies.
func (m *Marketplace) InjectFault(f Fault) { m.faults.Add(f.sim()) }

// ClearFaults removes every injected fault.
func (m *Marketplace) ClearFaults() { m.faults.Clear() }

func (m *Marketplace) handleFaultsList(w http.ResponseWriter, r *http.Request) {
	out := []Fault{}
	for _, e := range m.faults.Snapshot() {
		out = append(out, faultOf(e.Fault))
	}
	writeJSON(w, http.StatusOK, map[string]any{"faults": out})
}

// handleFaultsAdd adds one fault (a JSON Fault) or several (a JSON array).
func (m *Marketplace) handleFaultsAdd(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err := d.Decode(&raw); err != nil {
		writeSimError(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON fault or array of faults")
		return
	}
	var list []Fault
	if err := json.Unmarshal(raw, &list); err != nil {
		var one Fault
		if err := json.Unmarshal(raw, &one); err != nil {
			writeSimError(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON fault or array of faults")
			return
		}
		list = []Fault{one}
	}
	for _, f := range list {
		if err := m.faults.Validate(f.sim()); err != nil {
			writeSimError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
	}
	for _, f := range list {
		m.InjectFault(f)
	}
	m.handleFaultsList(w, r)
}

func (m *Marketplace) handleFaultsClear(w http.ResponseWriter, r *http.Request) {
	m.ClearFaults()
	m.handleFaultsList(w, r)
}

func (m *Marketplace) handleReset(w http.ResponseWriter, r *http.Request) {
	m.Reset()
	writeJSON(w, http.StatusOK, map[string]any{"reset": true})
}

func (m *Marketplace) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, m.Stats())
}

// handleNotSimulated answers a route the simulator does not know.
func (m *Marketplace) handleNotSimulated(w http.ResponseWriter, r *http.Request) {
	simkit.NotSimulated(w, r, "marketplace", "", m.routeList, nil)
}

func writeSimError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
