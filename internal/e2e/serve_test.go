package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/internal/webhook"
)

// quickstartSecret is the demo secret in examples/quickstart/backlot.yaml.
const quickstartSecret = "whsec_YmFja2xvdC1kZW1vLXdlYmhvb2stc2VjcmV0LTAwMDE="

func quickstartPath(t *testing.T) string {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "examples", "quickstart", "backlot.yaml")
}

// startQuickstart runs the quickstart example on a free port in a fresh
// working directory, with extra environment.
func startQuickstart(t *testing.T, env ...string) (*testutil.Proc, string) {
	t.Helper()
	bin := testutil.BuildBacklot(t)
	dir := t.TempDir()
	url := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	env = append([]string{"BACKLOT_SERVER_LISTEN=" + strings.TrimPrefix(url, "http://")}, env...)
	p := testutil.StartBacklot(t, testutil.BacklotCmd{
		Bin: bin, Dir: dir, URL: url, Env: env,
		Args: []string{"serve", "--config", quickstartPath(t)},
	})
	return p, dir
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestQuickstartServes(t *testing.T) {
	t.Parallel()
	p, dir := startQuickstart(t)
	if code, _, body := get(t, p.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz %d %s", code, body)
	}
	if code, _, body := get(t, p.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "backlot.db")); err != nil {
		t.Fatalf("SQLite file not created in the working directory: %v", err)
	}
	code, hdr, body := get(t, p.URL+"/nope")
	if code != 404 {
		t.Fatalf("GET /nope = %d", code)
	}
	var env httpapi.Envelope
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error != "not_found" || env.ErrorCode != 404 {
		t.Fatalf("404 envelope %s (%v)", body, err)
	}
	if env.RequestID == "" || env.RequestID != hdr.Get("X-Request-Id") {
		t.Fatalf("request_id %q vs X-Request-Id %q", env.RequestID, hdr.Get("X-Request-Id"))
	}
	_, _, metrics := get(t, p.URL+"/metrics")
	for _, want := range []string{`backlot_http_requests_total{code="200",route="GET /healthz"}`, `backlot_http_requests_total{code="404",route="unmatched"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A body over server.max_body_bytes (default 1 MiB) is 413 with the envelope.
	big := strings.NewReader(`{"a":"` + strings.Repeat("x", 2<<20) + `"}`)
	resp, err := http.Post(p.URL+"/webhooks/demo", "application/json", big)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"error_code":413`) {
		t.Fatalf("oversized body: %d %s", resp.StatusCode, b)
	}
	// One JSON log line per request, with the request id.
	want := `"request_id":"` + env.RequestID + `"`
	logs := p.StderrWhen(t, func(logs string) bool { return strings.Contains(logs, want) })
	if !strings.Contains(logs, want) {
		t.Errorf("no log line for request %s", env.RequestID)
	}
}

// runBacklot runs a short-lived command and returns its exit code and stderr.
func runBacklot(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(testutil.BuildBacklot(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestConfigErrorsExit2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		args       []string
		env        []string
		wantCode   int
		want       []string
	}{
		{name: "unknown key, flow style", yaml: "server: {lisen: \":1\"}\n", args: []string{"serve"}, wantCode: 2,
			want: []string{"backlot.yaml:1", "server.lisen", "unknown key"}},
		{name: "unknown key, block style", yaml: "store:\n  url: sqlite://x.db\nserver:\n  lisen: \":1\"\n", args: []string{"config", "check"}, wantCode: 2,
			want: []string{"backlot.yaml:4", "server.lisen"}},
		{name: "unset variable", yaml: "server:\n  listen: \"127.0.0.1:0\"\nauthenticators:\n  users: { type: hs256, secret: \"${BACKLOT_TEST_UNSET_SECRET}\" }\n",
			args: []string{"serve"}, wantCode: 2, want: []string{"BACKLOT_TEST_UNSET_SECRET", "backlot.yaml:4"}},
		{name: "wrong type", yaml: "server:\n  max_body_bytes: lots\n", args: []string{"config", "check"}, wantCode: 2,
			want: []string{"backlot.yaml:2", "server.max_body_bytes"}},
		{name: "plain http on all interfaces", yaml: "server:\n  listen: \":0\"\n", args: []string{"serve"}, wantCode: 2,
			want: []string{"http_override"}},
		{name: "migrate=false on a fresh database", yaml: "server:\n  listen: \"127.0.0.1:0\"\n", args: []string{"serve", "--migrate=false"}, wantCode: 1,
			want: []string{"migrate"}},
		{name: "unknown flag", yaml: "server:\n  listen: \"127.0.0.1:0\"\n", args: []string{"serve", "--nope"}, wantCode: 2,
			want: []string{"unknown flag"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "backlot.yaml"), []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append(tc.args, "--config", "backlot.yaml")
			code, _, stderr := runBacklot(t, dir, tc.env, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestHelpEverywhere(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"migrate", "--help"}, {"config", "check", "--help"}, {"version"}} {
		code, stdout, stderr := runBacklot(t, t.TempDir(), nil, args...)
		if code != 0 || stdout == "" {
			t.Errorf("backlot %v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// TestSIGTERMFinishesInFlight sends half a webhook, SIGTERMs backlot, then
// sends the rest: the delivery must still be acknowledged (and so durably
// stored), and the process must exit 0 within 5 s.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	t.Parallel()
	p, _ := startQuickstart(t)
	signer, err := webhook.NewStandardSigner(quickstartSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"demo","data":{"n":1}}`)
	ts := time.Now().Unix()
	sig := signer.Sign("msg_inflight_1", ts, body)

	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /webhooks/demo HTTP/1.1\r\nHost: backlot\r\nContent-Type: application/json\r\n" +
		"webhook-id: msg_inflight_1\r\nwebhook-timestamp: " + strconv.FormatInt(ts, 10) + "\r\nwebhook-signature: " + sig + "\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+string(body[:10])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server is now inside the handler, reading the body
	sent := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := conn.Write(body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request lost: %v", err)
	}
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(rb), "job_id") {
		t.Fatalf("in-flight webhook: %d %s", resp.StatusCode, rb)
	}
	done := make(chan int, 1)
	go func() { done <- p.Wait() }()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after SIGTERM", code)
		}
		t.Logf("exited 0, %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after SIGTERM")
	}
}

// TestPostgresReadyz runs backlot on PostgreSQL through BACKLOT_STORE_URL,
// stops the database (readyz turns 503 with a reason) and starts it again
// (readyz 200 again) without restarting backlot.
func TestPostgresReadyz(t *testing.T) {
	t.Parallel()
	pg := testutil.NewPostgresServer(t, testutil.PGOptions{})
	p, dir := startQuickstart(t, "BACKLOT_STORE_URL="+pg.URL())
	if code, _, body := get(t, p.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz on postgres: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "backlot.db")); err == nil {
		t.Fatal("created an SQLite file although store.url was overridden")
	}
	waitStatus := func(want int) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, _, body := get(t, p.URL+"/readyz")
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz stayed %d (want %d): %s", code, want, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	body := waitStatus(503)
	if !strings.Contains(body, "not_ready") || !strings.Contains(body, "store unreachable") {
		t.Fatalf("503 without the reason: %s", body)
	}
	if code, _, _ := get(t, p.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz %d while the database is down (the process is alive)", code)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(200)
}
