package simkit

import (
	"sync"
	"time"
)

// RateLimiter counts requests per key in fixed windows, on an injectable
// clock, as the simpler real APIs throttle ("30 calls per 10 seconds per
// token"). It is safe for concurrent use.
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
