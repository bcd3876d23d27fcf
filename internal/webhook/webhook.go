// Package webhook receives webhooks and vendor callbacks durably (SPEC
// 5.6): for each configured endpoint it checks the declared size and the
// source address before reading the body, limits signature failures per
// address, verifies the signature (standard, stripe, github, shopify,
// hmac, none), drops duplicates by key, enqueues one job and only then
// answers 202. It also holds the forward worker, which POSTs a job's
// payload to a URL signed with Standard Webhooks headers.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/ratelimit"
	"github.com/backlothq/backlot/jobs"
)

// KeyPrefix starts every dedupe key the ingest passes to the job engine:
// "webhook:<path>:<value>", so two endpoints never share a key space.
const KeyPrefix = "webhook:"

// maxPooledBody caps the buffers kept for reuse, so one large delivery
// does not pin its memory forever.
const maxPooledBody = 64 << 10

// Enqueuer is the part of the job engine the ingest needs. Enqueue must
// return only after the job is durably committed, and must not keep
// payload after it returns successfully (the ingest reuses the buffer).
type Enqueuer interface {
	Enqueue(ctx context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error)
}

// ValidEnqueuer is an Enqueuer that can take a payload its caller has
// already checked to be JSON in valid UTF-8 without checking it again (the
// job engine); EnqueueValid is Enqueue otherwise.
type ValidEnqueuer interface {
	EnqueueValid(ctx context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error)
}

// Deps are what the ingest endpoints are built with.
type Deps struct {
	// Enqueuer receives the jobs. Required.
	Enqueuer Enqueuer
	// Logger. Default: discard.
	Logger *slog.Logger
	// Metrics receives backlot_webhook_verifications_total. Nil: not registered.
	Metrics prometheus.Registerer
	// Now is the clock for signature timestamps. Default time.Now.
	Now func() time.Time
	// MaxBodyBytes is the server's body limit, used when an endpoint sets
	// none. Default config.MaxBodyBytesDefault.
	MaxBodyBytes int64
}

// outcome is the result of one delivery, the metric's outcome label.
type outcome uint8

const (
	outOK outcome = iota
	outMissing
	outInvalid
	outStale
	outForbidden
	outTooLarge
	outInvalidBody
	outDuplicate
	outError
	outLimited
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	outOK:          "ok",
	outMissing:     "missing_signature",
	outInvalid:     "invalid_signature",
	outStale:       "stale_signature",
	outForbidden:   "forbidden_source",
	outTooLarge:    "too_large",
	outInvalidBody: "invalid_body",
	outDuplicate:   "duplicate",
	outError:       "error",
	outLimited:     "rate_limited",
}

// Refusal messages (error_message): webhook senders are machines and their
// operators, so the messages say what went wrong with the delivery rather
// than asking a person to sign in.
const (
	msgMissing     = "The webhook delivery is missing its signature."
	msgInvalid     = "The webhook signature did not verify."
	msgStale       = "The webhook signature timestamp is outside the allowed window."
	msgForbidden   = "This address may not send deliveries to this webhook."
	msgTooLarge    = "The webhook body is too large."
	msgInvalidBody = "The webhook body is not valid."
	msgUnsupported = "The webhook body must be JSON or a form."
	msgLimited     = "Too many webhook signature failures from this address. Retry later."
	msgUnavailable = "The delivery could not be stored. Retry later."
)

// refusal maps a refusal outcome to its status, machine code and message.
func refusal(o outcome, desc string) *httpapi.Error {
	var e *httpapi.Error
	switch o {
	case outMissing:
		e = httpapi.E(http.StatusBadRequest, "missing_signature", desc)
		e.Message = msgMissing
	case outInvalid:
		e = httpapi.E(http.StatusUnauthorized, "invalid_signature", desc)
		e.Message = msgInvalid
	case outStale:
		e = httpapi.E(http.StatusUnauthorized, "stale_signature", desc)
		e.Message = msgStale
	case outForbidden:
		e = httpapi.E(http.StatusForbidden, "forbidden_source", desc)
		e.Message = msgForbidden
	case outTooLarge:
		e = httpapi.E(http.StatusRequestEntityTooLarge, httpapi.ErrTooLarge.Code, desc)
		e.Message = msgTooLarge
	case outInvalidBody:
		e = httpapi.E(http.StatusBadRequest, "invalid_body", desc)
		e.Message = msgInvalidBody
	default:
		e = httpapi.E(http.StatusInternalServerError, "internal_error", desc)
	}
	return e
}

