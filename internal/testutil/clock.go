package testutil

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a settable clock for a component's Now, so tests move time
// instead of sleeping. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t, backwards too.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// OffsetClock is real time plus an offset that Advance grows: for
// components that also wait on real timers (the job engine, the event
// poller), so time still passes while a test jumps ahead. The zero value
// reads real time.
type OffsetClock struct{ off atomic.Int64 }

// Now reads the clock.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d.
func (c *OffsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }
