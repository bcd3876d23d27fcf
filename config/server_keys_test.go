package config

import (
	"testing"
	"time"
)

// The server keys that bound slow or memory-hungry senders, and the
// separate metrics listener: defaults, and each bad value named by key and
// line.
func TestServerLimitKeys(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, local, nil)
	if s := c.Server; s.ReadTimeout.D() != 15*time.Second || s.MaxInflightBodyBytes != 32<<20 || s.MetricsListen != "" {
		t.Errorf("defaults: read_timeout %s, max_inflight_body_bytes %d, metrics_listen %q",
			s.ReadTimeout.D(), s.MaxInflightBodyBytes, s.MetricsListen)
	}
	c = mustLoad(t, "server:\n  listen: 127.0.0.1:8080\n  read_timeout: 2s\n  max_inflight_body_bytes: 4194304\n  metrics_listen: 127.0.0.1:9090\n", nil)
	if s := c.Server; s.ReadTimeout.D() != 2*time.Second || s.MaxInflightBodyBytes != 4<<20 || s.MetricsListen != "127.0.0.1:9090" {
		t.Errorf("set values not kept: %+v", s)
	}
	c = mustLoad(t, local, map[string]string{"BACKLOT_SERVER_READ_TIMEOUT": "3s", "BACKLOT_SERVER_METRICS_LISTEN": "127.0.0.1:9191"})
	if c.Server.ReadTimeout.D() != 3*time.Second || c.Server.MetricsListen != "127.0.0.1:9191" {
		t.Errorf("overrides not applied: %+v", c.Server)
	}

	bad := []struct{ name, yaml, want string }{
		{"negative read_timeout", "server:\n  listen: 127.0.0.1:1\n  read_timeout: -1s\n",
			"backlot.yaml:3: server.read_timeout: must not be negative"},
		{"negative budget", "server:\n  listen: 127.0.0.1:1\n  max_inflight_body_bytes: -5\n",
			"backlot.yaml:3: server.max_inflight_body_bytes: must not be negative"},
		{"budget below the server body limit", "server:\n  listen: 127.0.0.1:1\n  max_body_bytes: 2097152\n  max_inflight_body_bytes: 1048576\n",
			"backlot.yaml:4: server.max_inflight_body_bytes: 1048576 is below server.max_body_bytes (2097152): a body that large could never be accepted"},
		{"budget below a webhook's limit", "server:\n  listen: 127.0.0.1:1\n  max_inflight_body_bytes: 2097152\nwebhooks:\n  - {path: /a, verify: {scheme: github, secrets: [s]}, job: j, max_body_bytes: 4194304}\n",
			"backlot.yaml:3: server.max_inflight_body_bytes: 2097152 is below webhooks[0].max_body_bytes (4194304)"},
		{"metrics_listen not host:port", "server:\n  listen: 127.0.0.1:1\n  metrics_listen: \"9090\"\n",
			`backlot.yaml:3: server.metrics_listen: want host:port such as "127.0.0.1:9090", got "9090"`},
		{"metrics_listen same as listen", "server:\n  listen: 127.0.0.1:8080\n  metrics_listen: 127.0.0.1:8080\n",
			"backlot.yaml:3: server.metrics_listen: must differ from server.listen"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml, nil)
			wantErr(t, err, tt.want)
		})
	}
}

// dedupe: body is accepted beside header:, json: and none; anything else
// is refused.
func TestDedupeBodyAccepted(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, local+"webhooks:\n  - {path: /a, verify: {scheme: github, secrets: [s]}, job: j, dedupe: body}\n", nil)
	if c.Webhooks[0].Dedupe != "body" {
		t.Fatalf("dedupe = %q", c.Webhooks[0].Dedupe)
	}
	_, err := load(t, local+"webhooks:\n  - {path: /a, verify: {scheme: github, secrets: [s]}, job: j, dedupe: \"body:sha1\"}\n", nil)
	wantErr(t, err, `backlot.yaml:3: webhooks[0].dedupe: want none, header:<name>, json:<path> or body, got "body:sha1"`)
}

// A webhook may set a body limit above the server's: it is not capped.
func TestWebhookLimitAboveServer(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, local+"webhooks:\n  - {path: /a, verify: {scheme: github, secrets: [s]}, job: j, max_body_bytes: 8388608}\n", nil)
	if c.Webhooks[0].MaxBodyBytes != 8<<20 {
		t.Fatalf("webhook max_body_bytes = %d", c.Webhooks[0].MaxBodyBytes)
	}
}
