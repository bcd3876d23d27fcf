package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/jobs"
)

// Published Standard Webhooks test vector.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = int64(1614265330)
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// recordingEnqueuer is a real in-memory stand-in for the engine's enqueue
// contract: ids in order, a repeated dedupe key returns the first job.
type recordingEnqueuer struct {
	mu    sync.Mutex
	calls []enqueued
	keys  map[string]int64
	next  int64
	err   error
}

type enqueued struct {
	Kind    string
	Payload string
	Opts    jobs.EnqueueOpts
	ID      int64
}

func (e *recordingEnqueuer) Enqueue(_ context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return jobs.EnqueueResult{}, e.err
	}
	if e.keys == nil {
		e.keys = map[string]int64{}
	}
	if opts.DedupeKey != "" {
		if id, ok := e.keys[opts.DedupeKey]; ok {
			return jobs.EnqueueResult{ID: id, Duplicate: true}, nil
		}
	}
	e.next++
	if opts.DedupeKey != "" {
		e.keys[opts.DedupeKey] = e.next
	}
	e.calls = append(e.calls, enqueued{Kind: kind, Payload: string(payload), Opts: *opts, ID: e.next})
	return jobs.EnqueueResult{ID: e.next}, nil
}

func (e *recordingEnqueuer) jobs() []enqueued {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]enqueued(nil), e.calls...)
}

type bundle struct {
	set     *Set
	mux     *http.ServeMux
	enq     *recordingEnqueuer
	reg     *prometheus.Registry
	proxies *httpapi.Proxies
}

func fixedClock() time.Time { return time.Unix(vecTS, 0) }

func setup(t *testing.T, cfgs ...config.Webhook) *bundle {
	t.Helper()
	proxies, err := httpapi.ParseProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{enq: &recordingEnqueuer{}, reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	b.proxies = proxies
	b.set, err = New(cfgs, Deps{Enqueuer: b.enq, Metrics: b.reg, Now: fixedClock, MaxBodyBytes: 1024})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.set.Register(b.mux)
	return b
}

type delivery struct {
	path    string
	body    string
	ct      string // default application/json
	headers map[string]string
	peer    string // default 192.0.2.1:1234
	stateIP string // httpapi.State.ClientIP, set by the middleware
}

func (b *bundle) send(t *testing.T, d delivery) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, d.path, strings.NewReader(d.body))
	ct := d.ct
	if ct == "" {
		ct = "application/json"
	}
	r.Header.Set("Content-Type", ct)
	for k, v := range d.headers {
		r.Header.Set(k, v)
	}
	r.RemoteAddr = "192.0.2.1:1234"
	if d.peer != "" {
		r.RemoteAddr = d.peer
	}
	// As the server middleware does: resolve the client once, honouring
	// the trusted proxies, unless the case sets the result itself.
	st := &httpapi.State{ID: "req-1", ClientIP: b.proxies.ClientIP(r)}
	if d.stateIP != "" {
		st.ClientIP = netip.MustParseAddr(d.stateIP)
	}
	r = r.WithContext(httpapi.WithState(r.Context(), st))
	w := httptest.NewRecorder()
	b.mux.ServeHTTP(w, r)
	return w
}

func standardHeaders(secret, id string, ts int64, body string) map[string]string {
	s, err := NewStandardSigner(secret)
	if err != nil {
		panic(err)
	}
	return map[string]string{"webhook-id": id, "webhook-timestamp": strconv.FormatInt(ts, 10),
		"webhook-signature": s.Sign(id, ts, []byte(body))}
}

func stripeHeader(secret string, ts int64, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.%s", ts, body)
	return fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(m.Sum(nil)))
}

