// Command id-verification is an ID check for a Sharetribe marketplace,
// built on backlot as a Go framework, without a database of its own:
//
//  1. A signed-in user calls POST /api/idv/start. backlot seals the user's
//     refresh token into a single-use reference and starts a check with
//     the vendor (credentials held by the server), passing the reference as
//     userReference; the user gets the vendor's page URL. The user's
//     privateData.idVerification becomes "pending".
//
//  2. The vendor posts its result, form-encoded, to /webhooks/idv from its
//     allow-listed address; backlot stores it and answers 202 at once.
//
//  3. The worker opens the reference (purpose "idv", single use), spends the
//     refresh token to act as the user, and writes the result with a
//     checksum into the user's privateData.
//
//  4. GET /api/idv/status answers verified, denied, pending, none — or
//     tampered, when the user rewrote their own privateData.
//
// The routes and the worker live in package idverify, which `backlot dev`
// mounts too; this file wires them to the configuration.
//
//	go run ./examples/id-verification --config examples/id-verification/backlot.yaml
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/examples/id-verification/idverify"
)

func main() {
	configPath := flag.String("config", "backlot.yaml", "configuration file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *configPath, nil, nil); err != nil {
		fmt.Fprintln(os.Stderr, "id-verification:", err)
		os.Exit(1)
	}
}

// jobCallback is the job kind of the vendor's callbacks (backlot.yaml).
const jobCallback = "idv.callback"

// run builds the App, adds the routes and the worker, and serves on ln
// (nil: server.listen) until ctx ends. ready, if set, sees the App before
// it serves (tests read jobs through it).
func run(ctx context.Context, configPath string, ln net.Listener, ready func(*backlot.App)) error {
	vendor := idverify.Vendor{URL: os.Getenv("IDV_API_URL"), Token: os.Getenv("IDV_API_TOKEN"), Secret: os.Getenv("IDV_API_SECRET")}
	if vendor.URL == "" || vendor.Token == "" || vendor.Secret == "" {
		return errors.New("set IDV_API_URL, IDV_API_TOKEN and IDV_API_SECRET (the vendor's API and credentials)")
	}
	app, err := backlot.New(backlot.WithConfigFile(configPath))
	if err != nil {
		return err
	}
	callbackURL := strings.TrimRight(app.Config().Server.PublicURL, "/") + "/webhooks/idv"
	idv, err := idverify.New(app, "main", vendor, callbackURL)
	if err != nil {
		app.Close()
		return err
	}

	// POST /api/idv/start: the signed-in user starts a check.
	app.Handle("POST /api/idv/start", []string{"shoppers"}, idv.Start)
	// GET /api/idv/status: what privateData says, checksum verified.
	app.Handle("GET /api/idv/status", []string{"shoppers"}, idv.Status)
	// The vendor's callback, queued by the webhook endpoint.
	app.Worker(jobCallback, idv.HandleCallback)

	if ready != nil {
		ready(app)
	}
	if ln == nil {
		return app.Run(ctx)
	}
	return app.Serve(ctx, ln)
}
