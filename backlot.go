// Package backlot is the Go face of backlot: build an App from a YAML file
// (or a config.Config built in code), add your own routes and job workers,
// and run it — the binary `backlot serve` is this with nothing added.
//
//	app, err := backlot.New(backlot.WithConfigFile("backlot.yaml"))
//	app.Handle("POST /api/idv/start", []string{"shoppers"}, startVerification)
//	app.Worker("idv.callback", handleCallback)
//	err = app.Run(ctx)
//
// Handlers read the caller with auth.FromContext(r.Context()); workers
// receive a *jobs.Job and may call jobs.Logf and jobs.SetProgress.
package backlot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/backlothq/backlot/internal/audit"
	"github.com/backlothq/backlot/internal/authn"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/connect"
	"github.com/backlothq/backlot/internal/cors"
	"github.com/backlothq/backlot/internal/engine"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/logbuf"
	"github.com/backlothq/backlot/internal/logjson"
	"github.com/backlothq/backlot/internal/marketplace/events"
	"github.com/backlothq/backlot/internal/marketplace/refs"
	"github.com/backlothq/backlot/internal/proxy"
	"github.com/backlothq/backlot/internal/secrets"
	"github.com/backlothq/backlot/internal/server"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/store/open"
	"github.com/backlothq/backlot/internal/webhook"
	"github.com/backlothq/backlot/jobs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// openTimeout bounds New's start-up I/O: opening and migrating the store,
// building the authenticators.
const openTimeout = 30 * time.Second

// App is one backlot instance: configuration, store, authenticators, job
// engine, webhook endpoints and the HTTP server around them.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	logw     *logbuf.Writer // the default logger's buffer, written out by Close
	reg      *prometheus.Registry
	store    store.Store
	keys     *secrets.Keyring
	auth     *authn.Set
	engine   *engine.Engine
	webhooks *webhook.Set
	conns    *connect.Set
	secrets  *Secrets
	refs     *Refs
	mux      *http.ServeMux
	server   *server.Server
	jobs     *Jobs
	markets  map[string]*Marketplace
	pollers  []*events.Poller
	// auditJanitor deletes audit entries older than audit.retention.
	auditJanitor *audit.Janitor

	// workerMu guards workers: the job kinds with a worker in this process
	// (App.Worker and webhook forwarders), for the start-up warning.
	workerMu sync.Mutex
	workers  map[string]bool

	closeOnce sync.Once
}

type options struct {
	configFile string
	cfg        *config.Config
	logger     *slog.Logger
	migrate    bool
	env        func(string) (string, bool)
}

// Option configures New.
type Option func(*options)

// WithConfigFile loads the configuration from a YAML file (see docs/configuration.md).
func WithConfigFile(path string) Option { return func(o *options) { o.configFile = path } }

// WithConfig uses a configuration built in code; New fills its defaults
// and validates it (config.Config.Prepare).
func WithConfig(cfg *config.Config) Option { return func(o *options) { o.cfg = cfg } }

// WithLogger sets the logger. Default: JSON to stderr at info, written in
// batches (a line waits at most 100 ms; warnings and errors are written at
// once, and Close writes what is left).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMigrate controls whether pending migrations are applied at start.
// With false, New refuses a database whose schema is behind. Default true.
func WithMigrate(on bool) Option { return func(o *options) { o.migrate = on } }

