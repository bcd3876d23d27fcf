package secrets

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/backlothq/backlot/internal/store"
)

// RotateBatchDefault is how many rows Rotate re-encrypts per transaction
// unless told otherwise.
const RotateBatchDefault = 500

// RotateOptions tune Rotate.
type RotateOptions struct {
	// Batch is the number of rows re-encrypted per transaction. Default
	// RotateBatchDefault.
	Batch int
	// DryRun counts the rows to rotate and writes nothing.
	DryRun bool
	// Progress, when set, is called after each committed batch with the
	// rows rotated so far and the rows that were to rotate at the start.
	Progress func(done, total int64)
}

// RotateResult says what Rotate did.
type RotateResult struct {
	// Current is the key every rotated row is now sealed under.
	Current string
	// ByKey counts, at the start, the rows not under Current per key id.
	ByKey []KeyRows
	// Total is the sum of ByKey: the rows there were to rotate.
	Total int64
	// Rotated is how many rows were re-encrypted and committed.
	Rotated int64
	// Skipped is how many listed rows were rewritten or deleted by someone
	// else before their batch committed; they were left as they were.
	Skipped int64
}

// KeyRows is how many rows are sealed under one key id, all kinds
// together.
type KeyRows struct {
	KeyID string
	Rows  int64
}

// Rotate re-encrypts every row of every encrypted table that is not sealed
// under the keyring's current key, opts.Batch rows per transaction. Each
// batch commits on its own, so a crash loses at most the batch in flight
// and a rerun carries on with the rows still under old keys. Any failure
// (a row that does not open, the store) stops it: the rows of the failing
// batch before the bad row are committed, nothing is half-written, and the
// error names the row. Rows sealed under a key missing from the keyring
// stop it before anything is written.
func Rotate(ctx context.Context, db store.EncryptedStore, keys *Keyring, opts RotateOptions) (RotateResult, error) {
	res := RotateResult{Current: keys.Current()}
	if res.Current == "" {
		return res, ErrNoKeys
	}
	if opts.Batch <= 0 {
		opts.Batch = RotateBatchDefault
	}
	counts, err := db.CountByKeyID(ctx)
	if err != nil {
		return res, fmt.Errorf("rotate: %w", err)
	}
	if err := missingKeys(counts, keys); err != nil {
		return res, err
	}
	for _, kr := range byKey(counts) {
		if kr.KeyID != res.Current {
			res.ByKey = append(res.ByKey, kr)
			res.Total += kr.Rows
		}
	}
	if opts.DryRun || res.Total == 0 {
		return res, nil
	}

	var after *store.EncryptedRef
	for {
		rows, err := db.ListEncrypted(ctx, store.ListEncryptedParams{ExceptKeyID: res.Current, After: after, Limit: opts.Batch})
		if err != nil {
			return res, fmt.Errorf("rotate after %d rows: %w", res.Rotated, err)
		}
		if len(rows) == 0 {
			break
		}
		batch := make([]store.Reencrypt, 0, len(rows))
		var rowErr error
		for _, r := range rows {
			ct, err := reseal(keys, r)
			if err != nil {
				rowErr = fmt.Errorf("rotate %s %s %q (under key %q): %w", r.Kind, r.Scope, r.Name, r.KeyID, err)
				break
			}
			batch = append(batch, store.Reencrypt{Old: r, KeyID: res.Current, Ciphertext: ct})
		}
		if len(batch) > 0 {
			n, err := db.ReencryptRows(ctx, batch)
			if err != nil {
				return res, fmt.Errorf("rotate after %d rows: %w", res.Rotated, err)
			}
			res.Rotated += n
			res.Skipped += int64(len(batch)) - n
			if opts.Progress != nil {
				opts.Progress(res.Rotated, res.Total)
			}
		}
		if rowErr != nil {
			return res, rowErr
		}
		last := rows[len(rows)-1].EncryptedRef
		after = &last
	}

	// Rows an instance with an older keyring wrote during the rotation are
	// still under an old key; say so rather than report success.
	counts, err = db.CountByKeyID(ctx)
	if err != nil {
		return res, fmt.Errorf("rotate: recount: %w", err)
	}
	var left []string
	for _, kr := range byKey(counts) {
		if kr.KeyID != res.Current {
			left = append(left, fmt.Sprintf("%d under %q", kr.Rows, kr.KeyID))
		}
	}
	if len(left) > 0 {
		return res, fmt.Errorf("rotate: rows were written under old keys while rotating (%s): is an instance running with another first key? run it again", strings.Join(left, ", "))
	}
	return res, nil
}

// reseal opens a row with the key it names and seals it under the current
// key, bound to the same row.
func reseal(keys *Keyring, r store.EncryptedRow) ([]byte, error) {
	pt, err := keys.Open(r.Kind, r.Scope, r.Name, r.Ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return keys.Seal(r.Kind, r.Scope, r.Name, pt)
}

// byKey sums counts over kinds, ordered by key id.
func byKey(counts []store.KeyCount) []KeyRows {
	m := map[string]int64{}
	for _, c := range counts {
		m[c.KeyID] += c.Rows
	}
	out := make([]KeyRows, 0, len(m))
	for id, n := range m {
		out = append(out, KeyRows{KeyID: id, Rows: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KeyID < out[j].KeyID })
	return out
}
