// Package payments is a local stand-in for a WePay-v2-shaped payments API,
// the one a payments support dashboard calls through backlot: merchants
// (users) with bearer access tokens, their accounts, checkouts, refunds,
// withdrawals, reserves, tokenized credit cards and preapprovals, held in
// memory and seeded with demo data.
//
// Every call is a POST with a JSON body, under /v2/... as on the real hosts
// and also without the prefix. Errors have WePay's shape:
//
//	{"error":"invalid_request","error_description":"…","error_code":1003}
//
// with WePay's generic codes where the public documentation gives them:
// 1001 unknown call, 1002 missing Authorization, 1003 invalid parameter
// value (including "Cannot refund checkout after 60 days"), 1004 missing
// parameter, 1005 unparsable body, 1006 unknown access token or client,
// 1007 throttled (HTTP 429, error "throttle_exceeded", with Retry-After),
// 1008 WePay-side error, 1010 not permitted (another merchant's object),
// 1011 revoked token. Choices the documentation does not settle are the
// simulator's own and noted where made: a missing object is HTTP 404 with
// code 1003, another merchant's object is HTTP 403 access_denied 1010, and
// an unknown body parameter is refused with 1003 (so a misspelt field such
// as "acccount_id" fails loudly instead of being ignored).
//
// Tests and `backlot dev` drive it further through POST /_sim/faults
// (per-route latency, 5xx, 429, hang), POST /_sim/reset, and methods.
package payments

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults.
const (
	// RateLimitDefault and RateWindowDefault are WePay's documented
	// throttle: 30 calls per 10 seconds. The simulator counts them per
	// access token (per client_id for /credit_card).
	RateLimitDefault  = 30
	RateWindowDefault = 10 * time.Second
	// ClientIDDefault is the application's client_id unless
	// Options.ClientID says otherwise.
	ClientIDDefault int64 = 118000
	// RefundWindow is how long after its creation a checkout can be
	// refunded.
	RefundWindow = 60 * 24 * time.Hour
	// FindLimitMax is the largest limit /checkout/find and
	// /withdrawal/find accept, and their default.
	FindLimitMax = 50
)

// Seeded demo objects, stable so tests and demos can name them.
const (
	DemoUserAda   int64 = 3001 // merchant with two accounts
	DemoUserGrace int64 = 3002 // a second merchant

	DemoAccountPottery  int64 = 1001 // Ada's, active
	DemoAccountWorkshop int64 = 1002 // Ada's, action_required
	DemoAccountBooks    int64 = 1003 // Grace's

	DemoCheckoutRecent     int64 = 5001 // captured 3 days ago, refundable
	DemoCheckoutLarge      int64 = 5002 // captured 10 days ago
	DemoCheckoutRefunded   int64 = 5003 // already refunded
	DemoCheckoutOld        int64 = 5004 // captured 75 days ago: refund answers 1003
	DemoCheckoutAuthorized int64 = 5005 // authorized, not yet captured
	DemoCheckoutRecurring  int64 = 5006 // paid by DemoPreapproval
	DemoCheckoutWorkshop   int64 = 5007 // on DemoAccountWorkshop
	DemoCheckoutGrace      int64 = 5101 // Grace's

	DemoPreapproval      int64 = 6001 // Ada's, approved, monthly
	DemoPreapprovalGrace int64 = 6101

	DemoCreditCard      int64 = 7001
	DemoCreditCardOther int64 = 7002

	DemoPayerEmail      = "sam.payer@example.com"
	DemoPayerOtherEmail = "lee.payer@example.com"
)

// Options configures a Payments simulator.
type Options struct {
	// ClientID and ClientSecret are the application's credentials, needed
	// in the body of /credit_card. Defaults: ClientIDDefault and a random
	// secret (read it back with ClientCredentials).
	ClientID     int64
	ClientSecret string
	// TokenKey derives the merchants' access tokens, so a caller that
	// keeps the key (`backlot dev`) keeps the tokens across restarts.
	// Default: a random key.
	TokenKey []byte
	// RateLimit requests per RateWindow per access token; over it the
	// answer is 429 with Retry-After. Defaults RateLimitDefault and
	// RateWindowDefault; a negative RateLimit disables limiting.
	RateLimit  int
	RateWindow time.Duration
	// Now is the clock: seeded objects are dated relative to it at New
	// and Reset, and the 60-day refund rule and rate windows read it.
	// Default time.Now.
	Now func() time.Time
}

