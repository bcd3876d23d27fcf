package payments

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/backlothq/backlot/internal/sandbox/simkit"
)

// apiError is an error in WePay's shape.
type apiError struct {
	status int
	kind   string // "error"
	desc   string // "error_description"
	code   int    // "error_code"
}

func errf(status int, kind string, code int, format string, args ...any) *apiError {
	return &apiError{status: status, kind: kind, code: code, desc: fmt.Sprintf(format, args...)}
}

func invalidParam(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "invalid_request", 1003, format, args...)
}

func missingParam(name string) *apiError {
	return errf(http.StatusBadRequest, "invalid_request", 1004, "%s parameter is required", name)
}

func notFound(kind string, id int64) *apiError {
	return errf(http.StatusNotFound, "invalid_request", 1003, "%s %d does not exist", kind, id)
}

func denied(kind string, id int64) *apiError {
	return errf(http.StatusForbidden, "access_denied", 1010, "this access_token does not have permission to access %s %d", kind, id)
}

func writeJSON(w http.ResponseWriter, status int, v any) { simkit.WriteJSON(w, status, v) }

func writeErr(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]any{"error": e.kind, "error_description": e.desc, "error_code": e.code})
}

// writeStatus answers an injected fault's status in WePay's shape.
func writeStatus(w http.ResponseWriter, status int) {
	if status == http.StatusTooManyRequests {
		writeErr(w, errf(status, "throttle_exceeded", 1007, "too many requests; retry later"))
		return
	}
	writeErr(w, errf(status, "processing_error", 1008, "an unexpected error occurred (simulated %d)", status))
}

// auth says how a route authenticates.
type auth int

const (
	authBearer auth = iota // the merchant's access token
	authClient             // client_id and client_secret in the body
)

// call is one authenticated request.
type call struct {
	merchant *merchant // nil for authClient routes
	params   *params
}

type route struct {
	path    string
	auth    auth
	allowed []string // body parameters the call accepts
	handle  func(p *Payments, c *call) (any, *apiError)
}

// routeTable is every simulated call, in the order Routes lists them.
var routeTable = []route{
	{"/user", authBearer, nil, (*Payments).handleUser},
	{"/account", authBearer, []string{"account_id"}, (*Payments).handleAccount},
	{"/account/find", authBearer, []string{"name", "reference_id", "sort_order"}, (*Payments).handleAccountFind},
	{"/account/get_reserve_details", authBearer, []string{"account_id", "currency"}, (*Payments).handleReserve},
	{"/checkout", authBearer, []string{"checkout_id"}, (*Payments).handleCheckout},
	{"/checkout/find", authBearer, []string{"account_id", "start", "limit", "reference_id", "state", "preapproval_id", "start_time", "end_time", "sort_order", "shipping_fee"}, (*Payments).handleCheckoutFind},
	{"/checkout/refund", authBearer, []string{"checkout_id", "refund_reason", "amount", "app_fee", "payer_email_message", "payee_email_message"}, (*Payments).handleRefund},
	{"/withdrawal/find", authBearer, []string{"account_id", "limit", "start", "sort_order"}, (*Payments).handleWithdrawalFind},
	{"/credit_card", authClient, []string{"client_id", "client_secret", "credit_card_id"}, (*Payments).handleCreditCard},
	{"/preapproval", authBearer, []string{"preapproval_id"}, (*Payments).handlePreapproval},
	{"/preapproval/cancel", authBearer, []string{"preapproval_id"}, (*Payments).handlePreapprovalCancel},
}

func (p *Payments) routes() {
	for _, rt := range routeTable {
		h := p.serveRoute(rt)
		for _, prefix := range []string{"", "/v2"} {
			p.mux.HandleFunc("POST "+prefix+rt.path, h)
			p.mux.HandleFunc(prefix+rt.path, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Allow", "POST")
				writeErr(w, errf(http.StatusMethodNotAllowed, "invalid_request", 1001, "%s accepts only POST", rt.path))
			})
		}
	}
	p.mux.HandleFunc("POST /_sim/reset", simkit.ResetHandler(p.Reset, http.StatusOK, map[string]any{"reset": true}))
	p.mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		name, f, err := ParseFaultRequest(r, p.Routes())
		if err != nil {
			writeErr(w, invalidParam("%s", err))
			return
		}
		p.faults.Set(name, f)
		writeJSON(w, http.StatusOK, map[string]any{"route": name, "fault": "set"})
	})
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		desc := fmt.Sprintf("%s %s is not a call this simulator knows (also served under /v2)", r.Method, r.URL.Path)
		simkit.NotSimulated(w, r, "payments", desc, p.Routes(), map[string]any{"error_code": 1001})
	})
}

