package devenv_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestCommand runs the built binary as a developer would: `backlot dev`
// prints its table, serves the demo page, and stops cleanly on SIGTERM;
// a second run in the same directory reuses the secrets file.
func TestCommand(t *testing.T) {
	t.Parallel()
	bin := testutil.BuildBacklot(t)
	work := t.TempDir()
	demo := regexp.MustCompile(`demo page\s+(http://127\.0\.0\.1:\d+/_dev/)`)

	runOnce := func(wantNew bool) {
		p := testutil.StartBacklot(t, testutil.BacklotCmd{Bin: bin, Dir: work, Args: []string{"dev", "--port", "0", "--log-format", "text"}})
		var out, url string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			exited := p.Exited() // before the read: the table may come just before an exit
			b, err := os.ReadFile(p.Stdout)
			if err != nil {
				t.Fatal(err)
			}
			out = string(b)
			if m := demo.FindStringSubmatch(out); m != nil && strings.Contains(out, "webhook signing secret") {
				url = m[1]
				break
			}
			if exited {
				t.Fatalf("backlot dev exited before printing its table:\n%s", out)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no table after 20 s:\n%s", out)
			}
		}
		if !strings.Contains(out, "ready in") {
			t.Errorf("table lacks the start time:\n%s", out)
		}
		if got := strings.Contains(out, "(new)"); got != wantNew {
			t.Errorf("secrets marked new = %v, want %v:\n%s", got, wantNew, out)
		}
		if a := do(t, nil, "GET", url, nil, nil); a.status != 200 {
			t.Errorf("GET %s: %d", url, a.status)
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		exited := make(chan int, 1)
		go func() { exited <- p.Wait() }()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("backlot dev after SIGTERM: exit code %d", code)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("backlot dev did not stop within 20 s of SIGTERM")
		}
	}
	runOnce(true)
	st, err := os.Stat(filepath.Join(work, ".backlot-dev", "secrets.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file: %v %v", st, err)
	}
	runOnce(false)
}
