package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/testutil"
	"github.com/backlothq/backlot/internal/webhook"
)

type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkIngestSQLite is SPEC 7's ingest path without the network: a
// fresh signed Standard Webhooks delivery per op, verified, deduplicated
// and durably group-committed to SQLite (synchronous=FULL) by the real job
// engine before the handler answers.
func BenchmarkIngestSQLite(b *testing.B) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	st := testutil.SQLite(b)
	eng, err := engine.New(config.Jobs{}, nil, st, engine.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := eng.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Stop(ctx) })
	set, err := webhook.New([]config.Webhook{{Path: "/h", Job: "bench.event",
		Verify: config.Verify{Scheme: "standard", Secrets: []string{secret}}}}, webhook.Deps{Enqueuer: eng})
	if err != nil {
		b.Fatal(err)
	}
	ep := set.Endpoints()[0]
	signer, _ := webhook.NewStandardSigner(secret)
	body := []byte(`{"type":"invoice.paid","data":{"id":"in_1NtJ2e","amount":1200,"currency":"usd"}}`)
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32) // many requests in flight, as under 64 connections
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{h: http.Header{}}
		for pb.Next() {
			id := "msg_" + strconv.FormatInt(seq.Add(1), 10)
			ts := time.Now().Unix()
			r, _ := http.NewRequest(http.MethodPost, "/h", io.NopCloser(bytes.NewReader(body)))
			r.ContentLength = int64(len(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("webhook-id", id)
			r.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
			r.Header.Set("webhook-signature", signer.Sign(id, ts, body))
			clear(w.h)
			ep.ServeHTTP(w, r)
			if w.status != http.StatusAccepted {
				panic(fmt.Sprintf("status %d", w.status))
			}
		}
	})
}