// New builds an App: it loads the configuration, opens (and migrates) the
// store, and builds the authenticators, job engine and webhook endpoints.
// Nothing listens until Run.
func New(opts ...Option) (*App, error) {
	o := options{migrate: true, env: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	cfg := o.cfg
	if cfg != nil {
		if err := cfg.Prepare(); err != nil {
			return nil, err
		}
	} else {
		if o.configFile == "" {
			return nil, errors.New("backlot.New: no configuration (use WithConfigFile or WithConfig)")
		}
		var err error
		if cfg, err = config.Load(o.configFile, o.env); err != nil {
			return nil, err
		}
	}
	log := o.logger
	var logw *logbuf.Writer
	if log == nil {
		logw = logbuf.New(os.Stderr, logbuf.FlushDefault, logbuf.SizeDefault)
		log = slog.New(logbuf.Handler(logjson.New(logw, nil), logw))
	}
	a := &App{cfg: cfg, log: log, logw: logw, reg: prometheus.NewRegistry(), mux: http.NewServeMux(), workers: map[string]bool{}}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	st, err := open.Store(ctx, cfg.Store.URL, store.Options{Migrate: o.migrate})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	a.store = st
	if err := a.build(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context) error {
	cfg := a.cfg
	proxies, err := httpapi.ParseProxies(cfg.Server.TrustedProxies)
	if err != nil {
		return fmt.Errorf("server.trusted_proxies: %w", err)
	}
	// Refuse to start while rows are sealed under a key missing from keys.
	if a.keys, err = secrets.NewKeyring(cfg.Keys); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := secrets.CheckKeys(ctx, a.store, a.keys); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	a.auth, err = authn.NewSet(cfg.Authenticators, cfg.Marketplaces, authn.Deps{
		Logger:  a.log,
		Metrics: a.reg,
		Store:   a.store,
		// With keys configured, CSRF tokens depend on a server secret too.
		// Derived from the first key: after a rotation pages fetch a new
		// token (GET /auth/csrf, or reload the console).
		CSRFKey: a.keys.Derive("session csrf"),
	})
	if err != nil {
		return fmt.Errorf("authenticators: %w", err)
	}
	a.engine, err = engine.New(cfg.Jobs, cfg.Schedules, a.store, engine.Deps{Logger: a.log, Metrics: a.reg})
	if err != nil {
		return fmt.Errorf("job engine: %w", err)
	}
	a.jobs = &Jobs{engine: a.engine}
	if err := a.buildMarketplaces(); err != nil {
		return err
	}
	a.webhooks, err = webhook.New(cfg.Webhooks, webhook.Deps{
		Enqueuer:     a.engine,
		Logger:       a.log,
		Metrics:      a.reg,
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
	})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	forwarders, err := a.webhooks.Forwarders(webhook.ForwardDeps{Logger: a.log})
	if err != nil {
		return fmt.Errorf("webhook forwarders: %w", err)
	}
	for kind, fn := range forwarders {
		a.register(kind, fn)
	}

	sec, err := secrets.NewStore(secrets.StoreConfig{Keyring: a.keys, Store: a.store})
	if err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	a.secrets = &Secrets{s: sec}
	rf, err := refs.New(refs.Config{Keyring: a.keys, Store: a.store})
	if err != nil {
		return fmt.Errorf("sealed references: %w", err)
	}
	a.refs = &Refs{r: rf}
	a.conns, err = connect.New(cfg.Connections, connect.Deps{
		Store:     a.store,
		Keys:      a.keys,
		Auth:      a.auth,
		Enqueuer:  a.engine,
		PublicURL: cfg.Server.PublicURL,
		Logger:    a.log,
		Metrics:   a.reg,
	})
	if err != nil {
		return fmt.Errorf("connections: %w", err)
	}

	a.auth.Register(a.mux)
	a.webhooks.Register(a.mux)
	tokenSources := map[string]proxy.TokenSource{}
	for _, name := range a.conns.Names() {
		tokenSources[name] = a.conns.Get(name)
	}
	routes, err := proxy.New(cfg.Upstreams, cfg.Routes, proxy.Deps{
		Logger:       a.log,
		Metrics:      a.reg,
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		Connections:  tokenSources,
	})
	if err != nil {
		return fmt.Errorf("proxy routes: %w", err)
	}
	if err := routes.Register(a.mux, a.auth); err != nil {
		return fmt.Errorf("proxy routes: %w", err)
	}
	a.conns.Register(a.mux)
	if err := a.buildConsole(); err != nil {
		return err
	}

	corsMW, err := cors.New(cfg.CORS)
	if err != nil {
		return fmt.Errorf("cors: %w", err)
	}
	a.server, err = server.New(server.Config{
		Server:   cfg.Server,
		Logger:   a.log,
		Registry: a.reg,
		Ready:    a.ready,
		CORS:     corsMW,
		Proxies:  proxies,
		// Webhook endpoints enforce their own max_body_bytes.
		OwnBodyLimits: a.webhooks.Paths(),
	}, a.mux)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// ready is /readyz: the store answers and its schema is current.
func (a *App) ready(ctx context.Context) error {
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("store unreachable: %w", err)
	}
	st, err := a.store.SchemaStatus(ctx)
	if err != nil {
		return fmt.Errorf("store schema: %w", err)
	}
	if st.Behind() {
		return fmt.Errorf("migrations behind: database at version %d, binary expects %d", st.Current, st.Latest)
	}
	return nil
}

// Config returns the configuration the App runs with.
func (a *App) Config() *config.Config { return a.cfg }

// Logger returns the App's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Handler returns the full HTTP handler chain (for tests and embedding).
func (a *App) Handler() http.Handler { return a.server.Handler() }

// Handle adds a route. pattern is a net/http pattern ("POST /api/x");
// authenticators names the configured authenticators a caller may use,
// tried in order (none: the route is public). The handler reads the caller
// with auth.FromContext.
func (a *App) Handle(pattern string, authenticators []string, h http.HandlerFunc) {
	a.HandleRule(pattern, authenticators, auth.Rule{}, h)
}

// HandleRule is Handle with scope and tenant requirements.
func (a *App) HandleRule(pattern string, authenticators []string, rule auth.Rule, h http.HandlerFunc) {
	var handler http.Handler = h
	if len(authenticators) > 0 {
		if err := a.auth.Check(authenticators); err != nil {
			panic(fmt.Sprintf("backlot: route %q: %v", pattern, err))
		}
		handler = a.auth.Require(authenticators, rule)(h)
	}
	a.mux.Handle(pattern, handler)
}

// Worker registers the handler for jobs of kind. Register before Run: at
// start, Run warns about every job kind the configuration produces that has
// no worker.
func (a *App) Worker(kind string, fn jobs.WorkFunc) { a.register(kind, fn) }

func (a *App) register(kind string, fn jobs.WorkFunc) {
	a.workerMu.Lock()
	a.workers[kind] = true
	a.workerMu.Unlock()
	a.engine.Register(kind, fn)
}

// warnUnhandledKinds logs a warning for every job kind that webhooks,
// schedules or marketplace event polling produce and that has neither a
// worker in this process nor a forward: those jobs would wait in the store,
// and nothing else would say so.
func (a *App) warnUnhandledKinds() {
	sources := map[string][]string{}
	for i, w := range a.cfg.Webhooks {
		sources[w.Job] = append(sources[w.Job], fmt.Sprintf("webhooks[%d] (%s)", i, w.Path))
	}
	for i, s := range a.cfg.Schedules {
		sources[s.Job] = append(sources[s.Job], fmt.Sprintf("schedules[%d] (%s)", i, s.Name))
	}
	for name, m := range a.cfg.Marketplaces {
		if len(m.Events.Types) > 0 && m.Events.Job != "" {
			sources[m.Events.Job] = append(sources[m.Events.Job], "marketplaces."+name+".events")
		}
	}
	for name, c := range a.cfg.Connections {
		if c.OnExpired != "" {
			sources[c.OnExpired] = append(sources[c.OnExpired], "connections."+name+".on_expired")
		}
		if c.OnRecovered != "" {
			sources[c.OnRecovered] = append(sources[c.OnRecovered], "connections."+name+".on_recovered")
		}
	}
	kinds := make([]string, 0, len(sources))
	for k := range sources {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	a.workerMu.Lock()
	defer a.workerMu.Unlock()
	for _, kind := range kinds {
		if kind == "" || a.workers[kind] {
			continue
		}
		srcs := sources[kind]
		sort.Strings(srcs)
		a.log.Warn("no worker for job kind: its jobs will wait",
			"kind", kind, "produced_by", strings.Join(srcs, ", "),
			"fix", "register a worker for it (App.Worker in a Go build), or set forward on the webhook")
	}
}

// Jobs is the job queue, for enqueueing from handlers and workers.
func (a *App) Jobs() *Jobs { return a.jobs }

// AddAuthenticator adds a custom authenticator under its Name, so routes
// (and /auth/whoami) can list it beside the configured ones. It may return
// a *auth.Failure for a credential it recognises but refuses, and
// auth.ErrNoCredential when the request has none of its kind. Add it
// before the routes that name it.
func (a *App) AddAuthenticator(au auth.Authenticator) { a.auth.Add(au) }

// Run starts the background parts and serves HTTP until ctx is cancelled,
// then shuts down gracefully: requests in flight finish, running jobs
// finish or are handed back, and the store is closed.
func (a *App) Run(ctx context.Context) error {
	ln, err := a.server.Listen()
	if err != nil {
		a.Close()
		return err
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	defer a.Close()
	if err := a.auth.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("start authenticators: %w", err)
	}
	if err := a.engine.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("start job engine: %w", err)
	}
	if err := a.auditJanitor.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("start audit janitor: %w", err)
	}
	a.warnUnhandledKinds()
	if err := a.startPollers(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("start marketplace event pollers: %w", err)
	}
	a.log.Info("backlot serving", "addr", ln.Addr().String(), "store", a.store.Backend(), "tls", a.cfg.Server.TLS.Enabled())
	serveErr := a.server.Serve(ctx, ln)

	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.Server.ShutdownTimeout.D())
	defer cancel()
	a.stopPollers(sctx)
	if err := a.auditJanitor.Stop(sctx); err != nil {
		a.log.Warn("stopping audit janitor", "error", err.Error())
	}
	if err := a.engine.Stop(sctx); err != nil {
		a.log.Warn("stopping job engine", "error", err.Error())
	}
	if err := a.auth.Stop(sctx); err != nil {
		a.log.Warn("stopping authenticators", "error", err.Error())
	}
	a.log.Info("backlot stopped")
	return serveErr
}

