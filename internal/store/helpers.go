package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/backlothq/backlot/jobs"
)

// This file holds the Go logic both backends share; only their SQL
// differs.

// TxFuncs are a driver transaction's two endings, for InTx.
type TxFuncs struct {
	Commit   func() error
	Rollback func()
}

// InTx runs fn on an open transaction: it commits if fn returns nil and
// rolls back if fn fails or panics (re-panicking). An error from fn that
// matches the driver's noRows sentinel also matches ErrNotFound.
func InTx[T any](tx T, t TxFuncs, noRows error, fn func(T) error) error {
	defer func() {
		if p := recover(); p != nil {
			t.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		t.Rollback()
		return NotFound(err, noRows)
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// NotFound translates a driver's no-rows sentinel to ErrNotFound, keeping
// any context wrapped around it; other errors pass through.
func NotFound(err, noRows error) error {
	switch {
	case err == noRows: //nolint:errorlint // the bare sentinel needs no context
		return ErrNotFound
	case errors.Is(err, noRows) && !errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Transition completes a one-row job state change (retry, cancel). update
// runs the change and returns the job, or an error matching ErrNotFound
// when no row matched; get then reads the job as it is. The job is absent
// (ErrNotFound), already in okState (returned as is: cancelling a
// cancelled job is a no-op), or in a state the change does not apply to
// (ErrJobState).
func Transition(update, get func() (*jobs.Job, error), okState jobs.State) (*jobs.Job, error) {
	j, err := update()
	if !errors.Is(err, ErrNotFound) {
		return j, err
	}
	if j, err = get(); err != nil {
		return nil, err
	}
	if okState != "" && j.State == okState {
		return j, nil
	}
	return nil, fmt.Errorf("job is %s: %w", j.State, ErrJobState)
}

// CheckDeletable refuses DeleteJobs for a state that is not finished.
func CheckDeletable(s jobs.State) error {
	switch s {
	case jobs.StateCompleted, jobs.StateFailed, jobs.StateCancelled:
		return nil
	}
	return fmt.Errorf("delete %s jobs: only finished jobs can be deleted: %w", s, ErrJobState)
}

// SortClaimed puts claimed jobs in the order ClaimJobs promises: oldest
// run_at first, then id.
func SortClaimed(js []*jobs.Job) {
	slices.SortFunc(js, func(a, b *jobs.Job) int {
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return cmpInt64(a.ID, b.ID)
	})
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// InTxResult runs fn in a transaction begun by writeTx (a backend's
// WriteTx) and returns fn's result once committed.
func InTxResult[T, R any](writeTx func(func(T) error) error, fn func(T) (R, error)) (R, error) {
	var res R
	err := writeTx(func(tx T) error {
		var err error
		res, err = fn(tx)
		return err
	})
	return res, err
}

// CheckSchema returns an error wrapping ErrSchemaBehind when migrations
// are pending.
func CheckSchema(ctx context.Context, s interface {
	SchemaStatus(context.Context) (SchemaStatus, error)
}) error {
	st, err := s.SchemaStatus(ctx)
	if err != nil {
		return err
	}
	if st.Behind() {
		return fmt.Errorf("schema at version %d, binary at %d: %w", st.Current, st.Latest, ErrSchemaBehind)
	}
	return nil
}

// PrepareSchema migrates s when migrate is set, and otherwise checks that
// no migration is pending (CheckSchema).
func PrepareSchema(ctx context.Context, s interface {
	SchemaStatus(context.Context) (SchemaStatus, error)
	Migrate(context.Context) error
}, migrate bool) error {
	if migrate {
		return s.Migrate(ctx)
	}
	return CheckSchema(ctx, s)
}
