package secrets

import (
	"context"
	"fmt"
	"strings"

	"github.com/backlothq/backlot/internal/store"
)

// MissingKeysError is returned by CheckKeys (and Rotate) when rows are
// sealed under keys the keyring does not hold: those rows could not be
// read, so backlot refuses to start rather than fail at the first one.
type MissingKeysError struct {
	// Missing lists each absent key id with its row count, by key id.
	Missing []KeyRows
}

func (e *MissingKeysError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = fmt.Sprintf("%d rows are sealed under key %q, which is not in keys", m.Rows, m.KeyID)
	}
	return strings.Join(parts, "; ") +
		": put the key back in keys (after the current key) and run `backlot keys rotate` before removing it"
}

// CheckKeys returns a *MissingKeysError naming each key id and its row
// count when rows of any encrypted table are sealed under a key missing
// from keys (nil keys: no keys configured). A key can thus be retired only
// after `backlot keys rotate` has moved its rows to the current key.
func CheckKeys(ctx context.Context, db store.EncryptedStore, keys *Keyring) error {
	counts, err := db.CountByKeyID(ctx)
	if err != nil {
		return fmt.Errorf("check keys: %w", err)
	}
	return missingKeys(counts, keys)
}

func missingKeys(counts []store.KeyCount, keys *Keyring) error {
	var missing []KeyRows
	for _, kr := range byKey(counts) {
		if kr.Rows > 0 && !keys.Has(kr.KeyID) {
			missing = append(missing, kr)
		}
	}
	if len(missing) > 0 {
		return &MissingKeysError{Missing: missing}
	}
	return nil
}

// KeyStatus is one line of `backlot keys status`.
type KeyStatus struct {
	KeyID string
	// Rows sealed under the key, all encrypted tables together.
	Rows int64
	// Configured: the key is in the keyring. Current: it is the first.
	Configured bool
	Current    bool
}

// Status lists every configured key (in configuration order) and then
// every key id that rows use but the keyring lacks, with row counts.
func Status(ctx context.Context, db store.EncryptedStore, keys *Keyring) ([]KeyStatus, error) {
	counts, err := db.CountByKeyID(ctx)
	if err != nil {
		return nil, fmt.Errorf("key status: %w", err)
	}
	rows := map[string]int64{}
	for _, kr := range byKey(counts) {
		rows[kr.KeyID] = kr.Rows
	}
	var out []KeyStatus
	for _, id := range keys.IDs() {
		out = append(out, KeyStatus{KeyID: id, Rows: rows[id], Configured: true, Current: id == keys.Current()})
	}
	for _, kr := range byKey(counts) {
		if !keys.Has(kr.KeyID) {
			out = append(out, KeyStatus{KeyID: kr.KeyID, Rows: kr.Rows})
		}
	}
	return out, nil
}
