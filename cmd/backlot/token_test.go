package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backlothq/backlot/internal/authn"

	"github.com/backlothq/backlot/config"
)

func TestTokenMint(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef-cli"
	t.Setenv("BACKLOT_TEST_JWT_SECRET", secret)
	dir := t.TempDir()
	path := filepath.Join(dir, "backlot.yaml")
	yaml := `server: { listen: "127.0.0.1:0" }
authenticators:
  users: { type: hs256, secret: "${BACKLOT_TEST_JWT_SECRET}", issuer: backlot, audience: backlot, ttl: 15m }
  ops:   { type: api_key, keys: [{ id: ops, sha256: "` + strings.Repeat("0", 64) + `" }] }
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"--config", path, "token", "mint", "--sub", "u-cli", "--tenant", "acme", "--scope", "a,b", "--scope", "c", "--ttl", "1h"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	a, err := authn.NewHS256("users", config.Authenticator{Type: "hs256", Secret: secret, Issuer: "backlot", Audience: "backlot"}, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if p.Subject != "u-cli" || p.Tenant != "acme" || strings.Join(p.Scopes, " ") != "a b c" {
		t.Fatalf("principal %+v", p)
	}
	exp, _ := p.Claims["exp"].(float64)
	iat, _ := p.Claims["iat"].(float64)
	if exp-iat != 3600 {
		t.Fatalf("ttl %v s, want 3600", exp-iat)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "mint"}, "--sub is required"},
		{[]string{"token", "mint", "--sub", "x", "--authenticator", "ops"}, "only hs256"},
		{[]string{"token", "mint", "--sub", "x", "--authenticator", "nope"}, "not configured"},
	} {
		out.Reset()
		errb.Reset()
		if code := run(append([]string{"--config", path}, tc.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q", tc.args, code, errb.String(), out.String())
		}
	}
	out.Reset()
	if code := run([]string{"token", "mint", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "backlot token mint --sub") {
		t.Errorf("--help: exit %d: %s", code, out.String())
	}
}
