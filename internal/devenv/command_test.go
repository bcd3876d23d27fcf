package devenv_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
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
		cmd := exec.Command(bin, "dev", "--port", "0", "--log-format", "text")
		cmd.Dir = work
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		lines := make(chan string, 64)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			exited <- cmd.Wait()
		}()
		defer func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
			}
		}()
		var out strings.Builder
		var url string
		deadline := time.After(20 * time.Second)
		for url == "" || !strings.Contains(out.String(), "webhook signing secret") {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("backlot dev exited before printing its table:\n%s", out.String())
				}
				out.WriteString(l + "\n")
				if m := demo.FindStringSubmatch(l); m != nil {
					url = m[1]
				}
			case <-deadline:
				t.Fatalf("no table after 20 s:\n%s", out.String())
			}
		}
		if !strings.Contains(out.String(), "ready in") {
			t.Errorf("table lacks the start time:\n%s", out.String())
		}
		if got := strings.Contains(out.String(), "(new)"); got != wantNew {
			t.Errorf("secrets marked new = %v, want %v:\n%s", got, wantNew, out.String())
		}
		if a := do(t, nil, "GET", url, nil, nil); a.status != 200 {
			t.Errorf("GET %s: %d", url, a.status)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("backlot dev after SIGTERM: %v", err)
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
