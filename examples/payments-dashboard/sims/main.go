// Command sims serves the payments-dashboard recipe's two third parties on
// loopback: the payments API simulator (WePay v2 shape, demo merchants,
// accounts, checkouts) and the platform middleware simulator that hands
// out the merchants' access tokens. It prints the environment variables
// backlot.yaml reads, ready to paste into a shell:
//
//	go run ./examples/payments-dashboard/sims
//
// It is a demo helper: the secrets it prints are random per run (or set
// with -mw-secret and -client-secret), and it listens on loopback only.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/partner"
	"github.com/backlothq/backlot/internal/sandbox/payments"
)

func main() {
	payAddr := flag.String("payments", "127.0.0.1:9101", "listen address of the payments API simulator")
	mwAddr := flag.String("middleware", "127.0.0.1:9102", "listen address of the middleware simulator")
	mwSecret := flag.String("mw-secret", "", "middleware shared secret (default: random)")
	clientSecret := flag.String("client-secret", "", "payments application client_secret (default: random)")
	flag.Parse()
	if err := run(*payAddr, *mwAddr, *mwSecret, *clientSecret); err != nil {
		log.Fatal(err)
	}
}

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func run(payAddr, mwAddr, mwSecret, clientSecret string) error {
	for _, a := range []string{payAddr, mwAddr} {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%s: the simulators listen on loopback addresses only", a)
		}
	}
	if mwSecret == "" {
		mwSecret = random()
	}
	if clientSecret == "" {
		clientSecret = random()
	}
	pay := payments.New(payments.Options{ClientSecret: clientSecret})
	mw := partner.New(partner.Options{Secret: mwSecret, Payments: pay})
	clientID, _ := pay.ClientCredentials()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errs := make(chan error, 2)
	var servers []*http.Server
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{payAddr, pay}, {mwAddr, mw}} {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() { errs <- srv.Serve(ln) }()
	}

	fmt.Printf("# payments-dashboard simulators; paste into the shell that runs backlot:\n")
	fmt.Printf("export PAYMENTS_URL=http://%s/v2\n", payAddr)
	fmt.Printf("export MIDDLEWARE_URL=http://%s\n", mwAddr)
	fmt.Printf("export MW_SECRET=%s\n", mwSecret)
	fmt.Printf("export WEPAY_CLIENT_ID=%d\n", clientID)
	fmt.Printf("export WEPAY_CLIENT_SECRET=%s\n", clientSecret)
	fmt.Printf("export ALLOW_PRIVATE=true COOKIE_SECURE=false\n")
	fmt.Printf("# demo merchants:\n")
	for _, m := range pay.Merchants() {
		fmt.Printf("#   %s <%s> accounts %v\n", m.Name, m.Email, m.AccountIDs)
	}
	select {
	case <-ctx.Done():
	case err := <-errs:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	return nil
}
