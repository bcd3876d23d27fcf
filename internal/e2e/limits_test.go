package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// limitsConfig writes a backlot.yaml with one standard webhook endpoint
// (/webhooks/vendor, signed with webhookVendorSecret) whose jobs nobody
// runs, plus extra server keys and endpoint keys.
func limitsConfig(t *testing.T, dir, listen, extraServer, extraWebhook string) string {
	t.Helper()
	y := fmt.Sprintf(`server:
  listen: %q
%sstore:
  url: "sqlite://%s"
webhooks:
  - path: /webhooks/vendor
    verify: { scheme: standard, secrets: [%q] }
    job: vendor.event
%s`, listen, extraServer, filepath.Join(dir, "backlot.db"), webhookVendorSecret, extraWebhook)
	p := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A sender trickling one byte a second, in its body or in its headers, is
// cut off once server.read_timeout has passed.
func TestSlowSenderCutOff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	listen := webhookListen(t)
	cfg := limitsConfig(t, dir, listen, "  read_timeout: 2s\n", "")
	webhookStart(t, dir, cfg, listen)

	cases := []struct{ name, head, trickle string }{
		{"body", "POST /webhooks/vendor HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n",
			`{"padding":"` + strings.Repeat("x", 40) + `"}`},
		{"headers", "POST /webhooks/vendor HTTP/1.1\r\n", "Host: x\r\nX-Padding: " + strings.Repeat("y", 40)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", listen)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, c.head); err != nil {
				t.Fatal(err)
			}
			type end struct {
				after time.Duration
				reply string
			}
			closed := make(chan end, 1)
			go func() {
				b, _ := io.ReadAll(conn) // until the server closes
				closed <- end{time.Since(start), string(b)}
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case e := <-closed:
					if e.after > 3500*time.Millisecond {
						t.Fatalf("cut off after %s, want within read_timeout (2s)", e.after)
					}
					if strings.HasPrefix(e.reply, "HTTP/1.1 2") {
						t.Fatalf("a cut-off request was accepted: %q", e.reply)
					}
					t.Logf("cut off after %s", e.after.Round(time.Millisecond))
					return
				case <-tick.C:
					if i >= len(c.trickle) || time.Since(start) > 10*time.Second {
						t.Fatalf("still connected after %s of trickling", time.Since(start).Round(time.Second))
					}
					conn.Write([]byte{c.trickle[i]}) // fails once cut off
				}
			}
		})
	}
}

// vmRSS reads the resident set size of a process, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read process status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) != 2 || f[1] != "kB" {
				t.Fatalf("VmRSS line %q", line)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// 100 senders each sending 1 MiB less 2 bytes of a declared 1 MiB body and