// serveRoute wraps a handler with faults, authentication, the rate limit
// and parameter parsing, in that order: a dead upstream fails before it
// looks at credentials.
func (p *Payments) serveRoute(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p.faults.Apply(w, r, rt.path, writeStatus) {
			return
		}
		prm, e := parseParams(r, rt.allowed)
		c := &call{params: prm}
		var key string
		switch rt.auth {
		case authBearer:
			var ae *apiError
			c.merchant, key, ae = p.authenticate(r)
			if ae != nil {
				writeErr(w, ae)
				return
			}
		case authClient:
			if e == nil {
				key, e = p.checkClient(prm)
			}
		}
		if key != "" {
			if ok, wait := p.limit.Allow(key); !ok {
				w.Header().Set("Retry-After", RetryAfterSeconds(wait))
				writeErr(w, errf(http.StatusTooManyRequests, "throttle_exceeded", 1007, "too many API calls; retry after %s seconds", RetryAfterSeconds(wait)))
				return
			}
		}
		if e != nil {
			writeErr(w, e)
			return
		}
		out, e := rt.handle(p, c)
		if e != nil {
			writeErr(w, e)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// authenticate finds the merchant for the request's bearer token. The
// token (not its merchant) is the rate-limit key.
func (p *Payments) authenticate(r *http.Request) (*merchant, string, *apiError) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, "", errf(http.StatusUnauthorized, "invalid_request", 1002, "an Authorization header with a Bearer access_token is required")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.st.merchants {
		if subtle.ConstantTimeCompare([]byte(m.token), []byte(tok)) == 1 {
			if m.revoked {
				return nil, "", errf(http.StatusUnauthorized, "access_denied", 1011, "the access_token has been revoked")
			}
			return m, "token:" + tok, nil
		}
	}
	return nil, "", errf(http.StatusUnauthorized, "access_denied", 1006, "the access_token is not valid")
}

// checkClient verifies client_id and client_secret from the body.
func (p *Payments) checkClient(prm *params) (string, *apiError) {
	id, ok, e := prm.id("client_id")
	if e != nil {
		return "", e
	}
	if !ok {
		return "", missingParam("client_id")
	}
	secret, ok, e := prm.str("client_secret")
	if e != nil {
		return "", e
	}
	if !ok {
		return "", missingParam("client_secret")
	}
	if id != p.opts.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(p.opts.ClientSecret)) != 1 {
		return "", errf(http.StatusUnauthorized, "invalid_client", 1006, "the client_id and client_secret do not match an application")
	}
	return "client:" + strconv.FormatInt(id, 10), nil
}

// params is a call's JSON body.
type params struct{ m map[string]json.RawMessage }

// parseParams reads the body: empty means no parameters; it must
// otherwise be a JSON object whose keys the call accepts.
func parseParams(r *http.Request, allowed []string) (*params, *apiError) {
	prm := &params{m: map[string]json.RawMessage{}}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		return prm, errf(http.StatusBadRequest, "invalid_request", 1005, "could not read the request body")
	}
	if len(body) > 1<<20 {
		return prm, errf(http.StatusBadRequest, "invalid_request", 1005, "request body too large")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return prm, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&prm.m); err != nil || dec.More() || prm.m == nil {
		prm.m = map[string]json.RawMessage{}
		return prm, errf(http.StatusBadRequest, "invalid_request", 1005, "unable to parse the JSON body; it must be one JSON object")
	}
	var unknown []string
	for k := range prm.m {
		found := false
		for _, a := range allowed {
			found = found || a == k
		}
		if !found {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return prm, invalidParam("unexpected parameter %q", unknown[0])
	}
	return prm, nil
}

