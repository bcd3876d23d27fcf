package secrets

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/backlothq/backlot/internal/store"
)

// Limits on what the secret store accepts.
const (
	// MaxValueBytes bounds a secret value: 64 KiB.
	MaxValueBytes = 64 << 10
	// MaxNameBytes bounds a secret's name.
	MaxNameBytes = 255
	// MaxScopeFieldBytes bounds each field of a Scope.
	MaxScopeFieldBytes = 1024
)

// ErrNotFound is returned by Get and Delete for a secret that does not
// exist. It is store.ErrNotFound, so either matches with errors.Is.
var ErrNotFound = store.ErrNotFound

// ErrInvalid is wrapped by the errors for a scope, name or value the store
// refuses (empty, too long, not UTF-8).
var ErrInvalid = errors.New("invalid secret")

// Scope is whom a secret belongs to: a principal, by Tenant and Subject
// (Stripe's account and user, say), or a named system scope from
// SystemScope for secrets of backlot itself or of the whole deployment.
type Scope struct {
	// Tenant may be empty for principals without one.
	Tenant string
	// Subject is required for a principal's scope.
	Subject string

	system string // set by SystemScope; then Tenant and Subject are unused
}

// SystemScope is the scope named name, owned by no principal.
func SystemScope(name string) Scope { return Scope{system: name} }

// System is the name of a system scope, or "" for a principal's.
func (s Scope) System() string { return s.system }

// String encodes the scope as stored: "system/<name>" or
// "principal/<tenant>/<subject>", each field path-escaped, so no two
// scopes share an encoding ("/" inside a field is "%2F").
func (s Scope) String() string {
	if s.system != "" {
		return "system/" + url.PathEscape(s.system)
	}
	return "principal/" + url.PathEscape(s.Tenant) + "/" + url.PathEscape(s.Subject)
}

func (s Scope) validate() error {
	fields := []struct{ what, v string }{{"tenant", s.Tenant}, {"subject", s.Subject}}
	if s.system != "" {
		fields = []struct{ what, v string }{{"system scope", s.system}}
	} else if s.Subject == "" {
		return fmt.Errorf("%w: scope without a subject", ErrInvalid)
	}
	for _, f := range fields {
		if len(f.v) > MaxScopeFieldBytes || !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: scope %s is not UTF-8 of at most %d bytes", ErrInvalid, f.what, MaxScopeFieldBytes)
		}
	}
	return nil
}

func validateName(name string) error {
	if name == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return fmt.Errorf("%w: name must be UTF-8 of 1 to %d bytes", ErrInvalid, MaxNameBytes)
	}
	for _, r := range name {
		if r == 0 {
			return fmt.Errorf("%w: name contains a NUL", ErrInvalid)
		}
	}
	return nil
}

// StoreConfig builds a Store.
type StoreConfig struct {
	// Keyring seals and opens values. Required (it may be empty: then
	// Put fails with ErrNoKeys).
	Keyring *Keyring
	// Store keeps the sealed rows. Required.
	Store store.SecretStore
	// Now stamps updated_at. Default time.Now.
	Now func() time.Time
}

// Store is the encrypted secret store: named values per Scope, sealed with
// the keyring before they reach the database. Values never appear in its
// errors.
type Store struct {
	keys *Keyring
	db   store.SecretStore
	now  func() time.Time
}

// NewStore builds a Store.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.Keyring == nil || cfg.Store == nil {
		return nil, errors.New("secrets.NewStore: Keyring and Store are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{keys: cfg.Keyring, db: cfg.Store, now: cfg.Now}, nil
}

// Put sets the secret name of scope to value, replacing any earlier value.
func (s *Store) Put(ctx context.Context, scope Scope, name string, value []byte) error {
	if err := check(scope, name); err != nil {
		return fmt.Errorf("put secret: %w", err)
	}
	if len(value) > MaxValueBytes {
		return fmt.Errorf("put secret %s %q: %w: value is %d bytes, at most %d", scope, name, ErrInvalid, len(value), MaxValueBytes)
	}
	sc := scope.String()
	ct, err := s.keys.Seal(store.KindSecret, sc, name, value)
	if err != nil {
		return fmt.Errorf("put secret %s %q: %w", sc, name, err)
	}
	return s.db.PutSecret(ctx, store.Secret{
		Scope:      sc,
		Name:       name,
		KeyID:      s.keys.Current(),
		Ciphertext: ct,
		UpdatedAt:  s.now(),
	})
}

// Get returns the secret name of scope; ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, scope Scope, name string) ([]byte, error) {
	if err := check(scope, name); err != nil {
		return nil, fmt.Errorf("get secret: %w", err)
	}
	sc := scope.String()
	row, err := s.db.GetSecret(ctx, sc, name)
	if err != nil {
		return nil, err
	}
	v, err := s.keys.Open(store.KindSecret, sc, name, row.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("get secret %s %q: %w", sc, name, err)
	}
	return v, nil
}

// Delete removes the secret name of scope; ErrNotFound when there was
// none.
func (s *Store) Delete(ctx context.Context, scope Scope, name string) error {
	if err := check(scope, name); err != nil {
		return fmt.Errorf("delete secret: %w", err)
	}
	return s.db.DeleteSecret(ctx, scope.String(), name)
}

func check(scope Scope, name string) error {
	if err := scope.validate(); err != nil {
		return err
	}
	return validateName(name)
}
