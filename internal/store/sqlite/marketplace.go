package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// ReserveRate implements store.RateLimitStore with one upsert on the
// writer, which SQLite serialises.
func (db *DB) ReserveRate(ctx context.Context, key string, interval time.Duration, burst int, now time.Time) (time.Duration, error) {
	if err := store.CheckRate(interval, burst); err != nil {
		return 0, fmt.Errorf("reserve rate %q: %w", key, err)
	}
	n, iv := store.UnixSeconds(now), interval.Seconds()
	var tat float64
	err := db.w.QueryRowContext(ctx,
		`INSERT INTO rate_limits (key, tat) VALUES (?1, ?2 + ?3)
		 ON CONFLICT (key) DO UPDATE SET tat = MAX(rate_limits.tat, ?2) + ?3
		 RETURNING tat`, key, n, iv).Scan(&tat)
	if err != nil {
		return 0, fmt.Errorf("reserve rate %q: %w", key, err)
	}
	return store.RateWait(tat, now, interval, burst), nil
}

// EventCheckpoint implements store.EventCheckpointStore.
func (db *DB) EventCheckpoint(ctx context.Context, marketplace string) (store.EventCheckpoint, error) {
	cp := store.EventCheckpoint{Marketplace: marketplace}
	var (
		seq                         sql.NullInt64
		eventAt, startAt, updatedAt int64
	)
	err := db.r.QueryRowContext(ctx,
		`SELECT sequence_id, event_at, start_at, updated_at FROM marketplace_event_checkpoints WHERE marketplace = ?`,
		marketplace).Scan(&seq, &eventAt, &startAt, &updatedAt)
	if err != nil {
		return cp, fmt.Errorf("event checkpoint %q: %w", marketplace, notFound(err))
	}
	cp.SequenceID, cp.HasSequence = seq.Int64, seq.Valid
	cp.EventAt, cp.StartAt, cp.UpdatedAt = fromMillis(eventAt), fromMillis(startAt), fromMillis(updatedAt)
	return cp, nil
}

// PutEventCheckpointTx implements store.EventCheckpointStore.
func (db *DB) PutEventCheckpointTx(ctx context.Context, t store.Tx, cp store.EventCheckpoint) error {
	tx, err := db.sqlTx(t)
	if err != nil {
		return err
	}
	var seq sql.NullInt64
	if cp.HasSequence {
		seq = sql.NullInt64{Int64: cp.SequenceID, Valid: true}
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO marketplace_event_checkpoints (marketplace, sequence_id, event_at, start_at, updated_at)
		 VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (marketplace) DO UPDATE SET sequence_id = excluded.sequence_id, event_at = excluded.event_at,
		   start_at = excluded.start_at, updated_at = excluded.updated_at`,
		cp.Marketplace, seq, toMillis(cp.EventAt), toMillis(cp.StartAt), toMillis(cp.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put event checkpoint %q: %w", cp.Marketplace, err)
	}
	return nil
}

// toMillis is Unix milliseconds, 0 for the zero time.
func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
