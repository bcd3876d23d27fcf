package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// runSessions exercises store.SessionStore.
func runSessions(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Sessions", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := open(t)
		base := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
		seq := 0
		newSession := func(authn, subject string, expires time.Time) store.Session {
			seq++
			h := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", authn, subject, seq)))
			return store.Session{
				IDHash:        h[:],
				Authenticator: authn,
				Subject:       subject,
				Principal:     []byte(fmt.Sprintf(`{"subject":%q,"scopes":["a","b"],"n":%d}`, subject, seq)),
				CreatedAt:     base,
				ExpiresAt:     expires,
			}
		}
		mustCreate := func(t *testing.T, sess store.Session) {
			t.Helper()
			if err := s.CreateSession(ctx, sess); err != nil {
				t.Fatalf("CreateSession: %v", err)
			}
		}
		exists := func(t *testing.T, sess store.Session) bool {
			t.Helper()
			_, err := s.GetSession(ctx, sess.IDHash)
			switch {
			case err == nil:
				return true
			case errors.Is(err, store.ErrNotFound):
				return false
			default:
				t.Fatalf("GetSession: %v", err)
				return false
			}
		}

		t.Run("RoundTrip", func(t *testing.T) {
			in := newSession("staff", "user-1", base.Add(12*time.Hour))
			mustCreate(t, in)
			got, err := s.GetSession(ctx, in.IDHash)
			if err != nil {
				t.Fatalf("GetSession: %v", err)
			}
			if !bytes.Equal(got.IDHash, in.IDHash) || got.Authenticator != in.Authenticator || got.Subject != in.Subject {
				t.Fatalf("got %+v, want %+v", got, in)
			}
			if !sessionJSONEqual(t, got.Principal, in.Principal) {
				t.Fatalf("principal = %s, want %s", got.Principal, in.Principal)
			}
			if want := in.CreatedAt.Truncate(time.Millisecond); !got.CreatedAt.Equal(want) {
				t.Errorf("created_at = %v, want %v", got.CreatedAt, want)
			}
			if want := in.ExpiresAt.Truncate(time.Millisecond); !got.ExpiresAt.Equal(want) {
				t.Errorf("expires_at = %v, want %v", got.ExpiresAt, want)
			}
		})

		t.Run("Missing", func(t *testing.T) {
			h := sha256.Sum256([]byte("never created"))
			if _, err := s.GetSession(ctx, h[:]); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetSession(missing) = %v, want ErrNotFound", err)
			}
			if err := s.DeleteSession(ctx, h[:]); err != nil {
				t.Fatalf("DeleteSession(missing) = %v, want nil", err)
			}
		})

		t.Run("DuplicateRefused", func(t *testing.T) {
			in := newSession("staff", "user-dup", base.Add(time.Hour))
			mustCreate(t, in)
			other := in
			other.Subject = "someone-else"
			if err := s.CreateSession(ctx, other); err == nil {
				t.Fatal("CreateSession with an existing id hash succeeded")
			}
			got, err := s.GetSession(ctx, in.IDHash)
			if err != nil || got.Subject != "user-dup" {
				t.Fatalf("after duplicate: %+v, %v; want the first session intact", got, err)
			}
		})

		t.Run("Delete", func(t *testing.T) {
			a := newSession("staff", "user-del", base.Add(time.Hour))
			b := newSession("staff", "user-del", base.Add(time.Hour))
			mustCreate(t, a)
			mustCreate(t, b)
			if err := s.DeleteSession(ctx, a.IDHash); err != nil {
				t.Fatalf("DeleteSession: %v", err)
			}
			if exists(t, a) {
				t.Error("deleted session still found")
			}
			if !exists(t, b) {
				t.Error("other session of the same subject was deleted too")
			}
		})

		t.Run("DeleteBySubject", func(t *testing.T) {
			mine := []store.Session{
				newSession("staff", "user-rev", base.Add(time.Hour)),
				newSession("staff", "user-rev", base.Add(2*time.Hour)),
			}
			otherSubject := newSession("staff", "user-keep", base.Add(time.Hour))
			otherAuthn := newSession("console", "user-rev", base.Add(time.Hour))
			for _, x := range append(mine, otherSubject, otherAuthn) {
				mustCreate(t, x)
			}
			n, err := s.DeleteSessionsBySubject(ctx, "staff", "user-rev")
			if err != nil {
				t.Fatalf("DeleteSessionsBySubject: %v", err)
			}
			if n != 2 {
				t.Errorf("deleted %d, want 2", n)
			}
			for _, x := range mine {
				if exists(t, x) {
					t.Error("revoked session still found")
				}
			}
			if !exists(t, otherSubject) || !exists(t, otherAuthn) {
				t.Error("a session of another subject or authenticator was revoked")
			}
			n, err = s.DeleteSessionsBySubject(ctx, "staff", "user-rev")
			if err != nil || n != 0 {
				t.Errorf("second revoke = %d, %v; want 0, nil", n, err)
			}
		})

		t.Run("DeleteExpired", func(t *testing.T) {
			// A far-future clock so sessions of the other subtests are
			// unaffected: everything here expires after them.
			now := base.Add(1000 * time.Hour)
			expired := newSession("exp", "user-exp", now.Add(-time.Millisecond))
			atNow := newSession("exp", "user-exp", now)
			live := newSession("exp", "user-exp", now.Add(time.Second))
			for _, x := range []store.Session{expired, atNow, live} {
				mustCreate(t, x)
			}
			n, err := s.DeleteExpiredSessions(ctx, now)
			if err != nil {
				t.Fatalf("DeleteExpiredSessions: %v", err)
			}
			// The other subtests' sessions expire before now too.
			if n < 2 {
				t.Errorf("deleted %d, want at least 2", n)
			}
			if exists(t, expired) || exists(t, atNow) {
				t.Error("expired session survived")
			}
			if !exists(t, live) {
				t.Error("live session was deleted")
			}
		})
	})
}

// sessionJSONEqual compares JSON documents by value: PostgreSQL's jsonb
// does not keep the original spacing or key order.
func sessionJSONEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