func hmacHex(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func hmacB64(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestStandardSignerVector(t *testing.T) {
	t.Parallel()
	s, err := NewStandardSigner(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(vecID, vecTS, []byte(vecBody)); got != vecSig {
		t.Fatalf("Sign = %s, want %s", got, vecSig)
	}
}

func TestGitHubVector(t *testing.T) {
	t.Parallel()
	v, err := newVerifier(config.Verify{Scheme: "github", Secrets: []string{"It's a Secret to Everybody"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	if o, desc := v.verify(h, []byte("Hello, World!"), time.Now(), &scratch{}); o != outOK {
		t.Fatalf("published GitHub vector refused: %s %s", outcomeNames[o], desc)
	}
	if o, _ := v.verify(h, []byte("Hello, World?"), time.Now(), &scratch{}); o != outInvalid {
		t.Fatalf("tampered body: outcome %s, want invalid_signature", outcomeNames[o])
	}
}

func standardCfg() config.Webhook {
	return config.Webhook{Path: "/webhooks/std", Job: "vendor.event",
		Verify: config.Verify{Scheme: "standard", Secrets: []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("old-key-old-key-old-key")), vecSecret}}}
}

func TestIngestAcceptsAndDedupes(t *testing.T) {
	t.Parallel()
	b := setup(t, standardCfg())
	d := delivery{path: "/webhooks/std", body: vecBody, headers: map[string]string{
		"webhook-id": vecID, "webhook-timestamp": strconv.FormatInt(vecTS, 10),
		// an unknown version first, then the real one: other versions are ignored
		"webhook-signature": "v1a,AAAA v1,bm90LXRoZS1zaWduYXR1cmUtYXQtYWxsLWp1c3Qtbm9pc2U= " + vecSig}}
	w := b.send(t, d)
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	var resp struct {
		JobID     string `json:"job_id"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.JobID != "1" || resp.Duplicate {
		t.Fatalf("body %s (%v)", w.Body, err)
	}
	got := b.enq.jobs()
	if len(got) != 1 || got[0].Kind != "vendor.event" || got[0].Payload != vecBody ||
		got[0].Opts.DedupeKey != "webhook:/webhooks/std:"+vecID {
		t.Fatalf("enqueued %+v", got)
	}
	if id, ok := b.set.Endpoints()[0].DeliveryID(got[0].Opts.DedupeKey); !ok || id != vecID {
		t.Fatalf("DeliveryID = %q, %v", id, ok)
	}

	// Replay of the accepted delivery: 200 duplicate, the first job, nothing new.
	w = b.send(t, d)
	if w.Code != http.StatusOK {
		t.Fatalf("replay status %d, body %s", w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.JobID != "1" || !resp.Duplicate {
		t.Fatalf("replay body %s (%v)", w.Body, err)
	}
	if n := len(b.enq.jobs()); n != 1 {
		t.Fatalf("replay enqueued a new job: %d jobs", n)
	}
	if v := counterValue(t, b.set.endpoints[0].counters[outOK]); v != 1 {
		t.Fatalf("ok counter %v", v)
	}
	if v := counterValue(t, b.set.endpoints[0].counters[outDuplicate]); v != 1 {
		t.Fatalf("duplicate counter %v", v)
	}
	mfs, err := b.reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "backlot_webhook_verifications_total" || len(mfs[0].Metric) != int(numOutcomes) {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
}

func TestIngestAcceptsEachScheme(t *testing.T) {
	t.Parallel()
	const body = `{"id":"evt_123","data":{"object":{"id":"ch_1"}}}`
	now := fixedClock().Unix()
	sha512b64 := func(secret, body string) string {
		m := hmac.New(sha512.New, []byte(secret))
		m.Write([]byte(body))
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	cases := []struct {
		name    string
		cfg     config.Webhook
		headers map[string]string
		wantKey string
	}{
		{"standard", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "standard", Secrets: []string{vecSecret}}},
			standardHeaders(vecSecret, "msg_1", now, body), "webhook:/h:msg_1"},
		{"stripe rotated secret", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "stripe", Secrets: []string{"whsec_old", "whsec_new"}}},
			map[string]string{"Stripe-Signature": stripeHeader("whsec_new", now, body) + ",v0=deadbeef"}, "webhook:/h:evt_123"},
		{"stripe two v1", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "stripe", Secrets: []string{"whsec_new"}}},
			map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v1=%s,%s", now, strings.Repeat("ab", 32), strings.Split(stripeHeader("whsec_new", now, body), ",")[1])}, "webhook:/h:evt_123"},
		{"github", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "github", Secrets: []string{"gh"}}},
			map[string]string{"X-Hub-Signature-256": "sha256=" + hmacHex("gh", body), "X-GitHub-Delivery": "d-1"}, "webhook:/h:d-1"},
		{"shopify", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "shopify", Secrets: []string{"sh"}}},
			map[string]string{"X-Shopify-Hmac-Sha256": hmacB64("sh", body), "X-Shopify-Webhook-Id": "s-1"}, "webhook:/h:s-1"},
		{"hmac sha512 base64 prefix", config.Webhook{Path: "/h", Job: "k", Dedupe: "json:data.object.id",
			Verify: config.Verify{Scheme: "hmac", Secrets: []string{"hm"}, Header: "X-Sig", Encoding: "base64", Algorithm: "sha512", Prefix: "sig="}},
			map[string]string{"X-Sig": "sig=" + sha512b64("hm", body)}, "webhook:/h:ch_1"},
		{"hmac hex default", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "hmac", Secrets: []string{"hm"}, Header: "X-Sig"}},
			map[string]string{"X-Sig": hmacHex("hm", body)}, ""},
		{"none from allowed range", config.Webhook{Path: "/h", Job: "k", AllowIPs: []string{"192.0.2.0/24"}, Verify: config.Verify{Scheme: "none"}},
			nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, c.cfg)
			w := b.send(t, delivery{path: "/h", body: body, headers: c.headers})
			if w.Code != http.StatusAccepted {
				t.Fatalf("status %d, body %s", w.Code, w.Body)
			}
			got := b.enq.jobs()
			if len(got) != 1 || got[0].Payload != body || got[0].Opts.DedupeKey != c.wantKey {
				t.Fatalf("enqueued %+v, want key %q", got, c.wantKey)
			}
		})
	}
}

// envelope is the SPEC 6 error body.
type envelope struct {
	ErrorCode        int    `json:"error_code"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorMessage     string `json:"error_message"`
	RequestID        string `json:"request_id"`
}

func TestIngestRefusals(t *testing.T) {
	t.Parallel()
	const body = `{"id":"evt_1"}`
	now := fixedClock().Unix()
	std := standardCfg()
	stdHeaders := func(mut func(h map[string]string)) map[string]string {
		h := standardHeaders(vecSecret, "msg_x", now, body)
		if mut != nil {
			mut(h)
		}
		return h
	}
	stripeCfg := config.Webhook{Path: "/webhooks/std", Job: "k", Verify: config.Verify{Scheme: "stripe", Secrets: []string{"whsec_s"}}}
	ghCfg := config.Webhook{Path: "/webhooks/std", Job: "k", Verify: config.Verify{Scheme: "github", Secrets: []string{"gh"}}}
	shCfg := config.Webhook{Path: "/webhooks/std", Job: "k", Verify: config.Verify{Scheme: "shopify", Secrets: []string{"sh"}}}
	hmCfg := config.Webhook{Path: "/webhooks/std", Job: "k", Verify: config.Verify{Scheme: "hmac", Secrets: []string{"hm"}, Header: "X-Sig", Prefix: "sha256="}}
	ipCfg := std
	ipCfg.AllowIPs = []string{"203.0.113.0/24"}
	small := std
	small.MaxBodyBytes = 16
	noneCfg := config.Webhook{Path: "/webhooks/std", Job: "k", AllowIPs: []string{"203.0.113.0/24"}, Verify: config.Verify{Scheme: "none"}}

	cases := []struct {
		name   string
		cfg    config.Webhook
		d      delivery
		status int
		code   string
	}{
		{"standard missing id", std, delivery{body: body, headers: stdHeaders(func(h map[string]string) { delete(h, "webhook-id") })}, 400, "missing_signature"},
		{"standard missing timestamp", std, delivery{body: body, headers: stdHeaders(func(h map[string]string) { delete(h, "webhook-timestamp") })}, 400, "missing_signature"},
		{"standard missing signature", std, delivery{body: body, headers: stdHeaders(func(h map[string]string) { delete(h, "webhook-signature") })}, 400, "missing_signature"},
		{"standard wrong secret", std, delivery{body: body, headers: standardHeaders("whsec_"+base64.StdEncoding.EncodeToString([]byte("another secret")), "msg_x", now, body)}, 401, "invalid_signature"},
		{"standard tampered body", std, delivery{body: `{"id":"evt_2"}`, headers: stdHeaders(nil)}, 401, "invalid_signature"},
		{"standard tampered id", std, delivery{body: body, headers: stdHeaders(func(h map[string]string) { h["webhook-id"] = "msg_y" })}, 401, "invalid_signature"},
		{"standard only other versions", std, delivery{body: body, headers: stdHeaders(func(h map[string]string) { h["webhook-signature"] = "v2," + h["webhook-signature"][3:] })}, 401, "invalid_signature"},
		{"standard garbage timestamp", std, delivery{body: body, headers: stdHeaders(func(h map[string]string) { h["webhook-timestamp"] = "yesterday" })}, 401, "invalid_signature"},
		{"standard too old", std, delivery{body: body, headers: standardHeaders(vecSecret, "msg_x", now-301, body)}, 401, "stale_signature"},
		{"standard too new", std, delivery{body: body, headers: standardHeaders(vecSecret, "msg_x", now+301, body)}, 401, "stale_signature"},
		{"stripe missing", stripeCfg, delivery{body: body}, 400, "missing_signature"},
		{"stripe no v1", stripeCfg, delivery{body: body, headers: map[string]string{"Stripe-Signature": fmt.Sprintf("t=%d,v0=abc", now)}}, 401, "invalid_signature"},
		{"stripe wrong secret", stripeCfg, delivery{body: body, headers: map[string]string{"Stripe-Signature": stripeHeader("whsec_other", now, body)}}, 401, "invalid_signature"},
		{"stripe tampered", stripeCfg, delivery{body: `{"id":"evt_9"}`, headers: map[string]string{"Stripe-Signature": stripeHeader("whsec_s", now, body)}}, 401, "invalid_signature"},
		{"stripe too old", stripeCfg, delivery{body: body, headers: map[string]string{"Stripe-Signature": stripeHeader("whsec_s", now-301, body)}}, 401, "stale_signature"},
		{"stripe too new", stripeCfg, delivery{body: body, headers: map[string]string{"Stripe-Signature": stripeHeader("whsec_s", now+301, body)}}, 401, "stale_signature"},
		{"github missing", ghCfg, delivery{body: body}, 400, "missing_signature"},
		{"github no prefix", ghCfg, delivery{body: body, headers: map[string]string{"X-Hub-Signature-256": hmacHex("gh", body)}}, 401, "invalid_signature"},
		{"github wrong secret", ghCfg, delivery{body: body, headers: map[string]string{"X-Hub-Signature-256": "sha256=" + hmacHex("nope", body)}}, 401, "invalid_signature"},
		{"github tampered", ghCfg, delivery{body: `{"id":"evt_3"}`, headers: map[string]string{"X-Hub-Signature-256": "sha256=" + hmacHex("gh", body)}}, 401, "invalid_signature"},
		{"github not hex", ghCfg, delivery{body: body, headers: map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("zz", 32)}}, 401, "invalid_signature"},
		{"shopify missing", shCfg, delivery{body: body}, 400, "missing_signature"},
		{"shopify wrong secret", shCfg, delivery{body: body, headers: map[string]string{"X-Shopify-Hmac-Sha256": hmacB64("nope", body)}}, 401, "invalid_signature"},
		{"shopify tampered", shCfg, delivery{body: `{"id":"evt_4"}`, headers: map[string]string{"X-Shopify-Hmac-Sha256": hmacB64("sh", body)}}, 401, "invalid_signature"},
		{"hmac missing", hmCfg, delivery{body: body}, 400, "missing_signature"},
		{"hmac wrong prefix", hmCfg, delivery{body: body, headers: map[string]string{"X-Sig": "sha1=" + hmacHex("hm", body)}}, 401, "invalid_signature"},
		{"hmac wrong secret", hmCfg, delivery{body: body, headers: map[string]string{"X-Sig": "sha256=" + hmacHex("x", body)}}, 401, "invalid_signature"},
		{"disallowed source", ipCfg, delivery{body: body, headers: stdHeaders(nil), peer: "198.51.100.7:5000"}, 403, "forbidden_source"},
		{"spoofed XFF from untrusted peer", ipCfg, delivery{body: body, headers: func() map[string]string {
			h := stdHeaders(nil)
			h["X-Forwarded-For"] = "203.0.113.5"
			return h
		}(), peer: "198.51.100.7:5000"}, 403, "forbidden_source"},
		{"XFF from trusted proxy naming an outsider", ipCfg, delivery{body: body, headers: func() map[string]string {
			h := stdHeaders(nil)
			h["X-Forwarded-For"] = "203.0.113.5, 198.51.100.9"
			return h
		}(), peer: "10.1.2.3:5000"}, 403, "forbidden_source"},
		{"middleware resolved outsider", ipCfg, delivery{body: body, headers: stdHeaders(nil), peer: "203.0.113.5:1", stateIP: "198.51.100.7"}, 403, "forbidden_source"},
		{"none from outside", noneCfg, delivery{body: body, peer: "198.51.100.7:5000"}, 403, "forbidden_source"},
		{"bad signature from outside is refused as source first", ipCfg, delivery{body: body, peer: "198.51.100.7:5000"}, 403, "forbidden_source"},
		{"oversized body", small, delivery{body: `{"padding":"` + strings.Repeat("x", 64) + `"}`, headers: stdHeaders(nil)}, 413, "body_too_large"},
		{"oversized body over server default", std, delivery{body: `{"p":"` + strings.Repeat("x", 2000) + `"}`, headers: stdHeaders(nil)}, 413, "body_too_large"},
		{"invalid JSON", std, delivery{body: `{"id":`, headers: standardHeaders(vecSecret, "msg_x", now, `{"id":`)}, 400, "invalid_body"},
		{"malformed form", std, delivery{body: "a=%zz&b=1", ct: "application/x-www-form-urlencoded", headers: standardHeaders(vecSecret, "msg_x", now, "a=%zz&b=1")}, 400, "invalid_body"},
		{"unsupported content type", std, delivery{body: "hello", ct: "text/plain", headers: standardHeaders(vecSecret, "msg_x", now, "hello")}, 415, "unsupported_media_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, c.cfg)
			c.d.path = "/webhooks/std"
			w := b.send(t, c.d)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, c.status, w.Body)
			}
			var env envelope
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
				t.Fatalf("not an envelope: %s", w.Body)
			}
			if env.ErrorCode != c.status || env.Error != c.code || env.ErrorMessage == "" || env.RequestID != "req-1" {
				t.Fatalf("envelope %+v, want %d %s", env, c.status, c.code)
			}
			if got := b.enq.jobs(); len(got) != 0 {
				t.Fatalf("refused delivery enqueued %+v", got)
			}
		})
	}
}

