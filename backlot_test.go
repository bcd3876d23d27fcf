package backlot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/jobs"
)

// TestFrameworkAPI uses backlot as a Go user would: a config built in
// code, a route behind an authenticator that enqueues a job from the
// handler, a worker that receives it, and a graceful stop.
func TestFrameworkAPI(t *testing.T) {
	t.Parallel()
	const key = "ops-key-0123456789"
	sum := sha256.Sum256([]byte(key))
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0"},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(t.TempDir(), "app.db")},
		Authenticators: map[string]config.Authenticator{
			"ops": {Type: config.AuthAPIKey, APIKeys: []config.APIKey{{ID: "batch", SHA256: hex.EncodeToString(sum[:])}}},
		},
	}
	app, err := backlot.New(backlot.WithConfig(cfg), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}

	type work struct {
		By   string `json:"by"`
		Item int    `json:"item"`
	}
	done := make(chan work, 1)
	app.Worker("items.close", func(ctx context.Context, job *jobs.Job) error {
		var w work
		if err := json.Unmarshal(job.Payload, &w); err != nil {
			return err
		}
		jobs.Logf(ctx, "closing item %d", w.Item)
		done <- w
		return nil
	})
	app.Handle("POST /api/items/{id}/close", []string{"ops"}, func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		payload := fmt.Sprintf(`{"by":%q,"item":%s}`, p.Subject, r.PathValue("id"))
		res, err := app.Jobs().Enqueue(r.Context(), "items.close", []byte(payload), nil)
		if err != nil {
			backlot.WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"job_id":"%d"}`, res.ID)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	post := func(bearer string) (int, string) {
		req, _ := http.NewRequest("POST", base+"/api/items/42/close", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := post(""); code != 401 || !strings.Contains(body, `"error":"missing_credentials"`) {
		t.Fatalf("no key: %d %s", code, body)
	}
	if code, body := post("wrong-key"); code != 401 || !strings.Contains(body, `"error":"invalid_token"`) {
		t.Fatalf("wrong key: %d %s", code, body)
	}
	if code, body := post(key); code != 202 || !strings.Contains(body, "job_id") {
		t.Fatalf("with key: %d %s", code, body)
	}
	select {
	case w := <-done:
		if w.By != "batch" || w.Item != 42 {
			t.Fatalf("worker got %+v", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker never ran")
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// TestNewRefusesBadConfig: a config built in code is validated by New.
func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0"},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(t.TempDir(), "x.db")},
		Authenticators: map[string]config.Authenticator{
			"users": {Type: config.AuthHS256, Secret: "too-short"},
		},
	}
	_, err := backlot.New(backlot.WithConfig(cfg))
	var ce *config.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "authenticators.users.secret") {
		t.Fatalf("New accepted a short hs256 secret, or not as a config error: %v", err)
	}
}

// newApp builds an App on a fresh SQLite file with one API-key
// authenticator, for the tests below.
func newApp(t *testing.T) *backlot.App {
	t.Helper()
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0"},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(t.TempDir(), "app.db")},
	}
	app, err := backlot.New(backlot.WithConfig(cfg), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}

// TestWriteError: a handler's *backlot.Error becomes the envelope with its
// fields; any other error is a 500 whose text is never sent.
func TestWriteError(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	cases := []struct {
		name       string
		err        error
		status     int
		want, deny []string
	}{
		{"coded", backlot.NewError(404, "order_not_found", "no order %q", "o-9"), 404,
			[]string{`"error_code":404`, `"error":"order_not_found"`, `"error_description":"no order \"o-9\""`, `"error_message":"Not found."`, `"request_id":"`}, nil},
		{"wrapped with message and original", fmt.Errorf("charging: %w", &backlot.Error{Status: 402, Code: "card_declined",
			Message: "Your card was declined.", Original: json.RawMessage(`{"error":"declined","error_code":1003}`)}), 402,
			[]string{`"error":"card_declined"`, `"error_message":"Your card was declined."`, `"original_error":{"error":"declined","error_code":1003}`}, nil},
		{"plain error leaks nothing", errors.New("pq: password authentication failed for user admin"), 500,
			[]string{`"error":"internal_error"`}, []string{"password", "admin"}},
	}
	for i, c := range cases {
		app.Handle(fmt.Sprintf("GET /t/%d", i), nil, func(w http.ResponseWriter, r *http.Request) { backlot.WriteError(w, r, c.err) })
	}
	srv := httptestServer(t, app.Handler())
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Get(fmt.Sprintf("%s/t/%d", srv, i))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d type %q, want %d json: %s", resp.StatusCode, resp.Header.Get("Content-Type"), c.status, b)
			}
			for _, w := range c.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("body lacks %s: %s", w, b)
				}
			}
			for _, d := range c.deny {
				if strings.Contains(string(b), d) {
					t.Errorf("body leaks %q: %s", d, b)
				}
			}
		})
	}
	if !errors.Is(fmt.Errorf("x: %w", backlot.NewError(404, "order_not_found", "a")), &backlot.Error{Status: 404, Code: "order_not_found"}) {
		t.Error("errors.Is does not match an *Error by status and code")
	}
}

