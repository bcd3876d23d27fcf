package netguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testResolver answers from a table, so no DNS packet leaves the test. A
// host with several answer sets gives them in turn (the last repeats),
// which is how a rebinding DNS server behaves.
type testResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	calls   map[string]int
}

func newTestResolver(answers map[string][]string) *testResolver {
	r := &testResolver{answers: map[string][][]netip.Addr{}, calls: map[string]int{}}
	for host, seq := range answers {
		for _, set := range seq {
			var addrs []netip.Addr
			for _, s := range strings.Split(set, ",") {
				addrs = append(addrs, netip.MustParseAddr(s))
			}
			r.answers[host] = append(r.answers[host], addrs)
		}
	}
	return r
}

func (r *testResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.calls[host]
	r.calls[host]++
	if n >= len(seq) {
		n = len(seq) - 1
	}
	return seq[n], nil
}

func (r *testResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// upstream is a loopback server counting the requests it received.
type upstream struct {
	srv  *httptest.Server
	hits atomic.Int64
	port string
}

func newUpstream(t *testing.T, network, addr string, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	u.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "upstream ok")
	})}}
	u.srv.Start()
	t.Cleanup(u.srv.Close)
	_, u.port, _ = net.SplitHostPort(ln.Addr().String())
	return u
}

