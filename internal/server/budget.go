package server

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/backlothq/backlot/internal/httpapi"
)

// bodyBudget bounds the request body bytes all requests in flight may hold
// together (server.max_inflight_body_bytes). A read timeout alone does not
// bound memory: many senders within the timeout can each hold a body, and
// the Go runtime keeps freed heap for reuse, so a burst leaves the process
// large. The budget is a counting semaphore of bytes; it never waits,
// because a request that would wait still holds its connection.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// tryAcquire takes n bytes if they are available.
func (b *bodyBudget) tryAcquire(n int64) bool {
	for {
		u := b.used.Load()
		if n > b.max-u {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *bodyBudget) release(n int64) {
	if n > 0 {
		b.used.Add(-n)
	}
}

// inUse is the number of bytes held now.
func (b *bodyBudget) inUse() int64 { return b.used.Load() }

// busyRetryAfter is the Retry-After sent with a budget refusal, in
// seconds: bodies in flight finish or hit read_timeout soon.
const busyRetryAfter = "1"

func errBusy() *httpapi.Error {
	return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "server_busy",
		Description: "too many request bodies are in flight; retry shortly",
		Header:      http.Header{"Retry-After": {busyRetryAfter}}}
}

// budgetBody takes budget for a request body as the handler reads it: the
// declared Content-Length at the first read, or each chunk as it arrives
// when the length is unknown. A handler that refuses a request without
// reading its body (a webhook's source check) takes nothing. Over budget,
// Read fails with a 503 *httpapi.Error, which handlers answer as is.
type budgetBody struct {
	io.ReadCloser
	budget   *bodyBudget
	declared int64 // Content-Length, or -1
	held     int64
	err      error
	// done runs once the body has been read to its end.
	done func()
}

func (b *budgetBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.declared > 0 && b.held == 0 {
		if !b.budget.tryAcquire(b.declared) {
			b.err = errBusy()
			return 0, b.err
		}
		b.held = b.declared
	}
	n, err := b.ReadCloser.Read(p)
	if b.declared <= 0 && n > 0 {
		if !b.budget.tryAcquire(int64(n)) {
			b.err = errBusy()
			return 0, b.err
		}
		b.held += int64(n)
	}
	if err == io.EOF && b.done != nil {
		b.done()
		b.done = nil
	}
	return n, err
}

// release returns what the request held; called when its handler returns.
func (b *budgetBody) release() { b.budget.release(b.held) }

// requestReceived lifts the connection's read deadline once the whole
// request (headers and body) has arrived. read_timeout is there to cut
// off slow senders; left in place, the expired deadline would fail the
// server's background read of the idle connection and cancel the context
// of a handler that simply runs longer than read_timeout.
func requestReceived(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}
