package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/open"
	"github.com/backlothq/backlot/jobs"
	"github.com/golang-jwt/jwt/v5"
)

const secret = "go-app-development-only-secret-0123456789"

// TestGoApp runs the example end to end on loopback: the route refuses
// callers without a valid token with the envelope, accepts a valid one,
// and the worker completes the job it enqueued.
func TestGoApp(t *testing.T) {
	dir := t.TempDir()
	cfg, err := os.ReadFile("backlot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "go-app.db")
	cfgPath := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), "sqlite://go-app.db", "sqlite://"+db, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- run(ctx, cfgPath, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	mint := func(sub string, exp time.Duration) string {
		now := time.Now()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "backlot", "aud": "backlot", "sub": sub, "iat": now.Unix(), "exp": now.Add(exp).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	post := func(token, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", base+"/api/notes", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}

	cases := []struct {
		name   string
		token  string
		body   string
		status int
		code   string
	}{
		{"no token", "", `{"note":"hi"}`, 401, "missing_credentials"},
		{"expired token", mint("user-1", -time.Hour), `{"note":"hi"}`, 401, "invalid_token"},
		{"bad body", mint("user-1", time.Minute), `{"nope":1}`, 400, "invalid_note"},
	}
	for _, c := range cases {
		status, m := post(c.token, c.body)
		if status != c.status || m["error"] != c.code || m["request_id"] == "" {
			t.Errorf("%s: %d %v, want %d %s with a request id", c.name, status, m, c.status, c.code)
		}
	}

	status, m := post(mint("user-1", time.Minute), `{"note":"hello"}`)
	if status != 202 {
		t.Fatalf("valid call: %d %v", status, m)
	}
	id := int64(m["job_id"].(float64))

	st, err := open.Store(context.Background(), "sqlite://"+db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := st.GetJob(context.Background(), id)
		if err == nil && j.State == jobs.StateCompleted {
			var n note
			if json.Unmarshal(j.Payload, &n); n.By != "user-1" || n.Text != "hello" {
				t.Fatalf("job payload %s", j.Payload)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d not completed: %+v %v", id, j, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
