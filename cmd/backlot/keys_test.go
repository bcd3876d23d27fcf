package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
)

func TestKeysNew(t *testing.T) {
	t.Parallel()
	envLine := regexp.MustCompile(`(?m)^(BACKLOT_KEY_[A-Z0-9_]+)=(\S+)$`)
	for _, c := range []struct {
		args    []string
		env, id string
	}{
		{[]string{"keys", "new", "--id", "k2"}, "BACKLOT_KEY_K2", "k2"},
		{[]string{"keys", "new", "--id", "prod.2026-03"}, "BACKLOT_KEY_PROD_2026_03", "prod.2026-03"},
		{[]string{"keys", "new"}, "", ""},
	} {
		code, out, errs := cli(t, c.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, errs)
		}
		m := envLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%v: no BACKLOT_KEY_…= line in\n%s", c.args, out)
		}
		if c.env != "" && m[1] != c.env {
			t.Fatalf("%v: variable %s, want %s", c.args, m[1], c.env)
		}
		raw, err := base64.StdEncoding.DecodeString(m[2])
		if err != nil || len(raw) != 32 {
			t.Fatalf("%v: key %q is not base64 of 32 bytes", c.args, m[2])
		}
		id := c.id
		if id == "" {
			id = regexp.MustCompile(`id: (k\d{8}),`).FindStringSubmatch(out)[1]
		}
		if want := fmt.Sprintf(`- { id: %s, secret: "${%s}" }`, id, m[1]); !strings.Contains(out, want) {
			t.Fatalf("%v: no config line %q in\n%s", c.args, want, out)
		}
		if _, err := secrets.NewKeyring([]config.Key{{ID: id, Secret: m[2]}}); err != nil {
			t.Fatalf("%v: the printed key is refused: %v", c.args, err)
		}
	}
	_, a, _ := cli(t, "keys", "new")
	_, b, _ := cli(t, "keys", "new")
	if a == b {
		t.Fatal("two runs printed the same key")
	}
	for _, bad := range []string{"", "-x", "a b", "k$1", strings.Repeat("k", 65), "ключ"} {
		if bad == "" {
			continue // empty means the default
		}
		code, out, errs := cli(t, "keys", "new", "--id="+bad)
		if code != 2 || out != "" || !strings.Contains(errs, "--id") {
			t.Errorf("--id %q: exit %d, stdout %q, stderr %q; want 2 and an --id error", bad, code, out, errs)
		}
	}
}

func TestKeysHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"keys", "--help"}, {"keys", "new", "--help"}, {"keys", "rotate", "--help"}, {"keys", "status", "--help"}} {
		code, out, _ := cli(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
		if strings.Contains(out, "batch-pause") {
			t.Errorf("%v: the test hook shows in help", args)
		}
	}
	if _, out, _ := cli(t, "keys", "rotate", "--help"); !strings.Contains(out, "--dry-run") || !strings.Contains(out, "--batch") {
		t.Errorf("rotate help lacks --dry-run or --batch:\n%s", out)
	}
}

// keysFixture is a directory with a .env holding keys k0, k1 and k2, a
// migrated SQLite database, and one configuration per keys list.
type keysFixture struct {
	dir, db string
	keys    map[string]config.Key
}

func newKeysFixture(t *testing.T) *keysFixture {
	t.Helper()
	f := &keysFixture{dir: t.TempDir(), keys: map[string]config.Key{}}
	f.db = filepath.Join(f.dir, "b.db")
	var env strings.Builder
	for i, id := range []string{"k0", "k1", "k2"} {
		secret := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%032d", i)))
		f.keys[id] = config.Key{ID: id, Secret: secret}
		fmt.Fprintf(&env, "BACKLOT_KEY_%s=%s\n", strings.ToUpper(id), secret)
	}
	writeFile(t, f.dir, ".env", env.String())
	if code, _, errs := cli(t, "migrate", "--config", f.config(t)); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	return f
}

// config writes a configuration listing ids under keys and returns its path.
func (f *keysFixture) config(t *testing.T, ids ...string) string {
	t.Helper()
	y := "server: { listen: \"127.0.0.1:0\" }\nstore: { url: \"sqlite://" + f.db + "\" }\n"
	if len(ids) > 0 {
		y += "keys:\n"
		for _, id := range ids {
			y += fmt.Sprintf("  - { id: %s, secret: \"${BACKLOT_KEY_%s}\" }\n", id, strings.ToUpper(id))
		}
	}
	return writeFile(t, f.dir, "keys-"+strings.Join(ids, "-")+".yaml", y)
}

