// Package devenv is `backlot dev`: one command, no configuration, that
// starts backlot on an embedded SQLite file together with every simulator
// of the third parties the recipes talk to (marketplace, OAuth server,
// ID-verification vendor, payments API and its partner middleware, token
// issuer) on one range of loopback ports, with demo data, secrets that stay
// the same across restarts, and a demo page that walks through each recipe
// in a browser.
//
// The package never imports the root package (which wires the internal
// ones together): the caller passes a NewFunc that builds the App, and the
// App is used through the small Backlot interface.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/sandbox/idv"
	"github.com/backlothq/backlot/internal/sandbox/issuer"
	"github.com/backlothq/backlot/internal/sandbox/marketplace"
	"github.com/backlothq/backlot/internal/sandbox/oauth"
	"github.com/backlothq/backlot/internal/sandbox/partner"
	"github.com/backlothq/backlot/internal/sandbox/payments"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/open"
	"github.com/backlothq/backlot/jobs"
)

// Defaults.
const (
	// DirDefault is the development directory: the SQLite file and the
	// secrets file live there.
	DirDefault = ".backlot-dev"
	// PortDefault is backlot's port; the simulators take the next six.
	PortDefault = 8080
	// HostDefault is the loopback address everything listens on.
	HostDefault = "127.0.0.1"
	// ReadyTimeoutDefault bounds the wait for backlot's /readyz.
	ReadyTimeoutDefault = 10 * time.Second
)

// Backlot is what the development environment needs of a backlot App;
// *backlot.App satisfies it.
type Backlot interface {
	// Handle adds a route (the demo page and its small JSON API).
	Handle(pattern string, authenticators []string, h http.HandlerFunc)
	// Worker registers the handler of a job kind.
	Worker(kind string, fn jobs.WorkFunc)
	// Serve serves on ln until ctx ends, then shuts down and closes.
	Serve(ctx context.Context, ln net.Listener) error
	// Close releases the store when Serve never ran.
	Close() error
}

// NewFunc builds a Backlot from a prepared configuration.
type NewFunc func(cfg *config.Config, log *slog.Logger) (Backlot, error)

// IDVendor is what the id-verification recipe needs of the environment:
// the vendor simulator, the server's credentials for it, and where its
// callbacks and users go.
type IDVendor struct {
	// URL, Token and Secret are the vendor's API and Basic credentials.
	URL, Token, Secret string
	// CallbackURL is backlot's webhook endpoint for the vendor's results.
	CallbackURL string
	// ReturnURL is where the vendor's page sends the user when done (the
	// demo page's ID-check step).
	ReturnURL string
	// Marketplace names the marketplace whose users are checked.
	Marketplace string
}

// IDVerification is the id-verification recipe mounted on the App: the
// same code as the example's (package idverify), which this package cannot
// import since it builds on the root package.
type IDVerification struct {
	// Start starts a check for the marketplace user of the request (the
	// route is behind the sharetribe authenticator) and answers
	// {redirect_url, transaction_reference}.
	Start http.HandlerFunc
	// Status answers the user's check as privateData has it, checksum
	// verified: {"status": none, pending, verified, denied or tampered}.
	Status http.HandlerFunc
	// Callback is the worker of the vendor's queued callbacks.
	Callback jobs.WorkFunc
}

// IDVerificationFunc builds the recipe on app (what NewFunc returned).
type IDVerificationFunc func(app Backlot, v IDVendor) (IDVerification, error)

// Options configures Start.
type Options struct {
	// Dir holds the SQLite file and the secrets file; created 0700.
	// Default DirDefault (relative to the working directory).
	Dir string
	// Host is the loopback address to listen on. Default HostDefault.
	Host string
	// Port is backlot's port; the simulators listen on the six ports after
	// it. Zero picks free ports for all seven (for tests). Default: set by
	// the command (PortDefault); Start takes the value as given.
	Port int
	// Reset deletes the stored data (the SQLite files) before starting,
	// keeping the secrets. The simulators keep their state in memory and
	// start from their demo data on every start anyway.
	Reset bool
	// ResetSecrets generates new secrets (and, since the old keyring key
	// is gone, implies Reset).
	ResetSecrets bool
	// New builds the App. Required.
	New NewFunc
	// IDVerification mounts the id-verification recipe on the App for the
	// demo page's ID-check step. Required.
	IDVerification IDVerificationFunc
	// Logger receives backlot's and the environment's logs. Default: discard.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for backlot to be ready. Default
	// ReadyTimeoutDefault.
	ReadyTimeout time.Duration
}