// then stalling cannot make the process hold them all: the in-flight body
// budget refuses the excess with 503, and resident memory grows by no more
// than 40 MiB. The service keeps answering meanwhile.
func TestStalledBodiesBoundMemory(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Fatalf("this test reads /proc: %v", err)
	}
	dir := t.TempDir()
	listen := webhookListen(t)
	cfg := limitsConfig(t, dir, listen, "  read_timeout: 20s\n", "")
	p := webhookStart(t, dir, cfg, listen)

	// Warm up: one real delivery, so the baseline includes the code paths.
	body := []byte(`{"warm":"up"}`)
	client := webhookClient(4)
	if st, b, err := webhookPost(client, "http://"+listen+"/webhooks/vendor", webhookSign(t, webhookVendorSecret, "warm-1", body), body); err != nil || st != http.StatusAccepted {
		t.Fatalf("warm-up delivery: %d %s %v", st, b, err)
	}
	time.Sleep(300 * time.Millisecond)
	base := vmRSS(t, p.Pid())

	const conns, size = 100, 1 << 20
	payload := bytes.Repeat([]byte("a"), size-2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", listen)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			head := fmt.Sprintf("POST /webhooks/vendor HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
				"webhook-id: stall-%d\r\nwebhook-timestamp: %d\r\nwebhook-signature: v1,AAAA\r\nContent-Length: %d\r\n\r\n",
				i, time.Now().Unix(), size)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(append([]byte(head), payload...)) // fails if the server closed early
		}()
	}
	wg.Wait()

	// Sample while the senders stall (well within read_timeout).
	peak := base
	for range 10 {
		time.Sleep(200 * time.Millisecond)
		peak = max(peak, vmRSS(t, p.Pid()))
	}
	growth := peak - base
	// The senders beyond the budget were answered 503 with Retry-After.
	busy := 0
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		b := make([]byte, 512)
		n, _ := io.ReadAtLeast(c, b, 12)
		if r := string(b[:n]); strings.HasPrefix(r, "HTTP/1.1 503") && strings.Contains(r, "Retry-After:") {
			busy++
		}
	}
	t.Logf("RSS %d MiB before, %d MiB peak (+%.1f MiB); %d of %d senders answered 503",
		base>>20, peak>>20, float64(growth)/(1<<20), busy, conns)
	if busy < conns/2 {
		t.Errorf("only %d of %d stalled senders were refused with 503 and Retry-After", busy, conns)
	}
	if growth > 40<<20 {
		t.Fatalf("RSS grew by %.1f MiB with %d stalled 1 MiB bodies, want at most 40 MiB", float64(growth)/(1<<20), conns)
	}
	// Still serving.
	code, _, _ := get(t, "http://"+listen+"/healthz")
	if code != http.StatusOK {
		t.Fatalf("healthz during the stall: %d", code)
	}
}

// A webhook's max_body_bytes may exceed server.max_body_bytes: the
// endpoint takes bodies up to its own limit while other paths keep the
// server's. Also checks the database files are owner-only and /metrics
// moves to metrics_listen.
func TestWebhookOwnLimitAndServerKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	listen := webhookListen(t)
	metrics := webhookListen(t)
	cfg := limitsConfig(t, dir, listen,
		fmt.Sprintf("  max_body_bytes: 1024\n  metrics_listen: %q\n", metrics),
		"    max_body_bytes: 65536\n")
	webhookStart(t, dir, cfg, listen)
	client := webhookClient(4)

	big := []byte(`{"padding":"` + strings.Repeat("p", 20000) + `"}`)
	st, b, err := webhookPost(client, "http://"+listen+"/webhooks/vendor", webhookSign(t, webhookVendorSecret, "big-1", big), big)
	if err != nil || st != http.StatusAccepted {
		t.Fatalf("20 kB delivery to an endpoint allowing 64 KiB (server 1 KiB): %d %s %v", st, b, err)
	}
	huge := []byte(`{"padding":"` + strings.Repeat("p", 70000) + `"}`)
	st, b, err = webhookPost(client, "http://"+listen+"/webhooks/vendor", webhookSign(t, webhookVendorSecret, "huge-1", huge), huge)
	if err != nil || st != http.StatusRequestEntityTooLarge || !strings.Contains(b, `"body_too_large"`) {
		t.Fatalf("70 kB delivery over the endpoint's 64 KiB: %d %s %v", st, b, err)
	}
	st, b, err = webhookPost(client, "http://"+listen+"/webhooks/other", http.Header{"Content-Type": {"application/json"}}, big)
	if err != nil || st != http.StatusRequestEntityTooLarge {
		t.Fatalf("20 kB to a path under the server's 1 KiB: %d %s %v", st, b, err)
	}

	// /metrics only on metrics_listen.
	if code, _, body := get(t, "http://"+listen+"/metrics"); code != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("public /metrics: %d %s", code, body)
	}
	if code, _, body := get(t, "http://"+metrics+"/metrics"); code != http.StatusOK || !strings.Contains(body, "backlot_webhook_verifications_total") {
		t.Fatalf("metrics listener: %d %.200s", code, body)
	}

	// The SQLite files are owner-only.
	for _, f := range []string{"backlot.db", "backlot.db-wal", "backlot.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", f, m)
		}
	}
}
