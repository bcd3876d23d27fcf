package backlot

import (
	"context"
	"errors"
	"time"

	"github.com/backlothq/backlot/internal/marketplace/refs"
)

// Errors a sealed reference is refused with; match them with errors.Is.
var (
	// ErrRefMalformed: not a reference at all, or truncated.
	ErrRefMalformed = errors.New("malformed reference")
	// ErrRefInvalid: altered, or (inline) issued for another purpose.
	ErrRefInvalid = errors.New("invalid reference")
	// ErrRefWrongPurpose: a stored reference issued for another purpose.
	ErrRefWrongPurpose = errors.New("reference issued for another purpose")
	// ErrRefUnknown: a stored reference never issued, deleted, or pruned
	// after it expired.
	ErrRefUnknown = errors.New("unknown reference")
	// ErrRefExpired: past its ttl.
	ErrRefExpired = errors.New("reference expired")
	// ErrRefUsed: a single-use reference another consumer already opened.
	ErrRefUsed = errors.New("reference already used")
	// ErrRefRetiredKey: sealed under a key no longer in keys.
	ErrRefRetiredKey = errors.New("reference sealed under a retired key")
	// ErrRefTooLong: Issue could not meet maxLen (below 22 characters).
	ErrRefTooLong = errors.New("reference would exceed maxLen")
)

// Refs issues and opens sealed references: opaque URL-safe strings a third
// party echoes back (an ID-verification vendor's userReference, say) so a
// callback can act for whoever started the exchange without the third
// party holding anything usable. A reference is the payload encrypted
// inline when that fits maxLen, else a 22-character handle to an
// encrypted row; its purpose and expiry are sealed into it. See
// docs/refs.md.
type Refs struct {
	r *refs.Refs
}

// RefOption tunes Issue or Open.
type RefOption func(*refOptions)

type refOptions struct {
	issue refs.IssueOpts
	open  refs.OpenOpts
}

// RefStored makes Issue store the payload in a row and hand out a handle
// even when it would fit inline: for payloads the third party must not
// hold even encrypted (a refresh token), and references Delete must kill.
func RefStored() RefOption { return func(o *refOptions) { o.issue.Stored = true } }

// RefSingleUse makes Issue's reference open for one consumer only (it is
// stored, see RefStored).
func RefSingleUse() RefOption { return func(o *refOptions) { o.issue.SingleUse = true } }

// RefConsumer names who opens a single-use reference in Open: the same
// consumer may open it again (pass a job's id, so a retrying job still
// can), any other is refused with ErrRefUsed. Without it a single-use
// reference opens exactly once.
func RefConsumer(id string) RefOption { return func(o *refOptions) { o.open.Consumer = id } }

// Refs returns the App's sealed references (keys from `keys`).
func (a *App) Refs() *Refs { return a.refs }

// Issue seals payload for purpose, valid for ttl, as a URL-safe string of
// at most maxLen characters (never longer: ErrRefTooLong instead).
func (r *Refs) Issue(ctx context.Context, payload []byte, purpose string, ttl time.Duration, maxLen int, opts ...RefOption) (string, error) {
	var o refOptions
	for _, opt := range opts {
		opt(&o)
	}
	ref, err := r.r.Issue(ctx, payload, purpose, ttl, maxLen, &o.issue)
	return ref, public(err)
}

// Open returns the payload of ref if it was issued for purpose and is
// still valid, and refuses it with one of the ErrRef… errors otherwise.
func (r *Refs) Open(ctx context.Context, ref, purpose string, opts ...RefOption) ([]byte, error) {
	var o refOptions
	for _, opt := range opts {
		opt(&o)
	}
	payload, err := r.r.Open(ctx, ref, purpose, &o.open)
	return payload, public(err)
}

// Delete removes a stored reference so it never opens again (once the
// work it authorised is done, say). Inline references cannot be deleted:
// they live until they expire.
func (r *Refs) Delete(ctx context.Context, ref string) error { return public(r.r.Delete(ctx, ref)) }
