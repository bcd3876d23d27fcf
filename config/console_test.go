package config

import (
	"strings"
	"testing"
	"time"
)

func TestConsoleAndAuditDefaults(t *testing.T) {
	t.Parallel()
	ops := "authenticators:\n  ops: {type: api_key, keys: [{id: a, sha256: " + strings.Repeat("0f", 32) + "}]}\n"
	tests := []struct {
		name, yaml string
		path       string
		retention  time.Duration
	}{
		{"off", local, "", AuditRetentionDefault},
		{"auth only", local + ops + "console: {auth: [ops]}\n", ConsolePathDefault, AuditRetentionDefault},
		{"own path", local + ops + "console: {path: /admin/, auth: [ops], admin: [ops]}\naudit: {retention: 24h}\n", "/admin/", 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustLoadBuilt(t, tt.yaml, nil)
			if c.Console.Path != tt.path {
				t.Errorf("console.path = %q, want %q", c.Console.Path, tt.path)
			}
			if c.Audit.Retention.D() != tt.retention {
				t.Errorf("audit.retention = %s, want %s", c.Audit.Retention, tt.retention)
			}
		})
	}
}
