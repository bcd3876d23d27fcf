package idv

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

const (
	apiToken  = "api-token-1"
	apiSecret = "api-secret-1"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)

type fixture struct {
	idv   *IDV
	srv   *httptest.Server
	clock *testutil.Clock
	// browser does not follow redirects, so tests see them.
	browser *http.Client
}

func setup(t *testing.T, opts Options) *fixture {
	t.Helper()
	c := testutil.NewClock(start)
	if opts.APIToken == "" {
		opts.APIToken, opts.APISecret = apiToken, apiSecret
	}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.CallbackBackoffFunc == nil {
		opts.CallbackBackoffFunc = func(int) time.Duration { return time.Millisecond }
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	return &fixture{idv: s, srv: srv, clock: c, browser: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type request struct {
	method, path, body string
	header             map[string]string // "" value deletes
	basic              []string          // user, password; nil for the right ones
}

func (f *fixture) do(t *testing.T, r request) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(r.method, f.srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "Backlot Test/1.0")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	switch {
	case r.basic == nil:
		req.SetBasicAuth(apiToken, apiSecret)
	case len(r.basic) == 2:
		req.SetBasicAuth(r.basic[0], r.basic[1])
	}
	for k, v := range r.header {
		if v == "" {
			req.Header[k] = []string{""} // sent as absent
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := f.browser.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

type initiated struct {
	Timestamp            string `json:"timestamp"`
	TransactionReference string `json:"transactionReference"`
	RedirectURL          string `json:"redirectUrl"`
}

func (f *fixture) initiate(t *testing.T, body map[string]any) initiated {
	t.Helper()
	b, _ := json.Marshal(body)
	res, out := f.do(t, request{method: "POST", path: "/api/v4/initiate", body: string(b)})
	if res.StatusCode != 200 {
		t.Fatalf("initiate = %d %s", res.StatusCode, out)
	}
	var in initiated
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

// decide drives the hosted page as a browser would: load it, then post
// the form with the chosen decision.
func (f *fixture) decide(t *testing.T, redirectURL, decision string) *http.Response {
	t.Helper()
	res, err := f.browser.Get(redirectURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), `value="`+decision+`"`) {
		t.Fatalf("hosted page = %d %s", res.StatusCode, page)
	}
	tok := regexp.MustCompile(`name="authorizationToken" value="([^"]+)"`).FindStringSubmatch(string(page))
	if tok == nil {
		t.Fatalf("no authorizationToken in the form: %s", page)
	}
	res, err = f.browser.PostForm(f.srv.URL+"/web/v4/app", url.Values{"authorizationToken": {tok[1]}, "decision": {decision}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// waitAttempts waits until n callback attempts are recorded: the
// receiver sees a request before the simulator has read the answer.
func (f *fixture) waitAttempts(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.idv.Callbacks()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callback attempts recorded within 10s, want %d: %+v", len(f.idv.Callbacks()), n, f.idv.Callbacks())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// received is one request that reached a callback receiver.
type received struct {
	remoteAddr  string
	contentType string
	form        url.Values
}

// receiver is a callback endpoint answering with the statuses given in
// turn (the last one repeats).
func receiver(t *testing.T, statuses ...int) (*httptest.Server, chan received) {
	t.Helper()
	ch := make(chan received, 20)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("callback form: %v", err)
		}
		ch <- received{remoteAddr: r.RemoteAddr, contentType: r.Header.Get("Content-Type"), form: r.PostForm}
		mu.Lock()
		st := statuses[min(n, len(statuses)-1)]
		n++
		mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func wait(t *testing.T, ch chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no callback within 10s")
	}
	return received{}
}

func TestInitiateRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	ok := `{"customerInternalReference":"tx-1","userReference":"user-1"}`
	ref := func(field string, n int) string {
		return fmt.Sprintf(`{"customerInternalReference":"tx-1","userReference":"user-1",%q:%q}`, field, strings.Repeat("a", n))
	}
	tests := []struct {
		name string
		req  request
		code int
		msg  string
	}{
		{"no credentials", request{body: ok, basic: []string{}}, 401, "authentication"},
		{"wrong secret", request{body: ok, basic: []string{apiToken, "nope"}}, 401, "authentication"},
		{"wrong token", request{body: ok, basic: []string{"nope", apiSecret}}, 401, "authentication"},
		{"secret as token", request{body: ok, basic: []string{apiSecret, apiToken}}, 401, "authentication"},
		{"bearer instead of basic", request{body: ok, basic: []string{}, header: map[string]string{"Authorization": "Bearer " + apiSecret}}, 401, "authentication"},
		{"no User-Agent", request{body: ok, header: map[string]string{"User-Agent": ""}}, 400, "User-Agent"},
		{"form body", request{body: "customerInternalReference=x", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "Content-Type"},
		{"malformed JSON", request{body: `{"customerInternalReference":`}, 400, "Malformed"},
		{"no customerInternalReference", request{body: `{"userReference":"u"}`}, 400, "customerInternalReference"},
		{"blank customerInternalReference", request{body: `{"customerInternalReference":"  ","userReference":"u"}`}, 400, "customerInternalReference"},
		{"customerInternalReference of 101", request{body: fmt.Sprintf(`{"customerInternalReference":%q,"userReference":"u"}`, strings.Repeat("c", 101))}, 400, "customerInternalReference"},
		{"no userReference", request{body: `{"customerInternalReference":"tx"}`}, 400, "userReference"},
		{"userReference of 101", request{body: ref("userReference", 101)}, 400, "userReference: size"},
		{"userReference of 51 emoji (102 UTF-16 units)", request{body: fmt.Sprintf(`{"customerInternalReference":"tx","userReference":%q}`, strings.Repeat("😀", 51))}, 400, "userReference: size"},
		{"reportingCriteria of 101", request{body: ref("reportingCriteria", 101)}, 400, "reportingCriteria"},
		{"callbackUrl of 256", request{body: fmt.Sprintf(`{"customerInternalReference":"tx","userReference":"u","callbackUrl":"https://x.example/%s"}`, strings.Repeat("p", 238))}, 400, "callbackUrl"},
		{"callbackUrl not a URL", request{body: `{"customerInternalReference":"tx","userReference":"u","callbackUrl":"not a url"}`}, 400, "callbackUrl"},
		{"successUrl ftp", request{body: `{"customerInternalReference":"tx","userReference":"u","successUrl":"ftp://x.example/"}`}, 400, "successUrl"},
		{"errorUrl with fragment", request{body: `{"customerInternalReference":"tx","userReference":"u","errorUrl":"https://x.example/#f"}`}, 400, "errorUrl"},
		{"locale of 6", request{body: ref("locale", 6)}, 400, "locale"},
		{"workflowId 999", request{body: `{"customerInternalReference":"tx","userReference":"u","workflowId":999}`}, 400, "workflowId"},
		{"token lifetime 4 min", request{body: `{"customerInternalReference":"tx","userReference":"u","tokenLifetimeInMinutes":4}`}, 400, "tokenLifetimeInMinutes"},
		{"token lifetime 86401 min", request{body: `{"customerInternalReference":"tx","userReference":"u","tokenLifetimeInMinutes":86401}`}, 400, "tokenLifetimeInMinutes"},
		{"accepted: minimal", request{body: ok}, 200, ""},
		{"accepted: userReference of 100", request{body: ref("userReference", 100)}, 200, ""},
		{"accepted: 50 emoji (100 UTF-16 units)", request{body: fmt.Sprintf(`{"customerInternalReference":"tx","userReference":%q}`, strings.Repeat("😀", 50))}, 200, ""},
		{"accepted: JSON with charset", request{body: ok, header: map[string]string{"Content-Type": "application/json; charset=UTF-8"}}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.req.method, tt.req.path = "POST", "/api/v4/initiate"
			res, body := f.do(t, tt.req)
			if res.StatusCode != tt.code {
				t.Fatalf("= %d %s, want %d", res.StatusCode, body, tt.code)
			}
			if tt.code == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.code != 200 {
				var e struct{ HTTPStatus, Message string }
				if err := json.Unmarshal(body, &e); err != nil || e.HTTPStatus != fmt.Sprint(tt.code) || !strings.Contains(e.Message, tt.msg) {
					t.Fatalf("error body %s, want httpStatus %d and a message about %q", body, tt.code, tt.msg)
				}
			}
		})
	}
}

func TestInitiateResponse(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	in := f.initiate(t, map[string]any{"customerInternalReference": "tx-1", "userReference": "u", "locale": "de"})
	if in.Timestamp != "2026-03-01T12:00:00.123Z" {
		t.Errorf("timestamp = %q", in.Timestamp)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(in.TransactionReference) {
		t.Errorf("transactionReference = %q, want a UUID", in.TransactionReference)
	}
	u, err := url.Parse(in.RedirectURL)
	if err != nil || f.srv.URL != u.Scheme+"://"+u.Host || u.Path != "/web/v4/app" || u.Query().Get("locale") != "de" || len(u.Query().Get("authorizationToken")) < 40 {
		t.Errorf("redirectUrl = %q", in.RedirectURL)
	}

	g := setup(t, Options{PublicURL: "https://idv.test/"})
	in = g.initiate(t, map[string]any{"customerInternalReference": "tx-1", "userReference": "u"})
	if !strings.HasPrefix(in.RedirectURL, "https://idv.test/web/v4/app?") || !strings.Contains(in.RedirectURL, "locale=en") {
		t.Errorf("redirectUrl with PublicURL = %q", in.RedirectURL)
	}

	if _, err := New(Options{APIToken: "only"}); err == nil {
		t.Error("New without a secret succeeded")
	}
}

func TestApproveFlow(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	recv, ch := receiver(t, 200)
	userRef := strings.Repeat("r", 100) // a sealed reference uses the whole field
	in := f.initiate(t, map[string]any{
		"customerInternalReference": "tx-42",
		"userReference":             userRef,
		"reportingCriteria":         "demo",
		"callbackUrl":               recv.URL + "/webhooks/idv",
		"successUrl":                "https://shop.example/verified?step=2",
		"errorUrl":                  "https://shop.example/failed",
	})

	status := func() string {
		res, body := f.do(t, request{method: "GET", path: "/api/netverify/v2/scans/" + in.TransactionReference})
		var s struct{ ScanReference, Status, Timestamp string }
		if res.StatusCode != 200 || json.Unmarshal(body, &s) != nil || s.ScanReference != in.TransactionReference {
			t.Fatalf("scan status = %d %s", res.StatusCode, body)
		}
		return s.Status
	}
	if st := status(); st != "PENDING" {
		t.Fatalf("before the decision status = %s, want PENDING", st)
	}

	f.clock.Advance(90 * time.Second)
	res := f.decide(t, in.RedirectURL, DecisionApprove)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("decision = %d, want 303", res.StatusCode)
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	if loc.Host != "shop.example" || loc.Path != "/verified" || loc.Query().Get("step") != "2" ||
		loc.Query().Get("transactionStatus") != "SUCCESS" || loc.Query().Get("customerInternalReference") != "tx-42" ||
		loc.Query().Get("transactionReference") != in.TransactionReference {
		t.Fatalf("redirect to %s", loc)
	}

	cb := wait(t, ch)
	if host, _, _ := net.SplitHostPort(cb.remoteAddr); host != "127.0.0.2" {
		t.Fatalf("callback came from %s, want 127.0.0.2", cb.remoteAddr)
	}
	if cb.contentType != "application/x-www-form-urlencoded" {
		t.Fatalf("callback Content-Type = %q", cb.contentType)
	}
	want := map[string]string{
		"callBackType":              "NETVERIFYID",
		"jumioIdScanReference":      in.TransactionReference,
		"verificationStatus":        "APPROVED_VERIFIED",
		"idScanStatus":              "SUCCESS",
		"idScanSource":              "WEB_UPLOAD",
		"idCheckHologram":           "OK",
		"customerId":                userRef,
		"merchantIdScanReference":   "tx-42",
		"merchantReportingCriteria": "demo",
		"transactionDate":           "2026-03-01T12:00:00.123Z",
		"callbackDate":              "2026-03-01T12:01:30.123Z",
		"clientIp":                  "127.0.0.1",
		"idType":                    "PASSPORT",
		"idCountry":                 "USA",
		"identityVerification":      `{"similarity":"MATCH","validity":true}`,
	}
	for k, v := range want {
		if got := cb.form.Get(k); got != v {
			t.Errorf("callback %s = %q, want %q", k, got, v)
		}
	}
	if cb.form.Has("rejectReason") {
		t.Errorf("approved callback has rejectReason %q", cb.form.Get("rejectReason"))
	}
	f.waitAttempts(t, 1)
	if st := status(); st != "DONE" {
		t.Fatalf("after the decision status = %s, want DONE", st)
	}

	// The page is single-use.
	res2, err := f.browser.Get(in.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusConflict {
		t.Fatalf("page after the decision = %d, want 409", res2.StatusCode)
	}
	if err := f.idv.Decide(in.TransactionReference, DecisionFraud, ""); err == nil {
		t.Fatal("a second decision succeeded")
	}
	f.idv.Close()
	if got := f.idv.Callbacks(); len(got) != 1 || !got[0].Delivered || got[0].Status != 200 {
		t.Fatalf("callbacks = %+v, want one delivered", got)
	}
	select {
	case extra := <-ch:
		t.Fatalf("a second callback arrived: %v", extra.form)
	default:
	}
}

func TestDenyPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		decision, verification, scan, txStatus, rejectCode, redirectHost string
	}{
		{DecisionDeny, "ERROR_NOT_READABLE_ID", "DONE", "ERROR", "200", "err.example"},
		{DecisionFraud, "DENIED_FRAUD", "DONE", "SUCCESS", "100", "ok.example"},
		{DecisionUnsupported, "DENIED_UNSUPPORTED_ID_TYPE", "DONE", "SUCCESS", "", "ok.example"},
		{DecisionNoID, "NO_ID_UPLOADED", "FAILED", "ERROR", "", "err.example"},
	}
	for _, tt := range tests {
		t.Run(tt.decision, func(t *testing.T) {
			t.Parallel()
			f := setup(t, Options{})
			recv, ch := receiver(t, 204)
			in := f.initiate(t, map[string]any{
				"customerInternalReference": "tx", "userReference": "u", "callbackUrl": recv.URL,
				"successUrl": "https://ok.example/", "errorUrl": "https://err.example/",
			})
			res := f.decide(t, in.RedirectURL, tt.decision)
			loc, _ := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != 303 || loc.Host != tt.redirectHost || loc.Query().Get("transactionStatus") != tt.txStatus {
				t.Fatalf("decision = %d to %s, want 303 to %s with %s", res.StatusCode, loc, tt.redirectHost, tt.txStatus)
			}
			if (tt.txStatus == "ERROR") != loc.Query().Has("errorCode") {
				t.Fatalf("redirect %s: errorCode exactly on ERROR", loc)
			}
			cb := wait(t, ch)
			if cb.form.Get("verificationStatus") != tt.verification || cb.form.Get("idScanStatus") != "ERROR" ||
				cb.form.Get("idCheckHologram") != "N/A" || cb.form.Has("idFirstName") || cb.form.Has("identityVerification") {
				t.Fatalf("callback = %v", cb.form)
			}
			if host, _, _ := net.SplitHostPort(cb.remoteAddr); host != "127.0.0.2" {
				t.Fatalf("callback from %s", cb.remoteAddr)
			}
			var rr struct{ RejectReasonCode string }
			if tt.rejectCode != "" {
				if err := json.Unmarshal([]byte(cb.form.Get("rejectReason")), &rr); err != nil || rr.RejectReasonCode != tt.rejectCode {
					t.Fatalf("rejectReason = %q, want code %s", cb.form.Get("rejectReason"), tt.rejectCode)
				}
			} else if cb.form.Has("rejectReason") {
				t.Fatalf("unexpected rejectReason %q", cb.form.Get("rejectReason"))
			}
			_, body := f.do(t, request{method: "GET", path: "/api/netverify/v2/scans/" + in.TransactionReference})
			if !strings.Contains(string(body), `"status":"`+tt.scan+`"`) {
				t.Fatalf("scan status %s, want %s", body, tt.scan)
			}
		})
	}
}

func TestCallbackRetries(t *testing.T) {
	t.Parallel()

	t.Run("until 2xx", func(t *testing.T) {
		t.Parallel()
		var waits []int
		var mu sync.Mutex
		f := setup(t, Options{CallbackBackoffFunc: func(n int) time.Duration {
			mu.Lock()
			waits = append(waits, n)
			mu.Unlock()
			return time.Millisecond
		}})
		recv, ch := receiver(t, 503, 500, 202)
		in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u", "callbackUrl": recv.URL})
		if err := f.idv.Decide(in.TransactionReference, DecisionApprove, "203.0.113.9"); err != nil {
			t.Fatal(err)
		}
		first := wait(t, ch)
		for range 2 {
			again := wait(t, ch)
			if again.form.Encode() != first.form.Encode() {
				t.Fatalf("retry body differs:\n%s\n%s", again.form.Encode(), first.form.Encode())
			}
		}
		if first.form.Get("clientIp") != "203.0.113.9" {
			t.Fatalf("clientIp = %q", first.form.Get("clientIp"))
		}
		f.waitAttempts(t, 3)
		f.idv.Close()
		got := f.idv.Callbacks()
		if len(got) != 3 || got[0].Status != 503 || got[1].Status != 500 || got[2].Status != 202 || got[1].Delivered || !got[2].Delivered {
			t.Fatalf("attempts = %+v", got)
		}
		if !slices.Equal(waits, []int{1, 2}) {
			t.Fatalf("backoff asked for attempts %v, want [1 2]", waits)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		t.Parallel()
		f := setup(t, Options{CallbackAttempts: 3})
		recv, ch := receiver(t, 500)
		in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u", "callbackUrl": recv.URL})
		if err := f.idv.Decide(in.TransactionReference, DecisionDeny, ""); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			wait(t, ch)
		}
		f.waitAttempts(t, 3)
		f.idv.Close() // waits for the delivery goroutine to end
		if n := len(ch); n != 0 {
			t.Fatalf("%d callbacks beyond the 3 attempts", n)
		}
		got := f.idv.Callbacks()
		if len(got) != 3 || got[2].Attempt != 3 || got[2].Delivered {
			t.Fatalf("attempts = %+v", got)
		}
	})

	t.Run("receiver down", func(t *testing.T) {
		t.Parallel()
		f := setup(t, Options{CallbackAttempts: 2})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u", "callbackUrl": "http://" + addr + "/cb"})
		if err := f.idv.Decide(in.TransactionReference, DecisionApprove, ""); err != nil {
			t.Fatal(err)
		}
		f.waitAttempts(t, 2)
		got := f.idv.Callbacks()
		if len(got) != 2 || got[0].Status != 0 || got[0].Error == "" || got[1].Delivered {
			t.Fatalf("attempts = %+v", got)
		}
	})

	t.Run("close stops a waiting delivery", func(t *testing.T) {
		t.Parallel()
		f := setup(t, Options{CallbackBackoffFunc: func(int) time.Duration { return time.Hour }})
		recv, ch := receiver(t, 500)
		in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u", "callbackUrl": recv.URL})
		if err := f.idv.Decide(in.TransactionReference, DecisionApprove, ""); err != nil {
			t.Fatal(err)
		}
		wait(t, ch)
		f.waitAttempts(t, 1)
		done := make(chan struct{})
		go func() { f.idv.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not stop a delivery waiting an hour to retry")
		}
		// After Close no callback is sent.
		in2 := f.initiate(t, map[string]any{"customerInternalReference": "tx2", "userReference": "u", "callbackUrl": recv.URL})
		if err := f.idv.Decide(in2.TransactionReference, DecisionApprove, ""); err != nil {
			t.Fatal(err)
		}
		if len(f.idv.Callbacks()) != 1 || len(ch) != 0 {
			t.Fatalf("attempts after Close: %+v", f.idv.Callbacks())
		}
	})
}

func TestCallbackSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		source netip.Addr
		want   string
	}{
		{netip.MustParseAddr("127.0.0.3"), "127.0.0.3"},
		{netip.MustParseAddr("127.0.0.2"), "127.0.0.2"},
		{netip.IPv4Unspecified(), "127.0.0.1"}, // the system's choice for a 127.0.0.1 destination
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			f := setup(t, Options{CallbackSource: tt.source})
			recv, ch := receiver(t, 200)
			in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u", "callbackUrl": recv.URL})
			if err := f.idv.Decide(in.TransactionReference, DecisionApprove, ""); err != nil {
				t.Fatal(err)
			}
			if host, _, _ := net.SplitHostPort(wait(t, ch).remoteAddr); host != tt.want {
				t.Fatalf("callback from %s, want %s", host, tt.want)
			}
		})
	}
}

func TestPageRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u", "tokenLifetimeInMinutes": 5})
	tok, _ := url.Parse(in.RedirectURL)
	token := tok.Query().Get("authorizationToken")

	post := func(v url.Values) int {
		res, err := f.browser.PostForm(f.srv.URL+"/web/v4/app", v)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	get := func(u string) int {
		res, err := f.browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := get(f.srv.URL + "/web/v4/app?authorizationToken=nope"); c != 404 {
		t.Errorf("unknown token page = %d, want 404", c)
	}
	if c := post(url.Values{"authorizationToken": {"nope"}, "decision": {"approve"}}); c != 404 {
		t.Errorf("unknown token decision = %d, want 404", c)
	}
	if c := post(url.Values{"authorizationToken": {token}, "decision": {"maybe"}}); c != 400 {
		t.Errorf("unknown decision = %d, want 400", c)
	}
	if c := post(url.Values{"authorizationToken": {token}}); c != 400 {
		t.Errorf("no decision = %d, want 400", c)
	}
	// No success URL: a result page instead of a redirect.
	in2 := f.initiate(t, map[string]any{"customerInternalReference": "tx2", "userReference": "u"})
	if res := f.decide(t, in2.RedirectURL, DecisionApprove); res.StatusCode != 200 {
		t.Errorf("decision without successUrl = %d, want 200", res.StatusCode)
	}

	f.clock.Advance(5 * time.Minute)
	if c := get(in.RedirectURL); c != 410 {
		t.Errorf("expired page = %d, want 410", c)
	}
	if c := post(url.Values{"authorizationToken": {token}, "decision": {"approve"}}); c != 410 {
		t.Errorf("expired decision = %d, want 410", c)
	}
}

func TestScanStatusRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u"})
	tests := []struct {
		name string
		req  request
		code int
	}{
		{"no credentials", request{path: "/api/netverify/v2/scans/" + in.TransactionReference, basic: []string{}}, 401},
		{"wrong secret", request{path: "/api/netverify/v2/scans/" + in.TransactionReference, basic: []string{apiToken, "x"}}, 401},
		{"no User-Agent", request{path: "/api/netverify/v2/scans/" + in.TransactionReference, header: map[string]string{"User-Agent": ""}}, 400},
		{"unknown reference", request{path: "/api/netverify/v2/scans/" + newUUID()}, 404},
		{"known", request{path: "/api/netverify/v2/scans/" + in.TransactionReference}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.req.method = "GET"
			if res, body := f.do(t, tt.req); res.StatusCode != tt.code {
				t.Fatalf("= %d %s, want %d", res.StatusCode, body, tt.code)
			}
		})
	}
}

func TestFaultsResetNotSimulated(t *testing.T) {
	t.Parallel()
	f := setup(t, Options{})
	ok := `{"customerInternalReference":"tx","userReference":"u"}`

	res, body := f.do(t, request{method: "POST", path: "/_sim/faults", body: `{"route":"POST /api/v4/initiate","status":503,"count":1}`})
	if res.StatusCode != 201 {
		t.Fatalf("add fault = %d %s", res.StatusCode, body)
	}
	if res, _ := f.do(t, request{method: "POST", path: "/api/v4/initiate", body: ok}); res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("initiate with fault = %d", res.StatusCode)
	}
	if res, _ := f.do(t, request{method: "POST", path: "/api/v4/initiate", body: ok}); res.StatusCode != 200 {
		t.Fatalf("initiate after fault = %d", res.StatusCode)
	}
	if err := f.idv.AddFault(Fault{Route: "GET /web/v4/app", LatencyMS: 60, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.idv.AddFault(Fault{Route: "GET /nope", Status: 500}); err == nil {
		t.Fatal("fault on an unknown route accepted")
	}
	in := f.initiate(t, map[string]any{"customerInternalReference": "tx", "userReference": "u"})
	t0 := time.Now()
	if r, err := http.Get(in.RedirectURL); err != nil || r.StatusCode != 200 {
		t.Fatalf("slow page: %v", err)
	} else {
		r.Body.Close()
	}
	if d := time.Since(t0); d < 60*time.Millisecond {
		t.Fatalf("page with 60ms latency answered in %v", d)
	}

	for _, p := range []request{{method: "GET", path: "/api/v3/initiate"}, {method: "GET", path: "/api/v4/initiate"}, {method: "DELETE", path: "/api/netverify/v2/scans/x"}} {
		res, body := f.do(t, p)
		var e struct {
			Error  string
			Routes []string
		}
		if res.StatusCode != 404 || json.Unmarshal(body, &e) != nil || e.Error != "not_simulated" || !slices.Contains(e.Routes, "POST /api/v4/initiate") {
			t.Errorf("%s %s = %d %s, want 404 not_simulated with the routes", p.method, p.path, res.StatusCode, body)
		}
	}

	// Reset forgets transactions and faults.
	if err := f.idv.AddFault(Fault{Route: "*", Status: 500}); err != nil {
		t.Fatal(err)
	}
	if res, _ := f.do(t, request{method: "POST", path: "/_sim/reset"}); res.StatusCode != 204 {
		t.Fatal("reset")
	}
	if res, _ := f.do(t, request{method: "GET", path: "/api/netverify/v2/scans/" + in.TransactionReference}); res.StatusCode != 404 {
		t.Fatalf("scan after reset = %d, want 404", res.StatusCode)
	}
	if res, _ := f.do(t, request{method: "POST", path: "/api/v4/initiate", body: ok}); res.StatusCode != 200 {
		t.Fatalf("initiate after reset = %d", res.StatusCode)
	}
	res, body = f.do(t, request{method: "GET", path: "/_sim/callbacks"})
	if res.StatusCode != 200 || !strings.Contains(string(body), `"callbacks":[]`) {
		t.Fatalf("callbacks after reset = %d %s", res.StatusCode, body)
	}
}
