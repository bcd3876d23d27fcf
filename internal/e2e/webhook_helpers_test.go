package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/internal/webhook"
)

// webhookForwardSecret signs what backlot forwards to the test receivers.
const webhookForwardSecret = "whsec_ZTJlLWZvcndhcmQtc2VjcmV0LWZvci10ZXN0cw=="

// webhookVendorSecret is what the test "vendor" signs deliveries with.
const webhookVendorSecret = "whsec_ZTJlLXZlbmRvci1zZWNyZXQtZm9yLXRlc3Rz"

// webhookDelivery is one forwarded job as the receiver saw it.
type webhookDelivery struct {
	DeliveryID string
	JobID      string
	Body       string
	Verified   bool
}

// webhookReceiver is the app behind backlot's forward worker: an httptest
// server recording deliveries by Backlot-Delivery-Id and checking each
// one's Standard Webhooks signature against the forward secret.
type webhookReceiver struct {
	srv    *httptest.Server
	signer *webhook.StandardSigner

	mu     sync.Mutex
	byID   map[string][]webhookDelivery
	total  int
	failed int // deliveries whose signature did not verify
	notify chan struct{}
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	s, err := webhook.NewStandardSigner(webhookForwardSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &webhookReceiver{signer: s, byID: map[string][]webhookDelivery{}, notify: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *webhookReceiver) URL() string { return rc.srv.URL + "/hooks/in" }

func (rc *webhookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	id, tsRaw, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	ts, _ := strconv.ParseInt(tsRaw, 10, 64)
	ok := id != "" && sig == rc.signer.Sign(id, ts, body) && r.Header.Get("Content-Type") == "application/json" &&
		time.Since(time.Unix(ts, 0)).Abs() < 5*time.Minute
	d := webhookDelivery{DeliveryID: r.Header.Get(webhook.DeliveryIDHeader), JobID: id, Body: string(body), Verified: ok}
	rc.mu.Lock()
	rc.byID[d.DeliveryID] = append(rc.byID[d.DeliveryID], d)
	rc.total++
	if !ok {
		rc.failed++
	}
	rc.mu.Unlock()
	select {
	case rc.notify <- struct{}{}:
	default:
	}
	if !ok {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// get returns the deliveries recorded for a delivery id.
func (rc *webhookReceiver) get(id string) []webhookDelivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]webhookDelivery(nil), rc.byID[id]...)
}

// waitFor waits until every id has been delivered at least once, or fails
// listing the missing ones.
func (rc *webhookReceiver) waitFor(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rc.mu.Lock()
		var missing []string
		for _, id := range ids {
			if len(rc.byID[id]) == 0 {
				missing = append(missing, id)
			}
		}
		rc.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			n := min(len(missing), 10)
			t.Fatalf("%d of %d acknowledged deliveries never reached the receiver (first: %v)", len(missing), len(ids), missing[:n])
		}
		select {
		case <-rc.notify:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// webhookSign returns the Standard Webhooks headers a vendor would send.
func webhookSign(t testing.TB, secret, id string, body []byte) http.Header {
	t.Helper()
	s, err := webhook.NewStandardSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", s.Sign(id, ts, body))
	return h
}

// webhookPost sends one delivery and returns the status and body; a
// transport error is returned as such (the process may be dead).
func webhookPost(client *http.Client, url string, h http.Header, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(b), nil
}

// webhookConfig writes a backlot.yaml with one standard endpoint forwarded
// to rc and returns its path. extra is appended verbatim (more endpoints).
func webhookConfig(t *testing.T, dir, listen, storeURL, receiverURL, extraServer, extraWebhooks string) string {
	t.Helper()
	y := fmt.Sprintf(`server:
  listen: %q
%sstore:
  url: %q
webhooks:
  - path: /webhooks/vendor
    verify: { scheme: standard, secrets: [%q] }
    job: vendor.event
    forward: { url: %q, secret: %q, timeout: 5s }
%sjobs:
  queues: { default: { concurrency: 32 } }
  retry: { max_attempts: 25, base: 100ms, max: 1s }
  lease: 3s
  retention: { completed: 1h, failed: 24h }
`, listen, extraServer, storeURL, webhookVendorSecret, receiverURL, webhookForwardSecret, extraWebhooks)
	p := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// webhookStart starts backlot serve on cfgPath listening on listen.
func webhookStart(t *testing.T, dir, cfgPath, listen string, env ...string) *testutil.Proc {
	t.Helper()
	return testutil.StartBacklot(t, testutil.BacklotCmd{
		Bin: testutil.BuildBacklot(t), Dir: dir, URL: "http://" + listen, Env: env,
		Args: []string{"serve", "--config", cfgPath},
	})
}

// webhookListen picks a loopback address for a backlot process.
func webhookListen(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
}

// webhookClient is a keep-alive client sized for concurrent load.
func webhookClient(conns int) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
	}}
}

// webhookClientFrom is webhookClient with connections made from the
// loopback address local (e.g. 127.0.0.2), to act as another sender.
func webhookClientFrom(conns int, local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext:  d.DialContext,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
	}}
}

func webhookContains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
