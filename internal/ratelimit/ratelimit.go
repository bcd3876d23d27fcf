// Package ratelimit holds the failure limiter shared by the places that
// check credentials from the network (caller authentication, webhook
// signatures): each client address has a budget of failures that refills
// at a steady rate, and a client without budget is refused before its
// credential is even checked, so guessing is as slow as the rate.
package ratelimit

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxClientsDefault bounds how many client addresses a Failures tracks.
const MaxClientsDefault = 10000

// Failures limits failures per client address (the zero Addr stands for
// every client whose address is unknown). Only clients that failed are
// tracked, so a flood of successes costs no memory; the address itself is
// the key, so a check costs no allocation on the paths every request takes.
// It is safe for concurrent use.
type Failures struct {
	r          rate.Limit
	burst      int
	maxClients int
	mu         sync.RWMutex
	clients    map[netip.Addr]*rate.Limiter
}

// NewFailures allows burst failures at once, refilled at r per second,
// tracking at most maxClients keys (MaxClientsDefault when <= 0).
func NewFailures(r rate.Limit, burst, maxClients int) *Failures {
	if maxClients <= 0 {
		maxClients = MaxClientsDefault
	}
	return &Failures{r: r, burst: burst, maxClients: maxClients, clients: map[netip.Addr]*rate.Limiter{}}
}

// Blocked reports whether key has no failure budget left at now, and for
// how many whole seconds (at least 1) it should wait.
func (l *Failures) Blocked(key netip.Addr, now time.Time) (int, bool) {
	l.mu.RLock()
	lim := l.clients[key]
	l.mu.RUnlock()
	if lim == nil {
		return 0, false
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait := int(math.Ceil((1 - tokens) / float64(l.r)))
	return max(wait, 1), true
}

// Fail spends one unit of key's failure budget at now.
func (l *Failures) Fail(key netip.Addr, now time.Time) {
	l.mu.Lock()
	lim := l.clients[key]
	if lim == nil {
		if len(l.clients) >= l.maxClients {
			l.evict(now)
		}
		lim = rate.NewLimiter(l.r, l.burst)
		l.clients[key] = lim
	}
	l.mu.Unlock()
	lim.AllowN(now, 1)
}

// evict drops clients whose budget has refilled; if that frees too little
// (a flood of distinct addresses), it drops arbitrary ones, keeping memory
// bounded at the cost of forgetting some budgets. Called with mu held.
func (l *Failures) evict(now time.Time) {
	for k, lim := range l.clients {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.clients, k)
		}
	}
	for k := range l.clients {
		if len(l.clients) < l.maxClients*9/10 {
			break
		}
		delete(l.clients, k)
	}
}
