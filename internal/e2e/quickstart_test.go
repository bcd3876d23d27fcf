package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/webhook"
)

// TestQuickstartWalkthrough follows examples/quickstart/README.md with the
// built binary: config check, serve (which warns that demo.event has no
// worker), a token from `token mint` accepted by /auth/whoami, a signed
// webhook stored as a job that `jobs list` shows waiting.
func TestQuickstartWalkthrough(t *testing.T) {
	t.Parallel()
	// JWT_SECRET empty: the file's development fallback is used, as on a
	// newcomer's machine, whatever the test environment holds.
	env := []string{"JWT_SECRET="}
	cfg := quickstartPath(t)

	code, out, errOut := runBacklot(t, t.TempDir(), env, "config", "check", "--config", cfg)
	if code != 0 || !strings.HasPrefix(out, "ok: ") || errOut != "" {
		t.Fatalf("config check: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	p, dir := startQuickstart(t, env...)

	code, out, errOut = runBacklot(t, dir, env, "token", "mint", "--config", cfg, "--sub", "alice", "--scope", "demo:read")
	token := strings.TrimSpace(out)
	if code != 0 || strings.Count(token, ".") != 2 {
		t.Fatalf("token mint: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	whoami := func(bearer string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+"/auth/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	st, body := whoami(token)
	var principal struct {
		Authenticator string   `json:"authenticator"`
		Subject       string   `json:"subject"`
		Scopes        []string `json:"scopes"`
	}
	if st != 200 || json.Unmarshal([]byte(body), &principal) != nil ||
		principal.Authenticator != "users" || principal.Subject != "alice" || strings.Join(principal.Scopes, " ") != "demo:read" {
		t.Fatalf("whoami with the minted token: %d %s", st, body)
	}
	// Change one character of the signature (not the last: its low bits
	// may not count in base64url).
	sig := strings.LastIndexByte(token, '.') + 1
	flip := byte('A')
	if token[sig] == 'A' {
		flip = 'B'
	}
	tampered := token[:sig] + string(flip) + token[sig+1:]
	if st, body := whoami(tampered); st != 401 || !strings.Contains(body, `"error":"invalid_token"`) {
		t.Fatalf("whoami with a tampered token: %d %s", st, body)
	}
	if st, body := whoami("demo-key-change-me"); st != 200 || !strings.Contains(body, `"authenticator":"demo"`) {
		t.Fatalf("whoami with the demo API key: %d %s", st, body)
	}

	// A signed webhook becomes a demo.event job, which waits: serve said so.
	signer, err := webhook.NewStandardSigner(quickstartSecret)
	if err != nil {
		t.Fatal(err)
	}
	payload := `{"type":"demo.hello","n":1}`
	ts := time.Now().Unix()
	req, _ := http.NewRequest("POST", p.URL+"/webhooks/demo", strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "msg_walkthrough_1")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", signer.Sign("msg_walkthrough_1", ts, []byte(payload)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("signed webhook: %d", resp.StatusCode)
	}
	code, out, errOut = runBacklot(t, dir, env, "jobs", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "demo.event") || !strings.Contains(out, "available") {
		t.Fatalf("jobs list: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	logs := p.SettledStderr(t)
	if !strings.Contains(logs, `"level":"WARN","msg":"no worker for job kind: its jobs will wait","kind":"demo.event"`) {
		t.Errorf("serve did not warn that demo.event has no worker:\n%s", logs)
	}
}
