// Package logbuf buffers a server's log output so that a busy server does
// not make a write system call for every request's log line: lines are
// gathered in memory and written together at most a short interval after
// the first of them (like a web server's buffered access log). Warnings
// and errors are written at once, with everything before them, so the lines
// that explain a failure are never the ones held back.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults: a line waits at most FlushDefault before it is written, and at
// most SizeDefault bytes wait.
const (
	FlushDefault = 100 * time.Millisecond
	SizeDefault  = 64 << 10
)

// Writer buffers whole writes (a slog handler writes one line per call)
// and writes them to the underlying writer in order, never splitting one.
// It is safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	size   int
	every  time.Duration
	timer  *time.Timer
	closed bool
}

// New returns a Writer that writes to w at most every after a buffered
// line, or sooner once size bytes wait. Call Close to write what is left.
func New(w io.Writer, every time.Duration, size int) *Writer {
	if every <= 0 {
		every = FlushDefault
	}
	if size <= 0 {
		size = SizeDefault
	}
	b := &Writer{w: w, size: size, every: every, buf: make([]byte, 0, size)}
	b.timer = time.AfterFunc(time.Hour, func() { b.Flush() })
	b.timer.Stop()
	return b
}

// Write buffers p, writing the buffer first if p would not fit. A write
// larger than the buffer, or any write after Close, goes straight through.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.size {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if b.closed || len(p) > b.size {
		return b.w.Write(p)
	}
	if len(b.buf) == 0 {
		b.timer.Reset(b.every)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes what is buffered.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Writer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	b.timer.Stop()
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Close writes what is buffered; later writes go straight through, so a
// logger still held somewhere keeps working.
func (b *Writer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.flushLocked()
}

// Handler wraps a slog.Handler that writes to w so that records at Warn
// and above are written at once, with the lines buffered before them.
func Handler(h slog.Handler, w *Writer) slog.Handler { return &handler{h, w} }

type handler struct {
	slog.Handler
	w *Writer
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{h.Handler.WithAttrs(as), h.w}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h.Handler.WithGroup(name), h.w}
}
