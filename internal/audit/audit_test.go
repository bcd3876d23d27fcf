package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/audit"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/testutil"
)

func TestActor(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p    *auth.Principal
		want string
	}{
		{&auth.Principal{Authenticator: "staff", Subject: "alice"}, "staff:alice"},
		{nil, "anonymous"},
	} {
		if got := audit.Actor(tt.p); got != tt.want {
			t.Errorf("Actor(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
	if got := audit.CLIActor(); got != "cli" && !strings.HasPrefix(got, "cli:") {
		t.Errorf("CLIActor = %q", got)
	}
}

func TestJanitorDeletesOnlyOldEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testutil.SQLite(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 89 * 24 * time.Hour, time.Hour} {
		if _, err := st.InsertAudit(ctx, store.AuditEntry{At: now.Add(-age), Actor: "cli", Action: store.AuditJobPurge}); err != nil {
			t.Fatal(err)
		}
	}
	j := audit.NewJanitor(audit.JanitorConfig{Store: st, Retention: store.AuditRetentionDefault, Now: func() time.Time { return now }})
	n, err := j.Run(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Run = %d, %v; want 2", n, err)
	}
	left, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(left) != 2 {
		t.Fatalf("left = %d, %v", len(left), err)
	}
	for _, e := range left {
		if now.Sub(e.At) > store.AuditRetentionDefault {
			t.Errorf("entry of %s kept", e.At)
		}
	}
	// The loop runs once at start.
	if _, err := st.InsertAudit(ctx, store.AuditEntry{At: now.Add(-200 * 24 * time.Hour), Actor: "cli", Action: store.AuditJobPurge}); err != nil {
		t.Fatal(err)
	}
	if err := j.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, _ = st.ListAudit(ctx, store.AuditFilter{})
		if len(left) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := j.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 {
		t.Fatalf("after Start: %d entries, want 2", len(left))
	}
}
