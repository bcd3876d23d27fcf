package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/sqlite"
	"github.com/backlothq/backlot/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var (
	keyK0 = config.Key{ID: "k0", Secret: testKey(0xa0)}
	keyK1 = config.Key{ID: "k1", Secret: testKey(0xa1)}
	keyK2 = config.Key{ID: "k2", Secret: testKey(0xa2)}
)

// backends runs fn once per store backend, in parallel subtests.
func backends(t *testing.T, fn func(t *testing.T, db store.Store)) {
	t.Helper()
	for _, b := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", func(t *testing.T) store.Store { return testutil.SQLite(t) }},
		{"postgres", func(t *testing.T) store.Store { return testutil.PostgresStore(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

func newStore(t *testing.T, db store.SecretStore, keys ...config.Key) *Store {
	t.Helper()
	s, err := NewStore(StoreConfig{Keyring: mustKeyring(t, keys...), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStorePutGetDelete(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		s := newStore(t, db, keyK1)
		scopes := []Scope{
			{Tenant: "acct_1", Subject: "usr_1"},
			{Tenant: "acct_1", Subject: "usr_2"},
			{Tenant: "acct_2", Subject: "usr_1"},
			{Subject: "usr_1"},
			// Would collide if "/" were not escaped.
			{Tenant: "a/b", Subject: "c"},
			{Tenant: "a", Subject: "b/c"},
			SystemScope("stripe"),
			SystemScope("usr_1"),
		}
		for i, sc := range scopes {
			if err := s.Put(ctx, sc, "access_token", fmt.Appendf(nil, "value-%d", i)); err != nil {
				t.Fatalf("Put(%v): %v", sc, err)
			}
		}
		for i, sc := range scopes {
			got, err := s.Get(ctx, sc, "access_token")
			if err != nil || string(got) != fmt.Sprintf("value-%d", i) {
				t.Fatalf("Get(%v) = %q, %v; want value-%d", sc, got, err, i)
			}
		}
		if _, err := s.Get(ctx, scopes[0], "refresh_token"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(missing name) = %v, want ErrNotFound", err)
		}

		// Put replaces.
		if err := s.Put(ctx, scopes[0], "access_token", []byte("new")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, scopes[0], "access_token"); err != nil || string(got) != "new" {
			t.Fatalf("Get after replace = %q, %v", got, err)
		}

		if err := s.Delete(ctx, scopes[0], "access_token"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(ctx, scopes[0], "access_token"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, scopes[0], "access_token"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Delete again = %v, want ErrNotFound", err)
		}
		if got, err := s.Get(ctx, scopes[1], "access_token"); err != nil || string(got) != "value-1" {
			t.Fatalf("a neighbour after Delete = %q, %v", got, err)
		}

		row, err := db.GetSecret(ctx, scopes[1].String(), "access_token")
		if err != nil || row.KeyID != "k1" || bytes.Contains(row.Ciphertext, []byte("value-1")) {
			t.Fatalf("stored row = key %q, %v; want sealed under k1 without the plaintext", row.KeyID, err)
		}
	})
}

// TestStoreRowCopied: a ciphertext moved to another row in the database
// does not open there.
func TestStoreRowCopied(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		s := newStore(t, db, keyK1)
		victim := Scope{Tenant: "acct_v", Subject: "usr_v"}
		attacker := Scope{Tenant: "acct_a", Subject: "usr_a"}
		if err := s.Put(ctx, victim, "token", []byte("victim's token")); err != nil {
			t.Fatal(err)
		}
		row, err := db.GetSecret(ctx, victim.String(), "token")
		if err != nil {
			t.Fatal(err)
		}
		for _, dst := range []struct {
			scope Scope
			name  string
		}{{attacker, "token"}, {victim, "other"}, {SystemScope("acct_v"), "token"}} {
			copied := row
			copied.Scope, copied.Name = dst.scope.String(), dst.name
			if err := db.PutSecret(ctx, copied); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, dst.scope, dst.name)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Get of a copied row at %v %q = %q, %v; want ErrDecrypt", dst.scope, dst.name, got, err)
			}
		}
	})
}

func TestStoreRefuses(t *testing.T) {
	t.Parallel()
	db := testutil.SQLite(t)
	s := newStore(t, db, keyK1)
	value := []byte("sk_live_do-not-print-me")
	for _, c := range []struct {
		name  string
		scope Scope
		key   string
		value []byte
	}{
		{"no subject", Scope{Tenant: "acct"}, "n", value},
		{"empty name", Scope{Subject: "u"}, "", value},
		{"long name", Scope{Subject: "u"}, strings.Repeat("n", MaxNameBytes+1), value},
		{"name not UTF-8", Scope{Subject: "u"}, "\xff", value},
		{"name with NUL", Scope{Subject: "u"}, "a\x00b", value},
		{"subject not UTF-8", Scope{Subject: "\xff"}, "n", value},
		{"long tenant", Scope{Tenant: strings.Repeat("t", MaxScopeFieldBytes+1), Subject: "u"}, "n", value},
		{"long value", Scope{Subject: "u"}, "n", append(bytes.Repeat([]byte("x"), MaxValueBytes), value...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.Put(context.Background(), c.scope, c.key, c.value)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Put = %v, want ErrInvalid", err)
			}
			if strings.Contains(err.Error(), string(value)) {
				t.Fatalf("error %q contains the value", err)
			}
		})
	}
	if c, err := db.CountByKeyID(context.Background()); err != nil || len(c) != 0 {
		t.Fatalf("rows after refused puts: %+v, %v", c, err)
	}
	// An empty keyring stores nothing.
	empty := newStore(t, db)
	if err := empty.Put(context.Background(), Scope{Subject: "u"}, "n", value); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Put with no keys = %v, want ErrNoKeys", err)
	}
}

