// Package server assembles backlot's HTTP side: the middleware chain every
// request passes (request state and id, panic recovery, logging, metrics,
// security headers, body limit, CORS), the operational endpoints
// (/healthz, /readyz, /metrics), the listener rules (TLS, plain HTTP only on
// loopback unless overridden) and graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what the server needs; the caller builds the mux with every
// area's routes registered.
type Config struct {
	Server   config.Server
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// Ready reports whether the service can take traffic (store reachable,
	// migrations current). Nil means always ready.
	Ready func(ctx context.Context) error
	// CORS wraps the mux; nil for none.
	CORS func(http.Handler) http.Handler
	// Proxies resolves client addresses (trusted_proxies).
	Proxies *httpapi.Proxies
	// OwnBodyLimits are URL paths whose POST handler enforces its own body
	// limit (webhook endpoints, whose max_body_bytes may be larger or
	// smaller than the server's): server.max_body_bytes does not apply to
	// them. The in-flight body budget still does.
	OwnBodyLimits []string
}

// Server is the HTTP server.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	handler  http.Handler
	metrics  *metrics
	srv      *http.Server
	budget   *bodyBudget
	ownLimit map[string]bool
}

// New builds the server around mux, registering the operational routes
// and the envelope-answering fallback on it.
func New(cfg Config, mux *http.ServeMux) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Server.MaxBodyBytes <= 0 {
		cfg.Server.MaxBodyBytes = config.MaxBodyBytesDefault
	}
	if cfg.Server.ReadTimeout <= 0 {
		cfg.Server.ReadTimeout = config.Duration(config.ReadTimeoutDefault)
	}
	if cfg.Server.MaxInflightBodyBytes <= 0 {
		// Built in code without the config defaults: never below the
		// body limit, or the largest bodies could never be accepted.
		cfg.Server.MaxInflightBodyBytes = max(config.MaxInflightBodyDefault, cfg.Server.MaxBodyBytes)
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: mux, metrics: m,
		budget: &bodyBudget{max: cfg.Server.MaxInflightBodyBytes}, ownLimit: map[string]bool{}}
	for _, p := range cfg.OwnBodyLimits {
		s.ownLimit[p] = true
	}
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if cfg.Server.MetricsListen == "" {
		mux.Handle("GET /metrics", s.metricsHandler())
	}
	mux.HandleFunc("/", s.handleFallback)

	var h http.Handler = routeRecorder{mux}
	if cfg.CORS != nil {
		h = cfg.CORS(h)
	}
	h = s.limitBody(h)
	h = s.securityHeaders(h)
	h = s.observe(h)
	s.handler = h
	return s, nil
}

// Handler is the full chain, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// CheckListen refuses plain HTTP on a non-loopback address unless
// http_override is set: without TLS, tokens and cookies would cross the
// network in the clear.
func CheckListen(sc config.Server) error {
	if sc.TLS.Enabled() || sc.HTTPOverride {
		return nil
	}
	host, _, err := net.SplitHostPort(sc.Listen)
	if err != nil {
		return fmt.Errorf("server.listen %q: %w", sc.Listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		return nil
	}
	shown := host
	if shown == "" {
		shown = "all interfaces"
	}
	return fmt.Errorf("refusing to serve plain HTTP on %s (server.listen %q): credentials would cross the network unencrypted; "+
		"set server.tls.cert_file and key_file, listen on 127.0.0.1, or set server.http_override: true if TLS ends at a load balancer in front of backlot",
		shown, sc.Listen)
}

// Listen opens the listener, enforcing CheckListen.
func (s *Server) Listen() (net.Listener, error) {
	if err := CheckListen(s.cfg.Server); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.Server.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Server.Listen, err)
	}
	return ln, nil
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{Registry: s.cfg.Registry})
}

// Serve answers on ln until ctx is cancelled, then shuts down gracefully:
// it stops accepting, lets requests in flight finish (up to
// server.shutdown_timeout) and returns nil. With server.metrics_listen
// set it also serves /metrics on that address, and only there.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	readTimeout := s.cfg.Server.ReadTimeout.D()
	if s.cfg.Server.MetricsListen != "" {
		stop, err := s.serveMetrics(readTimeout)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	s.srv = &http.Server{
		Handler: s.handler,
		// ReadTimeout bounds headers and body together; the header timeout
		// must not exceed it, or slow headers would eat the body's time
		// past the bound.
		ReadTimeout:       readTimeout,
		ReadHeaderTimeout: min(10*time.Second, readTimeout),
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	tlsOn := s.cfg.Server.TLS.Enabled()
	if tlsOn {
		s.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		if tlsOn {
			err = s.srv.ServeTLS(ln, s.cfg.Server.TLS.CertFile, s.cfg.Server.TLS.KeyFile)
		} else {
			err = s.srv.Serve(ln)
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	timeout := s.cfg.Server.ShutdownTimeout.D()
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.cfg.Logger.Info("shutting down: finishing requests in flight", "timeout", timeout.String())
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	<-errc
	return nil
}

// serveMetrics serves /metrics alone on server.metrics_listen until stop
// is called (when Serve returns).
func (s *Server) serveMetrics(readTimeout time.Duration) (stop func(), err error) {
	ln, err := net.Listen("tcp", s.cfg.Server.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("listen on server.metrics_listen %s: %w", s.cfg.Server.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("/", httpapi.NotFound)
	srv := &http.Server{
		Handler:           mux,
		ReadTimeout:       readTimeout,
		ReadHeaderTimeout: min(10*time.Second, readTimeout),
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("metrics listener failed", "addr", s.cfg.Server.MetricsListen, "error", err.Error())
		}
	}()
	s.cfg.Logger.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			httpapi.WriteError(w, r, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "not_ready", Description: err.Error()})
			return
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// handleFallback answers what no route matched: 405 with Allow when the
// path exists under other methods, else 404, both as the envelope.
func (s *Server) handleFallback(w http.ResponseWriter, r *http.Request) {
	if st := httpapi.StateFrom(r.Context()); st != nil {
		st.Route = ""
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, p := s.mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		e := *httpapi.ErrMethodNotAllowed
		e.Description = fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)
		e.Header = http.Header{"Allow": {joinComma(allow)}}
		httpapi.WriteError(w, r, &e)
		return
	}
	httpapi.NotFound(w, r)
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}

// routeRecorder records the matched pattern in the request state after the
// mux has routed (the mux sets r.Pattern on the request it was given).
type routeRecorder struct{ mux *http.ServeMux }

func (rr routeRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rr.mux.ServeHTTP(w, r)
	if st := httpapi.StateFrom(r.Context()); st != nil && r.Pattern != "/" {
		st.Route = r.Pattern
	}
}
