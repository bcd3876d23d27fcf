// Package console is the admin web UI mounted at console.path: jobs by
// state and kind (retry, cancel, payload, log, progress), webhook endpoints
// with their recent deliveries and refusals, connections per principal,
// keys in use and the audit log. Pages are server-rendered html/template
// embedded in the binary; the only script is the sign-in form's.
//
// It is built for big tables: lists page by id (keyset), counts stop at
// store.CountCap, payloads in lists are cut to 2 KB. Callers of console.auth
// may look; those of console.admin may also act, and every action is
// written to the audit log. Unsafe requests pass Go's cross-origin
// protection and, on a cookie session, need the session's CSRF token.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/authn"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/jobs"
)

//go:embed templates/*.html
var templatesFS embed.FS

//go:embed static
var staticFS embed.FS

// BulkMax is the most jobs one bulk action changes.
const BulkMax = 1000

// csp is the console pages' Content-Security-Policy: own styles and
// scripts only, forms post to itself, never framed.
const csp = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Engine is what the console needs of the job engine: the transitions
// that wake workers and cancel running jobs.
type Engine interface {
	Retry(ctx context.Context, id int64) (*jobs.Job, error)
	Cancel(ctx context.Context, id int64) (*jobs.Job, error)
}

// Config builds a Console.
type Config struct {
	// Console is the console.* configuration (Path, Auth, Admin).
	Console config.Console
	// Store reads jobs, connections, keys and the audit log. Required.
	Store store.Store
	// Engine retries and cancels. Required.
	Engine Engine
	// Auth authenticates callers. Required.
	Auth *authn.Set
	// Webhooks are the configured ingest endpoints.
	Webhooks []config.Webhook
	// Gatherer is read for the webhook outcome counters. Optional.
	Gatherer prometheus.Gatherer
	// CurrentKey is the key new secrets are sealed under ("" for none).
	CurrentKey string
	// KeyIDs are the configured keys, in order.
	KeyIDs []string
	// Logger. Default discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Console serves the admin UI.
type Console struct {
	cfg   Config
	path  string   // with trailing slash
	names []string // console.auth and console.admin: who may look
	admin map[string]bool
	pages map[string]*template.Template
	cop   *http.CrossOriginProtection
}

// New checks cfg and parses the templates.
func New(cfg Config) (*Console, error) {
	c := cfg.Console
	if c.Path == "" || !strings.HasPrefix(c.Path, "/") || !strings.HasSuffix(c.Path, "/") {
		return nil, fmt.Errorf("console.path %q: must start and end with /", c.Path)
	}
	if cfg.Store == nil || cfg.Engine == nil || cfg.Auth == nil {
		return nil, errors.New("console: Store, Engine and Auth are required")
	}
	look := slices.Clone(c.Auth)
	for _, a := range c.Admin {
		if !slices.Contains(look, a) {
			look = append(look, a)
		}
	}
	if err := cfg.Auth.Check(look); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	con := &Console{cfg: cfg, path: c.Path, names: look, admin: map[string]bool{}, cop: http.NewCrossOriginProtection()}
	for _, a := range c.Admin {
		con.admin[a] = true
	}
	if err := con.parse(); err != nil {
		return nil, err
	}
	return con, nil
}

func (c *Console) parse() error {
	funcs := template.FuncMap{
		"p":       func(s string) string { return c.path + strings.TrimPrefix(s, "/") },
		"time":    fmtTime,
		"timep":   func(t *time.Time) string { return fmtTimeP(t) },
		"count":   fmtCount,
		"first":   firstLine,
		"q":       query,
		"percent": func(j *jobs.Job) int { return shownProgress(j) },
	}
	base, err := template.New("base.html").Funcs(funcs).ParseFS(templatesFS, "templates/base.html")
	if err != nil {
		return fmt.Errorf("console templates: %w", err)
	}
	names, err := fs.Glob(templatesFS, "templates/*.html")
	if err != nil {
		return err
	}
	c.pages = map[string]*template.Template{}
	for _, n := range names {
		short := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if short == "base" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templatesFS, n)
		if err != nil {
			return fmt.Errorf("console template %s: %w", short, err)
		}
		c.pages[short] = t
	}
	return nil
}

