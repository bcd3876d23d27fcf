package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

// runTx exercises RunTx: a user's own statement and InsertJobsTx commit
// together or not at all, with $N placeholders on both backends, and a
// transaction is refused by a store that did not begin it.
func runTx(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Tx", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := open(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		if err := s.RunTx(ctx, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, `CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER NOT NULL)`)
			return err
		}); err != nil {
			t.Fatalf("create table: %v", err)
		}
		write := func(id string, total int, fail error) (jobs.EnqueueResult, error) {
			var res jobs.EnqueueResult
			err := s.RunTx(ctx, func(tx store.Tx) error {
				n, err := tx.Exec(ctx, `INSERT INTO orders (id, total) VALUES ($1, $2)`, id, total)
				if err != nil {
					return err
				}
				if n != 1 {
					t.Errorf("Exec affected %d rows, want 1", n)
				}
				r, err := s.InsertJobsTx(ctx, tx, now, []store.JobInsert{{Kind: "order.placed", Queue: "default",
					Payload: []byte(`{"id":"` + id + `"}`), MaxAttempts: 3, RunAt: now}})
				if err != nil {
					return err
				}
				res = r[0]
				return fail
			})
			return res, err
		}

		kept, err := write("o1", 42, nil)
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		boom := errors.New("boom")
		dropped, err := write("o2", 7, boom)
		if !errors.Is(err, boom) {
			t.Fatalf("rollback: err = %v, want boom", err)
		}

		var total int
		if err := s.RunTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, `SELECT total FROM orders WHERE id = $1`, "o1").Scan(&total)
		}); err != nil || total != 42 {
			t.Fatalf("committed row: total %d, err %v", total, err)
		}
		if j, err := s.GetJob(ctx, kept.ID); err != nil || j.Kind != "order.placed" {
			t.Fatalf("committed job: %+v, %v", j, err)
		}
		err = s.RunTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, `SELECT total FROM orders WHERE id = $1`, "o2").Scan(&total)
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rolled-back row: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetJob(ctx, dropped.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rolled-back job: err = %v, want ErrNotFound", err)
		}

		other := open(t)
		err = other.RunTx(ctx, func(tx store.Tx) error {
			_, err := s.InsertJobsTx(ctx, tx, now, []store.JobInsert{{Kind: "k", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1, RunAt: now}})
			return err
		})
		if err == nil {
			t.Fatal("InsertJobsTx with another store's transaction: want an error")
		}
	})
}
