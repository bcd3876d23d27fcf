package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/testutil"
)

// TestKeysRotateSurvivesSIGKILL seeds thousands of secrets under an old
// key, kills `backlot keys rotate` with SIGKILL after its first batch,
// checks that only whole batches were written and that `serve` refuses to
// start without the old key (naming it and its row count), then reruns the
// rotation to the end and reads every value with the new key alone.
func TestKeysRotateSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	const rows, batch = 3000, 50
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "backlot.db")
	k1 := config.Key{ID: "k1", Secret: base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))}
	k2 := config.Key{ID: "k2", Secret: base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))}
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("BACKLOT_KEY_K1="+k1.Secret+"\nBACKLOT_KEY_K2="+k2.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	configWith := func(name string, ids ...string) string {
		y := fmt.Sprintf("server: { listen: \"127.0.0.1:%d\" }\nstore: { url: \"sqlite://%s\" }\nkeys:\n", port, dbPath)
		for _, id := range ids {
			y += fmt.Sprintf("  - { id: %s, secret: \"${BACKLOT_KEY_%s}\" }\n", id, strings.ToUpper(id))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldCfg := configWith("old.yaml", "k1")
	rotCfg := configWith("rotating.yaml", "k2", "k1")
	newCfg := configWith("new.yaml", "k2")

	if code, _, errs := runBacklot(t, dir, nil, "migrate", "--config", oldCfg); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	db, err := sqlite.Open(ctx, dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seedSecrets(t, db, k1, rows)

	// Kill the rotation after its first committed batch: with a 5 ms pause
	// after each batch the other 59 take nearly 300 ms at least, so the kill lands
	// mid-way, in a pause or inside a batch's transaction.
	cmd := exec.Command(testutil.BuildBacklot(t), "keys", "rotate", "--batch", fmt.Sprint(batch), "--batch-pause", "5ms", "--config", rotCfg)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var first string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "rotated ") {
			first = sc.Text()
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if want := fmt.Sprintf("rotated %d/%d rows", batch, rows); first != want {
		t.Fatalf("first progress line %q, want %q", first, want)
	}
	c := keyCounts(t, db)
	if c["k2"] < batch || c["k2"] >= rows || c["k2"]%batch != 0 || c["k1"]+c["k2"] != rows {
		t.Fatalf("after SIGKILL: %v; want whole batches of %d under k2, the rest under k1", c, batch)
	}
	t.Logf("killed after %d of %d rows", c["k2"], rows)

	// serve refuses while rows are under a key it lacks.
	code, _, errs := runWithin(t, dir, 30*time.Second, "serve", "--config", newCfg)
	if want := fmt.Sprintf(`%d rows are sealed under key "k1", which is not in keys`, c["k1"]); code == 0 || !strings.Contains(errs, want) {
		t.Fatalf("serve without k1: exit %d, stderr %q; want a refusal containing %q", code, errs, want)
	}

	// --dry-run counts what is left and writes nothing.
	before := listAll(t, db)
	code, out, errs := runBacklot(t, dir, nil, "keys", "rotate", "--dry-run", "--config", rotCfg)
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`would rotate %d rows to key "k2"`, c["k1"])) {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	if after := listAll(t, db); !reflect.DeepEqual(before, after) {
		t.Fatal("--dry-run changed rows")
	}

	// The rerun finishes the job.
	code, out, errs = runBacklot(t, dir, nil, "keys", "rotate", "--batch", "500", "--config", rotCfg)
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`rotated %d rows to key "k2"`, c["k1"])) ||
		!strings.HasSuffix(errs, fmt.Sprintf("rotated %d/%d rows\n", c["k1"], c["k1"])) {
		t.Fatalf("rerun: exit %d\nstdout %q\nstderr %q", code, out, errs)
	}
	if c := keyCounts(t, db); !reflect.DeepEqual(c, map[string]int64{"k2": rows}) {
		t.Fatalf("after the rerun: %v, want all %d under k2", c, rows)
	}
	kr, err := secrets.NewKeyring([]config.Key{k2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := secrets.NewStore(secrets.StoreConfig{Keyring: kr, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		got, err := s.Get(ctx, secrets.Scope{Tenant: "acct", Subject: fmt.Sprintf("usr_%05d", i)}, "token")
		if err != nil || string(got) != fmt.Sprintf("token-%d", i) {
			t.Fatalf("usr_%05d with k2 alone = %q, %v", i, got, err)
		}
	}

	// And serve starts without k1 now.
	p := testutil.StartBacklot(t, testutil.BacklotCmd{
		Bin: testutil.BuildBacklot(t), Dir: dir, URL: fmt.Sprintf("http://127.0.0.1:%d", port),
		Args: []string{"serve", "--config", newCfg},
	})
	p.Kill()
}

// seedSecrets writes n secrets sealed under key in one transaction (one
// Put per row would fsync n times).
func seedSecrets(t *testing.T, db *sqlite.DB, key config.Key, n int) {
	t.Helper()
	kr, err := secrets.NewKeyring([]config.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	err = db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		for i := range n {
			scope := secrets.Scope{Tenant: "acct", Subject: fmt.Sprintf("usr_%05d", i)}.String()
			ct, err := kr.Seal(store.KindSecret, scope, "token", fmt.Appendf(nil, "token-%d", i))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO secrets (scope, name, key_id, ciphertext, updated_at) VALUES (?, 'token', ?, ?, 0)`,
				scope, key.ID, ct); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
}

func keyCounts(t *testing.T, db store.EncryptedStore) map[string]int64 {
	t.Helper()
	c, err := db.CountByKeyID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, kc := range c {
		m[kc.KeyID] += kc.Rows
	}
	return m
}

func listAll(t *testing.T, db store.EncryptedStore) []store.EncryptedRow {
	t.Helper()
	rows, err := db.ListEncrypted(context.Background(), store.ListEncryptedParams{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// runWithin runs a command that should exit by itself, killing it after
// timeout so a command that wrongly starts serving cannot hang the test.
func runWithin(t *testing.T, dir string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.BuildBacklot(t), args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v did not exit within %s; stderr:\n%s", args, timeout, stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}
