// Package testutil holds the real parts tests run against: a throwaway
// PostgreSQL server, migrated SQLite and PostgreSQL stores, the backlot
// binary built once per test binary, free loopback ports.
//
// Packages using the shared PostgreSQL server or BuildBacklot call Main
// from TestMain so those are torn down when their tests end:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
package testutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
)

// shared holds the resources that exist once per test binary (the
// PostgreSQL server, the built backlot binary). It is the package's only
// mutable state: these resources are per process by nature, and Main tears
// them down.
var shared resources

type resources struct {
	mu       sync.Mutex
	pg       *PGServer
	pgErr    error // a failed start is not retried by every test
	binDir   string
	bin      string
	binErr   error
	tornDown bool
}

func (r *resources) postgres() (*PGServer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pg == nil && r.pgErr == nil {
		if r.tornDown {
			return nil, errors.New("testutil.Postgres called after testutil.Main tore down")
		}
		r.pg, r.pgErr = startPGServer(PGOptions{Fsync: os.Getenv("BACKLOT_TEST_PG_FSYNC") == "on"})
	}
	return r.pg, r.pgErr
}

func (r *resources) teardown() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tornDown = true
	var errs []error
	if r.pg != nil {
		errs = append(errs, r.pg.destroy())
		r.pg = nil
	}
	if r.binDir != "" {
		errs = append(errs, os.RemoveAll(r.binDir))
		r.binDir = ""
	}
	return errors.Join(errs...)
}

// Main runs the tests, then stops the shared PostgreSQL server and removes
// the built binary, then exits with the tests' code.
func Main(m *testing.M) {
	code := m.Run()
	if err := shared.teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return p
}

// freePort picks a port below the kernel's ephemeral range, which it
// hands out for every outgoing connection and every listen on port 0: a
// port taken from that range and released could be reused by any test's
// connection before the caller binds it again. Below the range only an
// explicit bind can take it. The kernel's pick is the fallback.
func freePort() (int, error) {
	lo := ephemeralLow()
	for range 100 {
		if lo <= freePortMin+100 {
			break
		}
		p := freePortMin + rand.IntN(lo-freePortMin)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePortMin is the lowest port freePort picks: above the registered
// ports most services use.
const freePortMin = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (32768,
// Linux's default, when it cannot be read).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo) // on a parse error lo keeps the default
	}
	return lo
}
