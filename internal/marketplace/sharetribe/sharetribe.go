// Package sharetribe is backlot's client of a Sharetribe marketplace: the
// Authentication API's token grants, the Marketplace API calls a backend
// makes for a user (current_user/show, current_user/update_profile) and
// the Integration API's users, listings, transactions and events. It
// speaks JSON (not Transit), paces itself with a Limiter to stay within
// Sharetribe's rate limits, keeps at most MaxInFlight requests in
// progress, retries a 429 after the server's Retry-After, and returns
// refusals as *APIError, which matches ErrNotFound, ErrRateLimited and the
// other sentinels with errors.Is.
package sharetribe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/internal/httpapi"
)

// Defaults of Config.
const (
	APIURLDefault         = "https://flex-api.sharetribe.com"
	IntegrationURLDefault = "https://flex-integ-api.sharetribe.com"
	MaxInFlightDefault    = 10
	MaxRetriesDefault     = 3
	MaxRetryWaitDefault   = 30 * time.Second
	TimeoutDefault        = 30 * time.Second

	maxResponseBytes = 16 << 20
	// tokenSkew is how long before its expiry a cached token is replaced.
	tokenSkew = time.Minute
)

// Config configures a Client.
type Config struct {
	// APIURL is the Marketplace and Authentication API base. Default
	// APIURLDefault.
	APIURL string
	// IntegrationURL is the Integration API base (its own Authentication
	// API included). Default IntegrationURLDefault.
	IntegrationURL string
	// ClientID and ClientSecret are the Marketplace API application's
	// credentials; the secret is needed only for ExchangeToken.
	ClientID     string
	ClientSecret string
	// IntegrationClientID and IntegrationClientSecret are the Integration
	// API application's credentials, needed for the Integration API.
	IntegrationClientID     string
	IntegrationClientSecret string
	// Environment selects the default rate limits. Default EnvDev.
	Environment Environment
	// Limiter paces the Marketplace and Integration API calls. Default a
	// LocalLimiter with DefaultLimits(Environment).
	Limiter Limiter
	// MaxInFlight is the most requests in progress at once. Default
	// MaxInFlightDefault (10).
	MaxInFlight int
	// MaxRetries is how many times a call answered 429 is retried; a
	// negative value means never. Default MaxRetriesDefault (3).
	MaxRetries int
	// MaxRetryWait caps the wait before a retry, whatever Retry-After
	// says; a longer Retry-After fails the call at once with the 429.
	// Default MaxRetryWaitDefault (30 s).
	MaxRetryWait time.Duration
	// HTTPClient makes the requests. Default a client with TimeoutDefault
	// (30 s) that does not follow redirects.
	HTTPClient *http.Client
	// Now is the clock, for token expiry. Default time.Now.
	Now func() time.Time
	// SleepFunc waits before a retry. Default a timer that stops early
	// when ctx is done.
	SleepFunc func(ctx context.Context, d time.Duration) error
}

func (c Config) withDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = APIURLDefault
	}
	if c.IntegrationURL == "" {
		c.IntegrationURL = IntegrationURLDefault
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	c.IntegrationURL = strings.TrimRight(c.IntegrationURL, "/")
	if c.Environment == "" {
		c.Environment = EnvDev
	}
	if c.Limiter == nil {
		c.Limiter = NewLocalLimiter(DefaultLimits(c.Environment))
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = MaxInFlightDefault
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = MaxRetriesDefault
	}
	if c.MaxRetryWait <= 0 {
		c.MaxRetryWait = MaxRetryWaitDefault
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout:       TimeoutDefault,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SleepFunc == nil {
		c.SleepFunc = httpapi.Sleep
	}
	return c
}

func (c Config) validate() error {
	for _, u := range []string{c.APIURL, c.IntegrationURL} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("sharetribe: base URL %q is not an http(s) URL", u)
		}
	}
	switch c.Environment {
	case EnvDev, EnvTest, EnvLive:
	default:
		return fmt.Errorf("sharetribe: unknown environment %q (want dev, test or live)", c.Environment)
	}
	return nil
}

// Client calls one Sharetribe marketplace. It is safe for concurrent use.
type Client struct {
	cfg Config
	sem chan struct{}

	tokMu    sync.Mutex // held while fetching, so concurrent callers share one fetch
	integTok *Token
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, sem: make(chan struct{}, cfg.MaxInFlight)}, nil
}