// URLs are the base URLs of everything the environment serves.
type URLs struct {
	Backlot     string
	Demo        string
	Marketplace string
	OAuth       string
	IDV         string
	Payments    string
	Partner     string
	Issuer      string

	listen string // backlot's host:port
}

// service is one listener of the range; services lists them in port
// order, from backlot's port up.
type service struct {
	name string
	url  *string
}

func (u *URLs) services() []service {
	return []service{
		{"backlot", &u.Backlot},
		{"marketplace simulator", &u.Marketplace},
		{"OAuth simulator", &u.OAuth},
		{"ID-verification simulator", &u.IDV},
		{"payments simulator", &u.Payments},
		{"partner middleware simulator", &u.Partner},
		{"token issuer simulator", &u.Issuer},
	}
}

// Env is a running development environment.
type Env struct {
	// URLs are where everything listens.
	URLs URLs
	// Dir is the development directory (absolute).
	Dir string
	// Secrets are the environment's stable secrets.
	Secrets *Secrets
	// SecretsCreated is true when this start generated the secrets file.
	SecretsCreated bool
	// StartDuration is the time from Start's call to backlot being ready.
	StartDuration time.Duration
	// Merchants are the payments simulator's demo merchants.
	Merchants []payments.Merchant

	// usersMu guards demoUsers, re-seeded when the marketplace is reset.
	usersMu   sync.Mutex
	demoUsers []DemoUser

	cfg    *config.Config
	log    *slog.Logger
	app    Backlot
	market *marketplace.Marketplace
	oauth  *oauth.Server
	idv    *idv.IDV
	pay    *payments.Payments
	part   *partner.Partner
	iss    *issuer.Issuer
	jobsDB store.Store
	demo   *demo

	servers   []*http.Server
	backlotLn net.Listener // until Serve takes it
	cancel    context.CancelFunc
	served    chan struct{}
	serveMu   sync.Mutex
	err       error

	closeOnce sync.Once
}

// DemoUser is a marketplace user seeded with a password.
type DemoUser struct {
	Email    string
	Password string
	Name     string
	ID       string
}

// demoPassword is every demo user's password: demo data, printed on start.
const demoPassword = "backlot-dev"

// Start brings the environment up and returns once backlot answers
// /readyz. ctx bounds start-up only; Close stops everything.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	began := time.Now()
	if opts.New == nil || opts.IDVerification == nil {
		return nil, errors.New("devenv: Options.New and Options.IDVerification are required")
	}
	if opts.Dir == "" {
		opts.Dir = DirDefault
	}
	if opts.Host == "" {
		opts.Host = HostDefault
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = ReadyTimeoutDefault
	}
	if opts.Port < 0 || opts.Port > 65535-6 {
		return nil, fmt.Errorf("port %d: want 0 (free ports) or 1..%d (backlot, then six simulators)", opts.Port, 65535-6)
	}
	dir, err := prepareDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.Reset || opts.ResetSecrets {
		if err := removeData(dir); err != nil {
			return nil, err
		}
	}
	sec, created, err := loadSecrets(dir, opts.ResetSecrets)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Secrets: sec, SecretsCreated: created, log: opts.Logger, served: make(chan struct{})}
	defer func() {
		if err != nil {
			e.Close(context.Background())
		}
	}()

	lns, err := e.listen(opts.Host, opts.Port)
	if err != nil {
		return nil, err
	}
	e.backlotLn = lns[0]
	if err := e.startSimulators(lns[1:]); err != nil {
		return nil, err
	}
	cfg, err := buildConfig(dir, e.URLs, sec)
	if err != nil {
		return nil, err
	}
	e.cfg = cfg
	app, err := opts.New(cfg, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("start backlot: %w", err)
	}
	e.app = app
	idv, err := opts.IDVerification(app, IDVendor{
		URL: e.URLs.IDV, Token: sec.IDVAPIToken, Secret: sec.IDVAPISecret,
		CallbackURL: e.URLs.Backlot + idvWebhookPath, ReturnURL: e.URLs.Demo + "?step=idv",
		Marketplace: marketName,
	})
	if err != nil {
		return nil, fmt.Errorf("id-verification recipe: %w", err)
	}
	// A second handle on the same SQLite file (WAL allows it) lists the
	// jobs for the demo page, as `backlot jobs list` does beside a server.
	e.jobsDB, err = open.Store(ctx, cfg.Store.URL, store.Options{Migrate: false})
	if err != nil {
		return nil, fmt.Errorf("open store for the demo page: %w", err)
	}
	if e.demo, err = newDemo(e); err != nil {
		return nil, err
	}
	e.demo.register(app, idv)
	registerWorkers(app, idv, e.log)

	sctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	ln := e.backlotLn
	e.backlotLn = nil // Serve owns it now
	go func() {
		err := app.Serve(sctx, ln)
		e.serveMu.Lock()
		e.err = err
		e.serveMu.Unlock()
		close(e.served)
	}()
	if err := e.waitReady(ctx, opts.ReadyTimeout); err != nil {
		return nil, err
	}
	e.StartDuration = time.Since(began)
	return e, nil
}