func get(c *http.Client, url string) (int, string, error) {
	res, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// TestDialLoopback dials loopback forms end to end: refused without
// allow_private (and the server never hears of it), served with it.
func TestDialLoopback(t *testing.T) {
	t.Parallel()
	up4 := newUpstream(t, "tcp4", "127.0.0.1:0", nil)
	up6 := newUpstream(t, "tcp6", "[::1]:0", nil)
	res := newTestResolver(map[string][]string{
		"upstream.test":     {"127.0.0.1"},
		"upstream6.test":    {"::1"},
		"mapped.test":       {"::ffff:127.0.0.1"},
		"unspecified.test":  {"0.0.0.0"},
		"unspecified6.test": {"::"},
	})
	cases := []struct {
		name    string
		url     string
		up      *upstream
		private bool // allowed with allow_private
	}{
		{"ipv4 literal", "http://127.0.0.1:" + up4.port + "/", up4, true},
		{"ipv4 other loopback", "http://127.0.0.1:" + up4.port + "/x", up4, true},
		{"ipv6 literal", "http://[::1]:" + up6.port + "/", up6, true},
		{"ipv4-mapped literal", "http://[::ffff:127.0.0.1]:" + up4.port + "/", up4, true},
		{"ipv4-mapped hex literal", "http://[::ffff:7f00:1]:" + up4.port + "/", up4, true},
		{"name to loopback", "http://upstream.test:" + up4.port + "/", up4, true},
		{"name to ::1", "http://upstream6.test:" + up6.port + "/", up6, true},
		{"name to mapped loopback", "http://mapped.test:" + up4.port + "/", up4, true},
		{"unspecified literal", "http://0.0.0.0:" + up4.port + "/", up4, false},
		{"unspecified v6 literal", "http://[::]:" + up6.port + "/", up6, false},
		{"name to unspecified", "http://unspecified.test:" + up4.port + "/", up4, false},
		{"name to v6 unspecified", "http://unspecified6.test:" + up6.port + "/", up6, false},
		{"decimal host", "http://2130706433:" + up4.port + "/", up4, false},
		{"octal host", "http://0177.0.0.1:" + up4.port + "/", up4, false},
		{"hex host", "http://0x7f.0.0.1:" + up4.port + "/", up4, false},
		{"short host", "http://127.1:" + up4.port + "/", up4, false},
		{"trailing dot literal", "http://127.0.0.1.:" + up4.port + "/", up4, false},
	}
	strict := Client(Options{Resolver: res})
	lenient := Client(Options{Resolver: res, AllowPrivate: true})
	for _, tc := range cases {
		// Not parallel: each case reads the shared hit counters.
		before := tc.up.hits.Load()
		if _, _, err := get(strict, tc.url); !errors.Is(err, ErrProhibited) {
			t.Errorf("%s: strict client: err = %v, want ErrProhibited", tc.name, err)
		}
		if n := tc.up.hits.Load() - before; n != 0 {
			t.Errorf("%s: strict client reached the upstream %d times", tc.name, n)
		}
		code, body, err := get(lenient, tc.url)
		switch {
		case tc.private && (err != nil || code != 200 || body != "upstream ok"):
			t.Errorf("%s: allow_private client: %d %q %v, want 200", tc.name, code, body, err)
		case !tc.private && !errors.Is(err, ErrProhibited):
			t.Errorf("%s: allow_private client: err = %v, want ErrProhibited", tc.name, err)
		}
	}
	for _, h := range []string{"2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "127.0.0.1."} {
		if n := res.count(h); n != 0 {
			t.Errorf("ambiguous host %q reached the resolver %d times", h, n)
		}
	}
}

// TestDialRebinding: a name that answered a public address when someone
// checked it answers loopback when backlot dials; the dial-time answer is
// the one judged.
func TestDialRebinding(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, "tcp4", "127.0.0.1:0", nil)
	res := newTestResolver(map[string][]string{
		// First lookup: a public address (never dialled). Then loopback.
		"rebind.test": {"93.184.216.34", "127.0.0.1"},
		// Mixed answers: refused whole, before any address is dialled.
		"mixed.test": {"93.184.216.34,127.0.0.1"},
	})
	// The naive pre-check a caller might do: it passes.
	pre, err := res.LookupNetIP(context.Background(), "ip", "rebind.test")
	if err != nil || len(pre) != 1 || Check(pre[0]) != nil {
		t.Fatalf("pre-check lookup: %v %v", pre, err)
	}
	c := Client(Options{Resolver: res})
	_, _, err = get(c, "http://rebind.test:"+up.port+"/")
	if !errors.Is(err, ErrProhibited) {
		t.Fatalf("rebound dial: err = %v, want ErrProhibited", err)
	}
	if n := res.count("rebind.test"); n != 2 {
		t.Errorf("resolver asked %d times, want 2 (pre-check and dial)", n)
	}
	_, _, err = get(c, "http://mixed.test:"+up.port+"/")
	if !errors.Is(err, ErrProhibited) {
		t.Fatalf("mixed answers: err = %v, want ErrProhibited", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("upstream reached %d times", n)
	}
}

// TestNoRedirects: an allowed upstream's redirect to another (also
// loopback) server is returned, not followed.
func TestNoRedirects(t *testing.T) {
	t.Parallel()
	target := newUpstream(t, "tcp4", "127.0.0.1:0", nil)
	origin := newUpstream(t, "tcp4", "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:"+target.port+"/stolen", http.StatusFound)
	})
	c := Client(Options{AllowPrivate: true, Resolver: newTestResolver(nil)})
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, "http://127.0.0.1:"+origin.port+"/", strings.NewReader("{}"))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || !strings.HasSuffix(res.Header.Get("Location"), "/stolen") {
			t.Errorf("%s: status %d Location %q, want the 302 itself", method, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if n := target.hits.Load(); n != 0 {
		t.Fatalf("redirect target reached %d times", n)
	}
	if n := origin.hits.Load(); n != 2 {
		t.Fatalf("origin reached %d times, want 2", n)
	}
}

// TestControlHook checks the socket-level hook as a function: it is what
// judges the numeric address actually connected to.
func TestControlHook(t *testing.T) {
	t.Parallel()
	strict := NewDialer(Options{})
	lenient := NewDialer(Options{AllowPrivate: true})
	for _, tc := range []struct {
		addr            string
		strictOK, lenOK bool
	}{
		{"127.0.0.1:80", false, true},
		{"[::1]:443", false, true},
		{"[::ffff:127.0.0.1]:80", false, true},
		{"10.1.2.3:8080", false, true},
		{"169.254.169.254:80", false, false},
		{"0.0.0.0:80", false, false},
		{"[::]:80", false, false},
		{"[fe80::1%25eth0]:80", false, false},
		{"93.184.216.34:443", true, true},
		{"[2606:4700::1111]:443", true, true},
		{"not-an-address:80", false, false},
	} {
		if err := strict.control("tcp", tc.addr, nil); (err == nil) != tc.strictOK {
			t.Errorf("strict control(%s) = %v", tc.addr, err)
		}
		if err := lenient.control("tcp", tc.addr, nil); (err == nil) != tc.lenOK {
			t.Errorf("allow_private control(%s) = %v", tc.addr, err)
		}
	}
}

func TestDialRefusesBadInput(t *testing.T) {
	t.Parallel()
	d := NewDialer(Options{AllowPrivate: true, Resolver: newTestResolver(nil)})
	ctx := context.Background()
	for _, tc := range []struct{ network, addr string }{
		{"udp", "127.0.0.1:53"},
		{"unix", "/tmp/x.sock"},
		{"tcp", "127.0.0.1"},       // no port
		{"tcp", "127.0.0.1:99999"}, // bad port
		{"tcp", "unknown.test:80"}, // resolver has no answer
		{"tcp", "2130706433:80"},
	} {
		if conn, err := d.DialContext(ctx, tc.network, tc.addr); err == nil {
			conn.Close()
			t.Errorf("DialContext(%s, %s) succeeded", tc.network, tc.addr)
		}
	}
}

func TestTransportIgnoresProxyEnvironment(t *testing.T) {
	t.Parallel()
	tr := Transport(Options{})
	if tr.Proxy != nil {
		t.Fatal("Transport.Proxy is set; proxy environment variables would be honoured")
	}
	c := Client(Options{})
	if c.CheckRedirect == nil || c.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Fatal("Client follows redirects")
	}
	if c.Transport.(*http.Transport).Proxy != nil {
		t.Fatal("Client's transport has a proxy")
	}
}
