package authn_test

// Interop with the real client libraries a user's counterpart runs: JWTs
// from jose (through the bench issuer, a stand-in marketplace token
// service) and Stripe App signatures from the stripe package. Needs Node;
// skipped without it unless CI=true.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/authn"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/testutil"
)

func nodeOutput(t *testing.T, node, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(node, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node %v: %v\n%s", args, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startIssuer runs /work/shared/bench/issuer/issuer.mjs (../shared/bench/issuer
// from the repository root) on a free port.
func startIssuer(t *testing.T) string {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(filepath.Join(root, "..", "shared", "bench", "issuer"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "issuer.mjs")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bench issuer not found at %s", dir)
		}
		t.Skipf("bench issuer not found at %s", dir)
	}
	node := testutil.Node(t, dir)
	port := freePort(t)
	iss := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "issuer.mjs", "serve", fmt.Sprint(port))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ISSUER="+iss, "AUDIENCE=backlot")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				close(ready)
				io.Copy(io.Discard, stdout)
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("issuer did not start within 20 s")
	}
	return iss
}

func httpText(t *testing.T, method, url string) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return string(b)
}

func TestInteropJoseIssuer(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	clock := testutil.NewClock(time.Now())
	f := newAuthFixture(t, map[string]config.Authenticator{"extension": {Type: config.AuthJWKS,
		JWKSURL: iss + "/.well-known/jwks.json", Issuer: iss, Audience: "backlot", Algorithms: []string{"RS256", "ES256"},
		Claims: config.ClaimsMap{Subject: "sub", Tenant: "tenant", Email: "name", Scopes: "scope"}}}, clock)
	srv := f.serve(t, []string{"extension"}, auth.Rule{})
	check := func(tok, wantSub string) {
		t.Helper()
		res := doReq(t, "GET", srv.URL+"/auth/whoami", bearerHdr(tok), "")
		if res.status != 200 || !strings.Contains(string(res.body), `"subject":"`+wantSub+`"`) ||
			!strings.Contains(string(res.body), `"tenant":"PARTNER_ID"`) || !strings.Contains(string(res.body), `"email":"user@example.com"`) {
			t.Fatalf("jose token refused: %d %s", res.status, res.body)
		}
	}
	check(httpText(t, "GET", iss+"/token?sub=u-rs&alg=RS256"), "u-rs")
	check(httpText(t, "GET", iss+"/token?sub=u-es&alg=ES256"), "u-es")
	a, _ := f.set.Get("extension")
	j := a.(*authn.JWKS)
	if j.Fetches() != 1 {
		t.Fatalf("fetches %d, want 1", j.Fetches())
	}
	// A token for another audience is refused.
	res := doReq(t, "GET", srv.URL+"/auth/whoami", bearerHdr(httpText(t, "GET", iss+"/token?aud=someone-else")), "")
	if res.status != 401 || res.env.ErrorDescription != "wrong audience" {
		t.Fatalf("other audience: %d %s", res.status, res.body)
	}
	// Rotation: the new kid is unknown, so the set is refetched (once the
	// 10 s minimum has passed on our clock) and the token accepted.
	httpText(t, "POST", iss+"/rotate?alg=RS256")
	rotated := httpText(t, "GET", iss+"/token?sub=u-rot&alg=RS256")
	clock.Advance(authn.JWKSMinRefetch)
	check(rotated, "u-rot")
	if j.Fetches() != 2 {
		t.Fatalf("fetches %d after rotation, want 2", j.Fetches())
	}
	httpText(t, "POST", iss+"/rotate?alg=ES256")
	clock.Advance(authn.JWKSMinRefetch)
	check(httpText(t, "GET", iss+"/token?sub=u-es2&alg=ES256"), "u-es2")
}

func TestInteropJoseHS256(t *testing.T) {
	t.Parallel()
	dir, _ := filepath.Abs("testdata")
	node := testutil.Node(t, dir)
	tok := nodeOutput(t, node, dir, "jose_hs256.mjs", testHSSecret, "backlot", "backlot", "u-jose", "300")
	a, err := authn.NewHS256("users", hsCfg(), authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Verify(tok)
	if err != nil {
		t.Fatalf("jose HS256 token: %v", err)
	}
	if p.Subject != "u-jose" || p.Tenant != "T1" || !p.HasScope("orders:write") || p.Email != "u@example.com" {
		t.Fatalf("principal %+v", p)
	}
	bad := nodeOutput(t, node, dir, "jose_hs256.mjs", testHSSecret+"-wrong", "backlot", "backlot", "u-jose", "300")
	if _, err := a.Verify(bad); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestInteropStripeNode(t *testing.T) {
	t.Parallel()
	dir, _ := filepath.Abs("testdata")
	node := testutil.Node(t, dir)
	// The published vector, produced by the stripe package itself.
	if h := nodeOutput(t, node, dir, "stripe_sig.mjs", stripeTestSecret, "1700000000", stripeTestUser, stripeTestAcct); h != "t=1700000000,v1=95d377f7216b002bc8462ad7ad1c21ae33f54bfd7f12f1fe86f43cfd56123df3" {
		t.Fatalf("stripe header %q", h)
	}
	clock := testutil.NewClock(time.Now())
	f := newAuthFixture(t, map[string]config.Authenticator{"stripe": {Type: config.AuthStripeApp, Secrets: []string{"absec_new", stripeTestSecret}}}, clock)
	srv := f.serve(t, []string{"stripe"}, auth.Rule{})
	ts := fmt.Sprint(clock.Now().Unix())
	h := nodeOutput(t, node, dir, "stripe_sig.mjs", stripeTestSecret, ts, "usr_Interop1", "acct_Interop2")
	res := doReq(t, "GET", srv.URL+"/api/x", map[string]string{"Stripe-Signature": h, "Stripe-User-Id": "usr_Interop1", "Stripe-Account-Id": "acct_Interop2"}, "")
	if res.status != 200 || !strings.Contains(string(res.body), `"subject":"usr_Interop1"`) {
		t.Fatalf("stripe-node signature (headers): %d %s", res.status, res.body)
	}
	res = doReq(t, "POST", srv.URL+"/api/x", map[string]string{"Stripe-Signature": h, "Content-Type": "application/json"},
		`{"account_id":"acct_Interop2","user_id":"usr_Interop1","note":"body order does not matter"}`)
	if res.status != 200 || !strings.Contains(string(res.body), `"tenant":"acct_Interop2"`) {
		t.Fatalf("stripe-node signature (body): %d %s", res.status, res.body)
	}
	res = doReq(t, "GET", srv.URL+"/api/x", map[string]string{"Stripe-Signature": h, "Stripe-User-Id": "usr_Interop1", "Stripe-Account-Id": "acct_Other"}, "")
	if res.status != 401 || res.env.ErrorDescription != "bad signature" {
		t.Fatalf("tampered account: %d %s", res.status, res.body)
	}
}
