package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

// serve runs a Server built from sc and mux on a loopback listener (the
// real http.Server, with its timeouts) until the test ends, and returns
// its address.
func serve(t *testing.T, cfg Config, mux *http.ServeMux) string {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Server.Listen == "" {
		cfg.Server.Listen = "127.0.0.1:0"
	}
	srv, err := New(cfg, mux)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// readAllHandler answers the number of body bytes it read.
func readAllHandler(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]int64{"read": n})
}

// A sender trickling its body is cut off once read_timeout has passed
// since the request began, headers and body together.
func TestReadTimeoutCutsSlowSenders(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", readAllHandler)
	const readTimeout = 600 * time.Millisecond
	addr := serve(t, Config{Server: config.Server{ReadTimeout: config.Duration(readTimeout), MaxBodyBytes: 1 << 20}}, mux)

	cases := []struct {
		name string
		// head is sent at once; then trickle bytes, one per tick.
		head    string
		trickle string
	}{
		{"slow body", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", strings.Repeat("a", 100)},
		{"slow headers", "POST /upload HTTP/1.1\r\n", "Host: x\r\nX-Pad: " + strings.Repeat("b", 100)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, c.head); err != nil {
				t.Fatal(err)
			}
			closed := make(chan time.Duration, 1)
			go func() {
				io.Copy(io.Discard, conn) // returns when the server closes
				closed <- time.Since(start)
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < len(c.trickle); i++ {
				select {
				case d := <-closed:
					if d > readTimeout+400*time.Millisecond {
						t.Fatalf("cut off after %s, want about %s", d, readTimeout)
					}
					return
				case <-tick.C:
					conn.Write([]byte{c.trickle[i]}) // errors once cut off
				}
			}
			t.Fatalf("a sender trickling for %s was never cut off (read_timeout %s)", time.Since(start), readTimeout)
		})
	}
}

// A handler that has received its body may run past read_timeout: its
// request context is not cancelled by the expired read deadline.
func TestReadTimeoutSparesSlowHandlers(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(700 * time.Millisecond):
			io.WriteString(w, "done")
		case <-r.Context().Done():
			http.Error(w, "context cancelled", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(700 * time.Millisecond):
			io.WriteString(w, "done")
		case <-r.Context().Done():
			http.Error(w, "context cancelled", http.StatusInternalServerError)
		}
	})
	addr := serve(t, Config{Server: config.Server{ReadTimeout: config.Duration(300 * time.Millisecond)}}, mux)
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		req, _ := http.NewRequest(method, "http://"+addr+"/slow", strings.NewReader(`{"a":1}`))
		if method == http.MethodGet {
			req.Body, req.ContentLength = nil, 0
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "done" {
			t.Fatalf("%s: %d %s", method, resp.StatusCode, b)
		}
	}
}