func TestIngestTrustedProxy(t *testing.T) {
	t.Parallel()
	cfg := standardCfg()
	cfg.AllowIPs = []string{"203.0.113.0/24"}
	now := fixedClock().Unix()
	cases := []struct {
		name    string
		peer    string
		xff     string
		stateIP string
	}{
		{"XFF from trusted proxy", "10.0.0.1:443", "203.0.113.5", ""},
		{"XFF chain through two trusted proxies", "10.0.0.1:443", "203.0.113.5, 10.9.9.9", ""},
		{"direct peer in range", "203.0.113.77:9", "", ""},
		{"middleware resolved", "10.0.0.1:443", "", "203.0.113.6"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, cfg)
			body := fmt.Sprintf(`{"n":%d}`, i)
			h := standardHeaders(vecSecret, "msg_"+strconv.Itoa(i), now, body)
			if c.xff != "" {
				h["X-Forwarded-For"] = c.xff
			}
			w := b.send(t, delivery{path: cfg.Path, body: body, headers: h, peer: c.peer, stateIP: c.stateIP})
			if w.Code != http.StatusAccepted || len(b.enq.jobs()) != 1 {
				t.Fatalf("status %d body %s jobs %d", w.Code, w.Body, len(b.enq.jobs()))
			}
		})
	}
}

