package storetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// runRefs exercises RefStore: rows behind sealed references, single use
// by one consumer (even under concurrent openers), pruning, and the refs
// table's place among the encrypted tables.
func runRefs(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Refs", func(t *testing.T) {
		t.Parallel()
		at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

		t.Run("InsertGetUseDelete", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			in := store.Ref{Scope: "idv", Name: "aa01", KeyID: "k1", Ciphertext: []byte{1, 0, 255},
				ExpiresAt: at.Add(time.Hour), SingleUse: true, CreatedAt: at}
			if err := s.InsertRef(ctx, in); err != nil {
				t.Fatalf("InsertRef: %v", err)
			}
			if err := s.InsertRef(ctx, in); err == nil {
				t.Fatal("InsertRef with a name in use succeeded")
			}
			got, err := s.GetRef(ctx, in.Name)
			want := in
			want.ExpiresAt, want.CreatedAt = in.ExpiresAt.Truncate(time.Millisecond), at.Truncate(time.Millisecond)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("GetRef = %+v, %v; want %+v", got, err, want)
			}
			if _, err := s.GetRef(ctx, "bb02"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetRef(unknown) = %v, want ErrNotFound", err)
			}
			if err := s.UseRef(ctx, in.Name, "job-1"); err != nil {
				t.Fatalf("UseRef: %v", err)
			}
			// The same consumer may open it again (a job retrying) ...
			if err := s.UseRef(ctx, in.Name, "job-1"); err != nil {
				t.Fatalf("UseRef by the same consumer: %v", err)
			}
			// ... nobody else.
			if err := s.UseRef(ctx, in.Name, "job-2"); !errors.Is(err, store.ErrRefUsed) {
				t.Fatalf("UseRef by another consumer = %v, want ErrRefUsed", err)
			}
			if got, _ := s.GetRef(ctx, in.Name); got.UsedBy != "job-1" {
				t.Fatalf("UsedBy = %q, want job-1", got.UsedBy)
			}
			if err := s.UseRef(ctx, "bb02", "job-1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("UseRef(unknown) = %v, want ErrNotFound", err)
			}
			if err := s.DeleteRef(ctx, in.Name); err != nil {
				t.Fatalf("DeleteRef: %v", err)
			}
			if err := s.DeleteRef(ctx, in.Name); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeleteRef again = %v, want ErrNotFound", err)
			}
		})

		t.Run("ConcurrentUseOneWinner", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			if err := s.InsertRef(ctx, store.Ref{Scope: "idv", Name: "cc03", KeyID: "k1", Ciphertext: []byte("x"),
				ExpiresAt: at.Add(time.Hour), SingleUse: true, CreatedAt: at}); err != nil {
				t.Fatal(err)
			}
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = s.UseRef(ctx, "cc03", string(rune('a'+i))) })
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, store.ErrRefUsed):
					t.Fatalf("UseRef: %v", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d consumers opened a single-use reference, want 1", wins)
			}
		})

		t.Run("PruneAndKeyCounts", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			for i, exp := range []time.Duration{-2 * time.Hour, -time.Hour, time.Hour} {
				if err := s.InsertRef(ctx, store.Ref{Scope: "idv", Name: string(rune('a' + i)), KeyID: "k1",
					Ciphertext: []byte{byte(i)}, ExpiresAt: at.Add(exp), CreatedAt: at}); err != nil {
					t.Fatal(err)
				}
			}
			counts, err := s.CountByKeyID(ctx)
			if err != nil || !reflect.DeepEqual(counts, []store.KeyCount{{Kind: store.KindRef, KeyID: "k1", Rows: 3}}) {
				t.Fatalf("CountByKeyID = %+v, %v", counts, err)
			}
			rows, err := s.ListEncrypted(ctx, store.ListEncryptedParams{Limit: 10})
			if err != nil || len(rows) != 3 || rows[0].Kind != store.KindRef || rows[0].Scope != "idv" {
				t.Fatalf("ListEncrypted = %+v, %v", rows, err)
			}
			n, err := s.ReencryptRows(ctx, []store.Reencrypt{{Old: rows[2], KeyID: "k2", Ciphertext: []byte("new")}})
			if err != nil || n != 1 {
				t.Fatalf("ReencryptRows = %d, %v", n, err)
			}
			if got, _ := s.GetRef(ctx, rows[2].Name); got.KeyID != "k2" || string(got.Ciphertext) != "new" {
				t.Fatalf("after ReencryptRows: %+v", got)
			}
			if n, err := s.PruneRefs(ctx, at, 1); err != nil || n != 1 {
				t.Fatalf("PruneRefs(limit 1) = %d, %v", n, err)
			}
			if n, err := s.PruneRefs(ctx, at, 100); err != nil || n != 1 {
				t.Fatalf("PruneRefs = %d, %v; want the second expired row", n, err)
			}
			if _, err := s.GetRef(ctx, "c"); err != nil {
				t.Fatalf("the unexpired row was pruned: %v", err)
			}
		})
	})
}