// Signature failures allowed per source address: FailureBurst at once,
// refilled at FailureBurst a minute. Beyond that the address is answered
// 429 before its body is read.
const (
	FailureBurst = 20
	failureRate  = rate.Limit(float64(FailureBurst) / 60)
)

// Set is the ingest endpoints of one configuration.
type Set struct {
	endpoints []*Endpoint
	deps      Deps
	pool      sync.Pool // *scratch
	// failures counts signature failures per source address, across
	// endpoints.
	failures *ratelimit.Failures
	// enqueue is the Enqueuer's EnqueueValid when it has one (the payload
	// is checked before it is enqueued), its Enqueue otherwise.
	enqueue func(ctx context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error)
}

// Endpoint is one webhook ingest endpoint; it is an http.Handler.
type Endpoint struct {
	set      *Set
	path     string
	kind     string
	queue    string
	maxBody  int64
	allow    []netip.Prefix
	verifier verifier
	dedupe   deduper
	keyPfx   string // "webhook:<path>:"
	forward  *config.Forward
	counters [numOutcomes]prometheus.Counter
}

// New builds the endpoints of cfgs. Each entry is validated again here
// (the config check does it too) so a bad endpoint never serves.
func New(cfgs []config.Webhook, deps Deps) (*Set, error) {
	if deps.Enqueuer == nil {
		return nil, errors.New("webhook: Deps.Enqueuer is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.MaxBodyBytes <= 0 {
		deps.MaxBodyBytes = config.MaxBodyBytesDefault
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backlot_webhook_verifications_total",
		Help: "Webhook deliveries by endpoint and outcome.",
	}, []string{"endpoint", "outcome"})
	if deps.Metrics != nil {
		if err := deps.Metrics.Register(vec); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("webhook: register metrics: %w", err)
			}
			vec = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	s := &Set{deps: deps, failures: ratelimit.NewFailures(failureRate, FailureBurst, 0), enqueue: deps.Enqueuer.Enqueue}
	if ve, ok := deps.Enqueuer.(ValidEnqueuer); ok {
		s.enqueue = ve.EnqueueValid
	}
	s.pool.New = func() any { return &scratch{} }
	seen := map[string]bool{}
	for i, c := range cfgs {
		e, err := s.newEndpoint(c, vec)
		if err != nil {
			return nil, fmt.Errorf("webhooks[%d] (%s): %w", i, c.Path, err)
		}
		if seen[e.path] {
			return nil, fmt.Errorf("webhooks[%d]: path %s is used twice", i, c.Path)
		}
		seen[e.path] = true
		s.endpoints = append(s.endpoints, e)
	}
	return s, nil
}

func (s *Set) newEndpoint(c config.Webhook, vec *prometheus.CounterVec) (*Endpoint, error) {
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " {}") {
		return nil, fmt.Errorf("path %q must start with / and hold no spaces or wildcards", c.Path)
	}
	if c.Job == "" {
		return nil, errors.New("job is required (the job kind each delivery becomes)")
	}
	e := &Endpoint{set: s, path: c.Path, kind: c.Job, queue: c.Queue, maxBody: c.MaxBodyBytes,
		keyPfx: KeyPrefix + c.Path + ":", forward: c.Forward}
	if e.maxBody <= 0 {
		e.maxBody = s.deps.MaxBodyBytes
	}
	for _, a := range c.AllowIPs {
		p, err := httpapi.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("allow_ips: %w", err)
		}
		e.allow = append(e.allow, p)
	}
	v, err := newVerifier(c.Verify, len(e.allow))
	if err != nil {
		return nil, err
	}
	e.verifier = v
	spec := c.Dedupe
	if spec == "" {
		spec = config.DedupeDefault(c.Verify.Scheme)
	}
	d, err := config.ParseDedupe(spec)
	if err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	e.dedupe = newDeduper(d)
	for o := range numOutcomes {
		e.counters[o] = vec.WithLabelValues(c.Path, outcomeNames[o])
	}
	return e, nil
}

// Endpoints returns the endpoints in configuration order.
func (s *Set) Endpoints() []*Endpoint { return s.endpoints }

// Paths returns every endpoint's URL path. Each endpoint enforces its own
// max_body_bytes (larger or smaller than the server's), so the server
// leaves these paths out of its own body limit.
func (s *Set) Paths() []string {
	out := make([]string, len(s.endpoints))
	for i, e := range s.endpoints {
		out[i] = e.path
	}
	return out
}

