package webhook

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/jobs"
)

// noopEnqueuer stands in for the engine so the benchmark measures the
// handler alone.
type noopEnqueuer struct{ n atomic.Int64 }

func (e *noopEnqueuer) Enqueue(context.Context, string, []byte, *jobs.EnqueueOpts) (jobs.EnqueueResult, error) {
	return jobs.EnqueueResult{ID: e.n.Add(1)}, nil
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

func benchEndpoint(b *testing.B, cfg config.Webhook) *Endpoint {
	set, err := New([]config.Webhook{cfg}, Deps{Enqueuer: &noopEnqueuer{}, Now: func() time.Time { return time.Unix(vecTS, 0) }})
	if err != nil {
		b.Fatal(err)
	}
	return set.Endpoints()[0]
}

// BenchmarkIngest measures one signed Standard Webhooks delivery through
// the handler: read, verify, dedupe key, enqueue (no-op), answer.
func BenchmarkIngest(b *testing.B) {
	body := []byte(`{"type":"invoice.paid","data":{"id":"in_1NtJ2e","amount":1200,"currency":"usd","customer":"cus_9s6XKzkNRiz8i3"}}`)
	cases := []struct {
		name string
		cfg  config.Webhook
		hdr  func(i int) http.Header
	}{
		{"standard", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "standard", Secrets: []string{vecSecret}}},
			func(i int) http.Header {
				h := http.Header{}
				for k, v := range standardHeaders(vecSecret, "msg_"+strconv.Itoa(i), vecTS, string(body)) {
					h.Set(k, v)
				}
				return h
			}},
		{"github", config.Webhook{Path: "/h", Job: "k", Verify: config.Verify{Scheme: "github", Secrets: []string{"gh"}}},
			func(i int) http.Header {
				h := http.Header{}
				h.Set("X-Hub-Signature-256", "sha256="+hmacHex("gh", string(body)))
				h.Set("X-GitHub-Delivery", "d-"+strconv.Itoa(i))
				return h
			}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e := benchEndpoint(b, c.cfg)
			h := c.hdr(1)
			h.Set("Content-Type", "application/json")
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				rd := bytes.NewReader(body)
				r, _ := http.NewRequest(http.MethodPost, "/h", nil)
				r.Header = h
				r.RemoteAddr = "192.0.2.1:1"
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					rd.Reset(body)
					r.Body = readCloser{rd}
					r.ContentLength = int64(len(body))
					clear(w.h)
					e.ServeHTTP(w, r)
					if w.status != http.StatusAccepted {
						b.Fatalf("status %d", w.status)
					}
				}
			})
		})
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
