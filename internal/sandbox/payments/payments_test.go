package payments

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

type fixture struct {
	p      *Payments
	srv    *httptest.Server
	clock  *testutil.Clock
	ada    string // Ada's access token
	grace  string
	secret string
}

func setup(t *testing.T, opts Options) *fixture {
	t.Helper()
	clock := testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	opts.Now = clock.Now
	p := New(opts)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	ms := p.Merchants()
	_, secret := p.ClientCredentials()
	return &fixture{p: p, srv: srv, clock: clock, ada: ms[0].AccessToken, grace: ms[1].AccessToken, secret: secret}
}

// post sends body (a JSON string, "" for none) and decodes the answer.
func (f *fixture) post(t *testing.T, path, token, body string) (int, http.Header, any) {
	t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q body %s", path, ct, b)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %s: %v", path, b, err)
	}
	return res.StatusCode, res.Header, v
}

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %v", v)
	}
	return m
}

func TestMerchantsAndTokens(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{TokenKey: []byte("k")})
	ms := f.p.Merchants()
	if len(ms) != 2 || ms[0].UserID != DemoUserAda || len(ms[0].AccountIDs) != 2 || ms[1].AccountIDs[0] != DemoAccountBooks {
		t.Fatalf("merchants %+v", ms)
	}
	if !strings.HasPrefix(f.ada, "STAGE_") || len(f.ada) != 70 || f.ada == f.grace {
		t.Fatalf("tokens %q %q", f.ada, f.grace)
	}
	// The same key gives the same tokens; another key, others.
	if New(Options{TokenKey: []byte("k")}).Merchants()[0].AccessToken != f.ada {
		t.Fatal("tokens not stable under one TokenKey")
	}
	if New(Options{}).Merchants()[0].AccessToken == f.ada {
		t.Fatal("random key gave the same token")
	}
}

