package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestWebhookQueueExample runs examples/webhook-queue/backlot.yaml as
// shipped (only the listen address, store, worker URL and secrets come from
// the environment): a signed webhook is acknowledged with 202, forwarded
// to the app, and `backlot jobs show` reports the job completed.
func TestWebhookQueueExample(t *testing.T) {
	t.Parallel()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "examples", "webhook-queue", "backlot.yaml")
	rc := newWebhookReceiver(t)
	dir := t.TempDir()
	listen := webhookListen(t)
	env := []string{
		"BACKLOT_SERVER_LISTEN=" + listen,
		"BACKLOT_STORE_URL=sqlite://" + filepath.Join(dir, "queue.db"),
		"WORKER_URL=" + rc.URL(),
		"VENDOR_WHSEC=" + webhookVendorSecret,
		"FORWARD_WHSEC=" + webhookForwardSecret,
	}
	p := webhookStart(t, dir, cfg, listen, env...)
	client := webhookClient(2)
	hookURL := p.URL + "/webhooks/vendor"

	body := []byte(`{"type":"invoice.paid","data":{"amount":1200}}`)
	h := webhookSign(t, webhookVendorSecret, "msg_example_1", body)
	code, resp, err := webhookPost(client, hookURL, h, body)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d %s %v", code, resp, err)
	}
	var ack struct {
		JobID     string `json:"job_id"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal([]byte(resp), &ack); err != nil || ack.JobID == "" || ack.Duplicate {
		t.Fatalf("ack %s (%v)", resp, err)
	}

	// The vendor retries the same delivery: same job, nothing new.
	code, resp, err = webhookPost(client, hookURL, h, body)
	if err != nil || code != http.StatusOK || !webhookContains(resp, `"job_id":"`+ack.JobID+`"`, `"duplicate":true`) {
		t.Fatalf("replay: %d %s %v", code, resp, err)
	}
	// Tampered: refused, nothing stored.
	code, resp, err = webhookPost(client, hookURL, h, []byte(`{"type":"invoice.paid","data":{"amount":9999}}`))
	if err != nil || code != http.StatusUnauthorized || !strings.Contains(resp, `"error":"invalid_signature"`) {
		t.Fatalf("tampered: %d %s %v", code, resp, err)
	}

	t0 := time.Now()
	rc.waitFor(t, []string{"msg_example_1"}, 15*time.Second)
	t.Logf("forwarded %s after the ack", time.Since(t0))
	got := rc.get("msg_example_1")
	if len(got) != 1 || !got[0].Verified || got[0].Body != string(body) || got[0].JobID != ack.JobID {
		t.Fatalf("forwarded %+v", got)
	}

	// The job log and state through the CLI, against the same store.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, stderr := runBacklot(t, dir, env, "jobs", "show", ack.JobID, "--config", cfg)
		if code == 0 && strings.Contains(out, "completed") {
			if !strings.Contains(out, "vendor.event") || !strings.Contains(out, "forwarded to") {
				t.Fatalf("jobs show lacks the kind or the forward log line:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs show %s: exit %d\nstdout:\n%s\nstderr:\n%s", ack.JobID, code, out, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, out, stderr := runBacklot(t, dir, env, "jobs", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, ack.JobID) {
		t.Fatalf("jobs list: exit %d\n%s\n%s", code, out, stderr)
	}
}

// TestWebhookCallbacksE2E drives the real binary with seed 000's callback
// (form-encoded, unsigned, from an allowlisted address) and the bad-input
// cases that depend on the listener: source addresses behind and not
// behind a trusted proxy.
func TestWebhookCallbacksE2E(t *testing.T) {
	t.Parallel()
	const idvEndpoint = `  - path: /callbacks/idv
    verify: { scheme: none }
    allow_ips: ["203.0.113.10"]
    dedupe: json:jumioIdScanReference
    job: idv.callback
    forward: { url: %q, secret: %q }
`
	cases := []struct {
		name     string
		trusted  bool // server.trusted_proxies: [127.0.0.1]
		xff      string
		wantCode int
	}{
		{"spoofed X-Forwarded-For from an untrusted peer", false, "203.0.113.10", http.StatusForbidden},
		{"no X-Forwarded-For, loopback peer not allowed", false, "", http.StatusForbidden},
		{"X-Forwarded-For from a trusted proxy", true, "203.0.113.10", http.StatusAccepted},
		{"trusted proxy forwarding an outsider", true, "198.51.100.1", http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rc := newWebhookReceiver(t)
			dir := t.TempDir()
			listen := webhookListen(t)
			server := ""
			if c.trusted {
				server = "  trusted_proxies: [\"127.0.0.1\"]\n"
			}
			extra := strings.Replace(strings.Replace(idvEndpoint, "%q", `"`+rc.URL()+`"`, 1), "%q", `"`+webhookForwardSecret+`"`, 1)
			cfg := webhookConfig(t, dir, listen, "sqlite://"+filepath.Join(dir, "b.db"), rc.URL(), server, extra)
			p := webhookStart(t, dir, cfg, listen)
			form := url.Values{"jumioIdScanReference": {"scan-7"}, "verificationStatus": {"APPROVED_VERIFIED"},
				"customerId": {"sealed.ref-abc"}, "idType": {"PASSPORT"}}
			h := http.Header{}
			h.Set("Content-Type", "application/x-www-form-urlencoded")
			if c.xff != "" {
				h.Set("X-Forwarded-For", c.xff)
			}
			code, resp, err := webhookPost(webhookClient(1), p.URL+"/callbacks/idv", h, []byte(form.Encode()))
			if err != nil || code != c.wantCode {
				t.Fatalf("status %d (want %d) %s %v", code, c.wantCode, resp, err)
			}
			if code != http.StatusAccepted {
				var env struct {
					ErrorCode int    `json:"error_code"`
					Error     string `json:"error"`
					RequestID string `json:"request_id"`
				}
				if json.Unmarshal([]byte(resp), &env) != nil || env.Error != "forbidden_source" || env.RequestID == "" {
					t.Fatalf("envelope %s", resp)
				}
				time.Sleep(300 * time.Millisecond)
				if got := rc.get("scan-7"); len(got) != 0 {
					t.Fatalf("refused callback was processed: %+v", got)
				}
				return
			}
			rc.waitFor(t, []string{"scan-7"}, 15*time.Second)
			got := rc.get("scan-7")
			want := `{"customerId":"sealed.ref-abc","idType":"PASSPORT","jumioIdScanReference":"scan-7","verificationStatus":"APPROVED_VERIFIED"}`
			if len(got) != 1 || got[0].Body != want || !got[0].Verified {
				t.Fatalf("forwarded %+v, want body %s", got, want)
			}
		})
	}
}

// TestWebhookForwardBodyUnchanged: SPEC 5.5 says a forwarded job's payload
// is the delivery's body as received, byte for byte (key order, spacing,
// duplicate-looking numbers), on either store.
func TestWebhookForwardBodyUnchanged(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			storeURL := "sqlite://" + filepath.Join(dir, "b.db")
			if backend == "postgres" {
				storeURL = testutil.Postgres(t)
			}
			rc := newWebhookReceiver(t)
			listen := webhookListen(t)
			cfg := webhookConfig(t, dir, listen, storeURL, rc.URL(), "", "")
			p := webhookStart(t, dir, cfg, listen)
			body := []byte("{\"z\": 1, \"a\":[1.0, 2e3],  \"amount\": 12.50, \"note\": \"caf\\u00e9 <b>\"}\n")
			code, resp, err := webhookPost(webhookClient(1), p.URL+"/webhooks/vendor", webhookSign(t, webhookVendorSecret, "msg_exact", body), body)
			if err != nil || code != http.StatusAccepted {
				t.Fatalf("%d %s %v", code, resp, err)
			}
			rc.waitFor(t, []string{"msg_exact"}, 15*time.Second)
			if got := rc.get("msg_exact"); got[0].Body != string(body) {
				t.Fatalf("forwarded body changed:\n got %q\nwant %q", got[0].Body, body)
			}
		})
	}
}
