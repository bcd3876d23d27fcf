package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
)

// countingBody records whether the handler read the request body.
type countingBody struct {
	r     io.Reader
	reads atomic.Int32
}

func (c *countingBody) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

func (c *countingBody) Close() error { return nil }

// A source outside allow_ips is refused before a byte of its body is read:
// a refused sender costs no body read, however slow it sends.
func TestIngestChecksSourceBeforeReadingBody(t *testing.T) {
	t.Parallel()
	cfg := standardCfg()
	cfg.AllowIPs = []string{"203.0.113.0/24"}
	b := setup(t, cfg)
	body := &countingBody{r: strings.NewReader(vecBody)}
	r := httptest.NewRequest(http.MethodPost, cfg.Path, body)
	r.ContentLength = int64(len(vecBody))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range standardHeaders(vecSecret, vecID, vecTS, vecBody) {
		r.Header.Set(k, v)
	}
	r.RemoteAddr = "198.51.100.7:5000"
	w := httptest.NewRecorder()
	b.mux.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403; body %s", w.Code, w.Body)
	}
	if n := body.reads.Load(); n != 0 {
		t.Fatalf("the body of a refused source was read (%d reads)", n)
	}
}

// A declared size over the endpoint's limit is refused before anything
// else, even before the source check.
func TestIngestDeclaredSizeFirst(t *testing.T) {
	t.Parallel()
	cfg := standardCfg()
	cfg.AllowIPs = []string{"203.0.113.0/24"}
	cfg.MaxBodyBytes = 8
	b := setup(t, cfg)
	body := &countingBody{r: strings.NewReader(vecBody)}
	r := httptest.NewRequest(http.MethodPost, cfg.Path, body)
	r.ContentLength = int64(len(vecBody))
	r.RemoteAddr = "198.51.100.7:5000"
	w := httptest.NewRecorder()
	b.mux.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || body.reads.Load() != 0 {
		t.Fatalf("status %d reads %d, want 413 and no read", w.Code, body.reads.Load())
	}
}

// Timestamps far from now are stale for every integer, however large: the
// distance is compared in whole seconds without overflow.
func TestStandardTimestampNoOverflow(t *testing.T) {
	t.Parallel()
	now := fixedClock().Unix()
	v, err := newVerifier(config.Verify{Scheme: "standard", Secrets: []string{vecSecret}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStandardSigner(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ts   string
		want outcome
	}{
		{"now", strconv.FormatInt(now, 10), outOK},
		{"edge of tolerance past", strconv.FormatInt(now-300, 10), outOK},
		{"edge of tolerance future", strconv.FormatInt(now+300, 10), outOK},
		{"wraps to now (found by the attack)", strconv.FormatInt(now-9223372037, 10), outStale},
		{"wraps the other way", strconv.FormatInt(now+9223372037, 10), outStale},
		{"min int64", strconv.FormatInt(math.MinInt64, 10), outStale},
		{"max int64", strconv.FormatInt(math.MaxInt64, 10), outStale},
		{"min int64 + 1", strconv.FormatInt(math.MinInt64+1, 10), outStale},
		{"zero", "0", outStale},
		{"negative", "-1", outStale},
		{"past int64", "99999999999999999999", outStale},
		{"below int64", "-99999999999999999999", outStale},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Sign over the timestamp string exactly as sent, so only the
			// tolerance can refuse it.
			mac := s.appendMAC(nil, []byte(vecID+"."+c.ts+"."), []byte(vecBody))
			h := http.Header{}
			h.Set("webhook-id", vecID)
			h.Set("webhook-timestamp", c.ts)
			h.Set("webhook-signature", "v1,"+b64(mac))
			if o, desc := v.verify(h, []byte(vecBody), fixedClock(), &scratch{}); o != c.want {
				t.Fatalf("outcome %s (%s), want %s", outcomeNames[o], desc, outcomeNames[c.want])
			}
		})
	}
}

