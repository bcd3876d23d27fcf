package sharetribe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/backlothq/backlot/internal/httpapi"
)

// RateReserver is the database side of a SharedLimiter: store.Store's
// ReserveRate (a GCRA slot per key, shared by every instance on the
// database).
type RateReserver interface {
	ReserveRate(ctx context.Context, key string, interval time.Duration, burst int, now time.Time) (time.Duration, error)
}

// SharedLimiter is a Limiter whose budget lives in the database, so every
// backlot instance on one PostgreSQL keeps, together, to one marketplace's
// limits. Sharetribe counts per client IP: instances behind one address
// with a LocalLimiter each would exceed them.
type SharedLimiter struct {
	r      RateReserver
	key    string
	limits Limits
	// Now is the clock the reservations are made on. Default time.Now.
	Now func() time.Time
	// SleepFunc waits out a reservation. Default a timer that stops early
	// when ctx is done.
	SleepFunc func(ctx context.Context, d time.Duration) error
}

var _ Limiter = (*SharedLimiter)(nil)

// NewSharedLimiter returns a limiter that keeps to l under key (one key
// per marketplace: "marketplace:<name>"). A rate of zero or less is taken
// as one call an hour.
func NewSharedLimiter(r RateReserver, key string, l Limits) *SharedLimiter {
	return &SharedLimiter{r: r, key: key, limits: l, Now: time.Now, SleepFunc: httpapi.Sleep}
}

// Wait implements Limiter.
func (l *SharedLimiter) Wait(ctx context.Context, kind Kind) error {
	rate, burst := l.limits.QueriesPerSecond, l.limits.QueryBurst
	if kind == Command {
		rate, burst = l.limits.CommandsPerSecond, l.limits.CommandBurst
	}
	iv := time.Hour
	if rate > 0 {
		iv = time.Duration(float64(time.Second) / rate)
	}
	wait, err := l.r.ReserveRate(ctx, l.key+":"+kind.String(), iv, max(burst, 1), l.Now())
	if err != nil {
		return fmt.Errorf("sharetribe: reserve the %s rate limit: %w", kind, err)
	}
	if wait <= 0 {
		return nil
	}
	if err := l.SleepFunc(ctx, wait); err != nil {
		return fmt.Errorf("sharetribe: wait for the %s rate limit: %w", kind, err)
	}
	return nil
}

// integPath is what Integration may be given: "listings/query",
// "users/update_profile" (letters, digits, _, - and one or more /).
var integPath = regexp.MustCompile(`^[a-z][a-z0-9_-]*(/[a-z][a-z0-9_-]*)+$`)

// Integration makes any Integration API call and returns the answer's
// JSON as received: GET (a query) with params, or POST (a command) with
// params in the query string (expand, include) and body as JSON. path is
// relative to /v1/integration_api/, e.g. "stock_adjustments/create". It is
// paced, retried and refused like the typed calls.
func (c *Client) Integration(ctx context.Context, method, path string, params url.Values, body any) (json.RawMessage, error) {
	var kind Kind
	switch method {
	case http.MethodGet:
		kind = Query
		if body != nil {
			return nil, fmt.Errorf("sharetribe: GET %s takes no body", path)
		}
	case http.MethodPost:
		kind = Command
		if body == nil {
			body = struct{}{}
		}
	default:
		return nil, fmt.Errorf("sharetribe: the Integration API takes GET or POST, not %q", method)
	}
	if !integPath.MatchString(path) {
		return nil, fmt.Errorf("sharetribe: %q is not an Integration API path (like \"listings/query\")", path)
	}
	var out json.RawMessage
	if err := c.do(ctx, c.integCall(kind, path, params, body), &out); err != nil {
		return nil, err
	}
	return out, nil
}
