package storetest

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
)

// runCore exercises the lifecycle methods and backlot_meta.
func runCore(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Core", func(t *testing.T) {
		t.Parallel()

		t.Run("Backend", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			if b := s.Backend(); b != store.BackendSQLite && b != store.BackendPostgres {
				t.Fatalf("Backend() = %q, want %q or %q", b, store.BackendSQLite, store.BackendPostgres)
			}
		})

		t.Run("Ping", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			if err := s.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := s.Ping(ctx); err == nil {
				t.Fatal("Ping with a cancelled context: got nil error")
			}
		})

		t.Run("SchemaCurrentAfterOpen", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			st, err := s.SchemaStatus(context.Background())
			if err != nil {
				t.Fatalf("SchemaStatus: %v", err)
			}
			if st.Latest < 1 {
				t.Fatalf("Latest = %d, want at least 1 (00001_core)", st.Latest)
			}
			if st.Current != st.Latest || st.Behind() {
				t.Fatalf("SchemaStatus = %+v, want current == latest", st)
			}
		})

		t.Run("MigrateIdempotent", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			before, err := s.SchemaStatus(ctx)
			if err != nil {
				t.Fatalf("SchemaStatus: %v", err)
			}
			id, err := s.Meta(ctx, "instance_id")
			if err != nil {
				t.Fatalf("Meta(instance_id): %v", err)
			}
			for i := range 2 {
				if err := s.Migrate(ctx); err != nil {
					t.Fatalf("Migrate #%d: %v", i+1, err)
				}
			}
			after, err := s.SchemaStatus(ctx)
			if err != nil {
				t.Fatalf("SchemaStatus: %v", err)
			}
			if after != before {
				t.Fatalf("SchemaStatus changed by Migrate on a current schema: %+v -> %+v", before, after)
			}
			id2, err := s.Meta(ctx, "instance_id")
			if err != nil || id2 != id {
				t.Fatalf("instance_id after Migrate = %q, %v; want %q (data kept)", id2, err, id)
			}
		})

		t.Run("MetaSeeded", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			id, err := s.Meta(ctx, "instance_id")
			if err != nil {
				t.Fatalf("Meta(instance_id): %v", err)
			}
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
				t.Fatalf("instance_id = %q, want 32 lowercase hex digits", id)
			}
			created, err := s.Meta(ctx, "created_at")
			if err != nil {
				t.Fatalf("Meta(created_at): %v", err)
			}
			at, err := time.Parse(time.RFC3339Nano, created)
			if err != nil {
				t.Fatalf("created_at %q: %v", created, err)
			}
			if d := time.Since(at); d < -time.Minute || d > time.Hour {
				t.Fatalf("created_at %s is %s from now, want about now", at, d)
			}
		})

		t.Run("MetaNotFound", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			v, err := s.Meta(context.Background(), "no-such-key")
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Meta(missing) = %q, %v; want ErrNotFound", v, err)
			}
		})

		t.Run("SetMeta", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			for _, v := range []string{"one", "two", ""} {
				if err := s.SetMeta(ctx, "k", v); err != nil {
					t.Fatalf("SetMeta(k, %q): %v", v, err)
				}
				got, err := s.Meta(ctx, "k")
				if err != nil || got != v {
					t.Fatalf("Meta(k) after SetMeta(%q) = %q, %v", v, got, err)
				}
			}
		})
	})
}