// TestWriteTxEnqueueTx: a row and a job written in one transaction commit
// together or not at all.
func TestWriteTxEnqueueTx(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	ctx := context.Background()
	if err := app.WriteTx(ctx, func(tx *backlot.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE orders (id TEXT PRIMARY KEY)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	place := func(id string, fail error) (jobs.EnqueueResult, error) {
		var res jobs.EnqueueResult
		err := app.WriteTx(ctx, func(tx *backlot.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO orders (id) VALUES ($1)`, id); err != nil {
				return err
			}
			var err error
			if res, err = app.Jobs().EnqueueTx(ctx, tx, "order.placed", []byte(`{"id":"`+id+`"}`), nil); err != nil {
				return err
			}
			return fail
		})
		return res, err
	}
	kept, err := place("o1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := app.Jobs().Get(ctx, kept.ID); err != nil || j.Kind != "order.placed" {
		t.Fatalf("committed job: %+v %v", j, err)
	}
	boom := errors.New("boom")
	dropped, err := place("o2", boom)
	if !errors.Is(err, boom) {
		t.Fatalf("rollback: %v", err)
	}
	if _, err := app.Jobs().Get(ctx, dropped.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("rolled-back job: %v, want jobs.ErrNotFound", err)
	}
	var id string
	err = app.WriteTx(ctx, func(tx *backlot.Tx) error {
		return tx.QueryRow(ctx, `SELECT id FROM orders WHERE id = $1`, "o2").Scan(&id)
	})
	if !errors.Is(err, backlot.ErrNotFound) {
		t.Fatalf("rolled-back row: %v, want backlot.ErrNotFound", err)
	}
}

// TestEnqueueErrors: the errors a Go user matches are public sentinels.
func TestEnqueueErrors(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	ctx := context.Background()
	cases := []struct {
		name    string
		payload string
		opts    *jobs.EnqueueOpts
		want    error
	}{
		{"not json", `{"a":`, nil, jobs.ErrInvalidPayload},
		{"unknown queue", `{}`, &jobs.EnqueueOpts{Queue: "nope"}, jobs.ErrUnknownQueue},
	}
	for _, c := range cases {
		if _, err := app.Jobs().Enqueue(ctx, "k", []byte(c.payload), c.opts); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// httptestServer serves h on loopback until the test ends.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestWarnsAboutKindsWithoutWorker: at start, every job kind that the
// configuration produces and nothing in this process handles is named in a
// warning; kinds with a worker (registered before Run) or a forward are not.
func TestWarnsAboutKindsWithoutWorker(t *testing.T) {
	t.Parallel()
	const whsec = "whsec_YmFja2xvdC10ZXN0LXNlY3JldA=="
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0"},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(t.TempDir(), "app.db")},
		Webhooks: []config.Webhook{
			{Path: "/webhooks/vendor", Verify: config.Verify{Scheme: config.SchemeStandard, Secrets: []string{whsec}}, Job: "vendor.event"},
			{Path: "/webhooks/other", Verify: config.Verify{Scheme: config.SchemeStandard, Secrets: []string{whsec}}, Job: "vendor.event"},
			{Path: "/webhooks/fwd", Verify: config.Verify{Scheme: config.SchemeStandard, Secrets: []string{whsec}},
				Forward: &config.Forward{URL: "http://127.0.0.1:9/hooks", Secret: whsec}},
			{Path: "/webhooks/handled", Verify: config.Verify{Scheme: config.SchemeStandard, Secrets: []string{whsec}}, Job: "handled.event"},
		},
		Schedules: []config.Schedule{
			{Name: "reminders", Cron: "0 9 * * *", Job: "reminders.send"},
			{Name: "sweep", Cron: "@hourly", Job: "sweep.run"},
		},
		Keys: []config.Key{{ID: "k1", Secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
		Authenticators: map[string]config.Authenticator{
			"users": {Type: config.AuthHS256, Secret: strings.Repeat("s", 32)},
		},
		Connections: map[string]config.Connection{
			"acme": {AuthorizeURL: "https://acme.example/authorize", TokenURL: "https://acme.example/token", ClientID: "c",
				Auth: []string{"users"}, OnExpired: "acme.expired", OnRecovered: "sweep.run"},
		},
	}
	var logs syncBuffer
	app, err := backlot.New(backlot.WithConfig(cfg), backlot.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context, *jobs.Job) error { return nil }
	app.Worker("handled.event", noop)
	app.Worker("sweep.run", noop)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, warn, and stop at once
	if err := app.Serve(ctx, ln); err != nil {
		t.Fatalf("Serve: %v", err)
	}

	warned := map[string]string{}
	for _, raw := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct {
			Level      string `json:"level"`
			Msg        string `json:"msg"`
			Kind       string `json:"kind"`
			ProducedBy string `json:"produced_by"`
		}
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if l.Level == "WARN" && strings.HasPrefix(l.Msg, "no worker for job kind") {
			if _, dup := warned[l.Kind]; dup {
				t.Errorf("kind %s warned twice", l.Kind)
			}
			warned[l.Kind] = l.ProducedBy
		}
	}
	want := map[string]string{
		"vendor.event":   "webhooks[0] (/webhooks/vendor), webhooks[1] (/webhooks/other)",
		"reminders.send": "schedules[0] (reminders)",
		"acme.expired":   "connections.acme.on_expired",
	}
	if len(warned) != len(want) {
		t.Errorf("warned about %v, want exactly %v\nlogs:\n%s", warned, want, logs.String())
	}
	for kind, by := range want {
		if warned[kind] != by {
			t.Errorf("kind %s: produced_by %q, want %q", kind, warned[kind], by)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger writing from goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRefsPublicErrors: a Go user matches a refused reference with the
// root package's sentinels.
func TestRefsPublicErrors(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0"},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(t.TempDir(), "app.db")},
		Keys:   []config.Key{{ID: "k1", Secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
	}
	app, err := backlot.New(backlot.WithConfig(cfg), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx := context.Background()
	inline, err := app.Refs().Issue(ctx, []byte("u-1"), "idv", time.Hour, 100)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := app.Refs().Issue(ctx, []byte("u-1"), "idv", time.Hour, 100, backlot.RefSingleUse())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Refs().Open(ctx, stored, "idv"); err != nil {
		t.Fatalf("first open: %v", err)
	}
	cases := []struct {
		name, ref, purpose string
		want               error
	}{
		{"garbage", "not-a-reference", "idv", backlot.ErrRefMalformed},
		{"other purpose, inline", inline, "payout", backlot.ErrRefInvalid},
		{"single use, opened twice", stored, "idv", backlot.ErrRefUsed},
	}
	for _, c := range cases {
		if _, err := app.Refs().Open(ctx, c.ref, c.purpose); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := app.Refs().Issue(ctx, []byte("u-1"), "idv", time.Hour, 10); !errors.Is(err, backlot.ErrRefTooLong) {
		t.Errorf("maxLen 10: %v, want ErrRefTooLong", err)
	}
}
