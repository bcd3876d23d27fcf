package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGOptions tune a throwaway PostgreSQL server.
type PGOptions struct {
	// Fsync turns fsync, synchronous_commit and full_page_writes back on
	// (off by default: tests don't survive power loss, and it is much
	// faster). For the shared server, set BACKLOT_TEST_PG_FSYNC=on.
	Fsync bool
}

// PGServer is a PostgreSQL server in a temporary directory, owned by the
// test binary. It listens on 127.0.0.1 only, with trust authentication.
type PGServer struct {
	bin    string // directory of initdb, pg_ctl, postgres
	dir    string // temp root: data/, log, unix socket
	port   int
	asUser string // "postgres" when we are root, else ""
	opts   PGOptions

	mu      sync.Mutex // serialises Start/Stop and CREATE DATABASE
	running bool
	seq     int
}

// Postgres returns the URL of a fresh, empty database in the test binary's
// shared PostgreSQL server, starting the server on first use. The database
// is dropped at the test's cleanup. Without PostgreSQL binaries the test is
// skipped, or fails under CI=true. Packages that use it should stop the
// server after their tests with testutil.Main from TestMain.
func Postgres(t testing.TB) string {
	t.Helper()
	s, err := shared.postgres()
	if err != nil {
		skipOrFail(t, err)
	}
	return s.NewDatabase(t)
}

// NewPostgresServer starts a PostgreSQL server of the test's own, for tests
// that stop and restart it. It is stopped and deleted at cleanup.
func NewPostgresServer(t testing.TB, opts PGOptions) *PGServer {
	t.Helper()
	s, err := startPGServer(opts)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := s.destroy(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	if err := s.createDatabase(context.Background(), "backlot"); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	return s
}

// errNoPostgres marks the one condition that may skip a test.
var errNoPostgres = errors.New("postgres binaries not found")

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errNoPostgres) && os.Getenv("CI") != "true" {
		t.Skip(err.Error())
	}
	t.Fatalf("postgres: %v", err)
}

// URL is the address of the server's "backlot" database (created by
// NewPostgresServer).
func (s *PGServer) URL() string { return s.dbURL("backlot") }

// Port is the TCP port the server listens on.
func (s *PGServer) Port() int { return s.port }

func (s *PGServer) dbURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// NewDatabase creates a fresh uniquely named database, returns its URL, and
// drops it (forcibly) at the test's cleanup.
func (s *PGServer) NewDatabase(t testing.TB) string {
	t.Helper()
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.createDatabase(ctx, name); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.admin(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Logf("postgres: drop database %s: %v", name, err)
		}
	})
	return s.dbURL(name)
}

// dbName derives a readable, unique, ≤63-byte database name from a test name.
func dbName(test string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	nonIdent := regexp.MustCompile(`[^a-z0-9]+`)
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(test), "_"), "_")
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	return "t_" + base + "_" + hex.EncodeToString(b[:])
}

func (s *PGServer) createDatabase(ctx context.Context, name string) error {
	// Concurrent CREATE DATABASE from template1 can collide; one at a time.
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admin(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// admin runs one statement in the maintenance database.
func (s *PGServer) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.dbURL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// findPGBin returns the directory holding initdb and pg_ctl: the newest
// /usr/lib/postgresql/*/bin, else `pg_config --bindir`, else $PATH.
func findPGBin() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errNoPostgres
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func startPGServer(opts PGOptions) (*PGServer, error) {
	bin, err := findPGBin()
	if err != nil {
		return nil, err
	}
	s := &PGServer{bin: bin, opts: opts}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user to run the server as: %w", err)
		}
		s.asUser = "postgres"
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if s.dir, err = os.MkdirTemp("", "backlot-pg-"); err != nil {
			return nil, err
		}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			os.RemoveAll(s.dir)
			return nil, err
		}
	} else if s.dir, err = os.MkdirTemp("", "backlot-pg-"); err != nil {
		return nil, err
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	watchdog(s)
	return s, nil
}

func (s *PGServer) data() string { return filepath.Join(s.dir, "data") }

// run runs a PostgreSQL binary, as the postgres user when we are root.
func (s *PGServer) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	// pg_ctl start leaves the server holding inherited pipes; a log file
	// (-l) takes its output, so give the command no stdin and a buffer.
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	// Keep the server out of the test's process group, so ^C on `go test`
	// does not kill it before cleanup can stop it cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Run()
	return buf.Bytes(), err
}

// Start starts the server (again) on its port and waits until it accepts
// connections.
func (s *PGServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	fsync := "off"
	if s.opts.Fsync {
		fsync = "on"
	}
	o := strings.Join([]string{
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + s.dir,
		"-c", "fsync=" + fsync,
		"-c", "synchronous_commit=" + fsync,
		"-c", "full_page_writes=" + fsync,
		"-c", "max_connections=500",
	}, " ")
	if out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"),
		"-w", "-t", "60", "-o", o, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	s.running = true
	return nil
}

// Stop stops the server (fast shutdown: clients are disconnected) and waits
// until it has exited. The data directory is kept for Start.
func (s *PGServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	if out, err := s.run("pg_ctl", "-D", s.data(), "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	s.running = false
	return nil
}

// destroy stops the server and deletes its directory.
func (s *PGServer) destroy() error {
	err := s.Stop()
	if err != nil {
		// Make sure it is gone before removing its files.
		_, _ = s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// watchdog starts a detached shell that stops the server and removes its
// directory once this test binary has exited, however it exited (a panic,
// a timeout, SIGKILL, or a package that forgot testutil.Main). After a
// clean teardown it finds the directory gone and does nothing.
func watchdog(s *PGServer) {
	pgctl := filepath.Join(s.bin, "pg_ctl")
	stop := fmt.Sprintf("%q -D %q -m immediate -w stop", pgctl, s.data())
	if s.asUser != "" {
		stop = "runuser -u " + s.asUser + " -- " + stop
	}
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
if [ -d %q ]; then %s >/dev/null 2>&1; rm -rf %q; fi`, os.Getpid(), s.data(), stop, s.dir)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		// Reap it if we outlive it; otherwise init does.
		go func() { _ = cmd.Wait() }()
	}
}