// prepareDir creates dir owner-only when it does not exist, and returns
// its absolute path. An existing directory keeps its mode: it may be one
// the user chose and shares.
func prepareDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("dev directory %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return "", fmt.Errorf("create dev directory: %w", err)
		}
		// MkdirAll applies the umask; the directory is owner-only whatever it is.
		if err := os.Chmod(abs, 0o700); err != nil {
			return "", fmt.Errorf("create dev directory: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("dev directory %s: %w", abs, err)
	case !st.IsDir():
		return "", fmt.Errorf("dev directory %s: not a directory", abs)
	}
	return abs, nil
}

// removeData deletes the SQLite database with its WAL and shared-memory
// files.
func removeData(dir string) error {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		p := filepath.Join(dir, dbFile+suffix)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reset: remove %s: %w", p, err)
		}
	}
	return nil
}

// listen opens the seven listeners (backlot first) and fills e.URLs. A
// port in use fails with its number and service, and closes the others.
func (e *Env) listen(host string, base int) ([]net.Listener, error) {
	var lns []net.Listener
	for i, s := range e.URLs.services() {
		port := 0
		if base != 0 {
			port = base + i
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			if base != 0 {
				return nil, fmt.Errorf("port %d for the %s: %w (another process uses it: stop it, or pick another range with --port)", port, s.name, err)
			}
			return nil, fmt.Errorf("listen for the %s: %w", s.name, err)
		}
		lns = append(lns, ln)
		*s.url = "http://" + ln.Addr().String()
	}
	e.URLs.listen = lns[0].Addr().String()
	e.URLs.Demo = e.URLs.Backlot + demoPath
	return lns, nil
}

// waitReady polls /readyz until backlot answers 200, Serve fails, or the
// timeout passes.
func (e *Env) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URLs.Backlot+"/readyz", nil)
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-e.served:
			return fmt.Errorf("backlot stopped during start-up: %w", e.Err())
		case <-ctx.Done():
			return fmt.Errorf("backlot not ready after %s: %w", timeout, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Done is closed when backlot stops serving (after Close, or on failure).
func (e *Env) Done() <-chan struct{} { return e.served }

// Err is why backlot stopped serving, once Done is closed.
func (e *Env) Err() error {
	e.serveMu.Lock()
	defer e.serveMu.Unlock()
	return e.err
}

// Close stops backlot (gracefully, within ctx) and the simulators.
func (e *Env) Close(ctx context.Context) error {
	var err error
	e.closeOnce.Do(func() {
		if e.cancel != nil {
			e.cancel()
			select {
			case <-e.served:
				if serr := e.Err(); serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, context.Canceled) {
					err = serr
				}
			case <-ctx.Done():
				err = fmt.Errorf("stop backlot: %w", ctx.Err())
			}
		} else if e.app != nil {
			e.app.Close()
		}
		if e.backlotLn != nil {
			e.backlotLn.Close()
		}
		if e.idv != nil {
			e.idv.Close()
		}
		for _, s := range e.servers {
			if serr := s.Shutdown(ctx); serr != nil {
				s.Close()
			}
		}
		if e.jobsDB != nil {
			e.jobsDB.Close()
		}
	})
	return err
}

// Config returns the configuration backlot runs with.
func (e *Env) Config() *config.Config { return e.cfg }

// ResetSimulators returns every simulator to its demo state (what each
// one's POST /_sim/reset does, the marketplace's re-seeded).
func (e *Env) ResetSimulators() {
	e.resetMarketplace()
	e.oauth.Reset()
	e.idv.Reset()
	e.pay.Reset()
	e.part.Reset()
	e.iss.Reset()
	e.demo.receiver.reset()
}
