package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/internal/testutil"
)

// BenchmarkCSVExport measures the memory of the streamed CSV export: the
// example is built and run as its own process (so the benchmark's own heap,
// which holds the simulator and its seeded data, is not what is measured),
// pointed at the marketplace simulator seeded with n users and one listing
// each, and the whole CSV is downloaded through GET
// /internal/export/users.csv. The process's VmHWM (peak resident set) and
// VmRSS are read from /proc before and after; similar peaks for 10,000 and
// 100,000 rows mean memory does not grow with the export.
//
//	go test -run '^$' -bench CSVExport -benchtime 1x ./examples/marketplace-ops/
//
// The example's client paces itself to the environment's limits; the
// configuration says environment: live here (8 queries a second), since at
// dev's 1 query a second 100,000 rows (1,000 pages of 100) take about 17
// minutes. The simulator itself runs without rate limits.
func BenchmarkCSVExport(b *testing.B) {
	bin := buildExample(b)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			sim := marketplace.New(marketplace.Options{ClientID: "mkt-client", IntegrationClientID: "integ-client", IntegrationClientSecret: "integ-secret"})
			for i := range n {
				u := sim.AddUser(fmt.Sprintf("user%06d@example.com", i), "pw", marketplace.Profile{FirstName: "User", LastName: strconv.Itoa(i)})
				sim.AddListing(u, marketplace.Listing{Title: fmt.Sprintf("Listing %d", i), PublicData: map[string]any{"category": "project"}})
			}
			srv := httptest.NewServer(sim)
			b.Cleanup(srv.Close)
			proc := startExample(b, bin, srv.URL)

			before := procStatus(b, proc.Pid())
			b.ResetTimer()
			var rows, bytes int64
			for range b.N {
				rows, bytes = downloadCSV(b, proc.URL)
				if rows != int64(n) {
					b.Fatalf("export: %d rows, want %d", rows, n)
				}
			}
			b.StopTimer()
			after := procStatus(b, proc.Pid())

			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(float64(bytes)/1e6, "csv_MB")
			b.ReportMetric(mb(before.hwm), "start_peak_rss_MB")
			b.ReportMetric(mb(after.hwm), "peak_rss_MB")
			b.ReportMetric(mb(after.rss), "end_rss_MB")
			b.Logf("%d rows, %.1f MB of CSV; VmHWM %.1f -> %.1f MB, VmRSS %.1f -> %.1f MB",
				rows, float64(bytes)/1e6, mb(before.hwm), mb(after.hwm), mb(before.rss), mb(after.rss))
		})
	}
}

// buildExample compiles the example into a temporary directory.
func buildExample(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "marketplace-ops")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build the example: %v\n%s", err, out)
	}
	return bin
}

// startExample runs the built example with the shipped backlot.yaml (its
// listen address, database and environment changed) against the simulator
// at simURL, and waits for /healthz.
func startExample(b *testing.B, bin, simURL string) *testutil.Proc {
	b.Helper()
	cfg, err := os.ReadFile("backlot.yaml")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b))
	text := strings.NewReplacer(
		"127.0.0.1:8080", addr,
		"sqlite://marketplace-ops.db", "sqlite://"+filepath.Join(dir, "ops.db"),
		// Live pacing (8 queries a second) rather than dev's 1: 1,000
		// pages in about 2 minutes instead of 17.
		"environment: dev", "environment: live",
	).Replace(string(cfg))
	path := filepath.Join(dir, "backlot.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	return testutil.StartBacklot(b, testutil.BacklotCmd{Bin: bin, Dir: dir, Args: []string{"--config", path},
		Env: []string{"SHARETRIBE_CLIENT_ID=mkt-client", "SHARETRIBE_INTEGRATION_CLIENT_ID=integ-client",
			"SHARETRIBE_INTEGRATION_CLIENT_SECRET=integ-secret",
			"SHARETRIBE_API_URL=" + simURL, "SHARETRIBE_INTEGRATION_API_URL=" + simURL},
		URL: "http://" + addr, ReadyTimeout: 30 * time.Second})
}

// downloadCSV reads the whole export record by record (so the benchmark
// holds one row at a time) and returns the data rows after the header and
// the bytes received. A truncated export ends with an "# error" line,
// which the CSV reader refuses (one field, not eight).
func downloadCSV(b *testing.B, base string) (rows, n int64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/internal/export/users.csv", nil)
	req.Header.Set("Authorization", "Bearer "+opsKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("export: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		b.Fatalf("export: %d %s", res.StatusCode, body)
	}
	cr := &countingReader{r: res.Body}
	r := csv.NewReader(bufio.NewReader(cr))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil || header[0] != "user_id" {
		b.Fatalf("export header: %v %v", header, err)
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, cr.n
		}
		if err != nil {
			b.Fatalf("export row %d: %v", rows+1, err)
		}
		if rec[0] == "" || rec[1] == "" || rec[4] == "" {
			b.Fatalf("export row %d without its author or listing: %v", rows+1, rec)
		}
		rows++
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// memStatus is a process's peak and current resident set, in kB.
type memStatus struct{ hwm, rss int64 }

// procStatus reads VmHWM and VmRSS from /proc/<pid>/status.
func procStatus(b *testing.B, pid int) memStatus {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("read the example's memory: %v", err)
	}
	var s memStatus
	for line := range strings.Lines(string(raw)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch {
		case name == "VmHWM" && err == nil:
			s.hwm = kb
		case name == "VmRSS" && err == nil:
			s.rss = kb
		}
	}
	if s.hwm == 0 || s.rss == 0 {
		b.Fatalf("no VmHWM/VmRSS in /proc/%d/status", pid)
	}
	return s
}

func mb(kb int64) float64 { return float64(kb) / 1024 }
