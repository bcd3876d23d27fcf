package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// runSecrets exercises SecretStore and the EncryptedStore rotation seam.
// The store never decrypts, so the ciphertexts here are arbitrary bytes.
func runSecrets(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Secrets", func(t *testing.T) {
		t.Parallel()

		t.Run("PutGetDelete", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
			in := store.Secret{Scope: "principal/acct_1/usr_1", Name: "access_token", KeyID: "k1", Ciphertext: []byte{1, 2, 0, 255}, UpdatedAt: at}
			if err := s.PutSecret(ctx, in); err != nil {
				t.Fatalf("PutSecret: %v", err)
			}
			got, err := s.GetSecret(ctx, in.Scope, in.Name)
			if err != nil {
				t.Fatalf("GetSecret: %v", err)
			}
			want := in
			want.UpdatedAt = at.Truncate(time.Millisecond)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("GetSecret = %+v, want %+v", got, want)
			}

			// Put replaces.
			in2 := store.Secret{Scope: in.Scope, Name: in.Name, KeyID: "k2", Ciphertext: []byte("other"), UpdatedAt: at.Add(time.Hour)}
			if err := s.PutSecret(ctx, in2); err != nil {
				t.Fatalf("PutSecret again: %v", err)
			}
			got, err = s.GetSecret(ctx, in.Scope, in.Name)
			if err != nil || got.KeyID != "k2" || string(got.Ciphertext) != "other" || !got.UpdatedAt.Equal(in2.UpdatedAt.Truncate(time.Millisecond)) {
				t.Fatalf("GetSecret after replace = %+v, %v", got, err)
			}

			// Scope and name both identify the row.
			for _, k := range [][2]string{{in.Scope, "refresh_token"}, {"principal/acct_1/usr_2", in.Name}} {
				if _, err := s.GetSecret(ctx, k[0], k[1]); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetSecret(%q, %q) = %v, want ErrNotFound", k[0], k[1], err)
				}
			}

			if err := s.DeleteSecret(ctx, in.Scope, in.Name); err != nil {
				t.Fatalf("DeleteSecret: %v", err)
			}
			if _, err := s.GetSecret(ctx, in.Scope, in.Name); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetSecret after delete = %v, want ErrNotFound", err)
			}
			if err := s.DeleteSecret(ctx, in.Scope, in.Name); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeleteSecret again = %v, want ErrNotFound", err)
			}
		})

		t.Run("CountByKeyID", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			if c, err := s.CountByKeyID(ctx); err != nil || len(c) != 0 {
				t.Fatalf("CountByKeyID on an empty store = %+v, %v; want none", c, err)
			}
			putN(t, s, "k1", 3, "a")
			putN(t, s, "k0", 2, "b")
			c, err := s.CountByKeyID(ctx)
			if err != nil {
				t.Fatalf("CountByKeyID: %v", err)
			}
			want := []store.KeyCount{{Kind: store.KindSecret, KeyID: "k0", Rows: 2}, {Kind: store.KindSecret, KeyID: "k1", Rows: 3}}
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("CountByKeyID = %+v, want %+v", c, want)
			}
		})

		t.Run("ListEncryptedPages", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			// Scopes whose bytewise order differs from a natural-language
			// collation's ("B" < "a" < "é"), and names that share prefixes.
			var want []store.EncryptedRef
			for i, sc := range []string{"system/a", "system/B", "system/é", "principal/x/y", "principal/x/y0"} {
				for j, name := range []string{"n", "n1", "N"} {
					key := "old"
					if (i+j)%3 == 0 {
						key = "new"
					}
					ct := fmt.Appendf(nil, "%s|%s|%s", key, sc, name)
					if err := s.PutSecret(ctx, store.Secret{Scope: sc, Name: name, KeyID: key, Ciphertext: ct, UpdatedAt: time.Now()}); err != nil {
						t.Fatalf("PutSecret: %v", err)
					}
					if key != "new" {
						want = append(want, store.EncryptedRef{Kind: store.KindSecret, Scope: sc, Name: name})
					}
				}
			}
			sort.Slice(want, func(i, j int) bool { return want[i].Less(want[j]) })

			var got []store.EncryptedRef
			var after *store.EncryptedRef
			for pages := 0; ; pages++ {
				if pages > len(want) {
					t.Fatalf("ListEncrypted does not end: %d pages", pages)
				}
				rows, err := s.ListEncrypted(ctx, store.ListEncryptedParams{ExceptKeyID: "new", After: after, Limit: 4})
				if err != nil {
					t.Fatalf("ListEncrypted: %v", err)
				}
				if len(rows) > 4 {
					t.Fatalf("ListEncrypted returned %d rows, limit 4", len(rows))
				}
				if len(rows) == 0 {
					break
				}
				for _, r := range rows {
					if r.KeyID != "old" || string(r.Ciphertext) != fmt.Sprintf("old|%s|%s", r.Scope, r.Name) {
						t.Fatalf("row %+v: wrong key id or ciphertext %q", r.EncryptedRef, r.Ciphertext)
					}
					got = append(got, r.EncryptedRef)
				}
				last := rows[len(rows)-1].EncryptedRef
				after = &last
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ListEncrypted walked\n%v\nwant (bytewise order)\n%v", got, want)
			}

			all, err := s.ListEncrypted(ctx, store.ListEncryptedParams{Limit: 100})
			if err != nil || len(all) != 15 {
				t.Fatalf("ListEncrypted without ExceptKeyID = %d rows, %v; want 15", len(all), err)
			}
			for _, limit := range []int{0, -1} {
				if _, err := s.ListEncrypted(ctx, store.ListEncryptedParams{Limit: limit}); err == nil {
					t.Fatalf("ListEncrypted with limit %d: want an error", limit)
				}
			}
		})

		t.Run("ReencryptRowsOnlyUnchanged", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			putN(t, s, "old", 5, "p")
			rows, err := s.ListEncrypted(ctx, store.ListEncryptedParams{ExceptKeyID: "new", Limit: 10})
			if err != nil || len(rows) != 5 {
				t.Fatalf("ListEncrypted = %d rows, %v", len(rows), err)
			}
			// After listing: row 0 is rewritten, row 1 deleted.
			if err := s.PutSecret(ctx, store.Secret{Scope: rows[0].Scope, Name: rows[0].Name, KeyID: "new", Ciphertext: []byte("rewritten"), UpdatedAt: time.Now()}); err != nil {
				t.Fatalf("PutSecret: %v", err)
			}
			if err := s.DeleteSecret(ctx, rows[1].Scope, rows[1].Name); err != nil {
				t.Fatalf("DeleteSecret: %v", err)
			}
			batch := make([]store.Reencrypt, len(rows))
			for i, r := range rows {
				batch[i] = store.Reencrypt{Old: r, KeyID: "new", Ciphertext: append([]byte("re:"), r.Ciphertext...)}
			}
			n, err := s.ReencryptRows(ctx, batch)
			if err != nil || n != 3 {
				t.Fatalf("ReencryptRows = %d, %v; want 3 (one row rewritten, one deleted meanwhile)", n, err)
			}
			got, err := s.GetSecret(ctx, rows[0].Scope, rows[0].Name)
			if err != nil || string(got.Ciphertext) != "rewritten" {
				t.Fatalf("rewritten row = %q, %v; want it left alone", got.Ciphertext, err)
			}
			if _, err := s.GetSecret(ctx, rows[1].Scope, rows[1].Name); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("deleted row = %v, want ErrNotFound (not resurrected)", err)
			}
			for _, r := range rows[2:] {
				got, err := s.GetSecret(ctx, r.Scope, r.Name)
				if err != nil || got.KeyID != "new" || !bytes.Equal(got.Ciphertext, append([]byte("re:"), r.Ciphertext...)) {
					t.Fatalf("row %s %s = %+v, %v; want re-encrypted under new", r.Scope, r.Name, got, err)
				}
			}
			c, err := s.CountByKeyID(ctx)
			if err != nil || !reflect.DeepEqual(c, []store.KeyCount{{Kind: store.KindSecret, KeyID: "new", Rows: 4}}) {
				t.Fatalf("CountByKeyID = %+v, %v; want 4 under new", c, err)
			}
		})

		t.Run("ReencryptRowsAllOrNothing", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			putN(t, s, "old", 2, "q")
			rows, err := s.ListEncrypted(ctx, store.ListEncryptedParams{Limit: 10})
			if err != nil || len(rows) != 2 {
				t.Fatalf("ListEncrypted = %d rows, %v", len(rows), err)
			}
			bad := rows[1]
			bad.Kind = "no-such-kind"
			batch := []store.Reencrypt{
				{Old: rows[0], KeyID: "new", Ciphertext: []byte("x")},
				{Old: bad, KeyID: "new", Ciphertext: []byte("y")},
			}
			if n, err := s.ReencryptRows(ctx, batch); err == nil {
				t.Fatalf("ReencryptRows with an unknown kind = %d, nil; want an error", n)
			}
			got, err := s.GetSecret(ctx, rows[0].Scope, rows[0].Name)
			if err != nil || got.KeyID != "old" || !bytes.Equal(got.Ciphertext, rows[0].Ciphertext) {
				t.Fatalf("first row after a failed batch = %+v, %v; want unchanged", got, err)
			}
		})
	})
}

// putN stores n secrets under keyID in scopes named after prefix.
func putN(t *testing.T, s store.Store, keyID string, n int, prefix string) {
	t.Helper()
	for i := range n {
		sec := store.Secret{
			Scope:      fmt.Sprintf("system/%s%d", prefix, i),
			Name:       "v",
			KeyID:      keyID,
			Ciphertext: fmt.Appendf(nil, "%s-%s-%d", keyID, prefix, i),
			UpdatedAt:  time.Now(),
		}
		if err := s.PutSecret(context.Background(), sec); err != nil {
			t.Fatalf("PutSecret: %v", err)
		}
	}
}