// raw returns a parameter, treating JSON null as absent.
func (p *params) raw(name string) (json.RawMessage, bool) {
	v, ok := p.m[name]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

// int reads an integer parameter given as a JSON number or a string of
// digits (both reach WePay from form-driven dashboards).
func (p *params) int(name string) (int64, bool, *apiError) {
	v, ok := p.raw(name)
	if !ok {
		return 0, false, nil
	}
	s := string(v)
	var str string
	if json.Unmarshal(v, &str) == nil {
		s = str
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, true, invalidParam("%s must be an integer", name)
	}
	return n, true, nil
}

// id reads a positive integer id.
func (p *params) id(name string) (int64, bool, *apiError) {
	n, ok, e := p.int(name)
	if e == nil && ok && n <= 0 {
		e = invalidParam("%s must be a positive integer", name)
	}
	return n, ok, e
}

func (p *params) requiredID(name string) (int64, *apiError) {
	n, ok, e := p.id(name)
	if e != nil {
		return 0, e
	}
	if !ok {
		return 0, missingParam(name)
	}
	return n, nil
}

func (p *params) str(name string) (string, bool, *apiError) {
	v, ok := p.raw(name)
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", true, invalidParam("%s must be a string", name)
	}
	return s, true, nil
}

// cents reads a dollar amount (number or numeric string, > 0, at most two
// decimals) as cents.
func (p *params) cents(name string) (int64, bool, *apiError) {
	v, ok := p.raw(name)
	if !ok {
		return 0, false, nil
	}
	s := string(v)
	var str string
	if json.Unmarshal(v, &str) == nil {
		s = str
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, true, invalidParam("%s must be a number", name)
	}
	c := math.Round(f * 100)
	if math.Abs(c-f*100) > 1e-6 {
		return 0, true, invalidParam("%s must have at most two decimal places", name)
	}
	if c <= 0 || c > 1e11 {
		return 0, true, invalidParam("%s must be greater than 0", name)
	}
	return int64(c), true, nil
}

// sortOrder reads sort_order: "DESC" (default) or "ASC".
func (p *params) sortOrder() (bool, *apiError) {
	s, ok, e := p.str("sort_order")
	if e != nil || !ok {
		return true, e
	}
	switch strings.ToUpper(s) {
	case "DESC":
		return true, nil
	case "ASC":
		return false, nil
	}
	return true, invalidParam("sort_order must be ASC or DESC")
}

// page reads start and limit.
func (p *params) page() (int, int, *apiError) {
	start, _, e := p.int("start")
	if e != nil {
		return 0, 0, e
	}
	if start < 0 {
		return 0, 0, invalidParam("start must not be negative")
	}
	limit, ok, e := p.int("limit")
	if e != nil {
		return 0, 0, e
	}
	if !ok {
		limit = FindLimitMax
	}
	if limit < 1 || limit > FindLimitMax {
		return 0, 0, invalidParam("limit must be between 1 and %d", FindLimitMax)
	}
	return int(start), int(limit), nil
}

func window[T any](xs []T, start, limit int) []T {
	if start >= len(xs) {
		return []T{}
	}
	xs = xs[start:]
	if len(xs) > limit {
		xs = xs[:limit]
	}
	return xs
}

// ownAccount returns the caller's account id. Call with p.mu held.
func (p *Payments) ownAccount(c *call, id int64) (*account, *apiError) {
	a := p.st.accounts[id]
	if a == nil {
		return nil, notFound("account", id)
	}
	if a.owner != c.merchant.userID {
		return nil, denied("account", id)
	}
	return a, nil
}

// ownsAccount reports whether the account accountID is the caller's. Call
// with p.mu held.
func (p *Payments) ownsAccount(c *call, accountID int64) bool {
	a := p.st.accounts[accountID]
	return a != nil && a.owner == c.merchant.userID
}

func (p *Payments) ownCheckout(c *call, id int64) (*checkout, *apiError) {
	co := p.st.checkouts[id]
	if co == nil {
		return nil, notFound("checkout", id)
	}
	if !p.ownsAccount(c, co.accountID) {
		return nil, denied("checkout", id)
	}
	return co, nil
}

func (p *Payments) ownPreapproval(c *call, id int64) (*preapproval, *apiError) {
	pa := p.st.preapprovals[id]
	if pa == nil {
		return nil, notFound("preapproval", id)
	}
	if !p.ownsAccount(c, pa.accountID) {
		return nil, denied("preapproval", id)
	}
	return pa, nil
}

