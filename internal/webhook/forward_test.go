package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/jobs"
)

const forwardSecret = "whsec_c2VjcmV0LWZvci1mb3J3YXJkaW5nLXRlc3Rz"

type received struct {
	DeliveryID string
	WebhookID  string
	Body       string
	Outcome    outcome
	CT         string
}

// receiver answers with the scripted statuses in turn and checks every
// request's signature with the ingest's own standard verifier.
type receiver struct {
	mu       sync.Mutex
	script   []func(w http.ResponseWriter)
	got      []received
	redirect int
	verify   verifier
	now      func() time.Time
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/elsewhere" {
		rc.mu.Lock()
		rc.redirect++
		rc.mu.Unlock()
		w.WriteHeader(200)
		return
	}
	body, _ := io.ReadAll(r.Body)
	o, _ := rc.verify.verify(r.Header, body, rc.now(), &scratch{})
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got = append(rc.got, received{DeliveryID: r.Header.Get(DeliveryIDHeader), WebhookID: r.Header.Get("webhook-id"),
		Body: string(body), Outcome: o, CT: r.Header.Get("Content-Type")})
	n := len(rc.got) - 1
	if n < len(rc.script) {
		rc.script[n](w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestForwarderRetriesAndSigns(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { return now }
	v, err := newVerifier(config.Verify{Scheme: "standard", Secrets: []string{forwardSecret}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{verify: v, now: clock, script: []func(http.ResponseWriter){
		func(w http.ResponseWriter) { http.Error(w, "boom", http.StatusInternalServerError) },
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", now.Add(30*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
		},
		func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) },
	}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)

	set, err := New([]config.Webhook{{Path: "/hooks/a:b", Job: "vendor.event",
		Verify:  config.Verify{Scheme: "standard", Secrets: []string{vecSecret}},
		Forward: &config.Forward{URL: srv.URL + "/hooks/in", Secret: forwardSecret}}}, Deps{Enqueuer: &recordingEnqueuer{}})
	if err != nil {
		t.Fatal(err)
	}
	fws, err := set.Forwarders(ForwardDeps{Now: clock})
	if err != nil || len(fws) != 1 || fws["vendor.event"] == nil {
		t.Fatalf("Forwarders = %v, %v", fws, err)
	}
	work := fws["vendor.event"]
	job := &jobs.Job{ID: 42, Kind: "vendor.event", Payload: []byte(`{"a":1}`), DedupeKey: "webhook:/hooks/a:b:msg:with:colons"}

	type want struct {
		retryAfter time.Duration // 0: a plain error
		ok         bool
	}
	steps := []want{{}, {retryAfter: 7 * time.Second}, {retryAfter: 30 * time.Second}, {}, {ok: true}}
	for i, st := range steps {
		err := work(context.Background(), job)
		if st.ok {
			if err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("attempt %d succeeded, want an error", i+1)
		}
		var ra *jobs.RetryAfterError
		if got := errors.As(err, &ra); got != (st.retryAfter > 0) || (got && ra.After != st.retryAfter) {
			t.Fatalf("attempt %d: err %v (RetryAfter %v), want retry after %v", i+1, err, ra, st.retryAfter)
		}
		if strings.Contains(err.Error(), forwardSecret) {
			t.Fatalf("error leaks the secret: %v", err)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 5 || rc.redirect != 0 {
		t.Fatalf("receiver saw %d deliveries, %d followed redirects", len(rc.got), rc.redirect)
	}
	for i, g := range rc.got {
		if g.Outcome != outOK || g.DeliveryID != "msg:with:colons" || g.WebhookID != "42" || g.Body != `{"a":1}` || g.CT != "application/json" {
			t.Fatalf("delivery %d: %+v", i+1, g)
		}
	}
}

func TestForwarderWithoutDedupeKeyAndWrongSecret(t *testing.T) {
	t.Parallel()
	v, _ := newVerifier(config.Verify{Scheme: "standard", Secrets: []string{vecSecret}}, 0)
	rc := &receiver{verify: v, now: time.Now}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	f, err := NewForwarder(config.Forward{URL: srv.URL, Secret: forwardSecret}, ForwardDeps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Work(context.Background(), &jobs.Job{ID: 7, Payload: []byte(`[]`)}); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	// Signed with forwardSecret, checked against vecSecret: must not verify.
	if len(rc.got) != 1 || rc.got[0].DeliveryID != "" || rc.got[0].Outcome != outInvalid {
		t.Fatalf("got %+v", rc.got)
	}
}

func TestForwarderTimeoutAndBadConfig(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); srv.Close() })
	f, err := NewForwarder(config.Forward{URL: srv.URL, Secret: forwardSecret, Timeout: config.Duration(100 * time.Millisecond)}, ForwardDeps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Work(context.Background(), &jobs.Job{ID: 1, Payload: []byte(`{}`)}); err == nil {
		t.Fatal("hung receiver completed the job")
	}
	for _, c := range []config.Forward{
		{URL: "ftp://x/", Secret: forwardSecret},
		{URL: "/relative", Secret: forwardSecret},
		{URL: "http://x/", Secret: "whsec_!!"},
	} {
		if _, err := NewForwarder(c, ForwardDeps{}); err == nil {
			t.Errorf("NewForwarder(%+v) accepted", c)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"120", 2 * time.Minute, true}, {"-1", 0, false}, {"soon", 0, false}, {"", 0, false},
		{"99999999999", maxRetryAfter, true},
		{now.Add(-time.Hour).UTC().Format(http.TimeFormat), 0, true},
		{now.Add(90 * time.Second).UTC().Format(http.TimeFormat), 90 * time.Second, true},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
