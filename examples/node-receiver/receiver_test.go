package nodereceiver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/internal/webhook"
)

// The vendor's signing secret (what the test "vendor" signs with) and the
// forward secret shared by backlot and the receiver.
const (
	vendorSecret  = "whsec_bm9kZS1yZWNlaXZlci12ZW5kb3Itc2VjcmV0"
	forwardSecret = "whsec_bm9kZS1yZWNlaXZlci1mb3J3YXJkLXNlY3JldA=="
	otherSecret   = "whsec_bm90LXRoZS1mb3J3YXJkLXNlY3JldC1hdC1hbGw="
)

// TestReceiverBehindBacklot runs examples/webhook-queue/backlot.yaml with
// the Node receiver as its WORKER_URL. Between them sits a loopback proxy
// that loses the receiver's answer to some deliveries (backlot retries
// them) and holds others until backlot is killed with SIGKILL (backlot
// forwards them again after the restart): each of those reaches the
// receiver twice or more, and the receiver's log must still show every
// delivery processed exactly once. The receiver is then restarted and the
// same delivery sent again; and forged, tampered, stale and replayed
// requests sent straight to it must be refused without being processed.
func TestReceiverBehindBacklot(t *testing.T) {
	t.Parallel()
	node := testutil.Node(t, ".")
	bin := testutil.BuildBacklot(t)
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "examples", "webhook-queue", "backlot.yaml")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "receiver-data")
	logPath := filepath.Join(dataDir, "processed.log")

	rcv := startReceiver(t, node, dir, dataDir, testutil.FreePort(t))
	px := newFlakyProxy(t, rcv.url+"/jobs/vendor")
	for i := range 5 {
		px.setMode(deliveryID(i), modeHold)   // answered by the receiver, then backlot dies
		px.setMode(deliveryID(5+i), modeLose) // answered by the receiver, answer lost: 502
	}

	listen := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	env := []string{
		"BACKLOT_SERVER_LISTEN=" + listen,
		"BACKLOT_STORE_URL=sqlite://" + filepath.Join(dir, "queue.db"),
		"WORKER_URL=" + px.srv.URL + "/jobs/vendor",
		"VENDOR_WHSEC=" + vendorSecret,
		"FORWARD_WHSEC=" + forwardSecret,
		// Shorter than the recipe's, so a crashed job comes back in
		// seconds: the recipe's 10 s lease and 1 s retry base work the
		// same way, slower.
		"BACKLOT_JOBS_LEASE=2s",
		"BACKLOT_JOBS_RETRY_BASE=100ms",
		"BACKLOT_JOBS_RETRY_MAX=1s",
	}
	start := func() *testutil.Proc {
		return testutil.StartBacklot(t, testutil.BacklotCmd{Bin: bin, Dir: dir, URL: "http://" + listen,
			Env: env, Args: []string{"serve", "--config", cfg}})
	}
	p := start()
	hook := p.URL + "/webhooks/vendor"
	client := &http.Client{Timeout: 15 * time.Second}

	// Phase 1: 30 deliveries, then SIGKILL while five answers are held.
	jobOf := map[string]string{}
	for i := range 30 {
		jobOf[deliveryID(i)] = sendVendor(t, client, hook, deliveryID(i), http.StatusAccepted)
	}
	waitUntil(t, 30*time.Second, "five held deliveries processed by the receiver", func() bool { return px.heldCount() == 5 })
	p.Kill()
	beforeKill := readLog(t, logPath)
	t.Logf("backlot killed with %d deliveries processed", len(beforeKill.processed))

	// Phase 2: backlot restarts on the same store; the vendor retries ten
	// deliveries it already sent (backlot's dedupe answers them) and sends
	// ten new ones.
	p = start()
	hook = p.URL + "/webhooks/vendor"
	for i := range 10 {
		if job := sendVendor(t, client, hook, deliveryID(i), http.StatusOK); job != jobOf[deliveryID(i)] {
			t.Fatalf("vendor retry of %s after the restart: job %s, first job %s", deliveryID(i), job, jobOf[deliveryID(i)])
		}
	}
	for i := 30; i < 40; i++ {
		jobOf[deliveryID(i)] = sendVendor(t, client, hook, deliveryID(i), http.StatusAccepted)
	}
	var lg receiverLog
	waitUntil(t, 60*time.Second, "all 40 processed and the 10 held or lost ones answered as duplicates", func() bool {
		lg = readLog(t, logPath)
		if len(lg.processed) < 40 {
			return false
		}
		for i := range 10 {
			if lg.duplicates[deliveryID(i)] == 0 {
				return false
			}
		}
		return true
	})
	for i := range 40 {
		id := deliveryID(i)
		if n := lg.processed[id]; n != 1 {
			t.Errorf("%s processed %d times, want once", id, n)
		}
		if got := lg.jobOf[id]; got != jobOf[id] {
			t.Errorf("%s processed as job %q, backlot acknowledged job %q", id, got, jobOf[id])
		}
	}
	if len(lg.processed) != 40 {
		t.Errorf("%d distinct deliveries processed, want 40: %v", len(lg.processed), lg.processed)
	}
	dups := 0
	for _, n := range lg.duplicates {
		dups += n
	}
	t.Logf("40 deliveries processed once each; %d forwards answered as duplicates (%d proxy attempts in all)", dups, px.totalAttempts())

	// Phase 3: the receiver restarts; its store remembers. The same
	// delivery, as a later backlot job would bring it (a new job id, a
	// fresh signature), is a duplicate; a new one goes through backlot.
	rcv.stop(t)
	rcv = startReceiver(t, node, dir, dataDir, rcv.port)
	again := vendorBody(deliveryID(3))
	code, resp := post(t, rcv.url+"/jobs/vendor", signedHeader(t, forwardSecret, "900001", time.Now().Unix(), deliveryID(3), again), again)
	if code != http.StatusOK || !strings.Contains(resp, `"duplicate"`) {
		t.Fatalf("delivery %s again after the receiver restarted: %d %s", deliveryID(3), code, resp)
	}
	jobOf[deliveryID(40)] = sendVendor(t, client, hook, deliveryID(40), http.StatusAccepted)
	waitUntil(t, 30*time.Second, "a delivery after the receiver restarted", func() bool {
		return readLog(t, logPath).processed[deliveryID(40)] == 1
	})

	// Phase 4: requests straight to the receiver that must not be
	// processed. captured is a real request backlot sent.
	captured := px.capture(deliveryID(20))
	if captured == nil {
		t.Fatal("no request captured for " + deliveryID(20))
	}
	now := time.Now().Unix()
	capHeader := func(edit func(h http.Header)) http.Header {
		h := captured.header.Clone()
		if edit != nil {
			edit(h)
		}
		return h
	}
	refusals := []struct {
		name     string
		header   http.Header
		body     []byte
		wantCode int
		want     string // in the answer
		delivery string // must not be processed
	}{
		{"signed with another secret", signedHeader(t, otherSecret, "910001", now, "forged-1", vendorBody("forged-1")),
			vendorBody("forged-1"), http.StatusUnauthorized, "invalid_signature", "forged-1"},
		{"captured delivery with its body changed", capHeader(func(h http.Header) { h.Set(webhook.DeliveryIDHeader, "tampered-1") }),
			vendorBody("tampered-1"), http.StatusUnauthorized, "invalid_signature", "tampered-1"},
		{"captured signature under another webhook-id", capHeader(func(h http.Header) {
			h.Set("webhook-id", "910002")
			h.Set(webhook.DeliveryIDHeader, "moved-1")
		}), captured.body, http.StatusUnauthorized, "invalid_signature", "moved-1"},
		{"captured signature with a later timestamp", capHeader(func(h http.Header) {
			h.Set("webhook-timestamp", strconv.FormatInt(now+1, 10))
			h.Set(webhook.DeliveryIDHeader, "retimed-1")
		}), captured.body, http.StatusUnauthorized, "invalid_signature", "retimed-1"},
		{"no signature headers", http.Header{webhook.DeliveryIDHeader: {"unsigned-1"}, "Content-Type": {"application/json"}},
			vendorBody("unsigned-1"), http.StatusBadRequest, "missing_signature", "unsigned-1"},
		{"a signed request sent again after the 5 minutes", signedHeader(t, forwardSecret, "910003", now-6*60, "stale-1", vendorBody("stale-1")),
			vendorBody("stale-1"), http.StatusUnauthorized, "stale_signature", "stale-1"},
		{"a timestamp 6 minutes ahead", signedHeader(t, forwardSecret, "910004", now+6*60, "future-1", vendorBody("future-1")),
			vendorBody("future-1"), http.StatusUnauthorized, "stale_signature", "future-1"},
		{"a timestamp that is not a number", capHeader(func(h http.Header) {
			h.Set("webhook-timestamp", "soon")
			h.Set(webhook.DeliveryIDHeader, "nan-1")
		}), captured.body, http.StatusUnauthorized, "invalid_signature", "nan-1"},
		{"correctly signed, not JSON", signedHeader(t, forwardSecret, "910005", now, "notjson-1", []byte("not json")),
			[]byte("not json"), http.StatusBadRequest, "invalid_body", "notjson-1"},
		// Within the 5 minutes a copy verifies; it is answered as a
		// duplicate, whatever the unsigned Backlot-Delivery-Id says.
		{"captured request replayed as is", capHeader(nil), captured.body, http.StatusOK, `"duplicate"`, ""},
		{"captured request replayed under a new Backlot-Delivery-Id", capHeader(func(h http.Header) { h.Set(webhook.DeliveryIDHeader, "replayed-1") }),
			captured.body, http.StatusOK, `"duplicate"`, "replayed-1"},
	}
	before := readLog(t, logPath)
	for _, c := range refusals {
		code, resp := post(t, rcv.url+"/jobs/vendor", c.header, c.body)
		if code != c.wantCode || !strings.Contains(resp, c.want) {
			t.Errorf("%s: %d %s, want %d with %s", c.name, code, resp, c.wantCode, c.want)
		}
	}
	after := readLog(t, logPath)
	if len(after.processed) != len(before.processed) || len(after.processed) != 41 {
		t.Errorf("processed deliveries went from %d to %d, want 41 throughout", len(before.processed), len(after.processed))
	}
	for _, c := range refusals {
		if c.delivery != "" && after.processed[c.delivery] != 0 {
			t.Errorf("%s: delivery %s was processed", c.name, c.delivery)
		}
	}
	for id, n := range after.processed {
		if n != 1 {
			t.Errorf("%s processed %d times", id, n)
		}
	}
}

