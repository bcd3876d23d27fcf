// Package partner is a local stand-in for a platform's own middleware: the
// small service a payments support dashboard asks, with a shared secret,
// for a merchant's payments access token (looked up by email or account
// id) and for the checkouts a payer made on the platform. It reads the
// merchants and checkouts of a payments simulator, as the real middleware
// reads the platform's database.
//
// Every call is a POST with a JSON body and the shared secret as the whole
// Authorization header value (no scheme), the way such middlewares were
// commonly written. Answers, a shape this simulator fixes:
//
//	POST /user    {"email"} or {"account_id"}
//	  → {"user_id", "email", "name", "access_token", "account_ids": [...]}
//	POST /account {"account_id"} or {"email"}
//	  → {"account_id", "user_id", "access_token"}  (with email: the
//	    merchant's first account)
//	POST /payer   {"email"}
//	  → {"email", "checkouts": [checkout objects as the payments API has them]}
//
// Errors: {"error", "error_description", "error_code"} where error_code is
// the HTTP status (401 for a wrong or missing secret, 400 for bad input,
// 404 for an unknown merchant). Faults, the rate limit, /_sim/reset and the
// not-simulated answer work as in the payments simulator.
package partner

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/payments"
	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// RateLimitDefault requests per RateWindowDefault: generous, since a
// dashboard asks the middleware on every call.
const (
	RateLimitDefault  = 600
	RateWindowDefault = time.Minute
)

// Options configures a Partner.
type Options struct {
	// Secret is the shared secret callers send as Authorization.
	// Required: New panics without it, as a middleware without one would
	// be open.
	Secret string
	// Payments is the payments simulator whose merchants and checkouts
	// this middleware knows. Required.
	Payments *payments.Payments
	// RateLimit requests per RateWindow per caller (all callers share the
	// secret, so in effect per simulator); negative disables. Defaults
	// RateLimitDefault and RateWindowDefault.
	RateLimit  int
	RateWindow time.Duration
	// Now is the clock for the rate limit. Default time.Now.
	Now func() time.Time
}

// Partner is the simulator, an http.Handler safe for concurrent use.
type Partner struct {
	opts   Options
	mux    *http.ServeMux
	faults *payments.Faults
	limit  *simkit.RateLimiter
}

var routeNames = []string{"/user", "/account", "/payer"}

// New returns a Partner.
func New(opts Options) *Partner {
	if opts.Secret == "" || opts.Payments == nil {
		panic("partner.New: Secret and Payments are required")
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
	pt := &Partner{
		opts:   opts,
		mux:    http.NewServeMux(),
		faults: payments.NewFaults(),
		limit:  simkit.NewRateLimiter(opts.RateLimit, opts.RateWindow, opts.Now),
	}
	handlers := map[string]func(map[string]json.RawMessage) (any, *apiError){
		"/user":    pt.handleUser,
		"/account": pt.handleAccount,
		"/payer":   pt.handlePayer,
	}
	for _, name := range routeNames {
		pt.mux.HandleFunc("POST "+name, pt.serve(name, handlers[name]))
	}
	pt.mux.HandleFunc("POST /_sim/reset", simkit.ResetHandler(pt.Reset, http.StatusOK, map[string]any{"reset": true}))
	pt.mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		name, f, err := payments.ParseFaultRequest(r, routeNames)
		if err != nil {
			writeErr(w, errf(http.StatusBadRequest, "invalid_request", "%s", err))
			return
		}
		pt.faults.Set(name, f)
		simkit.WriteJSON(w, http.StatusOK, map[string]any{"route": name, "fault": "set"})
	})
	pt.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		desc := fmt.Sprintf("%s %s is not a call this simulator knows", r.Method, r.URL.Path)
		simkit.NotSimulated(w, r, "partner", desc, routeNames, map[string]any{"error_code": http.StatusNotFound})
	})
	return pt
}

// ServeHTTP implements http.Handler.
func (pt *Partner) ServeHTTP(w http.ResponseWriter, r *http.Request) { pt.mux.ServeHTTP(w, r) }

// SetFault installs a fault on route ("/user", "/account", "/payer" or
// "*").
func (pt *Partner) SetFault(route string, f payments.Fault) { pt.faults.Set(route, f) }

// Reset clears faults and rate windows and releases hanging requests. (The
// data is the payments simulator's; reset that separately.)
func (pt *Partner) Reset() {
	pt.faults.Reset()
	pt.limit.Reset()
}

type apiError struct {
	status int
	kind   string
	desc   string
}

func errf(status int, kind, format string, args ...any) *apiError {
	return &apiError{status: status, kind: kind, desc: fmt.Sprintf(format, args...)}
}

func writeErr(w http.ResponseWriter, e *apiError) {
	simkit.WriteJSON(w, e.status, map[string]any{"error": e.kind, "error_description": e.desc, "error_code": e.status})
}

