package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestListen checks the simulator only ever listens on loopback.
func TestListen(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
		{"192.0.2.1:0", false},
		{"example.com:8099", false},
		{"127.0.0.1", false},
	}
	for _, c := range cases {
		ln, err := listen(c.addr)
		if ln != nil {
			ln.Close()
		}
		if (err == nil) != c.ok {
			t.Errorf("listen(%q) error %v, want ok=%v", c.addr, err, c.ok)
		}
	}
}

// TestRun serves the issuer and checks a token names the listener as its
// issuer (what backlot.yaml's ISSUER_URL expects), the JWKS is there, and
// cancelling stops it cleanly.
func TestRun(t *testing.T) {
	t.Parallel()
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, io.Discard) }()

	get := func(path string) []byte {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Addressed by another name: the iss claim must not follow it.
		req.Host = "localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	var set struct {
		Keys []struct{ Kid, Alg string }
	}
	if err := json.Unmarshal(get("/.well-known/jwks.json"), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS %+v, %v: want an RS256 and an ES256 key", set, err)
	}
	tok := string(get("/token?tenant=ACME"))
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != base || c["tenant"] != "ACME" || c["aud"] != "backlot" {
		t.Errorf("claims %v, want iss %s, tenant ACME, aud backlot", c, base)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}