func TestCalls(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	cases := []struct {
		path, token, body string
		check             func(t *testing.T, v any)
	}{
		{"/user", "ada", "", func(t *testing.T, v any) {
			m := obj(t, v)
			if m["user_id"].(float64) != float64(DemoUserAda) || m["email"] != "ada@example.com" || m["state"] != "registered" {
				t.Errorf("user %v", m)
			}
		}},
		{"/v2/user", "grace", "{}", func(t *testing.T, v any) {
			if obj(t, v)["user_id"].(float64) != float64(DemoUserGrace) {
				t.Errorf("user %v", v)
			}
		}},
		{"/account", "ada", `{"account_id":1001}`, func(t *testing.T, v any) {
			m := obj(t, v)
			bal := m["balances"].([]any)[0].(map[string]any)
			if m["name"] != "Ada's Pottery" || m["owner_user_id"].(float64) != float64(DemoUserAda) || bal["balance"].(float64) != 390.5 || bal["reserved_amount"].(float64) != 50 {
				t.Errorf("account %v", m)
			}
		}},
		{"/account", "ada", `{"account_id":"1002"}`, func(t *testing.T, v any) {
			if m := obj(t, v); m["state"] != "action_required" || len(m["action_reasons"].([]any)) == 0 {
				t.Errorf("account %v", m)
			}
		}},
		{"/account/find", "ada", `{}`, func(t *testing.T, v any) {
			as := v.([]any)
			if len(as) != 2 || as[0].(map[string]any)["account_id"].(float64) != float64(DemoAccountWorkshop) {
				t.Errorf("accounts %v", as)
			}
		}},
		{"/account/find", "ada", `{"name":"Ada's Pottery","sort_order":"ASC"}`, func(t *testing.T, v any) {
			if as := v.([]any); len(as) != 1 {
				t.Errorf("accounts %v", as)
			}
		}},
		{"/checkout", "ada", `{"checkout_id":5001}`, func(t *testing.T, v any) {
			m := obj(t, v)
			if m["state"] != "captured" || m["amount"].(float64) != 45 || m["payer"].(map[string]any)["email"] != DemoPayerEmail {
				t.Errorf("checkout %v", m)
			}
		}},
		{"/checkout/find", "ada", `{"account_id":1001}`, func(t *testing.T, v any) {
			cs := v.([]any)
			if len(cs) != 6 || cs[0].(map[string]any)["checkout_id"].(float64) != float64(DemoCheckoutAuthorized) {
				t.Errorf("checkouts %d, first %v", len(cs), cs[0])
			}
		}},
		{"/checkout/find", "ada", `{"account_id":1001,"state":"captured","limit":2,"start":1,"sort_order":"ASC"}`, func(t *testing.T, v any) {
			cs := v.([]any)
			// captured, oldest first: 5004 (75 d), 5002 (10 d), 5006 (5 d), 5001 (3 d).
			if len(cs) != 2 || cs[0].(map[string]any)["checkout_id"].(float64) != 5002 || cs[1].(map[string]any)["checkout_id"].(float64) != 5006 {
				t.Errorf("checkouts %v", cs)
			}
		}},
		{"/checkout/find", "ada", `{"account_id":1001,"preapproval_id":6001}`, func(t *testing.T, v any) {
			if cs := v.([]any); len(cs) != 1 {
				t.Errorf("checkouts %v", cs)
			}
		}},
		{"/checkout/find", "ada", `{"account_id":1001,"start":100}`, func(t *testing.T, v any) {
			if cs := v.([]any); len(cs) != 0 {
				t.Errorf("checkouts %v", cs)
			}
		}},
		{"/withdrawal/find", "ada", `{"account_id":1001}`, func(t *testing.T, v any) {
			ws := v.([]any)
			if len(ws) != 2 || ws[0].(map[string]any)["withdrawal_id"].(float64) != 8002 || ws[0].(map[string]any)["capture_time"] != nil {
				t.Errorf("withdrawals %v", ws)
			}
		}},
		{"/account/get_reserve_details", "ada", `{"account_id":1001}`, func(t *testing.T, v any) {
			m := obj(t, v)
			if m["reserved_amount"].(float64) != 50 || len(m["withdrawals_schedule"].([]any)) != 2 {
				t.Errorf("reserve %v", m)
			}
		}},
		{"/preapproval", "ada", `{"preapproval_id":6001}`, func(t *testing.T, v any) {
			if m := obj(t, v); m["state"] != "approved" || m["period"] != "monthly" {
				t.Errorf("preapproval %v", m)
			}
		}},
		{"/credit_card", "", `{"client_id":118000,"client_secret":"SECRET","credit_card_id":7001}`, func(t *testing.T, v any) {
			if m := obj(t, v); m["credit_card_name"] != "Visa xxxxxx4018" || m["last_four"] != "4018" {
				t.Errorf("card %v", m)
			}
		}},
		{"/v2/credit_card", "", `{"client_id":"118000","client_secret":"SECRET","credit_card_id":"7002"}`, func(t *testing.T, v any) {
			if m := obj(t, v); m["credit_card_id"].(float64) != 7002 {
				t.Errorf("card %v", m)
			}
		}},
	}
	for _, tc := range cases {
		tok := map[string]string{"ada": f.ada, "grace": f.grace}[tc.token]
		body := strings.ReplaceAll(tc.body, "SECRET", f.secret)
		status, _, v := f.post(t, tc.path, tok, body)
		if status != 200 {
			t.Errorf("%s %s: %d %v", tc.path, tc.body, status, v)
			continue
		}
		tc.check(t, v)
	}
}