func deliveryID(i int) string { return fmt.Sprintf("msg_%02d", i) }

func vendorBody(id string) []byte {
	return []byte(`{"type":"invoice.paid","id":"` + id + `","amount":1200}`)
}

// sendVendor posts a delivery signed like the vendor would and returns the
// job id backlot acknowledged it with.
func sendVendor(t *testing.T, client *http.Client, hook, id string, wantCode int) string {
	t.Helper()
	body := vendorBody(id)
	req, err := http.NewRequest(http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = signedHeader(t, vendorSecret, id, time.Now().Unix(), "", body)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("deliver %s: %v", id, err)
	}
	defer resp.Body.Close()
	var ack struct {
		JobID string `json:"job_id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode || json.Unmarshal(raw, &ack) != nil || ack.JobID == "" {
		t.Fatalf("deliver %s: %d %s, want %d with a job_id", id, resp.StatusCode, raw, wantCode)
	}
	return ack.JobID
}

// signedHeader is the headers of a JSON request signed the Standard
// Webhooks way with secret (webhook-id msgID, timestamp ts), with a
// Backlot-Delivery-Id when delivery is set: a vendor's delivery to
// backlot, or backlot's forward to the receiver.
func signedHeader(t *testing.T, secret, msgID string, ts int64, delivery string, body []byte) http.Header {
	t.Helper()
	s, err := webhook.NewStandardSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", s.Sign(msgID, ts, body))
	if delivery != "" {
		h.Set(webhook.DeliveryIDHeader, delivery)
	}
	return h
}

func post(t *testing.T, url string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// receiverLog is processed.log, counted: each line is one answer of the
// receiver, {"status": "processed"|"duplicate", "delivery_id", "job_id"}.
type receiverLog struct {
	processed  map[string]int    // delivery id -> times processed
	duplicates map[string]int    // delivery id -> times answered as a duplicate
	jobOf      map[string]string // delivery id -> job id it was processed as
}

func readLog(t *testing.T, path string) receiverLog {
	t.Helper()
	lg := receiverLog{processed: map[string]int{}, duplicates: map[string]int{}, jobOf: map[string]string{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return lg
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Status     string `json:"status"`
			DeliveryID string `json:"delivery_id"`
			JobID      string `json:"job_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			// The receiver may be appending this very line.
			break
		}
		switch line.Status {
		case "processed":
			lg.processed[line.DeliveryID]++
			lg.jobOf[line.DeliveryID] = line.JobID
		case "duplicate":
			lg.duplicates[line.DeliveryID]++
		default:
			t.Fatalf("processed.log: unexpected line %s", sc.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lg
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// receiver is a running `node server.js`.
type receiver struct {
	url  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	out  string
}

// startReceiver starts server.js on 127.0.0.1:port with its store in
// dataDir and waits until it answers /healthz. Cleanup kills it.
func startReceiver(t *testing.T, node, dir, dataDir string, port int) *receiver {
	t.Helper()
	r := &receiver{url: "http://127.0.0.1:" + strconv.Itoa(port), port: port, done: make(chan struct{}),
		out: filepath.Join(dir, fmt.Sprintf("receiver-%d.log", time.Now().UnixNano()))}
	out, err := os.Create(r.out)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(node, "server.js")
	r.cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "HOST=127.0.0.1",
		"DATA_DIR="+dataDir, "FORWARD_WHSEC="+forwardSecret)
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start the receiver: %v", err)
	}
	go func() {
		_ = r.cmd.Wait()
		out.Close()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
		if t.Failed() {
			b, _ := os.ReadFile(r.out)
			t.Logf("receiver output (%s):\n%s", r.out, b)
		}
	})
	c := &http.Client{Timeout: time.Second}
	waitUntil(t, 15*time.Second, "the receiver's /healthz", func() bool {
		select {
		case <-r.done:
			b, _ := os.ReadFile(r.out)
			t.Fatalf("the receiver exited:\n%s", b)
		default:
		}
		resp, err := c.Get(r.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return r
}

// stop sends SIGTERM, as a deploy would, and waits for a clean exit.
func (r *receiver) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver did not exit within 10s of SIGTERM")
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the receiver exited with %d after SIGTERM", code)
	}
}

// Proxy modes for a delivery's first forward.
const (
	modePass = iota
	modeHold // pass it on, then keep backlot waiting until it goes away
	modeLose // pass it on, then answer backlot 502 whatever the receiver said
)

// flakyProxy stands between backlot and the receiver: every request
// reaches the receiver, but the first answer to some deliveries never
// reaches backlot, the way a dropped connection or a crash loses it.
type flakyProxy struct {
	srv    *httptest.Server
	target string

	mu       sync.Mutex
	modes    map[string]int
	attempts map[string]int
	held     int
	captured map[string]*capturedRequest
}

type capturedRequest struct {
	header http.Header
	body   []byte
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	t.Helper()
	px := &flakyProxy{target: target, modes: map[string]int{}, attempts: map[string]int{},
		captured: map[string]*capturedRequest{}}
	px.srv = httptest.NewServer(http.HandlerFunc(px.serve))
	t.Cleanup(px.srv.Close)
	return px
}

func (px *flakyProxy) setMode(delivery string, mode int) {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.modes[delivery] = mode
}

func (px *flakyProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	delivery := r.Header.Get(webhook.DeliveryIDHeader)
	px.mu.Lock()
	px.attempts[delivery]++
	first := px.attempts[delivery] == 1
	mode := px.modes[delivery]
	if first {
		px.captured[delivery] = &capturedRequest{header: r.Header.Clone(), body: body}
	}
	px.mu.Unlock()

	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, px.target, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if first && mode == modeHold {
		px.mu.Lock()
		px.held++
		px.mu.Unlock()
		// backlot is killed while it waits; its connection closing ends
		// this. The bound is a safety net, not part of the test.
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
		http.Error(w, "held", http.StatusBadGateway)
		return
	}
	if first && mode == modeLose {
		http.Error(w, "answer lost", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	w.Write(answer)
}

func (px *flakyProxy) heldCount() int {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.held
}

func (px *flakyProxy) totalAttempts() int {
	px.mu.Lock()
	defer px.mu.Unlock()
	n := 0
	for _, a := range px.attempts {
		n += a
	}
	return n
}

func (px *flakyProxy) capture(delivery string) *capturedRequest {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.captured[delivery]
}