// Close releases the store. Run and Serve call it when they return.
func (a *App) Close() error {
	var err error
	a.closeOnce.Do(func() {
		err = a.store.Close()
		if a.logw != nil {
			a.logw.Close() // the default logger's buffered lines
		}
	})
	return err
}

// Jobs enqueues background work.
type Jobs struct {
	engine *engine.Engine
}

// Enqueue adds a job and returns once it is durably committed. payload
// must be JSON. Concurrent calls share one commit. Errors match
// jobs.ErrInvalidPayload and jobs.ErrUnknownQueue.
func (j *Jobs) Enqueue(ctx context.Context, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error) {
	return j.engine.Enqueue(ctx, kind, payload, opts)
}

// EnqueueTx adds a job inside tx (see App.WriteTx): the job exists once tx
// commits, and not at all if it rolls back.
func (j *Jobs) EnqueueTx(ctx context.Context, tx *Tx, kind string, payload []byte, opts *jobs.EnqueueOpts) (jobs.EnqueueResult, error) {
	return j.engine.EnqueueTx(ctx, tx.tx, kind, payload, opts)
}

// Get returns one job; an error matching jobs.ErrNotFound when no job has
// that id (retention may have deleted it).
func (j *Jobs) Get(ctx context.Context, id int64) (*jobs.Job, error) {
	job, err := j.engine.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("job %d: %w", id, jobs.ErrNotFound)
	}
	return job, err
}
