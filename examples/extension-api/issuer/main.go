// Command issuer runs backlot's stand-in for a marketplace's token service
// on loopback, so the extension-api recipe can be tried without a real
// marketplace: it publishes its public keys at /.well-known/jwks.json and
// mints short-lived RS256 or ES256 tokens with the claims sub, name and
// tenant at /token.
//
//	go run ./examples/extension-api/issuer            # http://127.0.0.1:8099
//	go run ./examples/extension-api/issuer -addr 127.0.0.1:9000
//
// Routes: GET /.well-known/jwks.json, GET /token?sub=&name=&tenant=&ttl=&alg=&aud=,
// POST /rotate?alg=, POST /retire?kid=, and the /_sim/ fault controls.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/issuer"
)

// AddrDefault is where the issuer listens unless -addr says otherwise; the
// recipe's backlot.yaml expects it there.
const AddrDefault = "127.0.0.1:8099"

func main() {
	addr := flag.String("addr", AddrDefault, "host:port to listen on (loopback only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := listen(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "issuer:", err)
		os.Exit(1)
	}
	if err := run(ctx, ln, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "issuer:", err)
		os.Exit(1)
	}
}

// listen opens addr, refusing anything but a loopback address: the
// simulator signs tokens for anyone who asks and must not be reachable
// from the network.
func listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-addr %q: the issuer simulator listens on loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// run serves the issuer on ln until ctx is cancelled. The iss claim is
// fixed to "http://" + the listener's address, whatever Host a client
// uses, so it matches the issuer configured in backlot.yaml.
func run(ctx context.Context, ln net.Listener, logTo io.Writer) error {
	base := "http://" + ln.Addr().String()
	iss, err := issuer.New(issuer.Options{Issuer: base})
	if err != nil {
		return fmt.Errorf("start issuer: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logTo, nil))
	srv := &http.Server{
		Handler:           iss,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("issuer simulator listening", "url", base,
		"jwks", base+"/.well-known/jwks.json", "token", base+"/token")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
