package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/jobs"
)

// ForwardJobTimeout is the default time one forward attempt may take.
const ForwardJobTimeout = 10 * time.Second

// maxRetryAfter bounds an upstream's Retry-After, so a receiver cannot park
// a job for a year.
const maxRetryAfter = 24 * time.Hour

// DeliveryIDHeader carries the delivery's dedupe value on forwarded jobs.
const DeliveryIDHeader = "Backlot-Delivery-Id"

// ForwardDeps are what a forwarder is built with.
type ForwardDeps struct {
	// Client sends the requests. Default: a client with the forward
	// timeout. Redirects are never followed, whatever the client says.
	Client *http.Client
	// Now is the clock for webhook-timestamp. Default time.Now.
	Now func() time.Time
	// Logger. Default: discard.
	Logger *slog.Logger
	// DeliveryIDFunc turns a job's dedupe key into the Backlot-Delivery-Id
	// value. Default: strip "webhook:<path>:" (a path without ':'); other
	// keys are sent unchanged.
	DeliveryIDFunc func(dedupeKey string) string
}

// Forwarder POSTs job payloads to one URL with Standard Webhooks headers.
type Forwarder struct {
	url        string
	redacted   string
	signer     *StandardSigner
	client     *http.Client
	timeout    time.Duration
	now        func() time.Time
	log        *slog.Logger
	deliveryID func(string) string
}

// NewForwarder builds the forward worker for cfg. Its Work method is a
// jobs.WorkFunc.
func NewForwarder(cfg config.Forward, deps ForwardDeps) (*Forwarder, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("forward.url %q must be an absolute http(s) URL", cfg.URL)
	}
	signer, err := NewStandardSigner(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("forward.secret: %w", err)
	}
	f := &Forwarder{url: cfg.URL, redacted: u.Redacted(), signer: signer, timeout: cfg.Timeout.D(),
		now: deps.Now, log: deps.Logger, deliveryID: deps.DeliveryIDFunc}
	if f.timeout <= 0 {
		f.timeout = ForwardJobTimeout
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.deliveryID == nil {
		f.deliveryID = defaultDeliveryID
	}
	c := http.Client{Timeout: f.timeout}
	if deps.Client != nil {
		c = *deps.Client
	}
	// A 3xx is the receiver's answer, and a failure: following it would
	// send signed payloads wherever the receiver points.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f.client = &c
	return f, nil
}

func defaultDeliveryID(key string) string {
	if rest, ok := strings.CutPrefix(key, KeyPrefix); ok {
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			return rest[i+1:]
		}
	}
	return key
}

// Work is the jobs.WorkFunc: one delivery attempt. A 2xx completes the
// job; anything else is an error, so the engine retries it, after the
// receiver's Retry-After when it sent one.
func (f *Forwarder) Work(ctx context.Context, job *jobs.Job) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	id := strconv.FormatInt(job.ID, 10)
	ts := f.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(job.Payload))
	if err != nil {
		return fmt.Errorf("forward job %s: build request: %w", id, err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", f.signer.Sign(id, ts, job.Payload))
	if job.DedupeKey != "" {
		h.Set(DeliveryIDHeader, f.deliveryID(job.DedupeKey))
	}
	h.Set("User-Agent", "backlot-forward")
	resp, err := f.client.Do(req)
	if err != nil {
		jobs.Logf(ctx, "forward to %s failed: %v", f.redacted, redactErr(err, f.url, f.redacted))
		return fmt.Errorf("forward job %s to %s: %w", id, f.redacted, redactErr(err, f.url, f.redacted))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		jobs.Logf(ctx, "forwarded to %s: %d", f.redacted, resp.StatusCode)
		return nil
	}
	err = fmt.Errorf("forward job %s to %s: status %d: %s", id, f.redacted, resp.StatusCode,
		strings.TrimSpace(string(snippet)))
	jobs.Logf(ctx, "forward to %s answered %d", f.redacted, resp.StatusCode)
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), f.now()); ok {
		return jobs.RetryAfter(d, err)
	}
	return err
}

// redactErr keeps a URL's credentials out of error text.
func redactErr(err error, raw, redacted string) error {
	if raw == redacted {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// parseRetryAfter is httpapi.RetryAfter capped at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	d, ok := httpapi.RetryAfter(v, now)
	return min(d, maxRetryAfter), ok
}

// Forwarders builds the forward worker of every endpoint that has a
// forward block, keyed by job kind, for the engine's Register. Endpoints
// sharing a kind must share the forward target.
func (s *Set) Forwarders(deps ForwardDeps) (map[string]jobs.WorkFunc, error) {
	byKind := map[string][]*Endpoint{}
	var kinds []string
	for _, e := range s.endpoints {
		if e.forward == nil {
			continue
		}
		if _, ok := byKind[e.kind]; !ok {
			kinds = append(kinds, e.kind)
		}
		byKind[e.kind] = append(byKind[e.kind], e)
	}
	out := map[string]jobs.WorkFunc{}
	for _, kind := range kinds {
		eps := byKind[kind]
		first := *eps[0].forward
		for _, e := range eps[1:] {
			if *e.forward != first {
				return nil, fmt.Errorf("webhooks %s and %s share job %q but forward differently", eps[0].path, e.path, kind)
			}
		}
		d := deps
		d.DeliveryIDFunc = func(key string) string {
			for _, e := range eps {
				if v, ok := e.DeliveryID(key); ok {
					return v
				}
			}
			return key
		}
		f, err := NewForwarder(first, d)
		if err != nil {
			return nil, fmt.Errorf("webhooks %s: %w", eps[0].path, err)
		}
		out[kind] = f.Work
	}
	return out, nil
}