// within holds for every pair of int64 timestamps exactly when the
// distance, computed without overflow, is within the tolerance.
func TestWithinProperty(t *testing.T) {
	t.Parallel()
	nows := []int64{0, 1, 1614265330, 4102444800}
	tss := []int64{math.MinInt64, math.MinInt64 + 1, -9223372037, -1, 0, 1, 299, 300, 301, 1614265030, 1614265029,
		1614265630, 1614265631, 9223372036, 9223372037, math.MaxInt64 - 1, math.MaxInt64}
	for _, n := range nows {
		for _, ts := range tss {
			// Reference: big-enough arithmetic through float is not exact
			// near the extremes, so decide with ordered comparisons.
			want := (ts >= n && ts-n <= 300) || (ts < n && uint64(n)-uint64(ts) <= 300)
			if got := within(ts, time.Unix(n, 0), 5*time.Minute); got != want {
				t.Errorf("within(%d, now=%d) = %v, want %v", ts, n, got, want)
			}
		}
	}
}

// dedupe: body keys a delivery by the SHA-256 of its raw body, so a
// replayed body with a fresh delivery id is dropped on schemes that sign
// no timestamp.
func TestDedupeBody(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"github", "shopify", "hmac"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			cfg := config.Webhook{Path: "/webhooks/r", Job: "k", Dedupe: "body",
				Verify: config.Verify{Scheme: scheme, Secrets: []string{"s3cret"}, Header: "X-Sig"}}
			if scheme != "hmac" {
				cfg.Verify.Header = ""
			}
			b := setup(t, cfg)
			const body = `{"action":"paid","amount":100}`
			sign := func(id string) map[string]string {
				switch scheme {
				case "github":
					return map[string]string{"X-Hub-Signature-256": "sha256=" + hmacHex("s3cret", body), "X-GitHub-Delivery": id}
				case "shopify":
					return map[string]string{"X-Shopify-Hmac-Sha256": hmacB64("s3cret", body), "X-Shopify-Webhook-Id": id}
				}
				return map[string]string{"X-Sig": hmacHex("s3cret", body)}
			}
			w := b.send(t, delivery{path: cfg.Path, body: body, headers: sign("d-1")})
			if w.Code != http.StatusAccepted {
				t.Fatalf("first delivery: %d %s", w.Code, w.Body)
			}
			w = b.send(t, delivery{path: cfg.Path, body: body, headers: sign("d-2-replayed")})
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"duplicate":true`) {
				t.Fatalf("replay: %d %s, want 200 duplicate", w.Code, w.Body)
			}
			sum := sha256.Sum256([]byte(body))
			jobs := b.enq.jobs()
			if len(jobs) != 1 || jobs[0].Opts.DedupeKey != "webhook:/webhooks/r:"+hex.EncodeToString(sum[:]) {
				t.Fatalf("jobs %+v", jobs)
			}
		})
	}
}

// Defects of the delivery itself are 400 invalid_body, never 503 (which
// tells the sender to retry a delivery that can never succeed).
func TestIngestPermanentDefects(t *testing.T) {
	t.Parallel()
	now := fixedClock().Unix()
	hdrDedupe := standardCfg()
	hdrDedupe.Dedupe = "header:X-Event-Id"
	jsonDedupe := standardCfg()
	jsonDedupe.Dedupe = "json:id"
	badUTF8 := "{\"name\":\"caf\xe9\"}"
	long := `{"id":"` + strings.Repeat("a", 1001) + `"}`
	cases := []struct {
		name  string
		cfg   config.Webhook
		body  string
		extra map[string]string
	}{
		{"invalid UTF-8 in a JSON body", standardCfg(), badUTF8, nil},
		{"dedupe header over 1000 bytes", hdrDedupe, vecBody, map[string]string{"X-Event-Id": strings.Repeat("x", 1001)}},
		{"dedupe header not UTF-8", hdrDedupe, vecBody, map[string]string{"X-Event-Id": "evt-\xff\xfe"}},
		{"dedupe JSON value over 1000 bytes", jsonDedupe, long, nil},
		{"webhook-id over 1000 bytes", standardCfg(), vecBody, map[string]string{"webhook-id": strings.Repeat("m", 1001)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, c.cfg)
			id := "msg_defect"
			if v, ok := c.extra["webhook-id"]; ok {
				id = v
			}
			h := standardHeaders(vecSecret, id, now, c.body)
			for k, v := range c.extra {
				h[k] = v
			}
			w := b.send(t, delivery{path: c.cfg.Path, body: c.body, headers: h})
			env := decodeEnvelope(t, w)
			if w.Code != http.StatusBadRequest || env.Error != "invalid_body" {
				t.Fatalf("status %d %s, want 400 invalid_body", w.Code, w.Body)
			}
			if got := b.enq.jobs(); len(got) != 0 {
				t.Fatalf("defective delivery enqueued: %d jobs", len(got))
			}
		})
	}
	// A dedupe value of exactly 1000 bytes is fine.
	b := setup(t, hdrDedupe)
	h := standardHeaders(vecSecret, "msg_ok", now, vecBody)
	h["X-Event-Id"] = strings.Repeat("x", 1000)
	if w := b.send(t, delivery{path: hdrDedupe.Path, body: vecBody, headers: h}); w.Code != http.StatusAccepted {
		t.Fatalf("1000-byte dedupe value: %d %s", w.Code, w.Body)
	}
}

func decodeEnvelope(t *testing.T, w *httptest.ResponseRecorder) envelope {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("not an envelope: %s", w.Body)
	}
	return env
}

// More than 20 signature failures a minute from one address are answered
// 429 with Retry-After, before the body is read or the signature checked;
// other addresses are unaffected, and the budget refills with time.
func TestSignatureFailureLimit(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(vecTS)
	b := &bundle{enq: &recordingEnqueuer{}, mux: http.NewServeMux()}
	set, err := New([]config.Webhook{standardCfg()}, Deps{Enqueuer: b.enq, Now: func() time.Time { return time.Unix(clock.Load(), 0) }})
	if err != nil {
		t.Fatal(err)
	}
	set.Register(b.mux)
	now := vecTS
	bad := standardHeaders("whsec_"+b64([]byte("not the vendor's key")), "msg_x", now, vecBody)
	attacker := "198.51.100.7:1"
	for i := range 20 {
		w := b.send(t, delivery{path: "/webhooks/std", body: vecBody, headers: bad, peer: attacker})
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i+1, w.Code)
		}
	}
	w := b.send(t, delivery{path: "/webhooks/std", body: vecBody, headers: bad, peer: attacker})
	env := decodeEnvelope(t, w)
	if w.Code != http.StatusTooManyRequests || env.Error != "too_many_failures" || env.RequestID != "req-1" ||
		env.ErrorMessage != "Too many webhook signature failures from this address. Retry later." {
		t.Fatalf("21st failure: %d %s, want 429 too_many_failures", w.Code, w.Body)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	// Even a good signature from the limited address waits.
	good := standardHeaders(vecSecret, "msg_good", now, vecBody)
	if w := b.send(t, delivery{path: "/webhooks/std", body: vecBody, headers: good, peer: attacker}); w.Code != http.StatusTooManyRequests {
		t.Fatalf("limited address with a good signature: %d", w.Code)
	}
	// Another address is unaffected.
	if w := b.send(t, delivery{path: "/webhooks/std", body: vecBody, headers: good, peer: "203.0.113.9:1"}); w.Code != http.StatusAccepted {
		t.Fatalf("other address: %d %s", w.Code, w.Body)
	}
	// After a minute the budget has refilled.
	clock.Add(61)
	good = standardHeaders(vecSecret, "msg_later", clock.Load(), vecBody)
	if w := b.send(t, delivery{path: "/webhooks/std", body: vecBody, headers: good, peer: attacker}); w.Code != http.StatusAccepted {
		t.Fatalf("after a minute: %d %s", w.Code, w.Body)
	}
}

// Webhook refusals speak to the machine sending them, not to a person
// asked to sign in.
func TestRefusalMessages(t *testing.T) {
	t.Parallel()
	now := fixedClock().Unix()
	std := standardCfg()
	ipCfg := std
	ipCfg.AllowIPs = []string{"203.0.113.0/24"}
	small := std
	small.MaxBodyBytes = 4
	cases := []struct {
		cfg  config.Webhook
		d    delivery
		code string
		want string
	}{
		{std, delivery{body: vecBody}, "missing_signature", "The webhook delivery is missing its signature."},
		{std, delivery{body: vecBody, headers: standardHeaders(vecSecret, "m", now, `{}`)}, "invalid_signature", "The webhook signature did not verify."},
		{std, delivery{body: vecBody, headers: standardHeaders(vecSecret, "m", now-3600, vecBody)}, "stale_signature", "The webhook signature timestamp is outside the allowed window."},
		{ipCfg, delivery{body: vecBody, peer: "198.51.100.1:1"}, "forbidden_source", "This address may not send deliveries to this webhook."},
		{small, delivery{body: vecBody}, "body_too_large", "The webhook body is too large."},
		{std, delivery{body: `{`, headers: standardHeaders(vecSecret, "m", now, `{`)}, "invalid_body", "The webhook body is not valid."},
		{std, delivery{body: "x", ct: "text/plain", headers: standardHeaders(vecSecret, "m", now, "x")}, "unsupported_media_type", "The webhook body must be JSON or a form."},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			t.Parallel()
			b := setup(t, c.cfg)
			c.d.path = c.cfg.Path
			env := decodeEnvelope(t, b.send(t, c.d))
			if env.Error != c.code || env.ErrorMessage != c.want {
				t.Fatalf("error %q message %q, want %q %q", env.Error, env.ErrorMessage, c.code, c.want)
			}
		})
	}
	b := setup(t, std)
	b.enq.err = io.ErrUnexpectedEOF
	env := decodeEnvelope(t, b.send(t, delivery{path: std.Path, body: vecBody, headers: standardHeaders(vecSecret, "m", now, vecBody)}))
	if env.Error != "unavailable" || env.ErrorMessage != "The delivery could not be stored. Retry later." {
		t.Fatalf("store failure: %+v", env)
	}
}

// A body-budget refusal raised while reading (the server's in-flight body
// budget) keeps its own status instead of becoming invalid_body.
func TestIngestBodyReadKeepsServerError(t *testing.T) {
	t.Parallel()
	b := setup(t, standardCfg())
	busy := &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "server_busy", Description: "busy",
		Header: http.Header{"Retry-After": {"1"}}}
	r := httptest.NewRequest(http.MethodPost, "/webhooks/std", io.MultiReader(errReader{busy}))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	b.mux.ServeHTTP(w, r.WithContext(httpapi.WithState(r.Context(), &httpapi.State{ID: "req-1"})))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// A sender whose first read is refused (the server's body budget) or
// never arrives costs no buffer of the size it merely declared.
func TestReadBodyAllocatesAfterFirstRead(t *testing.T) {
	t.Parallel()
	busy := httpapi.E(http.StatusServiceUnavailable, "server_busy", "busy")
	buf, err := readBody(errReader{busy}, nil, 1<<20, 1<<20)
	if err != busy || cap(buf) > 4096 {
		t.Fatalf("err %v cap %d, want the refusal and at most 4096 bytes", err, cap(buf))
	}
	// A body that arrives is read whole, growing once to its length.
	body := strings.Repeat("z", 100000)
	buf, err = readBody(strings.NewReader(body), nil, int64(len(body)), 1<<20)
	if err != nil || string(buf) != body || cap(buf) != len(body)+1 {
		t.Fatalf("err %v len %d cap %d", err, len(buf), cap(buf))
	}
}
