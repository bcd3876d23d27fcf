package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// runMarketplace exercises the shared rate-limit budgets and the event
// checkpoints.
func runMarketplace(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ReserveRate", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := open(t)
		now := time.Unix(1_700_000_000, 0)
		const iv = 500 * time.Millisecond
		// A burst of 3 goes at once; the 4th waits one interval, the 5th two.
		want := []time.Duration{0, 0, 0, iv, 2 * iv}
		for i, w := range want {
			got, err := s.ReserveRate(ctx, "mkt:main:query", iv, 3, now)
			if err != nil {
				t.Fatalf("reserve %d: %v", i, err)
			}
			if d := got - w; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("reserve %d: wait %v, want %v", i, got, w)
			}
		}
		// Another key has its own budget.
		if got, err := s.ReserveRate(ctx, "mkt:main:command", iv, 1, now); err != nil || got != 0 {
			t.Errorf("other key: wait %v, %v; want 0", got, err)
		}
		// Time refills the budget, up to the burst only.
		later := now.Add(time.Hour)
		for i := range 4 {
			got, err := s.ReserveRate(ctx, "mkt:main:query", iv, 3, later)
			if err != nil {
				t.Fatal(err)
			}
			if (i < 3) != (got == 0) {
				t.Errorf("after an hour, reserve %d: wait %v", i, got)
			}
		}
		for _, bad := range []struct {
			iv    time.Duration
			burst int
		}{{0, 1}, {-time.Second, 1}, {time.Second, 0}} {
			if _, err := s.ReserveRate(ctx, "bad", bad.iv, bad.burst, now); err == nil {
				t.Errorf("ReserveRate(%v, %d) accepted", bad.iv, bad.burst)
			}
		}
	})

	t.Run("ReserveRateConcurrent", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := open(t)
		now := time.Unix(1_700_000_000, 0)
		const n, burst = 20, 5
		var (
			mu    sync.Mutex
			waits = map[time.Duration]int{}
			wg    sync.WaitGroup
		)
		for range n {
			wg.Go(func() {
				w, err := s.ReserveRate(ctx, "k", time.Second, burst, now)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				waits[w.Round(time.Millisecond)]++
				mu.Unlock()
			})
		}
		wg.Wait()
		// Every reservation got its own slot: burst at once, then one a second.
		if waits[0] != burst {
			t.Errorf("%d reservations without wait, want %d (%v)", waits[0], burst, waits)
		}
		for i := 1; i <= n-burst; i++ {
			if waits[time.Duration(i)*time.Second] != 1 {
				t.Errorf("wait %ds given %d times, want 1 (%v)", i, waits[time.Duration(i)*time.Second], waits)
			}
		}
	})

	t.Run("EventCheckpoint", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := open(t)
		if _, err := s.EventCheckpoint(ctx, "main"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("before any write: err = %v, want ErrNotFound", err)
		}
		at := time.Unix(1_700_000_000, 123_000_000).UTC()
		put := func(cp store.EventCheckpoint, fail error) error {
			return s.RunTx(ctx, func(tx store.Tx) error {
				if err := s.PutEventCheckpointTx(ctx, tx, cp); err != nil {
					return err
				}
				return fail
			})
		}
		first := store.EventCheckpoint{Marketplace: "main", StartAt: at, UpdatedAt: at}
		if err := put(first, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.EventCheckpoint(ctx, "main")
		if err != nil || got.HasSequence || !got.StartAt.Equal(at) || !got.EventAt.IsZero() || !got.UpdatedAt.Equal(at) {
			t.Fatalf("start-only checkpoint read back as %+v, %v", got, err)
		}
		next := store.EventCheckpoint{Marketplace: "main", SequenceID: 42, HasSequence: true,
			EventAt: at.Add(time.Second), StartAt: at, UpdatedAt: at.Add(2 * time.Second)}
		if err := put(next, nil); err != nil {
			t.Fatal(err)
		}
		// A rolled-back write leaves the checkpoint where it was.
		boom := errors.New("boom")
		if err := put(store.EventCheckpoint{Marketplace: "main", SequenceID: 99, HasSequence: true, UpdatedAt: at}, boom); !errors.Is(err, boom) {
			t.Fatalf("rollback: %v", err)
		}
		got, err = s.EventCheckpoint(ctx, "main")
		if err != nil || !got.HasSequence || got.SequenceID != 42 || !got.EventAt.Equal(next.EventAt) || !got.UpdatedAt.Equal(next.UpdatedAt) {
			t.Fatalf("checkpoint = %+v, %v; want sequence 42", got, err)
		}
		if _, err := s.EventCheckpoint(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("other marketplace: err = %v, want ErrNotFound", err)
		}
	})
}
