package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/prometheus/client_golang/prometheus"
)

type fixture struct {
	srv   *Server
	ts    *httptest.Server
	logs  *syncBuffer
	ready atomic.Pointer[string] // readiness failure, nil when ready
}

type syncBuffer struct {
	ch chan []byte
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.ch <- append([]byte(nil), p...)
	return len(p), nil
}

// String drains what was logged so far.
func (s *syncBuffer) String() string {
	for {
		select {
		case p := <-s.ch:
			s.b.Write(p)
		default:
			return s.b.String()
		}
	}
}

func setup(t *testing.T, mutate func(*config.Server, *http.ServeMux)) *fixture {
	t.Helper()
	f := &fixture{logs: &syncBuffer{ch: make(chan []byte, 1024)}}
	sc := config.Server{Listen: "127.0.0.1:0", MaxBodyBytes: 64, Headers: config.Headers{CSP: "default-src 'none'"}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := httpapi.DecodeJSON(r, &v); err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, 200, v)
	})
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("kaboom") })
	if mutate != nil {
		mutate(&sc, mux)
	}
	srv, err := New(Config{
		Server:   sc,
		Logger:   slog.New(slog.NewJSONHandler(f.logs, nil)),
		Registry: prometheus.NewRegistry(),
		Ready: func(ctx context.Context) error {
			if e := f.ready.Load(); e != nil {
				return errors.New(*e)
			}
			return nil
		},
	}, mux)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

func decodeEnvelope(t *testing.T, resp *http.Response) httpapi.Envelope {
	t.Helper()
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var env httpapi.Envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("decode envelope: %v", err)
	}
	return env
}

