package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestCrashWebhooksSQLite and TestCrashWebhooksPostgres prove SPEC 8's
// promise under SIGKILL: every delivery backlot acknowledged is processed
// after a restart, and nothing it refused ever is.
func TestCrashWebhooksSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	webhookCrash(t, dir, "sqlite://"+filepath.Join(dir, "crash.db"))
}

func TestCrashWebhooksPostgres(t *testing.T) {
	t.Parallel()
	webhookCrash(t, t.TempDir(), testutil.Postgres(t))
}

func webhookCrash(t *testing.T, dir, storeURL string) {
	const (
		good    = 3000 // correctly signed deliveries
		badEach = 10   // one forged delivery after every badEach good ones
		workers = 48
		killAt  = good / 3 // acknowledged deliveries before SIGKILL
	)
	rc := newWebhookReceiver(t)
	listen := webhookListen(t)
	cfg := webhookConfig(t, dir, listen, storeURL, rc.URL(), "", "")
	p := webhookStart(t, dir, cfg, listen)
	url := "http://" + listen + "/webhooks/vendor"

	type item struct {
		id  string
		bad bool
	}
	work := make(chan item)
	go func() {
		defer close(work)
		for i := range good {
			work <- item{id: fmt.Sprintf("msg_crash_%05d", i)}
			if i%badEach == 0 {
				work <- item{id: fmt.Sprintf("msg_forged_%05d", i), bad: true}
			}
		}
	}()

	var (
		mu         sync.Mutex
		acked      []string // got a 2xx
		badSent    []string
		badAnswers = map[int]int{}
		unexpected []string
		ackCount   atomic.Int64
		killOnce   sync.Once
		killedAt   atomic.Int64
	)
	client := webhookClient(workers)
	// Forged deliveries come from another loopback address: backlot limits
	// signature failures per source address (429 after 20 a minute), and
	// the forger must not stop the honest sender's deliveries.
	forger := webhookClientFrom(workers, "127.0.0.2")
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				body := []byte(fmt.Sprintf(`{"type":"crash.test","id":%q,"pad":"%s"}`, it.id, strings.Repeat("x", 64)))
				h := webhookSign(t, webhookVendorSecret, it.id, body)
				if it.bad {
					h = webhookSign(t, webhookForwardSecret, it.id, body) // signed with the wrong secret
				}
				c := client
				if it.bad {
					c = forger
				}
				code, resp, err := webhookPost(c, url, h, body)
				mu.Lock()
				switch {
				case it.bad:
					badSent = append(badSent, it.id)
					if err == nil {
						badAnswers[code]++
					}
				case err != nil:
					// No answer: not acknowledged, may or may not exist.
				case code == 202 || code == 200:
					acked = append(acked, it.id)
				default:
					unexpected = append(unexpected, fmt.Sprintf("%s: %d %s", it.id, code, resp))
				}
				mu.Unlock()
				if !it.bad && err == nil && code/100 == 2 && ackCount.Add(1) == killAt {
					killOnce.Do(func() {
						killedAt.Store(int64(time.Since(start)))
						p.Kill() // SIGKILL mid-load
					})
				}
			}
		}()
	}
	wg.Wait()
	if killedAt.Load() == 0 {
		t.Fatalf("load finished before %d acknowledgements (got %d); nothing was killed", killAt, ackCount.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(unexpected) > 0 {
		t.Fatalf("%d signed deliveries refused, first: %s", len(unexpected), unexpected[0])
	}
	for code, n := range badAnswers {
		if code != 401 && code != 429 {
			t.Fatalf("%d forged deliveries answered %d, want 401 (then 429 once the forger is rate limited)", n, code)
		}
	}
	// The limit is a burst of 20 refilled at 20 a minute: over the load's
	// duration a few more failures may be answered 401.
	if most := 20 + int(time.Since(start)/(3*time.Second)) + 1; badAnswers[401] == 0 || badAnswers[401] > most {
		t.Fatalf("forged deliveries answered %v: want 401 for the first (at most %d in %s), then 429", badAnswers, most, time.Since(start).Round(time.Second))
	}
	t.Logf("killed after %s: %d acknowledged, %d forged sent (%v answered)", time.Duration(killedAt.Load()).Round(time.Millisecond),
		len(acked), len(badSent), badAnswers)
	if len(acked) < killAt {
		t.Fatalf("only %d acknowledged", len(acked))
	}

	// Restart on the same store; send nothing.
	webhookStart(t, dir, cfg, listen)
	rc.waitFor(t, acked, 45*time.Second)

	// Give stragglers a moment, then check nothing forged arrived and every
	// arrival was a delivery we sent, correctly signed by backlot.
	time.Sleep(500 * time.Millisecond)
	for _, id := range badSent {
		if got := rc.get(id); len(got) > 0 {
			t.Fatalf("refused delivery %s reached the receiver: %+v", id, got[0])
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.failed > 0 {
		t.Fatalf("%d forwarded requests carried a bad signature", rc.failed)
	}
	for id, ds := range rc.byID {
		if !strings.HasPrefix(id, "msg_crash_") {
			t.Fatalf("receiver got an unknown delivery id %q", id)
		}
		// Byte-exactness is TestWebhookForwardBodyUnchanged's; here the
		// payload must be the delivery's own.
		var b struct{ ID string }
		if err := json.Unmarshal([]byte(ds[0].Body), &b); err != nil || b.ID != id {
			t.Fatalf("delivery %s carried body %s", id, ds[0].Body)
		}
	}
	dups := 0
	for _, ds := range rc.byID {
		dups += len(ds) - 1
	}
	t.Logf("receiver: %d distinct deliveries, %d redeliveries (at-least-once)", len(rc.byID), dups)
}