// TestNoPlaintextOnDisk writes a secret to SQLite and greps every file of
// the database (main file, WAL, shared memory) for it.
func TestNoPlaintextOnDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "backlot.db"), store.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, db, keyK1)
	canary := "sk_live_CANARY_4f8a1c9e2b7d"
	scope := SystemScope("canary-scope-marker")
	if err := s.Put(ctx, scope, "api_key", []byte(canary)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, scope, "api_key"); err != nil || string(got) != canary {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "backlot.db*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("database files: %v, %v", files, err)
	}
	var sawScope bool
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(canary)) {
			t.Fatalf("%s contains the secret in plaintext", filepath.Base(f))
		}
		sawScope = sawScope || bytes.Contains(b, []byte(scope.String()))
	}
	if !sawScope {
		t.Fatalf("no database file contains the row's scope: grepped the wrong files %v", files)
	}
}

// seed puts n secrets under the given keys (the first seals).
func seed(t *testing.T, db store.SecretStore, n int, keys ...config.Key) {
	t.Helper()
	s := newStore(t, db, keys...)
	for i := range n {
		if err := s.Put(context.Background(), SystemScope(fmt.Sprintf("s%04d", i)), "v", fmt.Appendf(nil, "value-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func counts(t *testing.T, db store.EncryptedStore) map[string]int64 {
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

func TestRotate(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		seed(t, db, 7, keyK0)
		seed(t, db, 0, keyK1)
		s1 := newStore(t, db, keyK1)
		for i := range 4 { // some rows under k1, overlapping none of the k0 rows
			if err := s1.Put(ctx, SystemScope(fmt.Sprintf("t%d", i)), "v", []byte("k1 value")); err != nil {
				t.Fatal(err)
			}
		}
		keys := mustKeyring(t, keyK2, keyK1, keyK0)

		dry, err := Rotate(ctx, db, keys, RotateOptions{DryRun: true, Batch: 2})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		wantByKey := []KeyRows{{KeyID: "k0", Rows: 7}, {KeyID: "k1", Rows: 4}}
		if dry.Total != 11 || dry.Rotated != 0 || !reflect.DeepEqual(dry.ByKey, wantByKey) {
			t.Fatalf("dry run = %+v, want 11 to rotate by %+v, none rotated", dry, wantByKey)
		}
		if c := counts(t, db); !reflect.DeepEqual(c, map[string]int64{"k0": 7, "k1": 4}) {
			t.Fatalf("after the dry run: %v, want nothing written", c)
		}

		var progress [][2]int64
		res, err := Rotate(ctx, db, keys, RotateOptions{Batch: 3, Progress: func(done, total int64) {
			progress = append(progress, [2]int64{done, total})
		}})
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		if res.Rotated != 11 || res.Skipped != 0 || res.Current != "k2" {
			t.Fatalf("Rotate = %+v, want 11 rotated to k2", res)
		}
		wantProgress := [][2]int64{{3, 11}, {6, 11}, {9, 11}, {11, 11}}
		if !reflect.DeepEqual(progress, wantProgress) {
			t.Fatalf("progress = %v, want %v", progress, wantProgress)
		}
		if c := counts(t, db); !reflect.DeepEqual(c, map[string]int64{"k2": 11}) {
			t.Fatalf("after rotation: %v, want all 11 under k2", c)
		}
		// Readable with k2 alone: the old keys can go.
		s2 := newStore(t, db, keyK2)
		for i := range 7 {
			if got, err := s2.Get(ctx, SystemScope(fmt.Sprintf("s%04d", i)), "v"); err != nil || string(got) != fmt.Sprintf("value-%d", i) {
				t.Fatalf("Get s%04d with k2 only = %q, %v", i, got, err)
			}
		}
		if err := CheckKeys(ctx, db, mustKeyring(t, keyK2)); err != nil {
			t.Fatalf("CheckKeys with k2 only after rotation: %v", err)
		}
		// A second run has nothing to do.
		again, err := Rotate(ctx, db, keys, RotateOptions{})
		if err != nil || again.Total != 0 || again.Rotated != 0 {
			t.Fatalf("second Rotate = %+v, %v; want nothing to do", again, err)
		}
	})
}

// TestRotateStopsAtBadRow: a row that does not open stops rotation with
// the rows before it committed and the error naming it; nothing after it
// is touched.
func TestRotateStopsAtBadRow(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		seed(t, db, 10, keyK1)
		// s0005 gets the ciphertext of s0006: sealed for another row.
		other, err := db.GetSecret(ctx, SystemScope("s0006").String(), "v")
		if err != nil {
			t.Fatal(err)
		}
		other.Scope = SystemScope("s0005").String()
		if err := db.PutSecret(ctx, other); err != nil {
			t.Fatal(err)
		}
		keys := mustKeyring(t, keyK2, keyK1)
		res, err := Rotate(ctx, db, keys, RotateOptions{Batch: 3})
		if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "system/s0005") {
			t.Fatalf("Rotate = %v, want ErrDecrypt naming system/s0005", err)
		}
		if res.Rotated != 5 {
			t.Fatalf("rotated %d rows, want the 5 before the bad one", res.Rotated)
		}
		if c := counts(t, db); !reflect.DeepEqual(c, map[string]int64{"k1": 5, "k2": 5}) {
			t.Fatalf("after the failure: %v, want 5 under k2 and 5 left under k1", c)
		}
		s := newStore(t, db, keyK2, keyK1)
		for i := range 10 {
			got, err := s.Get(ctx, SystemScope(fmt.Sprintf("s%04d", i)), "v")
			if i == 5 {
				if err == nil {
					t.Fatal("the bad row opened")
				}
				continue
			}
			if err != nil || string(got) != fmt.Sprintf("value-%d", i) {
				t.Fatalf("s%04d = %q, %v", i, got, err)
			}
		}
	})
}