// open opens the fixture's database.
func (f *keysFixture) open(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), f.db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// secrets returns a secret store over db sealing with the given keys.
func (f *keysFixture) secrets(t *testing.T, db store.SecretStore, ids ...string) *secrets.Store {
	t.Helper()
	var ks []config.Key
	for _, id := range ids {
		ks = append(ks, f.keys[id])
	}
	kr, err := secrets.NewKeyring(ks)
	if err != nil {
		t.Fatal(err)
	}
	s, err := secrets.NewStore(secrets.StoreConfig{Keyring: kr, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func allRows(t *testing.T, db store.EncryptedStore) []store.EncryptedRow {
	t.Helper()
	rows, err := db.ListEncrypted(context.Background(), store.ListEncryptedParams{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestKeysRotateAndStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newKeysFixture(t)
	db := f.open(t)
	s0 := f.secrets(t, db, "k0")
	for i := range 30 {
		if err := s0.Put(ctx, secrets.Scope{Tenant: "acct", Subject: fmt.Sprintf("usr_%02d", i)}, "token", fmt.Appendf(nil, "tok-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	next := f.config(t, "k1", "k0")

	code, out, errs := cli(t, "keys", "status", "--config", next)
	if code != 0 || !regexp.MustCompile(`(?m)^k1\s+0\s+current`).MatchString(out) || !regexp.MustCompile(`(?m)^k0\s+30\s+decrypts`).MatchString(out) {
		t.Fatalf("status before: exit %d\n%s%s", code, out, errs)
	}

	// --dry-run counts and writes nothing.
	before := allRows(t, db)
	code, out, errs = cli(t, "keys", "rotate", "--dry-run", "--config", next)
	if code != 0 || !strings.Contains(out, `would rotate 30 rows to key "k1"`) || !strings.Contains(out, "k0: 30 rows") || errs != "" {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	if after := allRows(t, db); !reflect.DeepEqual(before, after) {
		t.Fatal("--dry-run changed rows")
	}

	code, out, errs = cli(t, "keys", "rotate", "--batch", "7", "--config", next)
	wantProgress := "rotated 7/30 rows\nrotated 14/30 rows\nrotated 21/30 rows\nrotated 28/30 rows\nrotated 30/30 rows\n"
	if code != 0 || errs != wantProgress || !strings.Contains(out, `rotated 30 rows to key "k1"`) {
		t.Fatalf("rotate: exit %d\nstdout %q\nstderr %q\nwant stderr %q", code, out, errs, wantProgress)
	}
	for _, r := range allRows(t, db) {
		if r.KeyID != "k1" {
			t.Fatalf("row %v still under %s", r.EncryptedRef, r.KeyID)
		}
	}
	// The rotation (not the dry run) left one audit entry by the command line.
	entries, err := db.ListAudit(ctx, store.AuditFilter{Action: store.AuditKeysRotate})
	if err != nil || len(entries) != 1 || entries[0].Count != 30 || !strings.HasPrefix(entries[0].Actor, "cli") ||
		!strings.Contains(entries[0].Detail, `"to_key":"k1"`) {
		t.Fatalf("audit entries = %+v, %v", entries, err)
	}

	// k0 can go now; every value reads with k1 alone.
	only := f.config(t, "k1")
	if code, out, errs := cli(t, "keys", "status", "--config", only); code != 0 || !regexp.MustCompile(`(?m)^k1\s+30\s+current`).MatchString(out) {
		t.Fatalf("status after: exit %d\n%s%s", code, out, errs)
	}
	s1 := f.secrets(t, db, "k1")
	for i := range 30 {
		got, err := s1.Get(ctx, secrets.Scope{Tenant: "acct", Subject: fmt.Sprintf("usr_%02d", i)}, "token")
		if err != nil || string(got) != fmt.Sprintf("tok-%d", i) {
			t.Fatalf("usr_%02d = %q, %v", i, got, err)
		}
	}

	// Retiring k1 before rotating to k2 is refused, naming k1 and its rows.
	early := f.config(t, "k2")
	code, out, errs = cli(t, "keys", "status", "--config", early)
	if code != 3 || !regexp.MustCompile(`(?m)^k1\s+30\s+MISSING`).MatchString(out) || !strings.Contains(errs, `30 rows are sealed under key "k1"`) {
		t.Fatalf("status with k1 missing: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = cli(t, "keys", "rotate", "--config", early)
	if code != 1 || !strings.Contains(errs, `30 rows are sealed under key "k1", which is not in keys`) {
		t.Fatalf("rotate with k1 missing: exit %d\n%s", code, errs)
	}
	checkPrefixed(t, errs)
}

func TestKeysRotateRefuses(t *testing.T) {
	t.Parallel()
	f := newKeysFixture(t)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no keys", []string{"keys", "rotate", "--config", f.config(t)}, 2, "no keys configured"},
		{"zero batch", []string{"keys", "rotate", "--batch", "0", "--config", f.config(t, "k1")}, 2, "--batch 0"},
		{"negative batch", []string{"keys", "rotate", "--batch=-5", "--config", f.config(t, "k1")}, 2, "--batch -5"},
		{"argument", []string{"keys", "rotate", "extra", "--config", f.config(t, "k1")}, 2, "unknown command"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := cli(t, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, errs, c.code, c.want)
			}
			checkPrefixed(t, errs)
		})
	}
}
