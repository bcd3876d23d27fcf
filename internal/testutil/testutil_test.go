package testutil_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backlothq/backlot/internal/testutil"
)

// fakeServeEnv makes this test binary, re-executed, play a server for the
// StartBacklot tests: it serves /healthz on the given address and exits
// with code 3 on SIGTERM.
const fakeServeEnv = "TESTUTIL_FAKE_SERVE_ADDR"

func TestMain(m *testing.M) {
	if addr := os.Getenv(fakeServeEnv); addr != "" {
		fakeServe(addr)
		return
	}
	testutil.Main(m)
}

func fakeServe(addr string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		os.Exit(3)
	}()
	fmt.Println("fake serving on", addr)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	err := http.ListenAndServe(addr, mux)
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	for range 2 {
		// Other test processes of `make test` pick from the same range, and
		// one may bind a port between FreePort and this bind: that is
		// the port listening now, and another try is fair. A port that
		// cannot be bound with nothing listening on it is a failure.
		for try := 1; ; try++ {
			p := testutil.FreePort(t)
			if p < 1024 || p > 65535 {
				t.Fatalf("FreePort = %d", p)
			}
			addr := fmt.Sprintf("127.0.0.1:%d", p)
			l, err := net.Listen("tcp", addr)
			if err == nil {
				l.Close()
				break
			}
			c, derr := net.Dial("tcp", addr)
			if derr != nil || try == 5 {
				t.Fatalf("listen on FreePort %d: %v (try %d; dial: %v)", p, err, try, derr)
			}
			c.Close()
			t.Logf("port %d was taken by another listener meanwhile; trying again", p)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	t.Parallel()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(b), "module github.com/backlothq/backlot") {
		t.Fatalf("go.mod at %s: %v", root, err)
	}
}

func TestPostgresFreshDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testutil.Postgres(t), testutil.Postgres(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	if _, err := ca.Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := cb.QueryRow(ctx, `SELECT to_regclass('only_in_a') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("a table created in one database is visible in the other")
	}
	var version int
	if err := ca.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 130000 {
		t.Fatalf("server version %d, want 13 or later (DROP DATABASE … WITH (FORCE))", version)
	}
	var listen string
	if err := ca.QueryRow(ctx, `SHOW listen_addresses`).Scan(&listen); err != nil || listen != "127.0.0.1" {
		t.Fatalf("listen_addresses = %q, %v; want loopback only", listen, err)
	}
}

func TestPGServerStopStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testutil.NewPostgresServer(t, testutil.PGOptions{Fsync: true})
	ping := func() error {
		c, err := pgx.Connect(ctx, srv.URL())
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var fsync string
		if err := c.QueryRow(ctx, `SHOW fsync`).Scan(&fsync); err != nil {
			return err
		}
		if fsync != "on" {
			return fmt.Errorf("fsync = %q, want on", fsync)
		}
		return nil
	}
	if err := ping(); err != nil {
		t.Fatalf("before stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if u := srv.NewDatabase(t); !strings.Contains(u, fmt.Sprintf(":%d/", srv.Port())) {
		t.Fatalf("NewDatabase URL %q not on port %d", u, srv.Port())
	}
}

func TestStartBacklotProcess(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T) *testutil.Proc {
		port := testutil.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		return testutil.StartBacklot(t, testutil.BacklotCmd{
			Bin:  self,
			Args: []string{"-test.run=^$"},
			Env:  []string{fakeServeEnv + "=" + addr},
			URL:  "http://" + addr,
		})
	}

	t.Run("SignalAndWait", func(t *testing.T) {
		t.Parallel()
		p := start(t)
		resp, err := http.Get(p.URL + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz after StartBacklot: %v %v", resp, err)
		}
		resp.Body.Close()
		if p.Exited() {
			t.Fatal("Exited() while serving")
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.Wait(); code != 3 {
			t.Fatalf("exit code after SIGTERM = %d, want 3", code)
		}
		out, err := os.ReadFile(p.Stdout)
		if err != nil || !strings.Contains(string(out), "fake serving on") {
			t.Fatalf("stdout file = %q, %v", out, err)
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("Signal after exit: %v", err)
		}
	})

	t.Run("Kill", func(t *testing.T) {
		t.Parallel()
		p := start(t)
		p.Kill()
		if code := p.Wait(); code != -1 {
			t.Fatalf("exit code after SIGKILL = %d, want -1", code)
		}
		if _, err := http.Get(p.URL + "/healthz"); err == nil {
			t.Fatal("still answering after Kill")
		}
	})
}

func TestBuildBacklot(t *testing.T) {
	t.Parallel()
	bin := testutil.BuildBacklot(t)
	st, err := os.Stat(bin)
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("built binary %s: %v %v", bin, st, err)
	}
	if again := testutil.BuildBacklot(t); again != bin {
		t.Fatalf("second BuildBacklot = %s, want the same binary %s", again, bin)
	}
}
