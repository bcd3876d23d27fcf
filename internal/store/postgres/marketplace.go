package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// ReserveRate implements store.RateLimitStore with one atomic upsert: the
// row lock taken by ON CONFLICT DO UPDATE serialises instances reserving
// under the same key, so together they never exceed the budget.
func (db *DB) ReserveRate(ctx context.Context, key string, interval time.Duration, burst int, now time.Time) (time.Duration, error) {
	if err := store.CheckRate(interval, burst); err != nil {
		return 0, fmt.Errorf("reserve rate %q: %w", key, err)
	}
	var tat float64
	err := db.pool.QueryRow(ctx,
		`INSERT INTO rate_limits (key, tat) VALUES ($1, $2::float8 + $3::float8)
		 ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limits.tat, $2::float8) + $3::float8
		 RETURNING tat`, key, store.UnixSeconds(now), interval.Seconds()).Scan(&tat)
	if err != nil {
		return 0, fmt.Errorf("reserve rate %q: %w", key, err)
	}
	return store.RateWait(tat, now, interval, burst), nil
}

// EventCheckpoint implements store.EventCheckpointStore.
func (db *DB) EventCheckpoint(ctx context.Context, marketplace string) (store.EventCheckpoint, error) {
	cp := store.EventCheckpoint{Marketplace: marketplace}
	var (
		seq              *int64
		eventAt, startAt *time.Time
	)
	err := db.pool.QueryRow(ctx,
		`SELECT sequence_id, event_at, start_at, updated_at FROM marketplace_event_checkpoints WHERE marketplace = $1`,
		marketplace).Scan(&seq, &eventAt, &startAt, &cp.UpdatedAt)
	if err != nil {
		return cp, fmt.Errorf("event checkpoint %q: %w", marketplace, notFound(err))
	}
	if seq != nil {
		cp.SequenceID, cp.HasSequence = *seq, true
	}
	if eventAt != nil {
		cp.EventAt = eventAt.UTC()
	}
	if startAt != nil {
		cp.StartAt = startAt.UTC()
	}
	cp.UpdatedAt = cp.UpdatedAt.UTC()
	return cp, nil
}

// PutEventCheckpointTx implements store.EventCheckpointStore.
func (db *DB) PutEventCheckpointTx(ctx context.Context, t store.Tx, cp store.EventCheckpoint) error {
	tx, err := db.pgxTx(t)
	if err != nil {
		return err
	}
	var seq *int64
	if cp.HasSequence {
		seq = &cp.SequenceID
	}
	_, err = tx.Exec(ctx,
		`INSERT INTO marketplace_event_checkpoints (marketplace, sequence_id, event_at, start_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (marketplace) DO UPDATE SET sequence_id = excluded.sequence_id, event_at = excluded.event_at,
		   start_at = excluded.start_at, updated_at = excluded.updated_at`,
		cp.Marketplace, seq, nullTime(cp.EventAt), nullTime(cp.StartAt), cp.UpdatedAt)
	if err != nil {
		return fmt.Errorf("put event checkpoint %q: %w", cp.Marketplace, err)
	}
	return nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