func (p *Payments) handleUser(c *call) (any, *apiError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.merchant.object(), nil
}

// show answers the lookup of one object by the id in param, found by
// find (which checks it is the caller's) under p.mu.
func show[T interface{ object() map[string]any }](p *Payments, c *call, param string,
	find func(*call, int64) (T, *apiError)) (any, *apiError) {
	id, e := c.params.requiredID(param)
	if e != nil {
		return nil, e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	x, e := find(c, id)
	if e != nil {
		return nil, e
	}
	return x.object(), nil
}

func (p *Payments) handleAccount(c *call) (any, *apiError) {
	return show(p, c, "account_id", p.ownAccount)
}

func (p *Payments) handleAccountFind(c *call) (any, *apiError) {
	name, _, e := c.params.str("name")
	if e != nil {
		return nil, e
	}
	ref, _, e := c.params.str("reference_id")
	if e != nil {
		return nil, e
	}
	desc, e := c.params.sortOrder()
	if e != nil {
		return nil, e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var as []*account
	for _, a := range p.st.accounts {
		if a.owner == c.merchant.userID && (name == "" || a.name == name) && (ref == "" || a.ref == ref) {
			as = append(as, a)
		}
	}
	sort.Slice(as, func(i, j int) bool {
		if !as[i].created.Equal(as[j].created) {
			return as[i].created.After(as[j].created) == desc
		}
		return (as[i].id > as[j].id) == desc
	})
	out := make([]map[string]any, 0, len(as))
	for _, a := range as {
		out = append(out, a.object())
	}
	return out, nil
}

func (p *Payments) handleReserve(c *call) (any, *apiError) {
	id, e := c.params.requiredID("account_id")
	if e != nil {
		return nil, e
	}
	if cur, ok, e := c.params.str("currency"); e != nil {
		return nil, e
	} else if ok && cur != "USD" {
		return nil, invalidParam("currency %q is not supported for this account", cur)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a, e := p.ownAccount(c, id)
	if e != nil {
		return nil, e
	}
	sched := make([]map[string]any, 0, len(a.reserveSchedule))
	for _, r := range a.reserveSchedule {
		sched = append(sched, map[string]any{"time": r.at.Unix(), "amount": dollars(r.cents)})
	}
	return map[string]any{
		"account_id":           a.id,
		"currency":             "USD",
		"reserved_amount":      dollars(a.reserved),
		"withdrawals_schedule": sched,
	}, nil
}

func (p *Payments) handleCheckout(c *call) (any, *apiError) {
	return show(p, c, "checkout_id", p.ownCheckout)
}

func (p *Payments) handleCheckoutFind(c *call) (any, *apiError) {
	prm := c.params
	accountID, e := prm.requiredID("account_id")
	if e != nil {
		return nil, e
	}
	start, limit, e := prm.page()
	if e != nil {
		return nil, e
	}
	desc, e := prm.sortOrder()
	if e != nil {
		return nil, e
	}
	state, _, e := prm.str("state")
	if e != nil {
		return nil, e
	}
	ref, _, e := prm.str("reference_id")
	if e != nil {
		return nil, e
	}
	preID, _, e := prm.id("preapproval_id")
	if e != nil {
		return nil, e
	}
	from, hasFrom, e := prm.int("start_time")
	if e != nil {
		return nil, e
	}
	to, hasTo, e := prm.int("end_time")
	if e != nil {
		return nil, e
	}
	if hasFrom && hasTo && to < from {
		return nil, invalidParam("end_time must not be before start_time")
	}
	// shipping_fee is accepted and checked, but the demo has no shipping.
	if _, _, e := prm.cents("shipping_fee"); e != nil {
		return nil, e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, e := p.ownAccount(c, accountID); e != nil {
		return nil, e
	}
	var cs []*checkout
	for _, co := range p.st.checkouts {
		switch {
		case co.accountID != accountID,
			state != "" && co.state != state,
			ref != "" && co.ref != ref,
			preID != 0 && co.preapprovalID != preID,
			hasFrom && co.created.Unix() < from,
			hasTo && co.created.Unix() > to:
			continue
		}
		cs = append(cs, co)
	}
	sortCheckouts(cs, desc)
	out := []map[string]any{}
	for _, co := range window(cs, start, limit) {
		out = append(out, co.object())
	}
	return out, nil
}

func (p *Payments) handleRefund(c *call) (any, *apiError) {
	prm := c.params
	id, e := prm.requiredID("checkout_id")
	if e != nil {
		return nil, e
	}
	reason, ok, e := prm.str("refund_reason")
	if e != nil {
		return nil, e
	}
	if !ok || strings.TrimSpace(reason) == "" {
		return nil, missingParam("refund_reason")
	}
	if len(reason) > 255 {
		return nil, invalidParam("refund_reason must be at most 255 characters")
	}
	amount, partial, e := prm.cents("amount")
	if e != nil {
		return nil, e
	}
	appFee, hasAppFee, e := prm.cents("app_fee")
	if e != nil {
		return nil, e
	}
	for _, f := range []string{"payer_email_message", "payee_email_message"} {
		if _, _, e := prm.str(f); e != nil {
			return nil, e
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	co, e := p.ownCheckout(c, id)
	if e != nil {
		return nil, e
	}
	switch co.state {
	case "captured":
	case "refunded":
		return nil, invalidParam("checkout %d has already been fully refunded", id)
	case "authorized", "reserved":
		return nil, invalidParam("checkout %d is %s; cancel it instead of refunding", id, co.state)
	default:
		return nil, invalidParam("checkout %d is %s and cannot be refunded", id, co.state)
	}
	if p.opts.Now().Sub(co.created) > RefundWindow {
		return nil, invalidParam("Cannot refund checkout after 60 days")
	}
	left := co.cents - co.refundedCents
	if !partial {
		amount = left
	}
	if amount > left {
		return nil, invalidParam("amount %.2f is more than the %.2f left to refund", dollars(amount), dollars(left))
	}
	if hasAppFee && appFee > amount {
		return nil, invalidParam("app_fee cannot be more than amount")
	}
	co.refundedCents += amount
	co.refundReason = reason
	if co.refundedCents == co.cents {
		co.state = "refunded"
	}
	return map[string]any{"checkout_id": co.id, "state": co.state}, nil
}

func (p *Payments) handleWithdrawalFind(c *call) (any, *apiError) {
	accountID, e := c.params.requiredID("account_id")
	if e != nil {
		return nil, e
	}
	start, limit, e := c.params.page()
	if e != nil {
		return nil, e
	}
	desc, e := c.params.sortOrder()
	if e != nil {
		return nil, e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, e := p.ownAccount(c, accountID); e != nil {
		return nil, e
	}
	var ws []*withdrawal
	for _, w := range p.st.withdrawals {
		if w.accountID == accountID {
			ws = append(ws, w)
		}
	}
	sort.Slice(ws, func(i, j int) bool {
		if !ws[i].created.Equal(ws[j].created) {
			return ws[i].created.After(ws[j].created) == desc
		}
		return (ws[i].id > ws[j].id) == desc
	})
	out := []map[string]any{}
	for _, w := range window(ws, start, limit) {
		out = append(out, w.object())
	}
	return out, nil
}

func (p *Payments) handleCreditCard(c *call) (any, *apiError) {
	// Cards are not tied to a merchant here: found by id alone.
	return show(p, c, "credit_card_id", func(_ *call, id int64) (*creditCard, *apiError) {
		if cc := p.st.cards[id]; cc != nil {
			return cc, nil
		}
		return nil, notFound("credit_card", id)
	})
}

func (p *Payments) handlePreapproval(c *call) (any, *apiError) {
	return show(p, c, "preapproval_id", p.ownPreapproval)
}

func (p *Payments) handlePreapprovalCancel(c *call) (any, *apiError) {
	id, e := c.params.requiredID("preapproval_id")
	if e != nil {
		return nil, e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pa, e := p.ownPreapproval(c, id)
	if e != nil {
		return nil, e
	}
	switch pa.state {
	case "approved", "new":
	default:
		return nil, invalidParam("preapproval %d is %s and cannot be cancelled", id, pa.state)
	}
	pa.state = "cancelled"
	return map[string]any{"preapproval_id": pa.id, "state": pa.state}, nil
}
