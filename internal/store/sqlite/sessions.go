package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// CreateSession inserts a session.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO sessions (id_hash, authenticator, subject, principal, created_at, expires_at)
		 VALUES (?, ?, ?, ?, ?, ?)`,
		s.IDHash, s.Authenticator, s.Subject, string(s.Principal), s.CreatedAt.UnixMilli(), s.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("create session for %s/%s: %w", s.Authenticator, s.Subject, err)
	}
	return nil
}

// GetSession reads a session by the hash of its id.
func (db *DB) GetSession(ctx context.Context, idHash []byte) (store.Session, error) {
	s := store.Session{IDHash: idHash}
	var (
		principal          string
		created, expiresAt int64
	)
	err := db.r.QueryRowContext(ctx,
		`SELECT authenticator, subject, principal, created_at, expires_at FROM sessions WHERE id_hash = ?`,
		idHash).Scan(&s.Authenticator, &s.Subject, &principal, &created, &expiresAt)
	if err != nil {
		return store.Session{}, fmt.Errorf("get session: %w", notFound(err))
	}
	s.Principal = []byte(principal)
	s.CreatedAt = time.UnixMilli(created).UTC()
	s.ExpiresAt = time.UnixMilli(expiresAt).UTC()
	return s, nil
}

// DeleteSession removes one session.
func (db *DB) DeleteSession(ctx context.Context, idHash []byte) error {
	if _, err := db.w.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteSessionsBySubject revokes every session of one subject.
func (db *DB) DeleteSessionsBySubject(ctx context.Context, authenticator, subject string) (int64, error) {
	n, err := affected(db.w.ExecContext(ctx,
		`DELETE FROM sessions WHERE authenticator = ? AND subject = ?`, authenticator, subject))
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %s/%s: %w", authenticator, subject, err)
	}
	return n, nil
}

// DeleteExpiredSessions removes sessions expired at now.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	n, err := affected(db.w.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, now.UnixMilli()))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return n, nil
}
