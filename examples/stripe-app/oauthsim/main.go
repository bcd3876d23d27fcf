// Command oauthsim serves the OAuth 2.0 authorization server simulator on a
// loopback port, with one client registered, so the stripe-app recipe runs
// without a real third party:
//
//	go run ./examples/stripe-app/oauthsim
//
// Its flags default to the values in examples/stripe-app/.env. The
// simulator is strict like a real server: PKCE enforced, refresh tokens
// rotated with no grace period, revocation per RFC 7009. Its consent page
// offers demo users, one of them with an unverified email.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/backlothq/backlot/internal/sandbox/oauth"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9400", "loopback address to serve on")
	clientID := flag.String("client-id", "stripe-app-demo", "client_id to register")
	clientSecret := flag.String("client-secret", "demo-client-secret-change-me", "client_secret to register")
	redirect := flag.String("redirect-uri", "http://127.0.0.1:8080/connect/acme/callback", "the client's redirect URI (backlot's public_url + /connect/<name>/callback)")
	flag.Parse()
	if err := run(*listen, *clientID, *clientSecret, *redirect); err != nil {
		fmt.Fprintln(os.Stderr, "oauthsim:", err)
		os.Exit(1)
	}
}

func run(listen, clientID, clientSecret, redirect string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("-listen must be a loopback address: the simulator is for local use only")
	}
	sim := oauth.New(oauth.Options{
		Issuer:  "http://" + listen,
		Clients: []oauth.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirect}, RequirePKCE: true}},
	})
	log.Printf("OAuth simulator on http://%s (client %s, redirect %s)", listen, clientID, redirect)
	srv := &http.Server{Addr: listen, Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}