// Register mounts POST <path> for every endpoint on mux.
func (s *Set) Register(mux *http.ServeMux) {
	for _, e := range s.endpoints {
		mux.Handle("POST "+e.path, e)
	}
}

// Path is the endpoint's URL path.
func (e *Endpoint) Path() string { return e.path }

// Kind is the job kind each delivery becomes.
func (e *Endpoint) Kind() string { return e.kind }

// DeliveryID returns the raw dedupe value from a job's dedupe key made by
// this endpoint, and false if the key is not one of this endpoint's.
func (e *Endpoint) DeliveryID(dedupeKey string) (string, bool) {
	return strings.CutPrefix(dedupeKey, e.keyPfx)
}

func (e *Endpoint) refuse(w http.ResponseWriter, r *http.Request, o outcome, desc string) {
	e.counters[o].Inc()
	e.set.deps.Logger.DebugContext(r.Context(), "webhook refused", "endpoint", e.path,
		"outcome", outcomeNames[o], "reason", desc, "request_id", httpapi.RequestIDFrom(r.Context()))
	httpapi.WriteError(w, r, refusal(o, desc))
}

// ServeHTTP runs the checks in a fixed order: declared size, source
// address, signature-failure budget, body read, signature, payload,
// dedupe, durable enqueue, answer. Everything a refused sender can be
// refused for without its body comes before the body is read.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sc := e.set.pool.Get().(*scratch)
	reuse := true
	defer func() {
		if reuse && cap(sc.body) <= maxPooledBody {
			e.set.pool.Put(sc)
		}
	}()

	// 1. Declared size.
	if r.ContentLength > e.maxBody {
		e.refuse(w, r, outTooLarge, "request body exceeds "+strconv.FormatInt(e.maxBody, 10)+" bytes")
		return
	}

	// 2. Source address.
	ip := httpapi.ClientIP(r)
	if len(e.allow) > 0 && !e.allowed(ip) {
		e.refuse(w, r, outForbidden, "source address is not allowed for this endpoint")
		return
	}

	// 3. Signature-failure budget of the source address.
	now := e.set.deps.Now()
	if wait, limited := e.set.failures.Blocked(ip, now); limited {
		e.counters[outLimited].Inc()
		herr := httpapi.Errorf(http.StatusTooManyRequests, "too_many_failures",
			"too many failed webhook signatures from this address; retry in %d s", wait)
		herr.Message = msgLimited
		herr.Header = http.Header{"Retry-After": []string{strconv.Itoa(wait)}}
		httpapi.WriteError(w, r, herr)
		return
	}

	// 4. Body, up to the endpoint's limit.
	body, err := readBody(r.Body, sc.body[:0], r.ContentLength, e.maxBody)
	sc.body = body[:0]
	if err != nil {
		var herr *httpapi.Error
		switch {
		case errors.Is(err, errTooLarge):
			e.refuse(w, r, outTooLarge, "request body exceeds "+strconv.FormatInt(e.maxBody, 10)+" bytes")
		case errors.As(err, &herr):
			// The server refused to buffer more (its in-flight body
			// budget): its own answer, not a defect of the delivery.
			e.counters[outError].Inc()
			httpapi.WriteError(w, r, herr)
		default:
			e.refuse(w, r, outInvalidBody, "request body could not be read")
		}
		return
	}

	// 5. Signature over the raw body.
	if o, desc := e.verifier.verify(r.Header, body, now, sc); o != outOK {
		e.set.failures.Fail(ip, now)
		e.refuse(w, r, o, desc)
		return
	}

	// 6. Payload: JSON as received, a form as a JSON object.
	payload, o, desc := toPayload(header(r.Header, "Content-Type"), body)
	if o != outOK {
		if o == outUnsupported {
			e.counters[outInvalidBody].Inc()
			herr := httpapi.E(http.StatusUnsupportedMediaType, httpapi.ErrUnsupportedMedia.Code, desc)
			herr.Message = msgUnsupported
			httpapi.WriteError(w, r, herr)
			return
		}
		e.refuse(w, r, o, desc)
		return
	}

	// 7. Dedupe key, namespaced by endpoint.
	opts := jobs.EnqueueOpts{Queue: e.queue}
	if v := e.dedupe.value(r.Header, body, payload); v != "" {
		if !validDedupeValue(v) {
			e.refuse(w, r, outInvalidBody, "dedupe value must be at most "+strconv.Itoa(MaxDedupeValue)+" bytes of UTF-8")
			return
		}
		opts.DedupeKey = e.keyPfx + v
	}

	// 8. Durable enqueue; the answer follows the commit. payload was
	// checked above (JSON in UTF-8): an engine that can skip checking it
	// again is told so (Set.enqueue).
	res, err := e.set.enqueue(r.Context(), e.kind, payload, &opts)
	if err != nil {
		// The engine may still hold payload (a batch in flight): do not
		// hand the buffer to another request.
		reuse = false
		e.counters[outError].Inc()
		e.set.deps.Logger.ErrorContext(r.Context(), "webhook enqueue failed", "endpoint", e.path,
			"kind", e.kind, "error", err, "request_id", httpapi.RequestIDFrom(r.Context()))
		httpapi.WriteError(w, r, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Description: "the delivery could not be stored; retry later", Message: msgUnavailable,
			Err: fmt.Errorf("enqueue %s: %w", e.kind, err)})
		return
	}
	status := http.StatusAccepted
	b := append(sc.resp[:0], `{"job_id":"`...)
	b = strconv.AppendInt(b, res.ID, 10)
	if res.Duplicate {
		status = http.StatusOK
		b = append(b, `","duplicate":true}`...)
		e.counters[outDuplicate].Inc()
	} else {
		b = append(b, `"}`...)
		e.counters[outOK].Inc()
	}
	b = append(b, '\n')
	sc.resp = b
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

