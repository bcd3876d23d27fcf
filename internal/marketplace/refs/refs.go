// Package refs issues and opens sealed references: opaque, URL-safe
// strings that a third party echoes back (an ID-verification vendor's
// userReference, an OAuth-less callback parameter) so that a later
// callback can act for whoever started the exchange, without the third
// party ever holding a usable secret.
//
// A reference takes one of two forms, told apart by length:
//
//   - inline: the payload itself, sealed by the keyring (XChaCha20-Poly1305)
//     with its expiry inside and its purpose in the associated data. It
//     needs no storage, but every byte of payload costs 4/3 of a character
//     and the fixed part (version, key id, nonce, tag, expiry) costs
//     46 + len(key id) bytes: with a two-character key id, a 100-character
//     limit (75 bytes) leaves 27 bytes of payload.
//   - handle: 16 random bytes (22 characters) naming a row of the refs
//     table that holds the sealed payload. The table keeps the SHA-256 of
//     the handle, never the handle, and the row's ciphertext is bound to
//     (purpose, that hash), so a row copied elsewhere does not open.
//
// Issue picks inline when the caller allows it and the result fits maxLen,
// and a handle otherwise. Secrets the holder must not keep (a refresh
// token) and single-use references always take a row: single use is
// enforced by marking the row used by one consumer atomically, which an
// inline reference (with nothing stored) cannot offer without a used-set
// table; the row is the used-set.
//
// Open refuses, each with its own error: a malformed or truncated string
// (ErrMalformed), one that does not open because a byte was changed or it
// was issued for another purpose (ErrInvalid; for an inline reference the
// purpose is authenticated but not stored, so the two cannot be told
// apart), a handle issued for another purpose (ErrWrongPurpose), an
// unknown or pruned handle (ErrUnknown), an expired reference
// (ErrExpired), a single-use reference already opened by another consumer
// (ErrUsed), and one sealed under a key no longer in the keyring
// (ErrRetiredKey).
package refs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/store"
)

const (
	// HandleSize is the number of random bytes in a handle.
	HandleSize = 16
	// HandleLen is the length of a handle reference: base64url of
	// HandleSize bytes, unpadded. No maxLen below it can be met.
	HandleLen = (HandleSize*8 + 5) / 6
	// MaxRefLen bounds what Open reads: anything longer is malformed
	// before it is decoded.
	MaxRefLen = 4096
	// expirySize is the size of the expiry (Unix seconds, big endian,
	// unsigned: good until 2106) sealed in front of every payload; four
	// bytes rather than eight because inline space is scarce.
	expirySize = 4
	// inlineName is the name an inline reference's associated data binds
	// it to; handles bind to the hash of the handle instead.
	inlineName = "inline"
	// pruneBatch is how many expired rows each stored Issue deletes.
	pruneBatch = 100
)

// Errors of Issue and Open; match them with errors.Is.
var (
	ErrMalformed    = errors.New("reference is malformed or truncated")
	ErrInvalid      = errors.New("reference does not open: altered, or issued for another purpose")
	ErrWrongPurpose = errors.New("reference was issued for another purpose")
	ErrUnknown      = errors.New("reference is unknown: never issued, or deleted after it expired")
	ErrExpired      = errors.New("reference has expired")
	ErrUsed         = errors.New("single-use reference was already used")
	ErrRetiredKey   = errors.New("reference is sealed under a key that is no longer configured")
	ErrTooLong      = errors.New("reference would be longer than maxLen")
)

