package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BuildBacklot builds ./cmd/backlot once per test binary (CGO_ENABLED=0,
// without -race, like a release) and returns the binary's path. Main
// removes it after the tests.
func BuildBacklot(t testing.TB) string {
	t.Helper()
	bin, err := shared.backlot()
	if err != nil {
		t.Fatalf("build backlot: %v", err)
	}
	return bin
}

func (r *resources) backlot() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bin != "" || r.binErr != nil {
		return r.bin, r.binErr
	}
	r.bin, r.binErr = buildBacklot(r)
	return r.bin, r.binErr
}

func buildBacklot(r *resources) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "backlot-bin-")
	if err != nil {
		return "", err
	}
	r.binDir = dir
	bin := filepath.Join(dir, "backlot")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/backlot")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/backlot: %w\n%s", err, out)
	}
	return bin, nil
}

// ModuleRoot is the directory holding go.mod, found by walking up from the
// working directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// BacklotCmd describes one backlot process for StartBacklot.
type BacklotCmd struct {
	// Bin is the binary, from BuildBacklot.
	Bin string
	// Dir is the working directory; stdout and stderr go to files in it.
	// Default: a new t.TempDir().
	Dir string
	// Args follow the binary, e.g. "serve", "--config", path.
	Args []string
	// Env is added to the test's environment.
	Env []string
	// URL is the base URL the process will serve, e.g.
	// "http://127.0.0.1:PORT" (see FreePort); StartBacklot waits until
	// URL+"/healthz" answers 200. Empty: don't wait.
	URL string
	// ReadyTimeout bounds that wait. Default 15s.
	ReadyTimeout time.Duration
}

// Proc is a running backlot process.
type Proc struct {
	// URL is BacklotCmd.URL.
	URL string
	// Stdout and Stderr are the files the output goes to.
	Stdout, Stderr string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	code int           // exit code, valid after done; -1 if killed by a signal
}

// StartBacklot starts c.Bin, waits until it is healthy, and kills it
// (SIGKILL) at cleanup if it is still running. If it fails to become
// healthy, the test fails with the tail of its stderr.
func StartBacklot(t testing.TB, c BacklotCmd) *Proc {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 15 * time.Second
	}
	stamp := time.Now().Format("150405.000000")
	p := &Proc{
		URL:    c.URL,
		Stdout: filepath.Join(c.Dir, "backlot-"+stamp+".stdout"),
		Stderr: filepath.Join(c.Dir, "backlot-"+stamp+".stderr"),
		done:   make(chan struct{}),
	}
	stdout, err := os.Create(p.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(p.Stderr)
	if err != nil {
		stdout.Close()
		t.Fatal(err)
	}
	p.cmd = exec.Command(c.Bin, c.Args...)
	p.cmd.Dir = c.Dir
	p.cmd.Env = append(os.Environ(), c.Env...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	if err := p.cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		t.Fatalf("start backlot: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("backlot stderr (%s):\n%s", p.Stderr, tail(p.Stderr, 4000))
		}
	})
	if c.URL != "" {
		if err := p.waitHealthy(c.ReadyTimeout); err != nil {
			t.Fatalf("backlot %v: %v\nstderr:\n%s", c.Args, err, tail(p.Stderr, 4000))
		}
	}
	return p
}

func (p *Proc) waitHealthy(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited with code %d before becoming healthy", p.code)
		default:
		}
		resp, err := client.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not healthy after %s: %v", timeout, last)
}

// Pid is the process id, e.g. to read /proc/<pid>/status.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL (if still running) and waits for the exit.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process; after it has exited, it does nothing.
func (p *Proc) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal backlot: %w", err)
	}
	return nil
}

// Wait waits for the process to exit and returns its exit code (-1 when a
// signal killed it).
func (p *Proc) Wait() int {
	<-p.done
	return p.code
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n bytes of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// StderrWhen returns the process's stderr once ok accepts it, or what there
// is after 10 s. The server writes its log in batches (a line may reach the
// file up to 100 ms after its request was answered), so a test looking for
// a line waits for it.
func (p *Proc) StderrWhen(t testing.TB, ok func(logs string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(p.Stderr)
		if err != nil {
			t.Fatalf("read backlot stderr: %v", err)
		}
		if ok(string(b)) || time.Now().After(deadline) {
			return string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SettledStderr returns the process's stderr once nothing was added to it
// for 300 ms (three times the log's batching interval): the lines of every
// request answered before the call are in it. For tests that check what a
// log does not contain.
func (p *Proc) SettledStderr(t testing.TB) string {
	t.Helper()
	last, since := "", time.Now()
	return p.StderrWhen(t, func(logs string) bool {
		if logs != last {
			last, since = logs, time.Now()
			return false
		}
		return time.Since(since) >= 300*time.Millisecond
	})
}