// request is one HTTP exchange, built again for each attempt.
type request struct {
	method string
	url    string
	path   string
	header http.Header
	body   []byte
}

// send makes one request within the in-flight limit and reads the whole
// answer.
func (c *Client) send(ctx context.Context, rq request) (*http.Response, []byte, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("sharetribe: %s %s: %w", rq.method, rq.path, ctx.Err())
	}
	defer func() { <-c.sem }()
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
	if err != nil {
		return nil, nil, fmt.Errorf("sharetribe: build %s %s: %w", rq.method, rq.path, err)
	}
	req.Header = rq.header.Clone()
	res, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("sharetribe: %s %s: %w", rq.method, rq.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("sharetribe: read %s %s: %w", rq.method, rq.path, err)
	}
	return res, b, nil
}

// retryWait is how long to wait before retrying after a 429: Retry-After
// (seconds or an HTTP date) when given, else 1 s doubling per attempt.
// ok is false when that is longer than MaxRetryWait.
func (c *Client) retryWait(ra time.Duration, attempt int) (time.Duration, bool) {
	d := ra
	if d <= 0 {
		d = time.Second << min(attempt, 5)
	}
	if ra > c.cfg.MaxRetryWait {
		return 0, false
	}
	return min(d, c.cfg.MaxRetryWait), true
}

// parseRetryAfter is httpapi.RetryAfter on the client's clock; 0 when
// absent or unreadable.
func (c *Client) parseRetryAfter(h string) time.Duration {
	d, _ := httpapi.RetryAfter(h, c.cfg.Now())
	return d
}

// apiError builds the *APIError of a refusal.
func (c *Client) apiError(rq request, res *http.Response, body []byte) *APIError {
	e := &APIError{Method: rq.method, Path: rq.path, Status: res.StatusCode, Body: body,
		RetryAfter: c.parseRetryAfter(res.Header.Get("Retry-After"))}
	var parsed struct {
		Errors           []ErrorDetail `json:"errors"`
		Error            string        `json:"error"`
		ErrorDescription string        `json:"error_description"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		e.Errors = parsed.Errors
		e.OAuthError, e.OAuthDescription = parsed.Error, parsed.ErrorDescription
	}
	return e
}

// call is one API call: authenticated with token (fetched anew when a
// cached one turns out stale), paced by the limiter, retried on 429.
type call struct {
	kind  Kind
	base  string
	path  string
	query url.Values
	body  any
	// token returns the bearer token; refresh says to drop a cached one.
	token func(ctx context.Context, refresh bool) (string, error)
	// refreshable says token can fetch a new token after a 401 (the
	// cached integration token); a caller's user token cannot.
	refreshable bool
}

func (c *Client) do(ctx context.Context, cl call, out any) error {
	method := http.MethodGet
	var body []byte
	if cl.kind == Command {
		method = http.MethodPost
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("sharetribe: encode %s: %w", cl.path, err)
		}
	}
	u := cl.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	refreshed := false
	for attempt := 0; ; attempt++ {
		tok, err := cl.token(ctx, false)
		if err != nil {
			return err
		}
		if err := c.cfg.Limiter.Wait(ctx, cl.kind); err != nil {
			return err
		}
		rq := request{method: method, url: u, path: cl.path, body: body, header: http.Header{
			"Authorization": {"Bearer " + tok},
			"Accept":        {"application/json"},
		}}
		if body != nil {
			rq.header.Set("Content-Type", "application/json")
		}
		res, b, err := c.send(ctx, rq)
		if err != nil {
			return err
		}
		switch {
		case res.StatusCode < 300:
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("sharetribe: decode %s: %w", cl.path, err)
			}
			return nil
		case res.StatusCode == http.StatusUnauthorized && cl.refreshable && !refreshed:
			// A cached token may have been revoked or expired early: get
			// a new one and try once more.
			refreshed = true
			if _, err := cl.token(ctx, true); err != nil {
				return err
			}
			attempt--
			continue
		}
		apiErr := c.apiError(rq, res, b)
		if res.StatusCode != http.StatusTooManyRequests || c.cfg.MaxRetries < 0 || attempt >= c.cfg.MaxRetries {
			return apiErr
		}
		wait, ok := c.retryWait(apiErr.RetryAfter, attempt)
		if !ok {
			return apiErr
		}
		if err := c.cfg.SleepFunc(ctx, wait); err != nil {
			return errors.Join(apiErr, err)
		}
	}
}
