package simkit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

// serve puts g in front of a handler that answers 200 "real" on any path,
// the route being the path.
func serve(t *testing.T, g *Registry) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.Apply(w, r, r.URL.Path) {
			return
		}
		io.WriteString(w, "real")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func TestApplyRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       Options
		faults     []Fault // added in order (Set when opts.ExactFirst)
		path       string
		wantStatus []int // one per request
		wantRetry  string
	}{
		{"count then real", Options{}, []Fault{{Route: "/a", Status: 503, Count: 2}}, "/a", []int{503, 503, 200}, ""},
		{"429 gets Retry-After 1", Options{}, []Fault{{Route: "/a", Status: 429}}, "/a", []int{429}, "1"},
		{"given Retry-After rounded up", Options{}, []Fault{{Route: "/a", Status: 429, RetryAfter: 2500 * time.Millisecond}}, "/a", []int{429}, "3"},
		{"5xx without RetryAnyStatus", Options{}, []Fault{{Route: "/a", Status: 500, RetryAfter: 4 * time.Second}}, "/a", []int{500}, ""},
		{"5xx with RetryAnyStatus", Options{RetryAnyStatus: true}, []Fault{{Route: "/a", Status: 500, RetryAfter: 4 * time.Second}}, "/a", []int{500}, "4"},
		{"503 listed", Options{RetryStatuses: []int{429, 503}}, []Fault{{Route: "/a", Status: 503}}, "/a", []int{503}, "1"},
		{"wildcard", Options{}, []Fault{{Route: "*", Status: 502}}, "/b", []int{502}, ""},
		{"no wildcard", Options{NoWildcard: true}, []Fault{{Route: "*", Status: 502}}, "/b", []int{200}, ""},
		{"first added wins", Options{}, []Fault{{Route: "*", Status: 502}, {Route: "/a", Status: 504}}, "/a", []int{502}, ""},
		{"exact first", Options{ExactFirst: true}, []Fault{{Route: "*", Status: 502}, {Route: "/a", Status: 504}}, "/a", []int{504}, ""},
		{"other route untouched", Options{}, []Fault{{Route: "/a", Status: 500}}, "/b", []int{200}, ""},
		{"latency then real", Options{}, []Fault{{Route: "/a", Latency: time.Millisecond}}, "/a", []int{200}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewRegistry(tt.opts)
			for _, f := range tt.faults {
				if tt.opts.ExactFirst {
					g.Set(f)
				} else {
					g.Add(f)
				}
			}
			srv := serve(t, g)
			for i, want := range tt.wantStatus {
				status, h, body := get(t, srv.URL+tt.path)
				if status != want {
					t.Fatalf("request %d: %d %s, want %d", i, status, body, want)
				}
				if want != 200 && h.Get("Retry-After") != tt.wantRetry {
					t.Fatalf("request %d: Retry-After %q, want %q", i, h.Get("Retry-After"), tt.wantRetry)
				}
			}
		})
	}
}

func TestSetReplacesAndSpentFaults(t *testing.T) {
	t.Parallel()
	g := NewRegistry(Options{})
	g.Set(Fault{Route: "/a", Status: 500})
	g.Set(Fault{Route: "/a", Status: 502, Count: 1})
	if s := g.Snapshot(); len(s) != 1 || s[0].Status != 502 || s[0].Remaining != 1 {
		t.Fatalf("after two Sets: %+v", s)
	}
	srv := serve(t, g)
	get(t, srv.URL+"/a")
	if s := g.Snapshot(); len(s) != 0 {
		t.Fatalf("a spent fault is still listed: %+v", s)
	}

	keep := NewRegistry(Options{KeepSpent: true})
	keep.Add(Fault{Route: "/a", Status: 500, Count: 1})
	srv = serve(t, keep)
	if status, _, _ := get(t, srv.URL+"/a"); status != 500 {
		t.Fatalf("first request: %d", status)
	}
	if status, _, _ := get(t, srv.URL+"/a"); status != 200 {
		t.Fatalf("spent fault applied again: %d", status)
	}
	if s := keep.Snapshot(); len(s) != 1 || s[0].Count != 1 || s[0].Remaining != 0 {
		t.Fatalf("KeepSpent listing: %+v", s)
	}
}

