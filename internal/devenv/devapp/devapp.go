// Package devapp builds what `backlot dev` runs on: a backlot App from the
// generated configuration, and the id-verification recipe (the example's
// own package) mounted on it. It exists apart from devenv, which must not
// import the root package, so that the command and devenv's tests wire the
// environment the same way.
package devapp

import (
	"fmt"
	"log/slog"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/examples/id-verification/idverify"
	"github.com/backlothq/backlot/internal/devenv"
)

// Wire sets o.New and o.IDVerification.
func Wire(o *devenv.Options) {
	o.New = New
	o.IDVerification = IDVerification
}

// New builds the App from cfg.
func New(cfg *config.Config, log *slog.Logger) (devenv.Backlot, error) {
	return backlot.New(backlot.WithConfig(cfg), backlot.WithLogger(log))
}

// IDVerification mounts the id-verification recipe on app, which New
// built.
func IDVerification(app devenv.Backlot, v devenv.IDVendor) (devenv.IDVerification, error) {
	a, ok := app.(*backlot.App)
	if !ok {
		return devenv.IDVerification{}, fmt.Errorf("the id-verification recipe needs a *backlot.App, got %T", app)
	}
	rc, err := idverify.New(a, v.Marketplace, idverify.Vendor{
		URL: v.URL, Token: v.Token, Secret: v.Secret,
		SuccessURL: v.ReturnURL, ErrorURL: v.ReturnURL,
		UserAgent: "backlot-dev/1.0",
	}, v.CallbackURL)
	if err != nil {
		return devenv.IDVerification{}, err
	}
	return devenv.IDVerification{Start: rc.Start, Status: rc.Status, Callback: rc.HandleCallback}, nil
}
