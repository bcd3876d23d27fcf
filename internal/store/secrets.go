package store

import (
	"context"
	"fmt"
	"time"
)

// KindSecret is the Kind of the rows of the secrets table (the secret
// store's values). It is also the first field of their associated data, so
// a ciphertext cannot move between kinds.
const KindSecret = "secret"

// SecretStore keeps the encrypted values of the secret store. The store
// never sees a plaintext: the caller (internal/secrets) seals values with
// the keyring before PutSecret and opens them after GetSecret.
type SecretStore interface {
	// PutSecret inserts or replaces the secret (s.Scope, s.Name).
	PutSecret(ctx context.Context, s Secret) error
	// GetSecret reads one secret; ErrNotFound when there is none.
	GetSecret(ctx context.Context, scope, name string) (Secret, error)
	// DeleteSecret removes one secret; ErrNotFound when there was none.
	DeleteSecret(ctx context.Context, scope, name string) error

	EncryptedStore
}

// Secret is one row of the secrets table.
type Secret struct {
	// Scope is the encoded owner of the secret (secrets.Scope.String()).
	Scope string
	// Name tells apart the secrets of one scope.
	Name string
	// KeyID is the id of the key Ciphertext is sealed under (the same id
	// the ciphertext's header carries), kept in a column so that counting
	// and finding rows per key needs no decryption.
	KeyID string
	// Ciphertext is the sealed value.
	Ciphertext []byte
	// UpdatedAt is when the value was last put. Millisecond precision.
	UpdatedAt time.Time
}

// EncryptedStore is what key rotation and the start-up key check need from
// every table that holds ciphertext, whatever it stores: the secret store
// today, OAuth connections and sealed-reference handles as they arrive.
//
// Each such table has one ciphertext column and a key_id column beside it,
// and its rows are identified by (Scope, Name), which are also (with the
// table's Kind) the associated data the ciphertext is bound to. A new
// encrypted table joins rotation by being added to the backend's list of
// encrypted tables; nothing here changes.
type EncryptedStore interface {
	// CountByKeyID counts the rows of every encrypted table by the key
	// they are sealed under, one KeyCount per (kind, key id) that has
	// rows, ordered by kind then key id.
	CountByKeyID(ctx context.Context) ([]KeyCount, error)
	// ListEncrypted returns up to p.Limit rows whose key id is not
	// p.ExceptKeyID, in (Kind, Scope, Name) order, starting after p.After.
	ListEncrypted(ctx context.Context, p ListEncryptedParams) ([]EncryptedRow, error)
	// ReencryptRows replaces the ciphertexts of a batch of rows in one
	// transaction. A row is replaced only if its ciphertext is still
	// exactly Old.Ciphertext: a row rewritten or deleted since it was
	// listed is left as it is and not counted. It reports how many rows
	// were replaced. Either the whole batch commits or none of it.
	ReencryptRows(ctx context.Context, rows []Reencrypt) (int64, error)
}

// KeyCount is how many rows of one kind are sealed under one key.
type KeyCount struct {
	Kind  string
	KeyID string
	Rows  int64
}

// EncryptedRef identifies one row of an encrypted table.
type EncryptedRef struct {
	Kind  string
	Scope string
	Name  string
}

// Less orders refs by (Kind, Scope, Name), bytewise: the order
// ListEncrypted returns them in.
func (r EncryptedRef) Less(o EncryptedRef) bool {
	if r.Kind != o.Kind {
		return r.Kind < o.Kind
	}
	if r.Scope != o.Scope {
		return r.Scope < o.Scope
	}
	return r.Name < o.Name
}

// EncryptedRow is one row of an encrypted table, as rotation sees it.
type EncryptedRow struct {
	EncryptedRef
	KeyID      string
	Ciphertext []byte
}

// ListEncryptedParams selects a page of ListEncrypted.
type ListEncryptedParams struct {
	// ExceptKeyID leaves out the rows sealed under this key (the current
	// one, during rotation). Empty: every row.
	ExceptKeyID string
	// After, when set, starts the page after this row (keyset paging).
	After *EncryptedRef
	// Limit bounds the page; it must be positive.
	Limit int
}

// Reencrypt is one row's new ciphertext for ReencryptRows.
type Reencrypt struct {
	// Old is the row as listed; its Ciphertext is compared before writing.
	Old EncryptedRow
	// KeyID and Ciphertext are the replacement.
	KeyID      string
	Ciphertext []byte
}

// EncryptedTable is one table that holds ciphertext (see EncryptedStore):
// columns scope, name, key_id and ciphertext, with (scope, name) unique
// (on PostgreSQL collated "C", so keyset paging is bytewise on both).
type EncryptedTable struct {
	Kind  string // the kind bound into each row's associated data
	Table string
}

// EncryptedTables lists every encrypted table in kind order, for both
// backends. A new table of ciphertext joins rotation, `backlot keys
// status` and the start-up key check by being added here.
func EncryptedTables() []EncryptedTable {
	return []EncryptedTable{
		{Kind: KindConnection, Table: "connections"},
		{Kind: KindRef, Table: "refs"},
		{Kind: KindSecret, Table: "secrets"},
	}
}

// EncryptedTableOf returns the encrypted table of kind.
func EncryptedTableOf(kind string) (EncryptedTable, error) {
	for _, t := range EncryptedTables() {
		if t.Kind == kind {
			return t, nil
		}
	}
	return EncryptedTable{}, fmt.Errorf("no encrypted table of kind %q", kind)
}
