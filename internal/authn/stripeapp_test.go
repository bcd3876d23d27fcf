package authn_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/testutil"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
)

const (
	stripeTestSecret = "absec_test_secret"
	stripeTestUser   = "usr_K6yd2CbXLO9A5G"
	stripeTestAcct   = "acct_1JSkf6FRwUQjTSJE"
)

func stripeSig(secret string, ts int64, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.%s", ts, payload)
	return hex.EncodeToString(m.Sum(nil))
}

// The published vector (SPEC 5.2 / Stripe docs).
func TestStripeAppPublishedVector(t *testing.T) {
	t.Parallel()
	payload := authn.StripeAppPayload(stripeTestUser, stripeTestAcct)
	if payload != `{"user_id":"usr_K6yd2CbXLO9A5G","account_id":"acct_1JSkf6FRwUQjTSJE"}` {
		t.Fatalf("payload %s", payload)
	}
	const want = "95d377f7216b002bc8462ad7ad1c21ae33f54bfd7f12f1fe86f43cfd56123df3"
	if got := stripeSig(stripeTestSecret, 1700000000, payload); got != want {
		t.Fatalf("v1 = %s, want %s", got, want)
	}
	clock := testutil.NewClock(time.Unix(1700000000+60, 0))
	f := newAuthFixture(t, map[string]config.Authenticator{"stripe": {Type: config.AuthStripeApp, Secrets: []string{stripeTestSecret}}}, clock)
	srv := f.serve(t, []string{"stripe"}, auth.Rule{})
	res := doReq(t, "GET", srv.URL+"/api/userinfo", map[string]string{
		"Stripe-Signature": "t=1700000000,v1=" + want, "Stripe-User-Id": stripeTestUser, "Stripe-Account-Id": stripeTestAcct}, "")
	if res.status != 200 || !strings.Contains(string(res.body), `"subject":"usr_K6yd2CbXLO9A5G"`) || !strings.Contains(string(res.body), `"tenant":"acct_1JSkf6FRwUQjTSJE"`) {
		t.Fatalf("published vector refused: %d %s", res.status, res.body)
	}
}

