package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// runAudit exercises store.AuditStore and store.ConsoleStore.
func runAudit(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 5, 6, 7, 8, 9, 123_456_000, time.UTC)

	t.Run("Audit", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		in := store.AuditEntry{At: base, Actor: "staff:alice", Action: store.AuditJobRetry, Target: "job 7",
			Count: 1, Detail: `{"ids":[7]}`, Address: "192.0.2.1"}
		id, err := s.InsertAudit(ctx, in)
		if err != nil || id <= 0 {
			t.Fatalf("InsertAudit = %d, %v", id, err)
		}
		// In a transaction: kept on commit, gone on rollback.
		if err := s.RunTx(ctx, func(tx store.Tx) error {
			return s.InsertAuditTx(ctx, tx, store.AuditEntry{At: base.Add(time.Hour), Actor: "system", Action: store.AuditConnExpired, Target: "connection acme"})
		}); err != nil {
			t.Fatalf("InsertAuditTx: %v", err)
		}
		boom := errors.New("boom")
		if err := s.RunTx(ctx, func(tx store.Tx) error {
			if err := s.InsertAuditTx(ctx, tx, store.AuditEntry{At: base, Actor: "x", Action: "rolled.back"}); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("RunTx = %v, want boom", err)
		}
		all, err := s.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Action != store.AuditConnExpired || all[1].ID != id {
			t.Fatalf("ListAudit = %+v", all)
		}
		got := all[1]
		in.ID = id
		if !got.At.Equal(in.At) || got.Actor != in.Actor || got.Target != in.Target || got.Count != 1 ||
			got.Detail != in.Detail || got.Address != in.Address {
			t.Fatalf("entry = %+v, want %+v", got, in)
		}
		if all[0].Detail != "{}" {
			t.Errorf("empty detail stored as %q, want {}", all[0].Detail)
		}
		page, err := s.ListAudit(ctx, store.AuditFilter{BeforeID: all[0].ID})
		if err != nil || len(page) != 1 || page[0].ID != id {
			t.Fatalf("page = %+v, %v", page, err)
		}
		byAction, err := s.ListAudit(ctx, store.AuditFilter{Action: store.AuditConnExpired})
		if err != nil || len(byAction) != 1 {
			t.Fatalf("by action = %+v, %v", byAction, err)
		}
		n, err := s.DeleteAudit(ctx, base.Add(time.Minute), 0)
		if err != nil || n != 1 {
			t.Fatalf("DeleteAudit = %d, %v; want 1", n, err)
		}
		left, _ := s.ListAudit(ctx, store.AuditFilter{})
		if len(left) != 1 || left[0].Action != store.AuditConnExpired {
			t.Fatalf("after delete = %+v", left)
		}
	})

	t.Run("ConsoleQueries", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		big := `{"s":"` + strings.Repeat("é", 3000) + `"}`
		var batch []store.JobInsert
		for i := range 30 {
			kind := "a.kind"
			if i%3 == 0 {
				kind = "b.kind"
			}
			in := store.JobInsert{Kind: kind, Queue: "default", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i)), MaxAttempts: 3}
			if i == 29 {
				in.Payload = []byte(big)
				in.DedupeKey = "webhook:/hooks/x_y:1"
			}
			if i == 28 {
				in.DedupeKey = "webhook:/hooks/xzy:1" // _ in the prefix must not match z
			}
			batch = append(batch, in)
		}
		if _, err := s.InsertJobs(ctx, base, batch); err != nil {
			t.Fatal(err)
		}
		page, err := s.ListJobSummaries(ctx, store.ConsoleJobFilter{Limit: 10})
		if err != nil || len(page) != 10 {
			t.Fatalf("ListJobSummaries = %d, %v", len(page), err)
		}
		first := page[0]
		if !first.PayloadCut || len(first.Payload) > store.ConsolePayloadMaxDefault || len(first.Payload) < store.ConsolePayloadMaxDefault-1 {
			t.Fatalf("big payload: cut=%v len=%d", first.PayloadCut, len(first.Payload))
		}
		if !strings.HasPrefix(big, string(first.Payload)) {
			t.Fatal("cut payload is not a prefix of the payload (split a character?)")
		}
		if page[1].PayloadCut {
			t.Fatal("small payload marked cut")
		}
		next, err := s.ListJobSummaries(ctx, store.ConsoleJobFilter{Limit: 10, BeforeID: page[9].ID})
		if err != nil || len(next) != 10 || next[0].ID >= page[9].ID {
			t.Fatalf("next page = %d, %v", len(next), err)
		}
		b, err := s.ListJobSummaries(ctx, store.ConsoleJobFilter{Kind: "b.kind", State: jobs.StateAvailable})
		if err != nil || len(b) != 10 {
			t.Fatalf("b.kind = %d, %v", len(b), err)
		}
		hooks, err := s.ListJobSummaries(ctx, store.ConsoleJobFilter{DedupePrefix: "webhook:/hooks/x_y:"})
		if err != nil || len(hooks) != 1 || hooks[0].ID != first.ID {
			t.Fatalf("dedupe prefix = %+v, %v", hooks, err)
		}
		for _, tt := range []struct {
			f     store.ConsoleJobFilter
			limit int
			want  int64
		}{
			{store.ConsoleJobFilter{}, 100, 30},
			{store.ConsoleJobFilter{}, 5, 6},
			{store.ConsoleJobFilter{Kind: "b.kind"}, 100, 10},
			{store.ConsoleJobFilter{State: jobs.StateFailed}, 100, 0},
		} {
			n, err := s.CountJobsCapped(ctx, tt.f, tt.limit)
			if err != nil || n != tt.want {
				t.Errorf("CountJobsCapped(%+v, %d) = %d, %v; want %d", tt.f, tt.limit, n, err, tt.want)
			}
		}
		kinds, err := s.JobKinds(ctx, 10)
		if err != nil || strings.Join(kinds, ",") != "a.kind,b.kind" {
			t.Fatalf("JobKinds = %v, %v", kinds, err)
		}
		if k, _ := s.JobKinds(ctx, 1); len(k) != 1 {
			t.Fatalf("JobKinds limit 1 = %v", k)
		}
	})

	t.Run("ConnectionSummaries", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for i, sc := range []string{"s1", "s2", "s3"} {
			st := store.ConnectionActive
			if i == 1 {
				st = store.ConnectionExpired
			}
			if err := s.PutConnection(ctx, store.Connection{Scope: sc, Name: "acme", KeyID: "k1", Ciphertext: []byte("secret"),
				State: st, Scopes: "read", CreatedAt: base, UpdatedAt: base}); err != nil {
				t.Fatal(err)
			}
		}
		cs, err := s.ListConnectionSummaries(ctx, store.ConnectionFilter{Limit: 2})
		if err != nil || len(cs) != 2 || cs[0].Scope != "s1" || cs[1].Scope != "s2" {
			t.Fatalf("page 1 = %+v, %v", cs, err)
		}
		if len(cs[0].Ciphertext) != 0 {
			t.Fatal("ciphertext returned")
		}
		cs, err = s.ListConnectionSummaries(ctx, store.ConnectionFilter{AfterScope: "s2", AfterName: "acme"})
		if err != nil || len(cs) != 1 || cs[0].Scope != "s3" {
			t.Fatalf("page 2 = %+v, %v", cs, err)
		}
		cs, err = s.ListConnectionSummaries(ctx, store.ConnectionFilter{State: store.ConnectionExpired})
		if err != nil || len(cs) != 1 || cs[0].Scope != "s2" || cs[0].State != store.ConnectionExpired {
			t.Fatalf("expired = %+v, %v", cs, err)
		}
	})
}
