// Package idv is a local stand-in for an ID-verification vendor shaped
// like Jumio Netverify (Web v4): a server initiates a transaction with
// HTTP Basic credentials, the user is sent to a hosted page, and the
// result arrives later as a form-encoded callback POSTed to the server,
// from a fixed source address that the receiver can allow-list.
//
// Routes:
//
//	POST /api/v4/initiate               start a transaction (Basic auth, User-Agent, JSON)
//	GET  /web/v4/app?authorizationToken= the hosted page
//	POST /web/v4/app                    the page's form: decision=approve|deny|fraud|unsupported|no_id
//	GET  /api/netverify/v2/scans/{ref}  a transaction's status (PENDING, DONE, FAILED)
//	GET|POST|DELETE /_sim/faults        list, add, clear injected faults
//	GET  /_sim/callbacks                every callback attempt so far
//	POST /_sim/reset                    forget transactions, stop pending callbacks, clear faults
//
// The callback is retried with backoff until the receiver answers 2xx or
// the attempts run out. Deliveries run in background goroutines that
// Close stops.
package idv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// Defaults.
const (
	// CallbackSourceDefault is the address callbacks are sent from.
	CallbackSourceDefault = "127.0.0.2"
	// CallbackAttemptsDefault is how many times a callback is tried.
	CallbackAttemptsDefault = 6
	// CallbackTimeoutDefault bounds one callback attempt.
	CallbackTimeoutDefault = 10 * time.Second
	// TokenLifetimeDefault is how long the hosted page's authorization
	// token lives unless tokenLifetimeInMinutes says otherwise: 30
	// minutes, the vendor's default.
	TokenLifetimeDefault = 30 * time.Minute
)

// Options configures an IDV.
type Options struct {
	// APIToken and APISecret are the Basic credentials initiate and the
	// retrieval API require. Required.
	APIToken  string
	APISecret string
	// PublicURL is the base of the hosted page's URL in redirectUrl.
	// Default: the scheme and host the initiate request came in on.
	PublicURL string
	// CallbackSource is the local address callbacks are sent from, so a
	// receiver's source allow-list is exercised for real (Linux routes all
	// of 127.0.0.0/8 to the loopback interface). 0.0.0.0 lets the system
	// choose, as it must for a receiver that is not on loopback or is on
	// IPv6 (an IPv4 source cannot reach [::1]). Default
	// CallbackSourceDefault (127.0.0.2).
	CallbackSource netip.Addr
	// CallbackAttempts is how many times a callback is sent before giving
	// up (the first try included). Default CallbackAttemptsDefault.
	CallbackAttempts int
	// CallbackBackoffFunc is the wait after failed attempt n (1-based).
	// Default: 1 s, doubling, at most 1 min.
	CallbackBackoffFunc func(attempt int) time.Duration
	// CallbackTimeout bounds one attempt. Default CallbackTimeoutDefault.
	CallbackTimeout time.Duration
	// TokenLifetime is the hosted page's lifetime unless the request sets
	// tokenLifetimeInMinutes. Default TokenLifetimeDefault.
	TokenLifetime time.Duration
	// Now is the clock for timestamps and token expiry. Default time.Now.
	Now func() time.Time
}

