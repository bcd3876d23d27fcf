package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
)

var configLineRE = regexp.MustCompile(`^\{ id: ([A-Za-z0-9._-]+), sha256: "([0-9a-f]{64})" \}$`)

// TestAPIKeyNew: the printed key carries the blk_ prefix, the printed
// config line holds its SHA-256 (never the key), and a configuration made
// from that line accepts the key.
func TestAPIKeyNew(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	var key, line string
	for i := 0; i < 3; i++ {
		var out, errb bytes.Buffer
		if code := run([]string{"apikey", "new", "--id", "nightly-close.v2"}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("want the key and the config line on stdout, got %q", out.String())
		}
		key, line = lines[0], lines[1]
		if !strings.HasPrefix(key, authn.APIKeyPrefix) || len(key) < len(authn.APIKeyPrefix)+43 {
			t.Fatalf("key %q: want %s and at least 32 random bytes", key, authn.APIKeyPrefix)
		}
		m := configLineRE.FindStringSubmatch(line)
		if m == nil || m[1] != "nightly-close.v2" {
			t.Fatalf("config line %q", line)
		}
		sum := sha256.Sum256([]byte(key))
		if m[2] != hex.EncodeToString(sum[:]) {
			t.Fatalf("config line hash %s is not the key's SHA-256", m[2])
		}
		if strings.Contains(line, key) || strings.Contains(errb.String(), key) {
			t.Fatal("the key is printed more than once")
		}
		if seen[key] {
			t.Fatal("the same key twice")
		}
		seen[key] = true
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "backlot.yaml")
	yaml := "server: { listen: \"127.0.0.1:0\" }\nauthenticators:\n  batch:\n    type: api_key\n    keys:\n      - " + line + "\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	set, err := authn.NewSet(cfg.Authenticators, nil, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("POST", "/internal/x", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	p, err := set.Authenticate(r, []string{"batch"}, auth.Rule{})
	if err != nil || p.Subject != "nightly-close.v2" {
		t.Fatalf("generated key refused: %v", err)
	}
}

func TestAPIKeyNewBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no id", []string{"apikey", "new"}, "--id"},
		{"empty id", []string{"apikey", "new", "--id", ""}, "--id"},
		{"space", []string{"apikey", "new", "--id", "a b"}, "--id"},
		{"quote", []string{"apikey", "new", "--id", `a"b`}, "--id"},
		{"yaml syntax", []string{"apikey", "new", "--id", "a, sha256: x"}, "--id"},
		{"too long", []string{"apikey", "new", "--id", strings.Repeat("a", 65)}, "--id"},
		{"argument", []string{"apikey", "new", "--id", "a", "extra"}, "extra"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, code, out.String(), errb.String())
		}
	}
}