// Config configures Refs.
type Config struct {
	// Keyring seals and opens payloads. Required.
	Keyring *secrets.Keyring
	// Store keeps the rows behind handles. Required.
	Store store.RefStore
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// IssueOpts are Issue's options; nil means none.
type IssueOpts struct {
	// Stored always makes a handle, even when the payload would fit
	// inline: for payloads the third party must not hold even encrypted
	// (a refresh token), and references that Delete must be able to kill.
	Stored bool
	// SingleUse makes a reference that opens for one consumer only
	// (implies Stored).
	SingleUse bool
}

// OpenOpts are Open's options; nil means none.
type OpenOpts struct {
	// Consumer names who opens a single-use reference: the same consumer
	// may open it again (a job retrying after a failure), any other gets
	// ErrUsed. Empty: a fresh random consumer, so it opens exactly once.
	Consumer string
}

// Refs issues and opens sealed references. It is safe for concurrent use.
type Refs struct {
	keys *secrets.Keyring
	db   store.RefStore
	now  func() time.Time
}

// New builds a Refs.
func New(cfg Config) (*Refs, error) {
	if cfg.Keyring == nil || cfg.Store == nil {
		return nil, errors.New("refs.New: Keyring and Store are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Refs{keys: cfg.Keyring, db: cfg.Store, now: cfg.Now}, nil
}

var enc = base64.RawURLEncoding.Strict()

// Issue seals payload for purpose, valid for ttl, as a URL-safe string of
// at most maxLen characters: inline when allowed and short enough, else a
// handle to a stored row. It never returns a reference longer than maxLen:
// when not even a handle fits, it fails with ErrTooLong.
func (r *Refs) Issue(ctx context.Context, payload []byte, purpose string, ttl time.Duration, maxLen int, opts *IssueOpts) (string, error) {
	if opts == nil {
		opts = &IssueOpts{}
	}
	switch {
	case purpose == "":
		return "", errors.New("issue reference: empty purpose")
	case ttl <= 0:
		return "", fmt.Errorf("issue reference for %s: ttl %v, want a positive duration", purpose, ttl)
	case maxLen < HandleLen:
		return "", fmt.Errorf("issue reference for %s: %w (%d; a handle alone is %d characters)", purpose, ErrTooLong, maxLen, HandleLen)
	}
	now := r.now()
	expires := now.Add(ttl)
	if expires.Unix() > math.MaxUint32 {
		return "", fmt.Errorf("issue reference for %s: ttl %v reaches past 2106", purpose, ttl)
	}
	plain := make([]byte, expirySize, expirySize+len(payload))
	binary.BigEndian.PutUint32(plain, uint32(expires.Unix()))
	plain = append(plain, payload...)

	if !opts.Stored && !opts.SingleUse {
		ct, err := r.keys.Seal(store.KindRef, purpose, inlineName, plain)
		if err != nil {
			return "", fmt.Errorf("issue reference for %s: %w", purpose, err)
		}
		if s := enc.EncodeToString(ct); len(s) <= maxLen {
			return s, nil
		}
	}

	handle := make([]byte, HandleSize)
	if _, err := io.ReadFull(rand.Reader, handle); err != nil {
		return "", fmt.Errorf("issue reference for %s: read random handle: %w", purpose, err)
	}
	name := handleName(handle)
	ct, err := r.keys.Seal(store.KindRef, purpose, name, plain)
	if err != nil {
		return "", fmt.Errorf("issue reference for %s: %w", purpose, err)
	}
	keyID, err := secrets.KeyID(ct)
	if err != nil {
		return "", fmt.Errorf("issue reference for %s: %w", purpose, err)
	}
	// Expired rows are deleted a batch at a time as new ones arrive, so
	// the table holds roughly the live references and no sweeper is needed.
	if _, err := r.db.PruneRefs(ctx, now, pruneBatch); err != nil {
		return "", fmt.Errorf("issue reference for %s: %w", purpose, err)
	}
	row := store.Ref{Scope: purpose, Name: name, KeyID: keyID, Ciphertext: ct, ExpiresAt: expires,
		SingleUse: opts.SingleUse, CreatedAt: now}
	if err := r.db.InsertRef(ctx, row); err != nil {
		return "", fmt.Errorf("issue reference for %s: %w", purpose, err)
	}
	return enc.EncodeToString(handle), nil
}

// Open returns the payload of a reference issued for purpose, refusing it
// with one of the package's errors (see the package comment). Opening a
// single-use reference marks it used by opts.Consumer.
func (r *Refs) Open(ctx context.Context, ref, purpose string, opts *OpenOpts) ([]byte, error) {
	raw, err := decode(ref)
	if err != nil {
		return nil, err
	}
	if len(raw) != HandleSize {
		return r.openSealed(raw, purpose, inlineName)
	}
	name := handleName(raw)
	row, err := r.db.GetRef(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("open reference: %w", ErrUnknown)
	}
	if err != nil {
		return nil, fmt.Errorf("open reference: %w", err)
	}
	if row.Scope != purpose {
		return nil, fmt.Errorf("open reference for %s: %w", purpose, ErrWrongPurpose)
	}
	payload, err := r.openSealed(row.Ciphertext, purpose, name)
	if err != nil {
		return nil, err
	}
	if row.SingleUse {
		consumer := ""
		if opts != nil {
			consumer = opts.Consumer
		}
		if consumer == "" {
			consumer = "once:" + randomHex()
		}
		switch err := r.db.UseRef(ctx, name, consumer); {
		case errors.Is(err, store.ErrRefUsed):
			return nil, fmt.Errorf("open reference for %s: %w", purpose, ErrUsed)
		case errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("open reference for %s: %w", purpose, ErrUnknown)
		case err != nil:
			return nil, fmt.Errorf("open reference for %s: %w", purpose, err)
		}
	}
	return payload, nil
}

// Delete removes the row behind a handle reference, so it never opens
// again (say, once the work it authorised is done). An inline reference
// has no row: it fails with ErrMalformed, and lives until it expires.
func (r *Refs) Delete(ctx context.Context, ref string) error {
	raw, err := decode(ref)
	if err != nil {
		return err
	}
	if len(raw) != HandleSize {
		return fmt.Errorf("delete reference: %w: an inline reference has no row", ErrMalformed)
	}
	if err := r.db.DeleteRef(ctx, handleName(raw)); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete reference: %w", ErrUnknown)
	} else if err != nil {
		return fmt.Errorf("delete reference: %w", err)
	}
	return nil
}

// decode reads a reference string, refusing anything that is not the
// unique unpadded base64url encoding of a handle or of a sealed payload.
func decode(ref string) ([]byte, error) {
	if ref == "" || len(ref) > MaxRefLen {
		return nil, fmt.Errorf("open reference: %w: length %d", ErrMalformed, len(ref))
	}
	raw, err := enc.DecodeString(ref)
	if err != nil {
		return nil, fmt.Errorf("open reference: %w: not base64url", ErrMalformed)
	}
	if len(raw) != HandleSize && len(raw) < secrets.Overhead+1+expirySize {
		return nil, fmt.Errorf("open reference: %w: %d bytes", ErrMalformed, len(raw))
	}
	return raw, nil
}

// openSealed opens a ciphertext bound to (purpose, name) and checks the
// expiry sealed in front of the payload.
func (r *Refs) openSealed(ct []byte, purpose, name string) ([]byte, error) {
	plain, err := r.keys.Open(store.KindRef, purpose, name, ct)
	var unknown *secrets.UnknownKeyError
	switch {
	case errors.As(err, &unknown):
		return nil, fmt.Errorf("open reference for %s: %w (%q)", purpose, ErrRetiredKey, unknown.KeyID)
	case err != nil:
		return nil, fmt.Errorf("open reference for %s: %w", purpose, ErrInvalid)
	case len(plain) < expirySize:
		// Only a key holder could have sealed this; still, refuse it.
		return nil, fmt.Errorf("open reference for %s: %w", purpose, ErrInvalid)
	}
	exp := int64(binary.BigEndian.Uint32(plain))
	if r.now().Unix() >= exp {
		return nil, fmt.Errorf("open reference for %s: %w", purpose, ErrExpired)
	}
	return plain[expirySize:], nil
}

// handleName is the row name of a handle: hex SHA-256, so a read of the
// table yields no handle a caller could present.
func handleName(handle []byte) string {
	sum := sha256.Sum256(handle)
	return hex.EncodeToString(sum[:])
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = io.ReadFull(rand.Reader, b) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}
