package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/testutil"
)

// nodeSign signs with the real standardwebhooks and stripe packages
// (testdata/sign.mjs), installing them on first use.
func nodeSign(t *testing.T, req map[string]any) map[string]string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	node := testutil.Node(t, dir)
	in, _ := json.Marshal(req)
	cmd := exec.Command(node, "sign.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node sign.mjs: %v\n%s", err, stderr.String())
	}
	var res map[string]string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	return res
}

func TestInteropNodeLibraries(t *testing.T) {
	t.Parallel()
	const body = `{"id":"evt_node_1","type":"invoice.paid","data":{"amount":1200,"note":"é <ok>"}}`
	now := fixedClock().Unix()
	const stripeSecret = "whsec_stripe_interop_secret"
	res := nodeSign(t, map[string]any{
		"standard": map[string]any{"secret": vecSecret, "id": "msg_node_1", "timestamp": now, "body": body},
		"stripe":   map[string]any{"secret": stripeSecret, "timestamp": now, "body": body},
	})
	// The library's own signature must match ours byte for byte.
	s, _ := NewStandardSigner(vecSecret)
	if want := s.Sign("msg_node_1", now, []byte(body)); res["standard"] != want {
		t.Fatalf("standardwebhooks signed %q, we sign %q", res["standard"], want)
	}

	cases := []struct {
		name    string
		cfg     config.Webhook
		headers map[string]string
	}{
		{"standardwebhooks", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "standard", Secrets: []string{vecSecret}}},
			map[string]string{"webhook-id": "msg_node_1", "webhook-timestamp": strconv.FormatInt(now, 10), "webhook-signature": res["standard"]}},
		{"stripe", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "stripe", Secrets: []string{stripeSecret}}},
			map[string]string{"Stripe-Signature": res["stripe"]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := setup(t, c.cfg)
			w := b.send(t, delivery{path: "/h", body: body, headers: c.headers})
			if w.Code != http.StatusAccepted {
				t.Fatalf("status %d body %s", w.Code, w.Body)
			}
			if got := b.enq.jobs(); len(got) != 1 || got[0].Payload != body {
				t.Fatalf("jobs %+v", got)
			}
			// The same signature over a different body is refused.
			w = b.send(t, delivery{path: "/h", body: `{"id":"evt_node_2"}`, headers: c.headers})
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("tampered: status %d body %s", w.Code, w.Body)
			}
		})
	}
}
