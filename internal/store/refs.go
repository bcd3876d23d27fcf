package store

import (
	"context"
	"errors"
	"time"
)

// KindRef is the Kind of the rows of the refs table (the stored form of
// sealed references). It is also the first field of their associated
// data, so a reference's ciphertext cannot move to another table.
const KindRef = "ref"

// ErrRefUsed is returned by UseRef when a single-use reference was already
// opened by another consumer.
var ErrRefUsed = errors.New("reference already used")

// RefStore keeps the rows behind sealed references that are too long (or
// too secret) to travel inline. The store never sees a plaintext: the
// caller seals the payload with the keyring, bound to (KindRef, Scope,
// Name), before InsertRef.
type RefStore interface {
	// InsertRef adds a row; a row with the same Name is an error (names
	// are hashes of 16 random bytes, so that never happens by chance).
	InsertRef(ctx context.Context, r Ref) error
	// GetRef reads the row named name; ErrNotFound when there is none.
	GetRef(ctx context.Context, name string) (Ref, error)
	// UseRef marks a single-use row as opened by consumer, atomically: it
	// succeeds when the row is unused or already used by the same consumer
	// (a job retrying), and fails with ErrRefUsed when another consumer
	// used it, ErrNotFound when the row is gone.
	UseRef(ctx context.Context, name, consumer string) error
	// DeleteRef removes the row named name; ErrNotFound when there was none.
	DeleteRef(ctx context.Context, name string) error
	// PruneRefs deletes up to limit rows that expired before before and
	// reports how many it deleted.
	PruneRefs(ctx context.Context, before time.Time, limit int) (int64, error)
}

// Ref is one row of the refs table.
type Ref struct {
	// Scope is the reference's purpose: references of one purpose never
	// open as another.
	Scope string
	// Name is the lower-case hex SHA-256 of the handle the third party
	// holds, so the table never holds a usable handle.
	Name string
	// KeyID is the id of the key Ciphertext is sealed under.
	KeyID string
	// Ciphertext is the sealed payload (with its expiry inside).
	Ciphertext []byte
	// ExpiresAt is when the reference stops opening; rows past it are
	// pruned. Millisecond precision.
	ExpiresAt time.Time
	// SingleUse: the reference opens for one consumer only.
	SingleUse bool
	// UsedBy is the consumer that opened a single-use reference; empty
	// while unused.
	UsedBy string
	// CreatedAt is when the reference was issued. Millisecond precision.
	CreatedAt time.Time
}