func TestCheckKeysAndStatus(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		if err := CheckKeys(ctx, db, nil); err != nil {
			t.Fatalf("CheckKeys on an empty store with no keys: %v", err)
		}
		seed(t, db, 3, keyK0)
		for i := range 2 {
			if err := newStore(t, db, keyK1).Put(ctx, SystemScope(fmt.Sprintf("x%d", i)), "v", []byte("v")); err != nil {
				t.Fatal(err)
			}
		}

		for _, c := range []struct {
			name    string
			keys    *Keyring
			missing []KeyRows
		}{
			{"all present", mustKeyring(t, keyK1, keyK0), nil},
			{"k0 retired too soon", mustKeyring(t, keyK2, keyK1), []KeyRows{{KeyID: "k0", Rows: 3}}},
			{"no keys", nil, []KeyRows{{KeyID: "k0", Rows: 3}, {KeyID: "k1", Rows: 2}}},
		} {
			err := CheckKeys(ctx, db, c.keys)
			if c.missing == nil {
				if err != nil {
					t.Fatalf("%s: CheckKeys = %v", c.name, err)
				}
				continue
			}
			var me *MissingKeysError
			if !errors.As(err, &me) || !reflect.DeepEqual(me.Missing, c.missing) {
				t.Fatalf("%s: CheckKeys = %v, want missing %+v", c.name, err, c.missing)
			}
			if !strings.Contains(err.Error(), `3 rows are sealed under key "k0"`) {
				t.Fatalf("%s: error %q does not name k0 and its count", c.name, err)
			}
			// Rotate refuses the same way, before writing.
			if c.keys != nil {
				if _, err := Rotate(ctx, db, c.keys, RotateOptions{}); !errors.As(err, &me) {
					t.Fatalf("%s: Rotate = %v, want *MissingKeysError", c.name, err)
				}
				if got := counts(t, db); !reflect.DeepEqual(got, map[string]int64{"k0": 3, "k1": 2}) {
					t.Fatalf("%s: Rotate wrote: %v", c.name, got)
				}
			}
		}

		st, err := Status(ctx, db, mustKeyring(t, keyK2, keyK1))
		if err != nil {
			t.Fatal(err)
		}
		want := []KeyStatus{
			{KeyID: "k2", Rows: 0, Configured: true, Current: true},
			{KeyID: "k1", Rows: 2, Configured: true},
			{KeyID: "k0", Rows: 3},
		}
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("Status = %+v, want %+v", st, want)
		}
	})
}

func TestStoreClock(t *testing.T) {
	t.Parallel()
	db := testutil.SQLite(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := NewStore(StoreConfig{Keyring: mustKeyring(t, keyK1), Store: db, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), Scope{Subject: "u"}, "n", []byte("v")); err != nil {
		t.Fatal(err)
	}
	row, err := db.GetSecret(context.Background(), Scope{Subject: "u"}.String(), "n")
	if err != nil || !row.UpdatedAt.Equal(at) {
		t.Fatalf("updated_at = %v, %v; want %v", row.UpdatedAt, err, at)
	}
	if _, err := NewStore(StoreConfig{Store: db}); err == nil {
		t.Fatal("NewStore without a keyring: want an error")
	}
}
