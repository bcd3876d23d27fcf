package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// CreateSession inserts a session.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO sessions (id_hash, authenticator, subject, principal, created_at, expires_at)
		 VALUES ($1, $2, $3, $4, $5, $6)`,
		s.IDHash, s.Authenticator, s.Subject, string(s.Principal),
		s.CreatedAt.Truncate(time.Millisecond), s.ExpiresAt.Truncate(time.Millisecond))
	if err != nil {
		return fmt.Errorf("create session for %s/%s: %w", s.Authenticator, s.Subject, err)
	}
	return nil
}

// GetSession reads a session by the hash of its id.
func (db *DB) GetSession(ctx context.Context, idHash []byte) (store.Session, error) {
	s := store.Session{IDHash: idHash}
	var principal string
	err := db.pool.QueryRow(ctx,
		`SELECT authenticator, subject, principal::text, created_at, expires_at FROM sessions WHERE id_hash = $1`,
		idHash).Scan(&s.Authenticator, &s.Subject, &principal, &s.CreatedAt, &s.ExpiresAt)
	if err != nil {
		return store.Session{}, fmt.Errorf("get session: %w", notFound(err))
	}
	s.Principal = []byte(principal)
	s.CreatedAt = s.CreatedAt.UTC()
	s.ExpiresAt = s.ExpiresAt.UTC()
	return s, nil
}

// DeleteSession removes one session.
func (db *DB) DeleteSession(ctx context.Context, idHash []byte) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteSessionsBySubject revokes every session of one subject.
func (db *DB) DeleteSessionsBySubject(ctx context.Context, authenticator, subject string) (int64, error) {
	tag, err := db.pool.Exec(ctx,
		`DELETE FROM sessions WHERE authenticator = $1 AND subject = $2`, authenticator, subject)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %s/%s: %w", authenticator, subject, err)
	}
	return tag.RowsAffected(), nil
}

// DeleteExpiredSessions removes sessions expired at now.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