// Register mounts the console under its path.
func (c *Console) Register(mux *http.ServeMux) {
	p := c.path
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+p+"static/", http.StripPrefix(p+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+p+"{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"jobs", http.StatusSeeOther)
	})
	mux.Handle("GET "+p+"jobs", c.look(c.handleJobs))
	mux.Handle("GET "+p+"jobs/bulk", c.look(c.handleBulkConfirm))
	mux.Handle("POST "+p+"jobs/bulk", c.act(c.handleBulk))
	mux.Handle("GET "+p+"jobs/{id}", c.look(c.handleJob))
	mux.Handle("POST "+p+"jobs/{id}/retry", c.act(c.handleJobAction))
	mux.Handle("POST "+p+"jobs/{id}/cancel", c.act(c.handleJobAction))
	mux.Handle("GET "+p+"webhooks", c.look(c.handleWebhooks))
	mux.Handle("GET "+p+"connections", c.look(c.handleConnections))
	mux.Handle("GET "+p+"keys", c.look(c.handleKeys))
	mux.Handle("GET "+p+"audit", c.look(c.handleAudit))
}

// viewer is who is looking, passed to every page.
type viewer struct {
	Principal *auth.Principal
	Admin     bool
	CSRF      string
}

type handler func(w http.ResponseWriter, r *http.Request, v viewer)

// look admits callers of console.auth or console.admin. A browser
// without a credential gets the sign-in page; anything else the JSON
// error envelope.
func (c *Console) look(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.authenticate(w, r)
		if !ok {
			return
		}
		h(w, r, v)
	})
}

// act admits only callers of console.admin, after the cross-origin check;
// a session caller's CSRF token may come in the form's csrf_token field.
func (c *Console) act(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.cop.Check(r); err != nil {
			httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "csrf_failed", "cross-origin request refused"))
			return
		}
		if r.Header.Get(authn.CSRFHeader) == "" {
			if err := r.ParseForm(); err != nil {
				httpapi.WriteError(w, r, httpapi.E(http.StatusBadRequest, "invalid_request", "cannot read the form: "+err.Error()))
				return
			}
			if tok := r.PostForm.Get(authn.CSRFField); tok != "" {
				r.Header.Set(authn.CSRFHeader, tok)
			}
		}
		v, ok := c.authenticate(w, r)
		if !ok {
			return
		}
		if !v.Admin {
			httpapi.WriteError(w, r, httpapi.E(http.StatusForbidden, "forbidden",
				"only the authenticators in console.admin may act; "+v.Principal.Authenticator+" may look"))
			return
		}
		h(w, r, v)
	})
}

func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) (viewer, bool) {
	p, err := c.cfg.Auth.Authenticate(r, c.names, auth.Rule{})
	if err != nil {
		var he *httpapi.Error
		if r.Method == http.MethodGet && errors.As(err, &he) && he.Status == http.StatusUnauthorized &&
			strings.Contains(r.Header.Get("Accept"), "text/html") {
			c.render(w, r, "signin", viewer{}, map[string]any{"Next": r.URL.RequestURI(), "Sessions": c.sessions()}, http.StatusUnauthorized)
			return viewer{}, false
		}
		httpapi.WriteError(w, r, err)
		return viewer{}, false
	}
	v := viewer{Principal: p, Admin: c.admin[p.Authenticator]}
	if tok, ok := c.cfg.Auth.CSRFToken(r); ok {
		v.CSRF = tok
	}
	return v, true
}

// sessions names the session authenticators among those that may look:
// the ones the sign-in page can open a session with.
func (c *Console) sessions() []string {
	var out []string
	for _, n := range c.names {
		if a, ok := c.cfg.Auth.Get(n); ok && a.Type() == config.AuthSession {
			out = append(out, n)
		}
	}
	return out
}

// page is the data of every template.
type page struct {
	V     viewer
	Title string
	Nav   string
	D     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, name string, v viewer, d any, status int) {
	t := c.pages[name]
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	title := strings.ToUpper(name[:1]) + name[1:]
	if err := t.ExecuteTemplate(w, "base.html", page{V: v, Title: title, Nav: name, D: d}); err != nil {
		c.cfg.Logger.ErrorContext(r.Context(), "console: render", "page", name, "error", err.Error())
	}
}
