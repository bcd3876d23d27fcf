package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
)

// benchLoop runs b.N requests made by newReq, drains each answer without
// buffering it, and reports the median latency as p50-µs.
func benchLoop(b *testing.B, client *http.Client, newReq func() *http.Request) {
	b.Helper()
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := newReq()
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		durs = append(durs, time.Since(start))
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds())/1e3, "p50-µs")
}

// BenchmarkAccount compares POST /account on the payments simulator
// called directly with the same call through an authenticated proxy route
// (hs256 bearer verified, header credential added). The difference of
// the p50s is the proxy's overhead.
func BenchmarkAccount(b *testing.B) {
	f := newFixture(b, setup{upstreams: simUpstreams, routes: []config.Route{
		{Match: "POST /api/account", Upstream: "payments", Path: "/account",
			Credential: config.Credential{Header: map[string]string{"Authorization": "Bearer MERCHANT"}}},
	}})
	merchant := f.pay.Merchants()[0].AccessToken
	// The fixture substitutes simulator URLs only; put the token in now.
	f2 := newFixture(b, setup{noSims: true,
		upstreams: map[string]config.Upstream{"payments": {BaseURL: f.paySrv.URL + "/v2", AllowPrivate: true}},
		routes: []config.Route{{Match: "POST /api/account", Upstream: "payments", Path: "/account",
			Credential: config.Credential{Header: map[string]string{"Authorization": "Bearer " + merchant}}}},
	})
	body := `{"account_id":1001}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Run("direct", func(b *testing.B) {
		benchLoop(b, client, func() *http.Request {
			req, _ := http.NewRequest("POST", f.paySrv.URL+"/v2/account", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+merchant)
			req.Header.Set("Content-Type", "application/json")
			return req
		})
	})
	b.Run("proxied", func(b *testing.B) {
		benchLoop(b, client, func() *http.Request {
			req, _ := http.NewRequest("POST", f2.front.URL+"/api/account", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+f2.token)
			req.Header.Set("Content-Type", "application/json")
			return req
		})
	})
}

// BenchmarkBodySize sends and receives bodies of growing size through a
// proxy route to an upstream that reads the request and answers the same
// number of bytes. B/op staying flat while the body grows 1000x shows the
// proxy streams with a fixed buffer instead of holding bodies in memory
// (the whole process is measured: client, proxy and upstream).
func BenchmarkBodySize(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		payload := bytes.Repeat([]byte("x"), size)
		_, up := newRecorder(b)
		up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(payload)
		})
		f := newFixture(b, setup{noSims: true,
			upstreams: map[string]config.Upstream{"up": {BaseURL: up.URL, AllowPrivate: true}},
			routes: []config.Route{{Match: "POST /blob", Upstream: "up", Path: "/blob",
				Credential: config.Credential{Header: map[string]string{"X-Api-Key": "k"}}}},
			deps: nil,
		})
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(2 * size))
			benchLoop(b, client, func() *http.Request {
				req, _ := http.NewRequest("POST", f.front.URL+"/blob", bytes.NewReader(payload))
				req.Header.Set("Authorization", "Bearer "+f.token)
				req.Header.Set("Content-Type", "application/octet-stream")
				return req
			})
		})
	}
}
