package extensionapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/issuer"
	"github.com/backlothq/backlot/internal/testutil"
)

// recipe is one run of the recipe: the issuer simulator and backlot
// serving this directory's backlot.yaml, unchanged but for the address,
// store and issuer URL, which come from the environment.
type recipe struct {
	iss       *issuer.Issuer
	issuerURL string
	fetches   *fetchLog
	proc      *testutil.Proc
	base      string // backlot's URL
}

// fetchLog records when backlot fetched the JWKS.
type fetchLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *fetchLog) add(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.times = append(l.times, t)
}

// count and last report the fetches so far.
func (l *fetchLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.times)
}

func (l *fetchLog) last() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.times) == 0 {
		return time.Time{}
	}
	return l.times[len(l.times)-1]
}

// startIssuer serves a fresh issuer simulator on loopback, logging JWKS
// fetches. Its iss claim is its own URL, as backlot.yaml expects of
// ISSUER_URL.
func startIssuer(t *testing.T) (*issuer.Issuer, string, *fetchLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	iss, err := issuer.New(issuer.Options{Issuer: url})
	if err != nil {
		t.Fatal(err)
	}
	log := &fetchLog{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/jwks.json" {
			log.add(time.Now())
		}
		iss.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return iss, url, log
}

// startRecipe starts the issuer and backlot. before runs against the
// issuer before backlot starts (and fetches its keys); env is added to
// backlot's environment.
func startRecipe(t *testing.T, before func(*issuer.Issuer), env ...string) *recipe {
	t.Helper()
	iss, issURL, fetches := startIssuer(t)
	if before != nil {
		before(iss)
	}
	cfg, err := filepath.Abs("backlot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	proc := testutil.StartBacklot(t, testutil.BacklotCmd{
		Bin:  testutil.BuildBacklot(t),
		Dir:  dir,
		Args: []string{"serve", "--config", cfg, "--log-level", "debug"},
		Env: append([]string{
			"ISSUER_URL=" + issURL,
			"BACKLOT_SERVER_LISTEN=" + fmt.Sprintf("127.0.0.1:%d", port),
			"BACKLOT_SERVER_PUBLIC_URL=" + base,
			"BACKLOT_STORE_URL=sqlite://" + filepath.Join(dir, "extension-api.db"),
		}, env...),
		URL: base,
	})
	return &recipe{iss: iss, issuerURL: issURL, fetches: fetches, proc: proc, base: base}
}

// mint signs a token with the issuer's current key, failing the test on
// error.
func (rc *recipe) mint(t *testing.T, c issuer.Claims) string {
	t.Helper()
	tok, err := rc.iss.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is what a test reads of one answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends method path with the given headers (a "" value sends nothing).
func (rc *recipe) do(t *testing.T, method, path string, headers map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, rc.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// whoami calls GET /auth/whoami with token (none when empty) from origin
// (none when empty).
func (rc *recipe) whoami(t *testing.T, token, origin string) response {
	t.Helper()
	h := map[string]string{"Origin": origin}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return rc.do(t, http.MethodGet, "/auth/whoami", h)
}

// CSP is the Content-Security-Policy backlot.yaml sets.
const CSP = "default-src 'none'; frame-ancestors 'none'"

// checkSecurityHeaders asserts the headers every response must carry.
func checkSecurityHeaders(t *testing.T, what string, r response) {
	t.Helper()
	if got := r.header.Get("Content-Security-Policy"); got != CSP {
		t.Errorf("%s: Content-Security-Policy = %q, want %q", what, got, CSP)
	}
	if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", what, got)
	}
	if !slices.ContainsFunc(r.header.Values("Vary"), func(v string) bool { return strings.Contains(v, "Origin") }) {
		t.Errorf("%s: Vary = %q, want it to name Origin", what, r.header.Values("Vary"))
	}
}

// principal is the JSON of GET /auth/whoami.
type principal struct {
	Authenticator string         `json:"authenticator"`
	Subject       string         `json:"subject"`
	Tenant        string         `json:"tenant"`
	Email         string         `json:"email"`
	Scopes        []string       `json:"scopes"`
	Claims        map[string]any `json:"claims"`
}

// envelope is backlot's error body.
type envelope struct {
	ErrorCode        int    `json:"error_code"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorMessage     string `json:"error_message"`
	RequestID        string `json:"request_id"`
}

// decodeStrict decodes body into v, refusing unknown fields, so the test
// notices a key that should not be there.
func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// checkEnvelope asserts r is the error envelope with status and code, and
// that its description contains desc.
func checkEnvelope(t *testing.T, r response, status int, code, desc string) envelope {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var e envelope
	decodeStrict(t, r.body, &e)
	if e.ErrorCode != status || e.Error != code || !strings.Contains(e.ErrorDescription, desc) || e.ErrorMessage == "" {
		t.Errorf("envelope %+v, want error_code %d, error %q, a description containing %q and a message", e, status, code, desc)
	}
	if e.RequestID == "" || e.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("request_id %q, X-Request-Id %q: want the same, non-empty", e.RequestID, r.header.Get("X-Request-Id"))
	}
	return e
}
