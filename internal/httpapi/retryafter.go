package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfterCeiling is the longest wait RetryAfter returns: larger values
// (and numbers too large for a time.Duration) saturate here, so no caller
// multiplies an untrusted number into an overflow. Callers apply their own,
// far lower, limits.
const RetryAfterCeiling = (1 << 31) * time.Second

// RetryAfter reads a Retry-After value, delay-seconds or an HTTP date
// (relative to now), as a wait of at least 0 and at most
// RetryAfterCeiling. ok is false when v is empty or neither form.
func RetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil || isRange(err) {
		switch {
		case err != nil && strings.HasPrefix(v, "-"), err == nil && n < 0:
			return 0, false
		case err != nil || n > int64(RetryAfterCeiling/time.Second):
			return RetryAfterCeiling, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), RetryAfterCeiling), true
	}
	return 0, false
}

func isRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// Sleep waits d, or until ctx is done (then its error): the default pause
// of the clients that retry after an upstream's Retry-After (the proxy, the
// Sharetribe client).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