func TestErrorsAreEnvelopes(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	tests := []struct {
		name, method, path, ctype string
		body                      io.Reader
		header                    map[string]string
		wantStatus                int
		wantCode                  string
	}{
		{name: "unknown path", method: "GET", path: "/nope", wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method", method: "DELETE", path: "/echo", wantStatus: 405, wantCode: "method_not_allowed"},
		{name: "declared body too large", method: "POST", path: "/echo", ctype: "application/json",
			body: strings.NewReader(`{"a":"` + strings.Repeat("x", 100) + `"}`), wantStatus: 413, wantCode: "body_too_large"},
		{name: "streamed body too large", method: "POST", path: "/echo", ctype: "application/json",
			body:       io.MultiReader(strings.NewReader(`{"a":"`), strings.NewReader(strings.Repeat("x", 100)), strings.NewReader(`"}`)),
			wantStatus: 413, wantCode: "body_too_large"},
		{name: "wrong content type", method: "POST", path: "/echo", ctype: "text/plain", body: strings.NewReader(`{}`),
			wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "malformed json", method: "POST", path: "/echo", ctype: "application/json", body: strings.NewReader(`{"a":`),
			wantStatus: 400, wantCode: "invalid_json"},
		{name: "trailing data", method: "POST", path: "/echo", ctype: "application/json", body: strings.NewReader(`{} {}`),
			wantStatus: 400, wantCode: "invalid_json"},
		{name: "panic", method: "GET", path: "/boom", wantStatus: 500, wantCode: "internal_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tc.method, f.ts.URL+tc.path, tc.body)
			if _, ok := tc.body.(io.Reader); ok && tc.name == "streamed body too large" {
				req.ContentLength = -1 // chunked: the limit must hold while streaming too
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			env := decodeEnvelope(t, resp)
			if env.ErrorCode != tc.wantStatus || env.Error != tc.wantCode {
				t.Fatalf("envelope = %+v, want %d %s", env, tc.wantStatus, tc.wantCode)
			}
			if env.RequestID == "" || env.RequestID != resp.Header.Get("X-Request-Id") {
				t.Fatalf("request_id %q != X-Request-Id %q", env.RequestID, resp.Header.Get("X-Request-Id"))
			}
			if env.ErrorMessage == "" {
				t.Fatal("error_message is empty")
			}
		})
	}
}

func TestMethodNotAllowedListsAllow(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	req, _ := http.NewRequest("PUT", f.ts.URL+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Fatalf("status %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestPanicRecoveredAndServerKeepsServing(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for i := 0; i < 3; i++ {
		resp, err := http.Get(f.ts.URL + "/boom")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	resp, err := http.Get(f.ts.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after panics: %v %v", err, resp)
	}
	resp.Body.Close()
	logs := f.logs.String()
	if !strings.Contains(logs, `"panic in handler"`) || !strings.Contains(logs, "kaboom") || !strings.Contains(logs, "goroutine") {
		t.Fatalf("panic not logged with stack: %s", logs)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	tests := []struct {
		name, in string
		honoured bool
	}{
		{"sane id honoured", "abc-123_x.y:z", true},
		{"absent generated", "", false},
		{"spaces replaced", "bad id", false},
		{"too long replaced", strings.Repeat("a", 200), false},
		{"markup replaced", "a<script>b", false},
		{"unknown fields rejected elsewhere; quote replaced", `a"b`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest("GET", f.ts.URL+"/nope", nil)
			if tc.in != "" {
				req.Header["X-Request-Id"] = []string{tc.in}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			env := decodeEnvelope(t, resp)
			got := resp.Header.Get("X-Request-Id")
			if tc.honoured && got != tc.in {
				t.Fatalf("X-Request-Id = %q, want %q", got, tc.in)
			}
			if !tc.honoured && (got == tc.in || len(got) != 32) {
				t.Fatalf("X-Request-Id = %q, want a fresh 32-char id", got)
			}
			if env.RequestID != got {
				t.Fatalf("envelope request_id %q != header %q", env.RequestID, got)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	resp, err := http.Get(f.ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'none'",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if resp.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS sent over plain HTTP")
	}
}

func TestReadyzAndMetrics(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(f.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, _ := get("/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	down := "store unreachable: connection refused"
	f.ready.Store(&down)
	resp, body := get("/readyz")
	if resp.StatusCode != 503 || !strings.Contains(body, "store unreachable") || !strings.Contains(body, `"not_ready"`) {
		t.Fatalf("readyz while down: %d %s", resp.StatusCode, body)
	}
	f.ready.Store(nil)
	if resp, _ := get("/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz after recovery %d", resp.StatusCode)
	}
	get("/nope")
	_, metrics := get("/metrics")
	for _, want := range []string{
		`backlot_http_requests_total{code="503",route="GET /readyz"} 1`,
		`backlot_http_requests_total{code="404",route="unmatched"} 1`,
		`backlot_http_request_duration_seconds_bucket{route="GET /readyz"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"route":"GET /readyz"`) || !strings.Contains(logs, `"status":503`) {
		t.Errorf("request log line missing route/status: %s", logs)
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sc   config.Server
		ok   bool
	}{
		{"loopback v4", config.Server{Listen: "127.0.0.1:8080"}, true},
		{"loopback v6", config.Server{Listen: "[::1]:8080"}, true},
		{"localhost", config.Server{Listen: "localhost:8080"}, true},
		{"all interfaces", config.Server{Listen: ":8080"}, false},
		{"public address", config.Server{Listen: "0.0.0.0:8080"}, false},
		{"override", config.Server{Listen: ":8080", HTTPOverride: true}, true},
		{"tls", config.Server{Listen: ":8443", TLS: config.TLS{CertFile: "c", KeyFile: "k"}}, true},
		{"garbage", config.Server{Listen: "nope"}, false},
	}
	for _, tc := range tests {
		err := CheckListen(tc.sc)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && tc.name == "all interfaces" && !strings.Contains(err.Error(), "http_override") {
			t.Errorf("message does not say how to fix: %v", err)
		}
	}
}

// TestGracefulShutdownFinishesInFlight starts a slow request, cancels the
// serve context while it runs, and checks the request still completes and
// Serve returns nil.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	var srv *Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "done")
	})
	srv, err := New(Config{Server: config.Server{Listen: "127.0.0.1:0", ShutdownTimeout: config.Duration(5 * time.Second)},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, mux)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-started
	cancel()
	r := <-got
	if r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/slow"); err == nil {
		t.Fatal("server still accepting after shutdown")
	}
}