func TestHangReleasedByClear(t *testing.T) {
	t.Parallel()
	g := NewRegistry(Options{})
	g.Add(Fault{Route: "/a", Hang: true})
	srv := serve(t, g)
	errc := make(chan error, 1)
	go func() {
		res, err := http.Get(srv.URL + "/a")
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	// Clear until the request ends: it may not have been taken yet.
	for {
		select {
		case err := <-errc:
			if err == nil {
				t.Fatal("a hanging request was answered; want the connection dropped")
			}
			return
		case <-time.After(10 * time.Millisecond):
			g.Clear()
			g.Add(Fault{Route: "/a", Hang: true})
		}
	}
}

func TestHangEndsWithClient(t *testing.T) {
	t.Parallel()
	g := NewRegistry(Options{})
	g.Add(Fault{Route: "/a", Hang: true})
	srv := serve(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/a", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatal("a hanging request was answered")
	}
}

func TestExtraAndAnswerHook(t *testing.T) {
	t.Parallel()
	g := NewRegistry(Options{
		Answer: func(w http.ResponseWriter, _ *http.Request, route string, f Fault) {
			WriteJSON(w, http.StatusOK, map[string]any{"error": f.Extra, "route": route})
		},
	})
	g.Add(Fault{Route: "/a", Extra: "invalid_grant"})
	status, _, body := get(t, serve(t, g).URL+"/a")
	if status != 200 || !strings.Contains(body, `"error":"invalid_grant"`) || !strings.Contains(body, `"route":"/a"`) {
		t.Fatalf("Extra fault: %d %s", status, body)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	routes := []string{"/a"}
	tests := []struct {
		name string
		opts Options
		f    Fault
		ok   bool
	}{
		{"ok", Options{Routes: routes}, Fault{Route: "/a", Status: 503}, true},
		{"wildcard", Options{Routes: routes}, Fault{Route: "*", Status: 429}, true},
		{"wildcard refused", Options{Routes: routes, NoWildcard: true}, Fault{Route: "*", Status: 429}, false},
		{"unknown route", Options{Routes: routes}, Fault{Route: "/b", Status: 503}, false},
		{"no route", Options{}, Fault{Status: 503}, false},
		{"4xx refused", Options{}, Fault{Route: "/a", Status: 404}, false},
		{"4xx allowed", Options{Allow4xx: true}, Fault{Route: "/a", Status: 404}, true},
		{"3xx never", Options{Allow4xx: true}, Fault{Route: "/a", Status: 302}, false},
		{"negative latency", Options{}, Fault{Route: "/a", Latency: -1}, false},
		{"negative count", Options{}, Fault{Route: "/a", Status: 500, Count: -1}, false},
		{"noop refused", Options{}, Fault{Route: "/a"}, false},
		{"noop allowed", Options{AllowNoop: true}, Fault{Route: "/a"}, true},
		{"extra is an effect", Options{}, Fault{Route: "/a", Extra: "x"}, true},
	}
	for _, tt := range tests {
		if err := NewRegistry(tt.opts).Validate(tt.f); (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestFaultsHandler(t *testing.T) {
	t.Parallel()
	g := NewRegistry(Options{Routes: []string{"/a"}})
	srv := httptest.NewServer(FaultsHandler(g))
	defer srv.Close()
	do := func(method, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, bad := range []string{`{"route":"/nope","status":500}`, `{"route":"/a","status":200}`, `{"route":"/a","stauts":500}`, `{"route":"/a"}`, `[`} {
		if status, body := do("POST", bad); status != 400 || !strings.Contains(body, "invalid_fault") {
			t.Errorf("POST %s = %d %s, want 400 invalid_fault", bad, status, body)
		}
	}
	if status, body := do("POST", `{"route":"/a","status":503,"count":2,"retry_after":3}`); status != 201 {
		t.Fatalf("POST = %d %s", status, body)
	}
	status, body := do("GET", "")
	var got struct{ Faults []JSONFault }
	if status != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got.Faults) != 1 ||
		got.Faults[0] != (JSONFault{Route: "/a", Status: 503, Count: 2, RetryAfter: 3}) {
		t.Fatalf("GET = %d %s", status, body)
	}
	if status, _ := do("DELETE", ""); status != 204 || len(g.Snapshot()) != 0 {
		t.Fatalf("DELETE = %d, faults left %v", status, g.Snapshot())
	}
	if status, _ := do("PUT", ""); status != 405 {
		t.Fatalf("PUT = %d, want 405", status)
	}
}

func TestNotSimulated(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NotSimulated(w, r, "test", "", []string{"GET /a"}, map[string]any{"error_code": 1001})
	}))
	defer srv.Close()
	status, _, body := get(t, srv.URL+"/b")
	var v map[string]any
	if status != 404 || json.Unmarshal([]byte(body), &v) != nil || v["error"] != "not_simulated" ||
		v["error_description"] != "GET /b is not simulated by the test simulator" || v["error_code"] != float64(1001) ||
		len(v["routes"].([]any)) != 1 {
		t.Fatalf("not simulated: %d %s", status, body)
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	clock := testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	rl := NewRateLimiter(2, 10*time.Second, clock.Now)
	for i := range 2 {
		if ok, _ := rl.Allow("k"); !ok {
			t.Fatalf("request %d refused", i)
		}
	}
	clock.Advance(4 * time.Second)
	if ok, wait := rl.Allow("k"); ok || wait != 6*time.Second || RetryAfter(wait) != "6" {
		t.Fatalf("third request: %v, wait %v", ok, wait)
	}
	if ok, _ := rl.Allow("other"); !ok {
		t.Fatal("another key shares the window")
	}
	clock.Advance(6 * time.Second)
	if ok, _ := rl.Allow("k"); !ok {
		t.Fatal("a new window is still limited")
	}
	rl.Reset()
	if ok, _ := NewRateLimiter(0, time.Second, clock.Now).Allow("k"); !ok {
		t.Fatal("limit 0 limits")
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", 9 * time.Second: "9"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRouter(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	rt := NewRouter(mux)
	rt.Handle("GET /a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "real") })
	resets := 0
	g := rt.Controls("test", func() { resets++ })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := g.Validate(Fault{Route: "GET /b", Status: 500}); err == nil {
		t.Fatal("a fault on an unhandled route validated")
	}
	g.Add(Fault{Route: "GET /a", Status: 503, Count: 1})
	if status, h, _ := get(t, srv.URL+"/a"); status != 503 || h.Get("Retry-After") != "1" {
		t.Fatalf("faulted: %d Retry-After %q", status, h.Get("Retry-After"))
	}
	if status, _, body := get(t, srv.URL+"/a"); status != 200 || body != "real" {
		t.Fatalf("after the fault: %d %s", status, body)
	}
	if status, _, body := get(t, srv.URL+"/b"); status != 404 || !strings.Contains(body, `"routes":["GET /a"]`) {
		t.Fatalf("unknown route: %d %s", status, body)
	}
	res, err := http.Post(srv.URL+"/_sim/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 || resets != 1 {
		t.Fatalf("reset: %d, %d resets", res.StatusCode, resets)
	}
}