// Bodies in flight share one budget: once it is spent, further bodies are
// refused with 503, the envelope and Retry-After, until it is released.
func TestInflightBodyBudget(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	holding := make(chan struct{}, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hold", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		holding <- struct{}{}
		<-release
		httpapi.WriteJSON(w, http.StatusOK, map[string]int64{"read": n})
	})
	mux.HandleFunc("POST /upload", readAllHandler)
	mux.HandleFunc("POST /json", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := httpapi.DecodeJSON(r, &v); err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, v)
	})
	addr := serve(t, Config{Server: config.Server{MaxBodyBytes: 1000, MaxInflightBodyBytes: 1500}}, mux)
	do := func(path string, body io.Reader, n int64) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, body)
		req.ContentLength = n
		return http.DefaultClient.Do(req)
	}
	post := func(path string, body io.Reader, n int64) *http.Response {
		resp, err := do(path, body, n)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	first := make(chan *http.Response, 1)
	go func() {
		resp, err := do("/hold", strings.NewReader(strings.Repeat("a", 1000)), 1000)
		if err != nil {
			t.Error(err)
			close(holding)
		}
		first <- resp
	}()
	<-holding // 1000 of 1500 bytes are held

	jsonBody := `{"pad":"` + strings.Repeat("j", 600) + `"}`
	cases := []struct {
		name, path string
		body       io.Reader
		n          int64
	}{
		{"declared length over what is left", "/upload", strings.NewReader(strings.Repeat("b", 600)), 600},
		{"chunked body over what is left", "/upload", io.MultiReader(strings.NewReader(strings.Repeat("c", 300)), strings.NewReader(strings.Repeat("c", 300))), -1},
		{"strict JSON decoding keeps the 503", "/json", strings.NewReader(jsonBody), int64(len(jsonBody))},
	}
	for _, c := range cases {
		resp := post(c.path, c.body, c.n)
		env := decodeEnvelope(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || env.Error != "server_busy" || env.RequestID == "" {
			t.Fatalf("%s: %d %+v, want 503 server_busy", c.name, resp.StatusCode, env)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("%s: Retry-After %q", c.name, resp.Header.Get("Retry-After"))
		}
	}
	// What fits still passes.
	if resp := post("/upload", strings.NewReader(strings.Repeat("d", 400)), 400); resp.StatusCode != 200 {
		t.Fatalf("body within the budget: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	close(release)
	if resp := <-first; resp == nil || resp.StatusCode != 200 {
		t.Fatalf("held request: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	// Released: the whole budget is available again.
	if resp := post("/upload", strings.NewReader(strings.Repeat("e", 1000)), 1000); resp.StatusCode != 200 {
		t.Fatalf("after release: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
}

// The budget is only taken when a handler reads: a request refused before
// its body is read (a webhook's source check) costs nothing.
func TestInflightBudgetTakenOnRead(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /refuse", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "forbidden_source", "no"))
	})
	mux.HandleFunc("POST /upload", readAllHandler)
	srv, err := New(Config{Server: config.Server{Listen: "127.0.0.1:0", MaxBodyBytes: 1000, MaxInflightBodyBytes: 1000},
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()}, mux)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "/refuse", strings.NewReader(strings.Repeat("a", 900)))
	rec := &recorder{h: http.Header{}}
	srv.Handler().ServeHTTP(rec, req)
	if rec.code != http.StatusForbidden || srv.budget.inUse() != 0 {
		t.Fatalf("refused without reading: status %d, budget in use %d", rec.code, srv.budget.inUse())
	}
}

type recorder struct {
	h    http.Header
	code int
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}

// A path that enforces its own body limit (a webhook endpoint) is not
// capped by server.max_body_bytes: its limit may be larger or smaller.
func TestOwnBodyLimits(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/big", readAllHandler)
	mux.HandleFunc("POST /other", readAllHandler)
	addr := serve(t, Config{Server: config.Server{MaxBodyBytes: 100, MaxInflightBodyBytes: 1 << 20},
		OwnBodyLimits: []string{"/webhooks/big"}}, mux)
	cases := []struct {
		path    string
		size    int
		chunked bool
		want    int
	}{
		{"/webhooks/big", 5000, false, 200},
		{"/webhooks/big", 5000, true, 200},
		{"/other", 5000, false, 413},
		{"/other", 5000, true, 413},
		{"/other", 100, false, 200},
	}
	for _, c := range cases {
		var body io.Reader = strings.NewReader(strings.Repeat("x", c.size))
		n := int64(c.size)
		if c.chunked {
			body, n = io.MultiReader(body), -1
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+c.path, body)
		req.ContentLength = n
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %d bytes chunked=%v: %d %s, want %d", c.path, c.size, c.chunked, resp.StatusCode, b, c.want)
		}
		if c.want == 200 && !strings.Contains(string(b), fmt.Sprintf(`"read":%d`, c.size)) {
			t.Errorf("%s: handler read %s, want %d", c.path, b, c.size)
		}
	}
}

// With metrics_listen set, /metrics is served there and the public
// listener answers 404 at /metrics.
func TestMetricsListen(t *testing.T) {
	t.Parallel()
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	mux := http.NewServeMux()
	addr := serve(t, Config{Server: config.Server{MetricsListen: metricsAddr}, Registry: prometheus.NewRegistry()}, mux)
	get := func(url string) (int, string) {
		t.Helper()
		var last error
		for range 50 { // the metrics listener starts beside the public one
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			last = err
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("GET %s: %v", url, last)
		return 0, ""
	}
	if code, body := get("http://" + addr + "/healthz"); code != 200 {
		t.Fatalf("healthz %d %s", code, body)
	}
	if code, body := get("http://" + addr + "/metrics"); code != 404 || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("public /metrics: %d %s, want 404 envelope", code, body)
	}
	code, body := get("http://" + metricsAddr + "/metrics")
	if code != 200 || !strings.Contains(body, `backlot_http_requests_total{code="200",route="GET /healthz"} 1`) {
		t.Fatalf("metrics listener: %d %s", code, body)
	}
	if code, _ := get("http://" + metricsAddr + "/healthz"); code != 404 {
		t.Fatalf("metrics listener serves more than /metrics: %d", code)
	}
}

// Without metrics_listen, /metrics stays on the public listener.
func TestMetricsOnPublicListenerByDefault(t *testing.T) {
	t.Parallel()
	addr := serve(t, Config{Registry: prometheus.NewRegistry()}, http.NewServeMux())
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics %d", resp.StatusCode)
	}
}