func TestStripeApp(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	old := "absec_old_secret"
	f := newAuthFixture(t, map[string]config.Authenticator{"stripe": {Type: config.AuthStripeApp,
		Secrets: []string{stripeTestSecret, old}, Tolerance: config.Duration(5 * time.Minute)}}, clock)
	srv := f.serve(t, []string{"stripe"}, auth.Rule{})
	now := clock.Now().Unix()
	payload := authn.StripeAppPayload(stripeTestUser, stripeTestAcct)
	good := stripeSig(stripeTestSecret, now, payload)
	ids := func(sig string) map[string]string {
		return map[string]string{"Stripe-Signature": sig, "Stripe-User-Id": stripeTestUser, "Stripe-Account-Id": stripeTestAcct}
	}
	body := func(user, acct string) string {
		b, _ := json.Marshal(map[string]any{"user_id": user, "account_id": acct, "extra": map[string]any{"x": 1}})
		return string(b)
	}
	cases := []struct {
		name   string
		method string
		hdr    map[string]string
		body   string
		status int
		code   string
		desc   string
	}{
		{name: "headers", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now, good)), status: 200},
		{name: "body", method: "POST", hdr: map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", now, good), "Content-Type": "application/json"},
			body: body(stripeTestUser, stripeTestAcct), status: 200},
		{name: "rotated secret", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now, stripeSig(old, now, payload))), status: 200},
		{name: "any v1 may match", hdr: ids(fmt.Sprintf("t=%d,v1=%s,v1=%s,v0=abc", now, strings.Repeat("0", 64), good)), status: 200},
		{name: "within tolerance", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now-299, stripeSig(stripeTestSecret, now-299, payload))), status: 200},
		{name: "missing", status: 401, code: "missing_credentials"},
		{name: "too old", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now-301, stripeSig(stripeTestSecret, now-301, payload))), status: 401, code: "invalid_token", desc: "too old"},
		{name: "future", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now+301, stripeSig(stripeTestSecret, now+301, payload))), status: 401, code: "invalid_token", desc: "in the future"},
		{name: "tampered user", hdr: map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", now, good), "Stripe-User-Id": "usr_other", "Stripe-Account-Id": stripeTestAcct}, status: 401, code: "invalid_token", desc: "bad signature"},
		{name: "tampered body", method: "POST", hdr: map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", now, good)},
			body: body(stripeTestUser, "acct_other"), status: 401, code: "invalid_token", desc: "bad signature"},
		{name: "tampered timestamp", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now-1, good)), status: 401, code: "invalid_token", desc: "bad signature"},
		{name: "v0 only", hdr: ids(fmt.Sprintf("t=%d,v0=%s", now, good)), status: 401, code: "invalid_token", desc: "no v1"},
		{name: "empty v1", hdr: ids(fmt.Sprintf("t=%d,v1=", now)), status: 401, code: "invalid_token", desc: "bad v1"},
		{name: "empty v1 beside a good one", hdr: ids(fmt.Sprintf("t=%d,v1=,v1=%s", now, good)), status: 401, code: "invalid_token", desc: "bad v1"},
		{name: "wrong key order", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now, stripeSig(stripeTestSecret, now,
			`{"account_id":"`+stripeTestAcct+`","user_id":"`+stripeTestUser+`"}`))), status: 401, code: "invalid_token", desc: "bad signature"},
		{name: "wrong secret", hdr: ids(fmt.Sprintf("t=%d,v1=%s", now, stripeSig("absec_wrong", now, payload))), status: 401, code: "invalid_token", desc: "bad signature"},
		{name: "no timestamp", hdr: ids("v1=" + good), status: 401, code: "invalid_token", desc: "no timestamp"},
		{name: "bad timestamp", hdr: ids("t=abc,v1=" + good), status: 401, code: "invalid_token", desc: "bad timestamp"},
		{name: "repeated t", hdr: ids(fmt.Sprintf("t=%d,t=%d,v1=%s", now, now, good)), status: 401, code: "invalid_token", desc: "repeated t"},
		{name: "garbage header", hdr: ids("garbage"), status: 401, code: "invalid_token", desc: "malformed"},
		{name: "no ids", hdr: map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", now, good)}, status: 401, code: "invalid_token", desc: "required"},
		{name: "body not JSON", method: "POST", hdr: map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", now, good)}, body: "user_id=x", status: 401, code: "invalid_token", desc: "not JSON"},
		{name: "quote in id", hdr: map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", now, good), "Stripe-User-Id": `usr"x`, "Stripe-Account-Id": stripeTestAcct}, status: 401, code: "invalid_token", desc: "malformed user"},
	}
	for i, c := range cases {
		hdr := map[string]string{"X-Test-IP": fmt.Sprintf("10.3.0.%d", i)}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		m := c.method
		if m == "" {
			m = "GET"
		}
		res := doReq(t, m, srv.URL+"/api/x", hdr, c.body)
		if res.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, res.status, c.status, res.body)
			continue
		}
		if c.status == 200 {
			var got struct {
				Principal auth.Principal
				Body      string
			}
			json.Unmarshal(res.body, &got)
			if got.Principal.Subject != stripeTestUser || got.Principal.Tenant != stripeTestAcct || got.Principal.Authenticator != "stripe" {
				t.Errorf("%s: principal %+v", c.name, got.Principal)
			}
			if got.Body != c.body {
				t.Errorf("%s: handler saw body %q, want %q (restored)", c.name, got.Body, c.body)
			}
			continue
		}
		if res.env.Error != c.code || !strings.Contains(res.env.ErrorDescription, c.desc) {
			t.Errorf("%s: %+v, want %s %q", c.name, res.env, c.code, c.desc)
		}
		if c.status == 401 && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Stripe-Signature") {
			t.Errorf("%s: WWW-Authenticate %q", c.name, res.header.Get("WWW-Authenticate"))
		}
	}
}

func TestStripeAppBodyLimit(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	f := newAuthFixture(t, map[string]config.Authenticator{"stripe": {Type: config.AuthStripeApp, Secrets: []string{stripeTestSecret}}}, clock)
	srv := f.serve(t, []string{"stripe"}, auth.Rule{})
	big := `{"user_id":"` + strings.Repeat("a", 2<<20) + `"}`
	res := doReq(t, "POST", srv.URL+"/api/x", map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", clock.Now().Unix(), strings.Repeat("0", 64))}, big)
	if res.status != 413 || res.env.Error != "body_too_large" {
		t.Fatalf("oversized body: %d %+v", res.status, res.env)
	}
}

// FuzzStripeSignature: any Stripe-Signature header either is refused with
// a Failure or carries the real v1 for the payload.
func FuzzStripeSignature(f *testing.F) {
	now := int64(1700000000)
	good := stripeSig(stripeTestSecret, now, authn.StripeAppPayload(stripeTestUser, stripeTestAcct))
	for _, s := range []string{"t=1700000000,v1=" + good, "t=1700000000,v0=" + good, "t=,v1=", "v1=" + good + ",t=1700000000",
		"t=1700000000,v1=" + good + ",v1=zz", "t=1700000000 , v1=" + good, ",,,", "t=9999999999999999999,v1=" + good} {
		f.Add(s)
	}
	clock := testutil.NewClock(time.Unix(now, 0))
	set, err := authn.NewSet(map[string]config.Authenticator{"stripe": {Type: config.AuthStripeApp, Secrets: []string{stripeTestSecret}}}, nil, authn.Deps{Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	a, _ := set.Get("stripe")
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Stripe-Signature", header)
		r.Header.Set("Stripe-User-Id", stripeTestUser)
		r.Header.Set("Stripe-Account-Id", stripeTestAcct)
		p, err := a.Authenticate(r)
		if err == nil {
			if !strings.Contains(strings.ToLower(header), good) || p.Subject != stripeTestUser {
				t.Fatalf("accepted %q", header)
			}
			return
		}
		var fl *auth.Failure
		if !errors.As(err, &fl) && r.Header.Get("Stripe-Signature") != "" {
			t.Fatalf("%q: not a Failure: %v", header, err)
		}
	})
}

// TestStripeAppBodyAgreement: the signature covers one user and account;
// a JSON body that names another, or names one twice or in another case
// (which Go's case-insensitive decoding would merge), is refused with 400
// so a handler reading body.user_id never acts for someone else.
func TestStripeAppBodyAgreement(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	f := newAuthFixture(t, map[string]config.Authenticator{"stripe": {Type: config.AuthStripeApp, Secrets: []string{stripeTestSecret}}}, clock)
	srv := f.serve(t, []string{"stripe"}, auth.Rule{})
	now := clock.Now().Unix()
	const attacker, acct, victim = "usr_attacker", "acct_attacker", "usr_victim"
	sig := fmt.Sprintf("t=%d,v1=%s", now, stripeSig(stripeTestSecret, now, authn.StripeAppPayload(attacker, acct)))
	bodyOnly := map[string]string{"Stripe-Signature": sig, "Content-Type": "application/json"}
	withHeaders := map[string]string{"Stripe-Signature": sig, "Stripe-User-Id": attacker, "Stripe-Account-Id": acct, "Content-Type": "application/json"}
	cases := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
	}{
		{"the reported attack", bodyOnly, `{"user_id":"usr_victim","account_id":"acct_attacker","User_Id":"usr_attacker"}`, 400},
		{"case variant first", bodyOnly, `{"User_Id":"usr_attacker","user_id":"usr_victim","account_id":"acct_attacker"}`, 400},
		{"case variant alone", bodyOnly, `{"USER_ID":"usr_attacker","account_id":"acct_attacker"}`, 400},
		{"account case variant", bodyOnly, `{"user_id":"usr_attacker","account_id":"acct_attacker","Account_ID":"acct_victim"}`, 400},
		{"unicode fold (long s)", bodyOnly, `{"user_id":"usr_attacker","account_id":"acct_attacker","u` + "\u017f" + `er_id":"usr_victim"}`, 400},
		{"duplicate user_id", bodyOnly, `{"user_id":"usr_attacker","account_id":"acct_attacker","user_id":"usr_victim"}`, 400},
		{"duplicate through an escape", bodyOnly, `{"user_id":"usr_attacker","account_id":"acct_attacker","user\u005fid":"usr_victim"}`, 400},
		{"duplicate account_id", bodyOnly, `{"user_id":"usr_attacker","account_id":"acct_attacker","account_id":"acct_victim"}`, 400},
		{"headers, body names the victim", withHeaders, `{"user_id":"usr_victim"}`, 400},
		{"headers, body names another account", withHeaders, `{"account_id":"acct_victim","amount":5}`, 400},
		{"headers, case variant", withHeaders, `{"User_Id":"usr_victim"}`, 400},
		{"headers, numeric user_id", withHeaders, `{"user_id":42}`, 400},
		{"headers, null user_id", withHeaders, `{"user_id":null}`, 400},
		{"headers, object user_id", withHeaders, `{"user_id":{"id":"usr_attacker"}}`, 400},
		{"headers, second JSON value", withHeaders, `{"user_id":"usr_attacker"} {"user_id":"usr_victim"}`, 400},
		{"headers, truncated JSON", withHeaders, `{"user_id":"usr_attacker",`, 400},
		{"body agrees", bodyOnly, `{"user_id":"usr_attacker","account_id":"acct_attacker","note":{"user_id":"nested is not checked"}}`, 200},
		{"body agrees, leading space", bodyOnly, " \n\t" + `{"account_id":"acct_attacker","user_id":"usr_attacker"}`, 200},
		{"headers, body agrees", withHeaders, `{"user_id":"usr_attacker","amount":5}`, 200},
		{"headers, body without ids", withHeaders, `{"amount":5,"items":[{"user_id":"x"}]}`, 200},
		{"headers, JSON array body", withHeaders, `[{"user_id":"usr_victim"}]`, 200},
		{"headers, text body", withHeaders, `hello`, 200},
	}
	for i, tc := range cases {
		hdr := map[string]string{"X-Test-IP": fmt.Sprintf("10.4.0.%d", i)}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		res := doReq(t, "POST", srv.URL+"/api/x", hdr, tc.body)
		if res.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, res.status, tc.status, res.body)
			continue
		}
		if tc.status != 200 {
			if res.env.Error != "invalid_request" {
				t.Errorf("%s: %+v, want invalid_request", tc.name, res.env)
			}
			continue
		}
		var got struct {
			Principal auth.Principal
			Body      string
		}
		json.Unmarshal(res.body, &got)
		if got.Principal.Subject != attacker || got.Principal.Tenant != acct {
			t.Errorf("%s: principal %+v", tc.name, got.Principal)
		}
		if got.Body != tc.body {
			t.Errorf("%s: handler saw body %q, want %q", tc.name, got.Body, tc.body)
		}
	}
	_ = victim
}
