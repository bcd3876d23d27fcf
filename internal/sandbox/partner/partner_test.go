package partner

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/payments"
)

type fixture struct {
	pay    *payments.Payments
	pt     *Partner
	srv    *httptest.Server
	paySrv *httptest.Server
	secret string
	now    time.Time
}

func setup(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{secret: "sup3rs3cr37-" + t.Name(), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	f.pay = payments.New(payments.Options{Now: func() time.Time { return f.now }})
	opts.Secret, opts.Payments = f.secret, f.pay
	if opts.Now == nil {
		opts.Now = func() time.Time { return f.now }
	}
	f.pt = New(opts)
	f.srv = httptest.NewServer(f.pt)
	t.Cleanup(f.srv.Close)
	f.paySrv = httptest.NewServer(f.pay)
	t.Cleanup(f.paySrv.Close)
	return f
}

func post(t *testing.T, url, auth, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return res.StatusCode, res.Header, v
}

// TestTokenLookupThenPayments walks the dashboard's path: ask the
// middleware for the merchant's token, then call the payments API with it.
func TestTokenLookupThenPayments(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	ada := f.pay.Merchants()[0]
	for _, body := range []string{`{"email":"ada@example.com"}`, `{"email":"ADA@example.com"}`, `{"account_id":1002}`, `{"account_id":"1001"}`} {
		status, _, v := post(t, f.srv.URL+"/user", f.secret, body)
		if status != 200 || v["access_token"] != ada.AccessToken || v["user_id"].(float64) != float64(payments.DemoUserAda) || len(v["account_ids"].([]any)) != 2 {
			t.Fatalf("/user %s: %d %v", body, status, v)
		}
	}
	status, _, v := post(t, f.srv.URL+"/account", f.secret, `{"account_id":1003}`)
	if status != 200 || v["account_id"].(float64) != 1003 || v["access_token"] != f.pay.Merchants()[1].AccessToken {
		t.Fatalf("/account: %d %v", status, v)
	}
	status, _, v = post(t, f.srv.URL+"/account", f.secret, `{"email":"ada@example.com"}`)
	if status != 200 || v["account_id"].(float64) != float64(payments.DemoAccountPottery) {
		t.Fatalf("/account by email: %d %v", status, v)
	}
	// The token works on the payments API for that account.
	status, _, v = post(t, f.paySrv.URL+"/account", "Bearer "+v["access_token"].(string), `{"account_id":1001}`)
	if status != 200 || v["name"] != "Ada's Pottery" {
		t.Fatalf("payments with looked-up token: %d %v", status, v)
	}
}

func TestPayer(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	status, _, v := post(t, f.srv.URL+"/payer", f.secret, `{"email":"sam.payer@example.com"}`)
	if status != 200 || v["email"] != "sam.payer@example.com" {
		t.Fatalf("%d %v", status, v)
	}
	cs := v["checkouts"].([]any)
	if len(cs) != 5 || cs[0].(map[string]any)["payer"].(map[string]any)["email"] != payments.DemoPayerEmail {
		t.Fatalf("checkouts %v", cs)
	}
	_, _, v = post(t, f.srv.URL+"/payer", f.secret, `{"email":"nobody@example.com"}`)
	if cs := v["checkouts"].([]any); len(cs) != 0 {
		t.Fatalf("unknown payer: %v", cs)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{RateLimit: -1})
	cases := []struct {
		name, path, auth, body string
		status                 int
	}{
		{"no secret", "/user", "", `{"email":"ada@example.com"}`, 401},
		{"wrong secret", "/user", "wrong", `{"email":"ada@example.com"}`, 401},
		{"bearer secret", "/user", "Bearer " + f.secret, `{"email":"ada@example.com"}`, 401},
		{"secret prefix", "/account", f.secret[:5], `{"account_id":1001}`, 401},
		{"secret plus suffix", "/payer", f.secret + "x", `{"email":"a@b.c"}`, 401},
		{"a merchant token as secret", "/user", f.pay.Merchants()[0].AccessToken, `{"email":"ada@example.com"}`, 401},
		{"empty body", "/user", f.secret, ``, 400},
		{"array body", "/user", f.secret, `[]`, 400},
		{"null body", "/user", f.secret, `null`, 400},
		{"malformed", "/user", f.secret, `{"email":`, 400},
		{"neither field", "/user", f.secret, `{}`, 400},
		{"unknown field", "/user", f.secret, `{"mail":"ada@example.com"}`, 400},
		{"email not string", "/user", f.secret, `{"email":7}`, 400},
		{"email not address", "/user", f.secret, `{"email":"ada"}`, 400},
		{"account_id text", "/account", f.secret, `{"account_id":"abc"}`, 400},
		{"account_id negative", "/account", f.secret, `{"account_id":-4}`, 400},
		{"account neither", "/account", f.secret, `{"account_id":null}`, 400},
		{"unknown email", "/user", f.secret, `{"email":"eve@example.com"}`, 404},
		{"unknown account", "/account", f.secret, `{"account_id":99}`, 404},
		{"payer without email", "/payer", f.secret, `{}`, 400},
		{"payer by account", "/payer", f.secret, `{"account_id":1001}`, 400},
	}
	for _, tc := range cases {
		status, _, v := post(t, f.srv.URL+tc.path, tc.auth, tc.body)
		if status != tc.status || v["error_code"] != float64(tc.status) || v["error"] == "" || v["error_description"] == "" {
			t.Errorf("%s: %d %v, want %d", tc.name, status, v, tc.status)
		}
		if _, leaked := v["access_token"]; leaked {
			t.Errorf("%s: answer carries a token: %v", tc.name, v)
		}
	}
}

func TestFaultsLimitsAndUnknown(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{RateLimit: 2, RateWindow: time.Minute})
	status, _, v := post(t, f.srv.URL+"/_sim/faults", "", `{"route":"/user","status":502,"count":1}`)
	if status != 200 {
		t.Fatalf("set fault: %d %v", status, v)
	}
	if status, _, _ = post(t, f.srv.URL+"/user", f.secret, `{"email":"ada@example.com"}`); status != 502 {
		t.Fatalf("faulted: %d", status)
	}
	for i := 0; i < 2; i++ {
		if status, _, v = post(t, f.srv.URL+"/user", f.secret, `{"email":"ada@example.com"}`); status != 200 {
			t.Fatalf("call %d: %d %v", i, status, v)
		}
	}
	status, h, _ := post(t, f.srv.URL+"/user", f.secret, `{"email":"ada@example.com"}`)
	if status != 429 || h.Get("Retry-After") != "60" {
		t.Fatalf("over limit: %d %q", status, h.Get("Retry-After"))
	}
	if status, _, _ = post(t, f.srv.URL+"/_sim/reset", "", ""); status != 200 {
		t.Fatal("reset")
	}
	if status, _, _ = post(t, f.srv.URL+"/user", f.secret, `{"email":"ada@example.com"}`); status != 200 {
		t.Fatalf("after reset: %d", status)
	}
	status, _, v = post(t, f.srv.URL+"/withdrawal", f.secret, `{}`)
	if status != 404 || v["error"] != "not_simulated" || len(v["routes"].([]any)) != 3 {
		t.Fatalf("unknown route: %d %v", status, v)
	}
	if status, _, _ = post(t, f.srv.URL+"/_sim/faults", "", `{"route":"/checkout","status":500}`); status != 400 {
		t.Fatalf("fault on a payments route accepted: %d", status)
	}
}

func TestNewRequiresSecret(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("New without a secret did not panic")
		}
	}()
	New(Options{Payments: payments.New(payments.Options{})})
}