// allowed reports whether ip (httpapi.ClientIP: an IPv4-mapped address
// already unmapped) is in allow_ips.
func (e *Endpoint) allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range e.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var errTooLarge = errors.New("body too large")

// readBody reads at most limit bytes of body into buf. It grows the
// buffer to the declared length only after the first read has returned
// data: the first read is where the server's in-flight body budget is
// taken, and a refused or stalled sender must not cost a buffer of the
// size it merely declared (freed heap stays with the process).
func readBody(body io.Reader, buf []byte, contentLength, limit int64) ([]byte, error) {
	if body == nil || body == http.NoBody {
		return buf, nil
	}
	if cap(buf) == 0 {
		buf = make([]byte, 0, min(4096, max(contentLength+1, 512)))
	}
	for {
		if len(buf) == cap(buf) {
			if contentLength > 0 && int64(cap(buf)) < contentLength+1 {
				nb := make([]byte, len(buf), contentLength+1) // +1 to see EOF without growing
				copy(nb, buf)
				buf = nb
			} else {
				buf = append(buf, 0)[:len(buf)]
			}
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				return buf, errTooLarge
			}
			return buf, err
		}
	}
}

const outUnsupported = numOutcomes + 1 // 415, counted as invalid_body

// toPayload turns a verified body into the job payload: JSON unchanged
// (after checking it is JSON), application/x-www-form-urlencoded as a JSON
// object of its fields. Anything else is refused with 415.
func toPayload(contentType string, body []byte) ([]byte, outcome, string) {
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	switch {
	case mt == "" || strings.EqualFold(mt, "application/json") || hasSuffixFold(mt, "+json"):
		if !json.Valid(body) {
			return nil, outInvalidBody, "body is not valid JSON"
		}
		// encoding/json accepts invalid UTF-8 inside strings; a store
		// would not, and the sender should hear that now, not retry.
		if !utf8.Valid(body) {
			return nil, outInvalidBody, "body is not valid UTF-8"
		}
		return body, outOK, ""
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		p, err := formToJSON(body)
		if err != nil {
			return nil, outInvalidBody, "form body is malformed"
		}
		return p, outOK, ""
	default:
		return nil, outUnsupported, "Content-Type must be application/json or application/x-www-form-urlencoded"
	}
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// formToJSON encodes a form as a JSON object: a field sent once is a
// string, a repeated field an array of strings. Keys are sorted so the
// payload is deterministic.
func formToJSON(body []byte) ([]byte, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("parse form: %w", err)
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the vendor's characters as sent
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		enc.Encode(k)
		buf.Truncate(buf.Len() - 1) // Encode adds a newline
		buf.WriteByte(':')
		if vs := vals[k]; len(vs) == 1 {
			enc.Encode(vs[0])
		} else {
			enc.Encode(vs)
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