func (o *Options) withDefaults() error {
	if o.APIToken == "" || o.APISecret == "" {
		return errors.New("idv: APIToken and APISecret are required")
	}
	if !o.CallbackSource.IsValid() {
		o.CallbackSource = netip.MustParseAddr(CallbackSourceDefault)
	}
	if o.CallbackAttempts <= 0 {
		o.CallbackAttempts = CallbackAttemptsDefault
	}
	if o.CallbackBackoffFunc == nil {
		o.CallbackBackoffFunc = func(n int) time.Duration {
			d := time.Second << min(n-1, 6)
			return min(d, time.Minute)
		}
	}
	if o.CallbackTimeout <= 0 {
		o.CallbackTimeout = CallbackTimeoutDefault
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = TokenLifetimeDefault
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// transaction is one initiated verification.
type transaction struct {
	ref      string // transactionReference, also the callback's jumioIdScanReference
	token    string // the hosted page's authorizationToken
	req      initiateRequest
	created  time.Time
	expires  time.Time
	decision string // "" while pending
	status   string // PENDING, DONE, FAILED
}

// Attempt is one try to deliver a callback.
type Attempt struct {
	TransactionReference string    `json:"transactionReference"`
	URL                  string    `json:"url"`
	Attempt              int       `json:"attempt"`
	At                   time.Time `json:"at"`
	// Status is the receiver's HTTP status, 0 when none came back.
	Status int `json:"status"`
	// Error says why no status came back (connection refused, timeout).
	Error string `json:"error,omitempty"`
	// Delivered is true for the attempt the receiver accepted with a 2xx.
	Delivered bool `json:"delivered"`
}

// Fault makes the simulator misbehave on one route, as a flaky real
// service does. It is posted as JSON to /_sim/faults; Route is a route as
// the not-simulated answer lists it (for example "POST /api/v4/initiate"), or "*"
// for every simulated route.
type Fault = simkit.JSONFault

// IDV is the simulator. It is an http.Handler; its methods are safe for
// concurrent use. Close stops its callback deliveries.
type IDV struct {
	opts   Options
	mux    *http.ServeMux
	routes []string
	faults *simkit.Registry
	client *http.Client

	wg sync.WaitGroup

	mu        sync.Mutex
	isClosed  bool
	txs       map[string]*transaction // by ref
	byToken   map[string]string       // authorizationToken -> ref
	attempts  []Attempt
	genCtx    context.Context // deliveries of the current generation; Reset cancels it
	genCancel context.CancelFunc
}

// New returns an IDV with no transactions.
func New(opts Options) (*IDV, error) {
	if err := opts.withDefaults(); err != nil {
		return nil, err
	}
	s := &IDV{
		opts:    opts,
		mux:     http.NewServeMux(),
		txs:     map[string]*transaction{},
		byToken: map[string]string{},
	}
	s.genCtx, s.genCancel = context.WithCancel(context.Background())
	s.client = newCallbackClient(opts)
	s.registerRoutes()
	return s, nil
}

// newCallbackClient dials from the configured source address, never
// through a proxy, and does not follow redirects (a callback is one POST).
func newCallbackClient(opts Options) *http.Client {
	dialer := &net.Dialer{Timeout: opts.CallbackTimeout}
	if !opts.CallbackSource.IsUnspecified() {
		dialer.LocalAddr = &net.TCPAddr{IP: opts.CallbackSource.AsSlice()}
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       dialer.DialContext,
			DisableKeepAlives: true,
		},
		Timeout: opts.CallbackTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (s *IDV) registerRoutes() {
	rt := simkit.NewRouter(s.mux)
	rt.Handle("POST /api/v4/initiate", s.handleInitiate)
	rt.Handle("GET /web/v4/app", s.handlePage)
	rt.Handle("POST /web/v4/app", s.handleDecision)
	rt.Handle("GET /api/netverify/v2/scans/{ref}", s.handleScanStatus)
	s.faults = rt.Controls("ID verification", s.Reset)
	s.routes = rt.Routes()
	s.mux.HandleFunc("GET /_sim/callbacks", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, map[string]any{"callbacks": s.Callbacks()})
	})
}

// ServeHTTP implements http.Handler.
func (s *IDV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Routes lists the simulated routes.
func (s *IDV) Routes() []string { return slices.Clone(s.routes) }

// AddFault injects a fault, as a POST to /_sim/faults does.
func (s *IDV) AddFault(f Fault) error {
	if err := s.faults.Validate(f.Fault()); err != nil {
		return fmt.Errorf("add fault: %w", err)
	}
	s.faults.Add(f.Fault())
	return nil
}

// Reset forgets every transaction and callback attempt, stops pending
// callback deliveries and clears the faults.
func (s *IDV) Reset() {
	s.mu.Lock()
	s.genCancel()
	s.genCtx, s.genCancel = context.WithCancel(context.Background())
	s.txs = map[string]*transaction{}
	s.byToken = map[string]string{}
	s.attempts = nil
	s.mu.Unlock()
	s.faults.Clear()
}

// Close stops pending callback deliveries and waits for them to end. The
// handler keeps answering, but no callback is sent after Close.
func (s *IDV) Close() error {
	s.mu.Lock()
	if !s.isClosed {
		s.isClosed = true
		s.genCancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.client.CloseIdleConnections()
	return nil
}

// Callbacks returns every callback attempt so far, oldest first.
func (s *IDV) Callbacks() []Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Attempt{}, s.attempts...)
}

// newUUID returns a random (version 4) UUID, the form of the vendor's
// transaction references.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// timestamp formats t as the vendor does: UTC, milliseconds, "Z".
func timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