func TestRefund(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	// Partial, then the rest.
	status, _, v := f.post(t, "/checkout/refund", f.ada, `{"checkout_id":5001,"refund_reason":"chipped","amount":10.5}`)
	if status != 200 || obj(t, v)["state"] != "captured" {
		t.Fatalf("partial refund: %d %v", status, v)
	}
	_, _, v = f.post(t, "/checkout", f.ada, `{"checkout_id":5001}`)
	if r := obj(t, v)["refund"].(map[string]any); r["amount_refunded"].(float64) != 10.5 || r["refund_reason"] != "chipped" {
		t.Fatalf("after partial: %v", r)
	}
	status, _, v = f.post(t, "/checkout/refund", f.ada, `{"checkout_id":5001,"refund_reason":"chipped","amount":"34.51"}`)
	if status != 400 || obj(t, v)["error_code"].(float64) != 1003 {
		t.Fatalf("over-refund: %d %v", status, v)
	}
	status, _, v = f.post(t, "/checkout/refund", f.ada, `{"checkout_id":5001,"refund_reason":"chipped"}`)
	if status != 200 || obj(t, v)["state"] != "refunded" {
		t.Fatalf("full refund: %d %v", status, v)
	}
	// The 60-day rule, in the exact shape the dashboard shows.
	status, _, v = f.post(t, "/checkout/refund", f.ada, `{"checkout_id":5004,"refund_reason":"late"}`)
	want := map[string]any{"error": "invalid_request", "error_description": "Cannot refund checkout after 60 days", "error_code": float64(1003)}
	if status != 400 || !equalJSON(v, want) {
		t.Fatalf("old checkout: %d %v", status, v)
	}
	// A refundable checkout becomes too old as the clock moves.
	f.clock.Advance(58 * 24 * time.Hour)
	if status, _, v = f.post(t, "/checkout/refund", f.ada, `{"checkout_id":5002,"refund_reason":"late"}`); status != 400 {
		t.Fatalf("5002 after 68 days: %d %v", status, v)
	}
	// Reset restores the data, dated from the clock's new time.
	f.p.Reset()
	if status, _, v = f.post(t, "/checkout/refund", f.ada, `{"checkout_id":5002,"refund_reason":"ok"}`); status != 200 {
		t.Fatalf("after reset: %d %v", status, v)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestPreapprovalCancel(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	status, _, v := f.post(t, "/preapproval/cancel", f.ada, `{"preapproval_id":6001}`)
	if status != 200 || obj(t, v)["state"] != "cancelled" {
		t.Fatalf("cancel: %d %v", status, v)
	}
	status, _, v = f.post(t, "/preapproval/cancel", f.ada, `{"preapproval_id":6001}`)
	if status != 400 || obj(t, v)["error_code"].(float64) != 1003 {
		t.Fatalf("second cancel: %d %v", status, v)
	}
	// POST /_sim/reset brings it back.
	if status, _, _ = f.post(t, "/_sim/reset", "", ""); status != 200 {
		t.Fatal("reset")
	}
	if _, _, v = f.post(t, "/preapproval", f.ada, `{"preapproval_id":6001}`); obj(t, v)["state"] != "approved" {
		t.Fatalf("after reset: %v", v)
	}
}

// TestBadInput: every refusal in WePay's shape with the expected status and
// code.
func TestBadInput(t *testing.T) {
	t.Parallel()
	// More calls than WePay's throttle allows in one window, on a frozen
	// clock: limiting is off here and tested on its own.
	f := setup(t, Options{RateLimit: -1})
	revoked := New(Options{}).Merchants()[0].AccessToken // valid shape, unknown here
	cases := []struct {
		name, path, auth, body string
		status                 int
		kind                   string
		code                   int
	}{
		{"no auth", "/user", "", "", 401, "invalid_request", 1002},
		{"basic auth", "/user", "Basic abc", "", 401, "invalid_request", 1002},
		{"bearer without token", "/user", "Bearer ", "", 401, "invalid_request", 1002},
		{"unknown token", "/user", "Bearer " + revoked, "", 401, "access_denied", 1006},
		{"token without STAGE prefix", "/account", "Bearer " + strings.TrimPrefix(f.ada, "STAGE_"), `{"account_id":1001}`, 401, "access_denied", 1006},
		{"other merchant's account", "/account", "Bearer " + f.grace, `{"account_id":1001}`, 403, "access_denied", 1010},
		{"other merchant's checkout", "/checkout", "Bearer " + f.grace, `{"checkout_id":5001}`, 403, "access_denied", 1010},
		{"other merchant's refund", "/checkout/refund", "Bearer " + f.grace, `{"checkout_id":5001,"refund_reason":"x"}`, 403, "access_denied", 1010},
		{"other merchant's withdrawals", "/withdrawal/find", "Bearer " + f.grace, `{"account_id":1002}`, 403, "access_denied", 1010},
		{"other merchant's reserve", "/account/get_reserve_details", "Bearer " + f.ada, `{"account_id":1003}`, 403, "access_denied", 1010},
		{"other merchant's preapproval", "/preapproval/cancel", "Bearer " + f.ada, `{"preapproval_id":6101}`, 403, "access_denied", 1010},
		{"other merchant's checkouts", "/checkout/find", "Bearer " + f.ada, `{"account_id":1003}`, 403, "access_denied", 1010},
		{"missing account_id", "/account", "Bearer " + f.ada, `{}`, 400, "invalid_request", 1004},
		{"null account_id", "/account", "Bearer " + f.ada, `{"account_id":null}`, 400, "invalid_request", 1004},
		{"account_id not a number", "/account", "Bearer " + f.ada, `{"account_id":"abc"}`, 400, "invalid_request", 1003},
		{"account_id fractional", "/account", "Bearer " + f.ada, `{"account_id":1001.5}`, 400, "invalid_request", 1003},
		{"account_id negative", "/account", "Bearer " + f.ada, `{"account_id":-1}`, 400, "invalid_request", 1003},
		{"account_id object", "/account", "Bearer " + f.ada, `{"account_id":{"$gt":0}}`, 400, "invalid_request", 1003},
		{"unknown account", "/account", "Bearer " + f.ada, `{"account_id":999999}`, 404, "invalid_request", 1003},
		{"misspelt field", "/checkout/find", "Bearer " + f.ada, `{"acccount_id":1001}`, 400, "invalid_request", 1003},
		{"unexpected field on /user", "/user", "Bearer " + f.ada, `{"email":"a@b"}`, 400, "invalid_request", 1003},
		{"malformed JSON", "/account", "Bearer " + f.ada, `{"account_id":`, 400, "invalid_request", 1005},
		{"JSON array", "/account", "Bearer " + f.ada, `[1001]`, 400, "invalid_request", 1005},
		{"two JSON values", "/account", "Bearer " + f.ada, `{"account_id":1001}{}`, 400, "invalid_request", 1005},
		{"JSON null body", "/account", "Bearer " + f.ada, `null`, 400, "invalid_request", 1005},
		{"limit too big", "/checkout/find", "Bearer " + f.ada, `{"account_id":1001,"limit":51}`, 400, "invalid_request", 1003},
		{"limit zero", "/withdrawal/find", "Bearer " + f.ada, `{"account_id":1001,"limit":0}`, 400, "invalid_request", 1003},
		{"negative start", "/checkout/find", "Bearer " + f.ada, `{"account_id":1001,"start":-1}`, 400, "invalid_request", 1003},
		{"bad sort order", "/account/find", "Bearer " + f.ada, `{"sort_order":"sideways"}`, 400, "invalid_request", 1003},
		{"end before start", "/checkout/find", "Bearer " + f.ada, `{"account_id":1001,"start_time":100,"end_time":50}`, 400, "invalid_request", 1003},
		{"refund without reason", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002}`, 400, "invalid_request", 1004},
		{"refund blank reason", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002,"refund_reason":"  "}`, 400, "invalid_request", 1004},
		{"refund reason not string", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002,"refund_reason":7}`, 400, "invalid_request", 1003},
		{"refund zero amount", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002,"refund_reason":"x","amount":0}`, 400, "invalid_request", 1003},
		{"refund negative amount", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002,"refund_reason":"x","amount":-5}`, 400, "invalid_request", 1003},
		{"refund sub-cent amount", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002,"refund_reason":"x","amount":1.234}`, 400, "invalid_request", 1003},
		{"refund amount text", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002,"refund_reason":"x","amount":"ten"}`, 400, "invalid_request", 1003},
		{"refund app_fee above amount", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5002,"refund_reason":"x","amount":5,"app_fee":6}`, 400, "invalid_request", 1003},
		{"refund refunded checkout", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5003,"refund_reason":"x"}`, 400, "invalid_request", 1003},
		{"refund authorized checkout", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":5005,"refund_reason":"x"}`, 400, "invalid_request", 1003},
		{"refund unknown checkout", "/checkout/refund", "Bearer " + f.ada, `{"checkout_id":1,"refund_reason":"x"}`, 404, "invalid_request", 1003},
		{"reserve other currency", "/account/get_reserve_details", "Bearer " + f.ada, `{"account_id":1001,"currency":"EUR"}`, 400, "invalid_request", 1003},
		{"card without client", "/credit_card", "", `{"credit_card_id":7001}`, 400, "invalid_request", 1004},
		{"card without secret", "/credit_card", "", `{"client_id":118000,"credit_card_id":7001}`, 400, "invalid_request", 1004},
		{"card wrong secret", "/credit_card", "", `{"client_id":118000,"client_secret":"nope","credit_card_id":7001}`, 401, "invalid_client", 1006},
		{"card wrong client", "/credit_card", "", `{"client_id":1,"client_secret":"` + f.secret + `","credit_card_id":7001}`, 401, "invalid_client", 1006},
		{"card bearer is not enough", "/credit_card", "Bearer " + f.ada, `{"credit_card_id":7001}`, 400, "invalid_request", 1004},
		{"card unknown", "/credit_card", "", `{"client_id":118000,"client_secret":"` + f.secret + `","credit_card_id":1}`, 404, "invalid_request", 1003},
		{"card missing id", "/credit_card", "", `{"client_id":118000,"client_secret":"` + f.secret + `"}`, 400, "invalid_request", 1004},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("POST", f.srv.URL+tc.path, strings.NewReader(tc.body))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		err = json.NewDecoder(res.Body).Decode(&v)
		res.Body.Close()
		if err != nil || res.StatusCode != tc.status || v["error"] != tc.kind || v["error_code"] != float64(tc.code) || v["error_description"] == "" || len(v) != 3 {
			t.Errorf("%s: %d %v (err %v), want %d %s %d", tc.name, res.StatusCode, v, err, tc.status, tc.kind, tc.code)
		}
	}
	// Nothing above changed state: 5002 is still refundable in full.
	if status, _, v := f.post(t, "/checkout/refund", f.ada, `{"checkout_id":5002,"refund_reason":"x"}`); status != 200 || obj(t, v)["state"] != "refunded" {
		t.Fatalf("5002: %d %v", status, v)
	}
}

