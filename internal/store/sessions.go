package store

import (
	"context"
	"time"
)

// SessionStore keeps cookie sessions server-side so they can be revoked
// (SPEC 5.2 `session`). Only a SHA-256 hash of the session id is stored:
// a copy of the database does not let anyone ride a live session.
type SessionStore interface {
	// CreateSession inserts s. An IDHash already present is an error.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session with the given id hash, expired or
	// not (the caller compares ExpiresAt with its clock); ErrNotFound when
	// there is none.
	GetSession(ctx context.Context, idHash []byte) (Session, error)
	// DeleteSession removes one session (logout). Deleting a session that
	// does not exist is not an error.
	DeleteSession(ctx context.Context, idHash []byte) error
	// DeleteSessionsBySubject revokes every session the authenticator
	// issued to subject and reports how many there were.
	DeleteSessionsBySubject(ctx context.Context, authenticator, subject string) (int64, error)
	// DeleteExpiredSessions removes sessions whose ExpiresAt is not after
	// now and reports how many.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

// Session is one cookie session.
type Session struct {
	// IDHash is the SHA-256 of the session id (the cookie value); 32 bytes.
	IDHash []byte
	// Authenticator is the name of the session authenticator that issued it.
	Authenticator string
	// Subject is the principal's subject, indexed for revocation.
	Subject string
	// Principal is the JSON of the auth.Principal the session stands for.
	Principal []byte
	// CreatedAt and ExpiresAt bound the session's life. Stored with
	// millisecond precision.
	CreatedAt time.Time
	ExpiresAt time.Time
}
