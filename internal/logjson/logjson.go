// Package logjson writes slog records as JSON lines, byte for byte as
// slog.JSONHandler does, and faster for the lines a busy server writes
// most: the request line, a record of strings, integers, booleans and
// finite floats on the root logger. slog.JSONHandler formats a float
// through encoding/json and walks every attribute through its generic
// group and ReplaceAttr machinery; on one core that was a sixth of an
// authenticated GET. Anything else (a logger with attributes or groups, an
// attribute of another kind, ReplaceAttr or AddSource) is written by
// slog.JSONHandler itself.
package logjson

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/backlothq/backlot/internal/jsonstr"
)

// Handler is a slog.Handler writing JSON lines.
type Handler struct {
	slow  slog.Handler // slog.JSONHandler on the same writer
	w     io.Writer
	mu    *sync.Mutex
	level slog.Leveler
	pool  *sync.Pool
}

// New returns a handler writing to w with opts, as slog.NewJSONHandler.
func New(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	slow := slog.NewJSONHandler(w, opts)
	if opts.ReplaceAttr != nil || opts.AddSource {
		return slow
	}
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	return &Handler{slow: slow, w: w, mu: &sync.Mutex{}, level: level,
		pool: &sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}}
}

// Enabled reports whether records at l are written.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs and WithGroup hand over to slog.JSONHandler: derived loggers
// are not the hot path.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler { return h.slow.WithAttrs(as) }

// WithGroup: see WithAttrs.
func (h *Handler) WithGroup(name string) slog.Handler { return h.slow.WithGroup(name) }

// Handle writes r as one line.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	simple := true
	r.Attrs(func(a slog.Attr) bool {
		simple = fast(a)
		return simple
	})
	if !simple {
		return h.slow.Handle(ctx, r)
	}
	bp := h.pool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, '{')
	if t := r.Time.Round(0); !t.IsZero() {
		if y := t.Year(); y < 0 || y >= 10000 {
			h.pool.Put(bp)
			return h.slow.Handle(ctx, r) // slog's own error text
		}
		b = append(b, `"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = jsonstr.Append(b, r.Level.String(), jsonstr.Slog)
	b = append(b, `,"msg":`...)
	b = jsonstr.Append(b, r.Message, jsonstr.Slog)
	r.Attrs(func(a slog.Attr) bool {
		b = append(b, ',')
		b = jsonstr.Append(b, a.Key, jsonstr.Slog)
		b = append(b, ':')
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			b = jsonstr.Append(b, v.String(), jsonstr.Slog)
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindUint64:
			b = strconv.AppendUint(b, v.Uint64(), 10)
		case slog.KindBool:
			b = strconv.AppendBool(b, v.Bool())
		case slog.KindFloat64:
			b, _ = jsonstr.AppendFloat(b, v.Float64()) // finite: fast checked
		}
		return true
	})
	b = append(b, "}\n"...)
	h.mu.Lock()
	_, err := h.w.Write(b)
	h.mu.Unlock()
	if cap(b) <= 16<<10 {
		*bp = b
		h.pool.Put(bp)
	}
	return err
}

// fast reports whether a is written here: a non-empty key and a value of a
// kind formatted the same way whatever the options.
func fast(a slog.Attr) bool {
	if a.Key == "" {
		return false // an empty attribute is dropped, an empty-keyed group inlined: slog's rules
	}
	switch a.Value.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindBool:
		return true
	case slog.KindFloat64:
		f := a.Value.Float64()
		return !math.IsNaN(f) && !math.IsInf(f, 0) // encoding/json refuses them
	}
	return false
}
