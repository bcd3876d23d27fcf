package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/proxy"
	"github.com/backlothq/backlot/internal/sandbox/partner"
	"github.com/backlothq/backlot/internal/sandbox/payments"
)

const (
	jwtSecret   = "proxy-test-secret-0123456789abcdef-xyz"
	mwSecret    = "mw-shared-secret-5f2a9c"
	clientIDStr = "118000"
)

// syncBuffer is a log sink safe for concurrent writes.
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

// sleepLog records the proxy's waits between retries instead of sleeping;
// onSleep, when set, runs at each wait (before it returns).
type sleepLog struct {
	mu      sync.Mutex
	waits   []time.Duration
	onSleep func(n int)
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	n := len(s.waits)
	f := s.onSleep
	s.mu.Unlock()
	if f != nil {
		f(n)
	}
	return ctx.Err()
}

func (s *sleepLog) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// resolver answers every name from a table and records what was asked, so
// tests can prove no other host was ever looked up. It sends no packet.
type resolver struct {
	mu    sync.Mutex
	table map[string][]netip.Addr
	asked []string
}

func (r *resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	if a, ok := r.table[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *resolver) hosts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

// fixture is a proxy Set mounted on a mux behind a real hs256
// authenticator, with the payments and partner simulators on loopback.
type fixture struct {
	pay       *payments.Payments
	paySrv    *httptest.Server
	mwSrv     *httptest.Server
	front     *httptest.Server
	logs      *syncBuffer
	reg       *prometheus.Registry
	sleeps    *sleepLog
	resolver  *resolver
	token     string // the caller's bearer token
	paySecret string
}

type setup struct {
	upstreams map[string]config.Upstream
	routes    []config.Route
	deps      func(*proxy.Deps)
	// noSims skips starting the simulators (tests with their own upstreams).
	noSims bool
}

func intp(n int) *int { return &n }

// newFixture builds the proxy for s. Upstream and lookup URLs may use
// the placeholders PAY and MW for the simulators' base URLs, and MWSECRET
// and PAYSECRET for their secrets.
func newFixture(t testing.TB, s setup) *fixture {
	t.Helper()
	f := &fixture{logs: &syncBuffer{}, reg: prometheus.NewRegistry(), sleeps: &sleepLog{},
		resolver: &resolver{table: map[string][]netip.Addr{}}}
	if !s.noSims {
		f.pay = payments.New(payments.Options{RateLimit: -1})
		f.paySrv = httptest.NewServer(f.pay)
		t.Cleanup(f.paySrv.Close)
		mw := partner.New(partner.Options{Secret: mwSecret, Payments: f.pay, RateLimit: -1})
		f.mwSrv = httptest.NewServer(mw)
		t.Cleanup(f.mwSrv.Close)
		_, f.paySecret = f.pay.ClientCredentials()
	}
	repl := func(v string) string {
		v = strings.ReplaceAll(v, "SECRETMW", mwSecret)
		if f.paySrv != nil {
			v = strings.ReplaceAll(v, "SECRETPAY", f.paySecret)
			v = strings.ReplaceAll(v, "PAY", f.paySrv.URL)
			v = strings.ReplaceAll(v, "MW", f.mwSrv.URL)
		}
		return v
	}
	ups := map[string]config.Upstream{}
	for k, u := range s.upstreams {
		u.BaseURL = repl(u.BaseURL)
		ups[k] = u
	}
	var routes []config.Route
	for _, r := range s.routes {
		if r.Auth == nil {
			r.Auth = []string{"users"}
		}
		if l := r.Credential.Lookup; l != nil {
			c := *l
			c.URL, c.Secret = repl(c.URL), repl(c.Secret)
			r.Credential.Lookup = &c
		}
		if r.Credential.Header != nil {
			h := map[string]string{}
			for k, v := range r.Credential.Header {
				h[k] = repl(v)
			}
			r.Credential.Header = h
		}
		if r.Credential.Body != nil {
			b := map[string]string{}
			for k, v := range r.Credential.Body {
				b[k] = repl(v)
			}
			r.Credential.Body = b
		}
		routes = append(routes, r)
	}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps := proxy.Deps{
		Logger:     logger,
		Metrics:    f.reg,
		Resolver:   f.resolver,
		SleepFunc:  f.sleeps.sleep,
		JitterFunc: func(d time.Duration) time.Duration { return d },
	}
	if s.deps != nil {
		s.deps(&deps)
	}
	set, err := proxy.New(ups, routes, deps)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	users := config.Authenticator{Type: config.AuthHS256, Secret: jwtSecret, Issuer: "backlot", Audience: "backlot",
		InvalidStatus: 401, TTL: config.Duration(time.Hour)}
	as, err := authn.NewSet(map[string]config.Authenticator{"users": users}, nil, authn.Deps{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := set.Register(mux, as); err != nil {
		t.Fatalf("Register: %v", err)
	}
	// The request state the server's middleware would add.
	var n int
	var mu sync.Mutex
	f.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		id := fmt.Sprintf("req-%04d", n)
		mu.Unlock()
		mux.ServeHTTP(w, r.WithContext(httpapi.WithState(r.Context(), &httpapi.State{ID: id})))
	}))
	t.Cleanup(f.front.Close)
	h, err := authn.NewHS256("users", users, authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if f.token, err = h.Mint("staff-1", "acme", []string{"payments"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return f
}

// call sends method path with body to the front, as the authenticated
// caller, plus extra headers.
func (f *fixture) call(t *testing.T, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.front.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// metricsText renders the registry as /metrics would.
func (f *fixture) metricsText(t *testing.T) string {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String())
	}
	return b.String()
}

// observations counts the latency histogram's samples for one label pair.
func (f *fixture) observations(t *testing.T, upstream, class string) uint64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "backlot_upstream_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["upstream"] == upstream && labels["status_class"] == class {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// recorder is an upstream that records what reached it and answers with
// the next of its scripted answers (the last repeats).
type recorder struct {
	mu      sync.Mutex
	reqs    []recorded
	answers []func(w http.ResponseWriter, r *http.Request)
}

type recorded struct {
	method, path, rawPath, query, host string
	header                             http.Header
	body                               []byte
}

func newRecorder(t testing.TB, answers ...func(w http.ResponseWriter, r *http.Request)) (*recorder, *httptest.Server) {
	t.Helper()
	rec := &recorder{answers: answers}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, recorded{method: r.Method, path: r.URL.Path, rawPath: r.URL.EscapedPath(),
		query: r.URL.RawQuery, host: r.Host, header: r.Header.Clone(), body: body})
	i := len(rec.reqs) - 1
	if i >= len(rec.answers) {
		i = len(rec.answers) - 1
	}
	var a func(http.ResponseWriter, *http.Request)
	if i >= 0 {
		a = rec.answers[i]
	}
	rec.mu.Unlock()
	if a == nil {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
		return
	}
	a(w, r)
}

func (rec *recorder) got() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.reqs...)
}

func answer(status int, body string, hdr ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}