func TestRevokedToken(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	f.p.RevokeToken(f.ada)
	status, _, v := f.post(t, "/user", f.ada, "")
	if status != 401 || obj(t, v)["error_code"].(float64) != 1011 {
		t.Fatalf("revoked: %d %v", status, v)
	}
	if status, _, _ = f.post(t, "/user", f.grace, ""); status != 200 {
		t.Fatal("revoking Ada's token affected Grace")
	}
	f.p.Reset()
	if status, _, _ = f.post(t, "/user", f.ada, ""); status != 200 {
		t.Fatal("reset did not restore the token")
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{RateLimit: 3, RateWindow: 10 * time.Second})
	for i := 0; i < 3; i++ {
		if status, _, v := f.post(t, "/user", f.ada, ""); status != 200 {
			t.Fatalf("call %d: %d %v", i, status, v)
		}
	}
	f.clock.Advance(4 * time.Second)
	status, h, v := f.post(t, "/user", f.ada, "")
	if status != 429 || h.Get("Retry-After") != "6" || obj(t, v)["error"] != "throttle_exceeded" || obj(t, v)["error_code"].(float64) != 1007 {
		t.Fatalf("4th call: %d Retry-After %q %v", status, h.Get("Retry-After"), v)
	}
	// Per token: Grace is not throttled.
	if status, _, _ := f.post(t, "/user", f.grace, ""); status != 200 {
		t.Fatalf("grace throttled: %d", status)
	}
	// The window ends.
	f.clock.Advance(6 * time.Second)
	if status, _, _ := f.post(t, "/user", f.ada, ""); status != 200 {
		t.Fatalf("after the window: %d", status)
	}
	// /credit_card counts per client_id.
	body := `{"client_id":118000,"client_secret":"` + f.secret + `","credit_card_id":7001}`
	for i := 0; i < 3; i++ {
		f.post(t, "/credit_card", "", body)
	}
	if status, h, _ := f.post(t, "/credit_card", "", body); status != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("credit_card 4th: %d", status)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	// A 503 for the next two refund calls only.
	status, _, v := f.post(t, "/_sim/faults", "", `{"route":"/checkout/refund","status":503,"count":2}`)
	if status != 200 {
		t.Fatalf("set fault: %d %v", status, v)
	}
	body := `{"checkout_id":5002,"refund_reason":"x","amount":1}`
	for i := 0; i < 2; i++ {
		status, _, v = f.post(t, "/checkout/refund", f.ada, body)
		if status != 503 || obj(t, v)["error"] != "processing_error" || obj(t, v)["error_code"].(float64) != 1008 {
			t.Fatalf("faulted call %d: %d %v", i, status, v)
		}
	}
	if status, _, _ = f.post(t, "/checkout/refund", f.ada, body); status != 200 {
		t.Fatalf("after count: %d", status)
	}
	// Other routes are untouched; a 429 fault on every route carries Retry-After.
	f.p.SetFault("*", Fault{Status: 429, RetryAfter: 3 * time.Second})
	status, h, v := f.post(t, "/user", f.ada, "")
	if status != 429 || h.Get("Retry-After") != "3" || obj(t, v)["error"] != "throttle_exceeded" {
		t.Fatalf("429 fault: %d %q %v", status, h.Get("Retry-After"), v)
	}
	// Faults come before authentication, as a dead upstream would.
	if status, _, _ = f.post(t, "/user", "", ""); status != 429 {
		t.Fatalf("unauthenticated under fault: %d", status)
	}
	f.p.Reset()
	// Latency.
	f.p.SetFault("/user", Fault{Latency: 80 * time.Millisecond, Count: 1})
	start := time.Now()
	if status, _, _ = f.post(t, "/user", f.ada, ""); status != 200 || time.Since(start) < 80*time.Millisecond {
		t.Fatalf("latency: %d after %s", status, time.Since(start))
	}
	// Hang: the client's deadline ends it.
	f.p.SetFault("/account", Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/account", strings.NewReader(`{"account_id":1001}`))
	req.Header.Set("Authorization", "Bearer "+f.ada)
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: %v", err)
	}
	// Reset releases a hang: the connection is dropped, not answered.
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", f.srv.URL+"/account", strings.NewReader(`{"account_id":1001}`))
		req.Header.Set("Authorization", "Bearer "+f.ada)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			err = errors.New("answered")
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the request reach the hang
	f.post(t, "/_sim/reset", "", "")
	select {
	case err := <-done:
		if err == nil || err.Error() == "answered" {
			t.Fatalf("released hang: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reset did not release the hanging request")
	}
}

func TestFaultRequestsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	for _, body := range []string{
		`{"route":"/nope","status":500}`,
		`{"route":"/user","status":404}`,
		`{"route":"/user","status":200}`,
		`{"route":"/user"}`,
		`{"route":"/user","latency_ms":-1}`,
		`{"route":"/user","status":500,"extra":1}`,
		`not json`,
	} {
		if status, _, v := f.post(t, "/_sim/faults", "", body); status != 400 || obj(t, v)["error_code"].(float64) != 1003 {
			t.Errorf("%s: %d %v", body, status, v)
		}
	}
}

func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	status, _, v := f.post(t, "/user/robots", f.ada, "")
	m := obj(t, v)
	if status != 404 || m["error"] != "not_simulated" || m["error_code"].(float64) != 1001 {
		t.Fatalf("%d %v", status, m)
	}
	routes := m["routes"].([]any)
	if len(routes) != 11 || routes[0] != "/user" {
		t.Fatalf("routes %v", routes)
	}
	res, err := http.Get(f.srv.URL + "/checkout")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 || res.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /checkout: %d", res.StatusCode)
	}
}

func TestPayerCheckouts(t *testing.T) {
	t.Parallel()
	p := New(Options{})
	cs := p.PayerCheckouts("SAM.payer@example.com")
	if len(cs) != 5 {
		t.Fatalf("%d checkouts", len(cs))
	}
	if cs[0]["checkout_id"] != DemoCheckoutRecent {
		t.Fatalf("first %v", cs[0]["checkout_id"])
	}
	if len(p.PayerCheckouts("nobody@example.com")) != 0 {
		t.Fatal("unknown payer has checkouts")
	}
}