// The ID-verification vendor of seed 000 posts a form from an allowlisted
// address with no signature.
func TestIngestFormCallback(t *testing.T) {
	t.Parallel()
	cfg := config.Webhook{Path: "/callbacks/idv", Job: "idv.callback", AllowIPs: []string{"203.0.113.10"},
		Verify: config.Verify{Scheme: "none"}, Dedupe: "json:jumioIdScanReference"}
	b := setup(t, cfg)
	form := "jumioIdScanReference=scan-42&verificationStatus=APPROVED_VERIFIED&customerId=ref%2Fabc%3D&idType=PASSPORT&tag=a&tag=b%20c&note=%3Cb%3E"
	w := b.send(t, delivery{path: cfg.Path, body: form, ct: "application/x-www-form-urlencoded; charset=UTF-8", peer: "203.0.113.10:40000"})
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
	got := b.enq.jobs()
	if len(got) != 1 {
		t.Fatalf("jobs %+v", got)
	}
	want := `{"customerId":"ref/abc=","idType":"PASSPORT","jumioIdScanReference":"scan-42","note":"<b>","tag":["a","b c"],"verificationStatus":"APPROVED_VERIFIED"}`
	if got[0].Payload != want {
		t.Fatalf("payload\n got %s\nwant %s", got[0].Payload, want)
	}
	if got[0].Opts.DedupeKey != "webhook:/callbacks/idv:scan-42" || got[0].Kind != "idv.callback" {
		t.Fatalf("job %+v", got[0])
	}
	// The vendor retries its callback: deduplicated.
	w = b.send(t, delivery{path: cfg.Path, body: form, ct: "application/x-www-form-urlencoded", peer: "203.0.113.10:40001"})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"duplicate":true`) || len(b.enq.jobs()) != 1 {
		t.Fatalf("retry status %d body %s", w.Code, w.Body)
	}
}

func TestIngestEnqueueFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, standardCfg())
	b.enq.err = fmt.Errorf("disk full")
	w := b.send(t, delivery{path: "/webhooks/std", body: vecBody, headers: standardHeaders(vecSecret, vecID, vecTS, vecBody)})
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "disk full") {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	ok := standardCfg()
	cases := []struct {
		name string
		mut  func(c *config.Webhook)
		want string
	}{
		{"none without allow_ips", func(c *config.Webhook) { c.Verify = config.Verify{Scheme: "none"} }, "allow_ips"},
		{"unknown scheme", func(c *config.Webhook) { c.Verify.Scheme = "md5" }, "unknown"},
		{"no secrets", func(c *config.Webhook) { c.Verify.Secrets = nil }, "secret"},
		{"secret not base64", func(c *config.Webhook) { c.Verify.Secrets = []string{"whsec_***"} }, "base64"},
		{"no job", func(c *config.Webhook) { c.Job = "" }, "job"},
		{"bad path", func(c *config.Webhook) { c.Path = "hooks" }, "path"},
		{"bad CIDR", func(c *config.Webhook) { c.AllowIPs = []string{"10.0.0.0/99"} }, "allow_ips"},
		{"bad dedupe", func(c *config.Webhook) { c.Dedupe = "bodyhash" }, "dedupe"},
		{"hmac without header", func(c *config.Webhook) { c.Verify = config.Verify{Scheme: "hmac", Secrets: []string{"x"}} }, "header"},
		{"hmac bad algorithm", func(c *config.Webhook) {
			c.Verify = config.Verify{Scheme: "hmac", Secrets: []string{"x"}, Header: "X", Algorithm: "md5"}
		}, "algorithm"},
		{"hmac bad encoding", func(c *config.Webhook) {
			c.Verify = config.Verify{Scheme: "hmac", Secrets: []string{"x"}, Header: "X", Encoding: "base32"}
		}, "encoding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			cfg.Verify.Secrets = append([]string(nil), ok.Verify.Secrets...)
			c.mut(&cfg)
			_, err := New([]config.Webhook{cfg}, Deps{Enqueuer: &recordingEnqueuer{}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want mention of %q", err, c.want)
			}
			if strings.Contains(fmt.Sprint(err), "***") {
				t.Fatalf("error echoes the secret: %v", err)
			}
		})
	}
	if _, err := New([]config.Webhook{ok, ok}, Deps{Enqueuer: &recordingEnqueuer{}}); err == nil {
		t.Fatal("duplicate path accepted")
	}
	if _, err := New([]config.Webhook{ok}, Deps{}); err == nil {
		t.Fatal("missing Enqueuer accepted")
	}
}

func TestJSONLookup(t *testing.T) {
	t.Parallel()
	doc := []byte(` { "a" : {"skip":[1,{"x":"}"}],"b\"q":"no", "id" : "x\u00e9y", "n": -12.5e3, "o":{}}, "id":"top", "t":true } `)
	cases := []struct {
		path string
		want string
	}{
		{"id", "top"}, {"a.id", "xéy"}, {"a.n", "-12.5e3"}, {"a.b\"q", "no"},
		{"a.o", ""}, {"t", ""}, {"missing", ""}, {"a.skip.x", ""}, {"id.x", ""},
	}
	for _, c := range cases {
		if got := jsonLookup(doc, strings.Split(c.path, ".")); got != c.want {
			t.Errorf("jsonLookup(%s) = %q, want %q", c.path, got, c.want)
		}
	}
	if got := jsonLookup([]byte(`[1,2]`), []string{"id"}); got != "" {
		t.Errorf("array root: %q", got)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
