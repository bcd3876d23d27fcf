package server

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/backlothq/backlot/internal/httpapi"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backlot_http_requests_total",
			Help: "HTTP requests by matched route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backlot_http_request_duration_seconds",
			Help:    "HTTP request duration by matched route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// statusWriter captures the status and size. It implements Unwrap so
// http.ResponseController reaches the underlying writer's Flush, Hijack
// and deadlines.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps streaming handlers working through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Hijack keeps connection-upgrading handlers working through the wrapper.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// observe is the outermost layer: it creates the request state (one
// context allocation for the whole chain), assigns the request id, recovers
// panics, and writes the log line and metrics when the handler returns.
func (s *Server) observe(next http.Handler) http.Handler {
	log := s.cfg.Logger
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &httpapi.State{}
		if id := r.Header.Get("X-Request-Id"); httpapi.ValidRequestID(id) {
			st.ID = id
		} else {
			st.ID = httpapi.NewRequestID()
		}
		st.ClientIP = s.cfg.Proxies.ClientIP(r)
		w.Header().Set("X-Request-Id", st.ID)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(httpapi.WithState(r.Context(), st))

		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic in handler",
					"request_id", st.ID, "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.status == 0 {
					httpapi.WriteError(sw, r, &httpapi.Error{Status: 500, Code: "internal_error",
						Description: "internal error", Err: fmt.Errorf("panic: %v", v)})
				}
			}
			s.finish(r, st, sw, start)
		}()
		next.ServeHTTP(sw, r)
	})
}

func (s *Server) finish(r *http.Request, st *httpapi.State, sw *statusWriter, start time.Time) {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	now := time.Now()
	d := now.Sub(start)
	route := st.Route
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	s.metrics.duration.WithLabelValues(route).Observe(d.Seconds())

	level := slog.LevelInfo
	if sw.status >= 500 {
		level = slog.LevelError
	}
	// The record is handed to the handler directly: Logger.LogAttrs would
	// also look up its caller (runtime.Callers), for a source location that
	// is always this function.
	h := s.cfg.Logger.Handler()
	if !h.Enabled(r.Context(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs,
		slog.String("request_id", st.ID),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.Int("status", sw.status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int64("bytes", sw.bytes),
		slog.String("client_ip", addrString(st.ClientIP)),
	)
	if st.Subject != "" {
		attrs = append(attrs, slog.String("subject", st.Subject), slog.String("authenticator", st.Auth))
	}
	if st.ErrCode != "" {
		attrs = append(attrs, slog.String("error", st.ErrCode))
	}
	if st.ErrDetail != "" {
		attrs = append(attrs, slog.String("error_detail", st.ErrDetail))
	}
	rec := slog.NewRecord(now, level, "request", 0)
	rec.AddAttrs(attrs...)
	_ = h.Handle(r.Context(), rec) // a log line that cannot be written is not the client's failure
}

// securityHeaders sets the headers every response carries.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	hc := s.cfg.Server.Headers
	csp := hc.CSP
	ref := hc.ReferrerPolicy
	if ref == "" {
		ref = "no-referrer"
	}
	hsts := s.cfg.Server.TLS.Enabled() && (hc.HSTS == nil || *hc.HSTS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", ref)
		if csp != "" {
			h.Set("Content-Security-Policy", csp)
		}
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody applies server.max_body_bytes (a declared oversized body is
// refused at once, the rest capped by http.MaxBytesReader, whose error
// httpapi answers as 413) except on paths whose handler enforces its own
// limit, and charges every body to the in-flight budget as it is read.
func (s *Server) limitBody(next http.Handler) http.Handler {
	max := s.cfg.Server.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			requestReceived(w)
			next.ServeHTTP(w, r)
			return
		}
		if !(r.Method == http.MethodPost && s.ownLimit[r.URL.Path]) {
			if r.ContentLength > max {
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusRequestEntityTooLarge, "body_too_large",
					"request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, max))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		b := &budgetBody{ReadCloser: r.Body, budget: s.budget, declared: r.ContentLength,
			done: func() { requestReceived(w) }}
		defer b.release()
		r.Body = b
		next.ServeHTTP(w, r)
	})
}

// addrString is a's text, or "" when invalid.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
