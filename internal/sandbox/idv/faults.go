package idv

import (
	"net/http"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// Fault makes the simulator misbehave on one route, as a flaky real
// service does. It is posted as JSON to /_sim/faults; Route is a route as
// the not-simulated answer lists it (for example "POST /api/v4/initiate"), or "*"
// for every simulated route.
type Fault = simkit.JSONFault

// faultOptions are the simulator's fault rules: 429 or a 5xx, and
// Retry-After (default 1 s) with 429 and 503.
func faultOptions(routes []string) simkit.Options {
	return simkit.Options{
		Routes:         routes,
		RetryStatuses:  []int{http.StatusTooManyRequests, http.StatusServiceUnavailable},
		RetryAnyStatus: true,
	}
}