// Merchant is a seeded merchant as the partner's middleware knows it.
type Merchant struct {
	UserID      int64
	Name        string
	Email       string
	AccessToken string
	AccountIDs  []int64
}

// Payments is the simulator. It is an http.Handler; its methods are safe
// for concurrent use.
type Payments struct {
	opts   Options
	mux    *http.ServeMux
	faults *Faults
	limit  *RateLimiter

	mu sync.Mutex
	st *state
}

// New returns a simulator seeded with the demo merchants.
func New(opts Options) *Payments {
	if opts.ClientID == 0 {
		opts.ClientID = ClientIDDefault
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = randomString(24)
	}
	if len(opts.TokenKey) == 0 {
		opts.TokenKey = []byte(randomString(32))
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = RateLimitDefault
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = RateWindowDefault
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Payments{
		opts:   opts,
		mux:    http.NewServeMux(),
		faults: NewFaults(),
		limit:  NewRateLimiter(opts.RateLimit, opts.RateWindow, opts.Now),
	}
	p.st = seed(opts.Now(), p.tokenFor)
	p.routes()
	return p
}

// ServeHTTP implements http.Handler.
func (p *Payments) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mux.ServeHTTP(w, r)
}

// ClientCredentials returns the application's client_id and secret.
func (p *Payments) ClientCredentials() (int64, string) {
	return p.opts.ClientID, p.opts.ClientSecret
}

// Merchants lists the merchants with their access tokens and accounts.
func (p *Payments) Merchants() []Merchant {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Merchant
	for _, m := range p.st.merchants {
		mm := Merchant{UserID: m.userID, Name: m.first + " " + m.last, Email: m.email, AccessToken: m.token}
		for _, a := range p.st.accounts {
			if a.owner == m.userID {
				mm.AccountIDs = append(mm.AccountIDs, a.id)
			}
		}
		sort.Slice(mm.AccountIDs, func(i, j int) bool { return mm.AccountIDs[i] < mm.AccountIDs[j] })
		out = append(out, mm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out
}

// PayerCheckouts returns, newest first, every checkout (as /checkout
// answers it) paid by the payer with email, across all merchants: what a
// partner's middleware finds in its own database for /payer.
func (p *Payments) PayerCheckouts(email string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var cs []*checkout
	for _, c := range p.st.checkouts {
		if strings.EqualFold(c.payerEmail, email) {
			cs = append(cs, c)
		}
	}
	sortCheckouts(cs, true)
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.object())
	}
	return out
}

// RevokeToken revokes an access token: later calls with it answer 1011.
// Reset restores it.
func (p *Payments) RevokeToken(token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.st.merchants {
		if m.token == token {
			m.revoked = true
		}
	}
}

// SetFault installs a fault on route ("/checkout/refund", or "*" for
// all).
func (p *Payments) SetFault(route string, f Fault) { p.faults.Set(route, f) }

// Reset restores the seeded data (dated from the clock's current time),
// clears faults and rate windows, restores revoked tokens and releases
// hanging requests.
func (p *Payments) Reset() {
	p.mu.Lock()
	p.st = seed(p.opts.Now(), p.tokenFor)
	p.mu.Unlock()
	p.faults.Reset()
	p.limit.Reset()
}

// Routes lists the simulated calls.
func (p *Payments) Routes() []string {
	out := make([]string, 0, len(routeTable))
	for _, rt := range routeTable {
		out = append(out, rt.path)
	}
	return out
}

// tokenFor derives a merchant's access token, shaped like WePay stage
// tokens ("STAGE_" and 64 hex digits).
func (p *Payments) tokenFor(userID int64) string {
	mac := hmac.New(sha256.New, p.opts.TokenKey)
	mac.Write([]byte("access_token:" + strconv.FormatInt(userID, 10)))
	return "STAGE_" + hex.EncodeToString(mac.Sum(nil))
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
