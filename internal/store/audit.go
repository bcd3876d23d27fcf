package store

import (
	"context"
	"fmt"
	"time"
)

// Audit actions: what an entry records. Console and CLI actions on jobs
// and keys, and the state changes of OAuth connections.
const (
	AuditJobRetry       = "job.retry"
	AuditJobCancel      = "job.cancel"
	AuditJobBulkRetry   = "jobs.bulk_retry"
	AuditJobBulkCancel  = "jobs.bulk_cancel"
	AuditJobPurge       = "jobs.purge"
	AuditKeysRotate     = "keys.rotate"
	AuditConnActive     = "connection.active"
	AuditConnFailing    = "connection.failing"
	AuditConnExpired    = "connection.expired"
	AuditConnDisconnect = "connection.disconnected"
)

// AuditActorCLI is the actor of the command line ("cli:<os user>" when the
// user is known); AuditActorSystem that of backlot itself.
const (
	AuditActorCLI    = "cli"
	AuditActorSystem = "system"
)

// auditDetailMaxLength cuts an entry's detail.
const auditDetailMaxLength = 64 << 10

// AuditStore keeps the audit log (who did what to which rows, when, from
// where). Entries are append-only; only retention deletes them.
type AuditStore interface {
	// InsertAudit appends one entry and returns its id.
	InsertAudit(ctx context.Context, e AuditEntry) (int64, error)
	// InsertAuditTx appends one entry inside the caller's transaction, so
	// the entry commits (or not) with the change it describes.
	InsertAuditTx(ctx context.Context, tx Tx, e AuditEntry) error
	// ListAudit returns entries newest first, paged by id.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// DeleteAudit deletes up to limit entries (0: no limit) written before
	// before, oldest first, and reports how many.
	DeleteAudit(ctx context.Context, before time.Time, limit int) (int64, error)
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID int64
	// At is when it happened (microsecond precision).
	At time.Time
	// Actor is who: "<authenticator>:<subject>" for a console user, "cli"
	// or "cli:<os user>" for the command line, "system" for backlot itself
	// (a connection's refresh outcome).
	Actor string
	// Action is one of the Audit* actions.
	Action string
	// Target names the rows: "job 42", a filter such as
	// "state=failed kind=email.send", "connection acme scope …", "keys".
	Target string
	// Count is how many rows the action changed.
	Count int64
	// Detail is a JSON object with the rest (job ids, skipped ids, key
	// ids); at most 64 KiB, cut beyond.
	Detail string
	// Address is the client address of the request ("" from the CLI).
	Address string
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	Action string
	Actor  string
	// BeforeID pages: only entries with id < BeforeID.
	BeforeID int64
	// Limit defaults to 100.
	Limit int
}

// AuditRetentionDefault is how long audit entries are kept (90 days).
const AuditRetentionDefault = 90 * 24 * time.Hour

// AuditInsertSQL is the one insert both backends run: the audit table has
// the same columns and types on both (times as Unix microseconds), and Tx
// takes $N placeholders everywhere.
const AuditInsertSQL = `INSERT INTO backlot_audit (at, actor, action, target, count, detail, address)
	VALUES ($1, $2, $3, $4, $5, $6, $7)`

// AuditArgs returns the arguments of AuditInsertSQL for e, with Detail
// cut to its maximum length.
func AuditArgs(e AuditEntry) []any {
	d := e.Detail
	if len(d) > auditDetailMaxLength {
		d = d[:auditDetailMaxLength]
	}
	if d == "" {
		d = "{}"
	}
	return []any{e.At.UnixMicro(), e.Actor, e.Action, e.Target, e.Count, d, e.Address}
}

// InsertAuditTx is the shared body of both backends' InsertAuditTx.
func InsertAuditTx(ctx context.Context, tx Tx, e AuditEntry) error {
	if _, err := tx.Exec(ctx, AuditInsertSQL, AuditArgs(e)...); err != nil {
		return fmt.Errorf("insert audit entry %s: %w", e.Action, err)
	}
	return nil
}