func writeStatus(w http.ResponseWriter, status int) {
	kind := "server_error"
	if status == http.StatusTooManyRequests {
		kind = "rate_limited"
	}
	writeErr(w, errf(status, kind, "simulated %d", status))
}

// serve wraps a handler with faults, the secret check, the rate limit and
// body parsing.
func (pt *Partner) serve(name string, h func(map[string]json.RawMessage) (any, *apiError)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if pt.faults.Apply(w, r, name, writeStatus) {
			return
		}
		got := r.Header.Get("Authorization")
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(pt.opts.Secret)) != 1 {
			writeErr(w, errf(http.StatusUnauthorized, "unauthorized", "the Authorization header must be the middleware's shared secret"))
			return
		}
		if ok, wait := pt.limit.Allow("secret"); !ok {
			w.Header().Set("Retry-After", simkit.RetryAfter(wait))
			writeErr(w, errf(http.StatusTooManyRequests, "rate_limited", "too many requests"))
			return
		}
		var body map[string]json.RawMessage
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		if err := dec.Decode(&body); err != nil || body == nil || dec.More() {
			writeErr(w, errf(http.StatusBadRequest, "invalid_request", "the body must be one JSON object"))
			return
		}
		out, e := h(body)
		if e != nil {
			writeErr(w, e)
			return
		}
		simkit.WriteJSON(w, http.StatusOK, out)
	}
}

// fields reads the allowed string/id fields of a body, refusing others.
type fields struct {
	email     string
	accountID int64
}

func readFields(body map[string]json.RawMessage, allowed ...string) (fields, *apiError) {
	var f fields
	for k, v := range body {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return f, errf(http.StatusBadRequest, "invalid_request", "unexpected field %q", k)
		}
		if bytes.Equal(v, []byte("null")) {
			continue
		}
		switch k {
		case "email":
			if err := json.Unmarshal(v, &f.email); err != nil || !strings.Contains(f.email, "@") {
				return f, errf(http.StatusBadRequest, "invalid_request", "email must be an email address")
			}
		case "account_id":
			s := string(v)
			var str string
			if json.Unmarshal(v, &str) == nil {
				s = str
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				return f, errf(http.StatusBadRequest, "invalid_request", "account_id must be a positive integer")
			}
			f.accountID = n
		}
	}
	return f, nil
}

// find returns the merchant with email or owning accountID.
func (pt *Partner) find(f fields) (payments.Merchant, *apiError) {
	for _, m := range pt.opts.Payments.Merchants() {
		if f.email != "" && strings.EqualFold(m.Email, f.email) {
			return m, nil
		}
		for _, a := range m.AccountIDs {
			if f.accountID != 0 && a == f.accountID {
				return m, nil
			}
		}
	}
	if f.email != "" {
		return payments.Merchant{}, errf(http.StatusNotFound, "not_found", "no merchant with email %q", f.email)
	}
	return payments.Merchant{}, errf(http.StatusNotFound, "not_found", "no merchant owns account %d", f.accountID)
}

func (pt *Partner) handleUser(body map[string]json.RawMessage) (any, *apiError) {
	f, e := readFields(body, "email", "account_id")
	if e != nil {
		return nil, e
	}
	if f.email == "" && f.accountID == 0 {
		return nil, errf(http.StatusBadRequest, "invalid_request", "email or account_id is required")
	}
	m, e := pt.find(f)
	if e != nil {
		return nil, e
	}
	return map[string]any{
		"user_id":      m.UserID,
		"email":        m.Email,
		"name":         m.Name,
		"access_token": m.AccessToken,
		"account_ids":  m.AccountIDs,
	}, nil
}

func (pt *Partner) handleAccount(body map[string]json.RawMessage) (any, *apiError) {
	f, e := readFields(body, "email", "account_id")
	if e != nil {
		return nil, e
	}
	if f.email == "" && f.accountID == 0 {
		return nil, errf(http.StatusBadRequest, "invalid_request", "account_id or email is required")
	}
	// account_id wins when both are given: it names the account.
	if f.accountID != 0 {
		f.email = ""
	}
	m, e := pt.find(f)
	if e != nil {
		return nil, e
	}
	accountID := f.accountID
	if accountID == 0 {
		if len(m.AccountIDs) == 0 {
			return nil, errf(http.StatusNotFound, "not_found", "merchant %q has no account", m.Email)
		}
		accountID = m.AccountIDs[0]
	}
	return map[string]any{"account_id": accountID, "user_id": m.UserID, "access_token": m.AccessToken}, nil
}

func (pt *Partner) handlePayer(body map[string]json.RawMessage) (any, *apiError) {
	f, e := readFields(body, "email")
	if e != nil {
		return nil, e
	}
	if f.email == "" {
		return nil, errf(http.StatusBadRequest, "invalid_request", "email is required")
	}
	return map[string]any{"email": f.email, "checkouts": pt.opts.Payments.PayerCheckouts(f.email)}, nil
}
