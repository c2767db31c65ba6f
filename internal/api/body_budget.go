package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
)

// BODY_MEMORY_BYTES: how many bytes of large request bodies the service
// holds at once. huma reads a body whole before the handler sees it, and
// the handler then decodes it: a body of N bytes costs about 2N of memory
// until its answer is written (a 60 MB batch took the process from 25 to
// 145 MB resident). Sixteen clients posting 60 MB bodies at once took it
// to 1.2 GB. So a body reads its first smallBody bytes freely; to read
// more, it takes its whole size from a budget, and gives it back once its
// answer is written. A body that does not fit waits for others to finish.
//
//   - The size is the Content-Length. A body without one (chunked) takes
//     what it has read and one more chunkStep, and reads no further than
//     its share covers: past it, it takes the next chunkStep at once, or,
//     when the budget has no room for it, is a 503 (errBodyBudget), since a
//     body that waited while holding a share could wait for another that
//     waits for it. It used to take its operation's whole limit, so a few
//     chunked bodies of a little over a MiB each (one, with the default
//     limits) held the budget and the other large bodies waited for them.
//     A chunked body's first share waits its turn as any other; its later
//     steps go ahead of the bodies waiting for a first share (it holds
//     room that it gives back the sooner it ends).
//   - An operation that parses its body into generic values (the events'
//     register and commit) counts it several times over: its Metadata's
//     bodyWeightKey (eventsBodyWeight, 8), as eight 8 MB events bodies at
//     once took 0.9-1.1 GB.
//   - The first MiB is read before the share is taken so that a client
//     must send it, not only announce a size, to hold the budget.
//   - A body holding a share must keep arriving at BODY_MIN_RATE bytes a
//     second from the moment it took it, falling at most minRateSlack
//     behind: its read deadline moves on with every read, and a body that
//     falls further behind is a 408 (never later than READ_TIMEOUT). Without
//     it a client could send one MiB, announce 64, then stall, and keep
//     every other large body waiting for the whole READ_TIMEOUT, request
//     after request, at the cost of one MiB a minute. A body of known
//     length must also keep the pace at which it ends before READ_TIMEOUT,
//     when that is faster (pace).
//   - A Content-Length over the operation's limit is a 413 at the first
//     read, without reading what would be refused.
//   - Bodies up to smallBody (every device report, most batches) never wait
//     and are not counted.
//   - A body waits at most READ_TIMEOUT (counted from the start of its
//     operation): it would not have had more time to arrive. Past it, it
//     is a 503 with Retry-After.
//   - The budget is taken at the body's first read, after the operation's
//     own middlewares: a request refused for its token holds nothing.
//
// The budget is never smaller than the largest body an operation takes, so
// that any body within its limit can be served alone.

// smallBody is the size up to which a body is not counted (huma keeps
// its read buffers of up to this size for reuse).
const smallBody = 1 << 20

// minRateSlack is how far behind BODY_MIN_RATE a body holding a share may
// fall (4 s at the default 256 KiB/s): room for the time a client that
// waited for its share takes to send again.
const minRateSlack = 1 << 20

// bodyWeightKey is the key, in an operation's Metadata, of how many times
// its bodies count (an int64; 1 when absent).
const bodyWeightKey = "bodyWeight"

// chunkStep is how many more bytes of a chunked body each step of its
// share covers.
const chunkStep = 1 << 20

// bodyBudget is the shared budget of large request bodies.
type bodyBudget struct {
	size        int64
	readTimeout time.Duration
	minRate     int64 // BODY_MIN_RATE, bytes a second; 0: none
	held        gauge // bytes taken by bodies being read or served
	waiting     gauge // bodies waiting for their share

	mu    sync.Mutex
	free  int64
	queue []*budgetWaiter // bodies waiting for their first share, in turn
}

// budgetWaiter is a body waiting for its first share of n bytes.
type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the share is its
}

// gauge is what the budget needs of a Prometheus gauge (metrics.go).
type gauge interface{ Add(float64) }

func newBodyBudget(size int64, readTimeout time.Duration, minRate int64, held, waiting gauge) *bodyBudget {
	return &bodyBudget{size: size, free: size, readTimeout: readTimeout, minRate: minRate, held: held, waiting: waiting}
}

// acquire waits, after the bodies already waiting, for n bytes (at most
// size), until ctx is done.
func (b *bodyBudget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if len(b.queue) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.queue = append(b.queue, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: given back
		b.free += n
	default:
		b.queue = slices.DeleteFunc(b.queue, func(q *budgetWaiter) bool { return q == w })
	}
	b.grant() // those behind it may fit now
	return ctx.Err()
}

// grow takes n more bytes for a body that holds a share, ahead of the
// bodies waiting for theirs, if they are free; it never waits.
func (b *bodyBudget) grow(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free < n {
		return false
	}
	b.free -= n
	return true
}

// give returns n bytes and hands them on to the bodies waiting.
func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	b.grant()
}

// grant gives the free bytes to the waiting bodies in turn (b.mu held).
func (b *bodyBudget) grant() {
	for len(b.queue) > 0 && b.queue[0].n <= b.free {
		b.free -= b.queue[0].n
		close(b.queue[0].ready)
		b.queue = slices.Delete(b.queue, 0, 1)
	}
}

// errBodyBudget is the read error of a body that did not get its share of
// the budget in time (bodyReadProblem answers it with a 503).
var errBodyBudget = errors.New("the request body did not fit in BODY_MEMORY_BYTES in time")

// errBodyTooSlow is the read error of a body that fell behind BODY_MIN_RATE
// while holding its share (bodyReadProblem answers it with a 408).
var errBodyTooSlow = errors.New("the request body arrived slower than BODY_MIN_RATE while holding BODY_MEMORY_BYTES")

// errBodyTooLate is the read error of a body that fell behind the pace at
// which it would have arrived before READ_TIMEOUT while holding its share.
var errBodyTooLate = errors.New("the request body arrived too slowly to end before READ_TIMEOUT while holding BODY_MEMORY_BYTES")

// middleware puts every large enough operation's body under the budget.
func (b *bodyBudget) middleware(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	if !budgeted(op) {
		// A small body's operation: a Content-Length over its limit is a
		// 413 at once too, rather than a wait for a body it would refuse
		// (until READ_TIMEOUT, then a 408: POST /mrd/token, which needs
		// no token, could hold a connection that long).
		if r, _ := humachi.Unwrap(ctx); op != nil && op.RequestBody != nil && op.MaxBodyBytes > 0 && r != nil &&
			r.ContentLength > op.MaxBodyBytes-1 {
			info, _ := r.Context().Value(requestInfoKey).(*requestInfo)
			r.Body = &refusedBody{err: &http.MaxBytesError{Limit: op.MaxBodyBytes - 1}, info: info}
		}
		next(ctx)
		return
	}
	r, _ := humachi.Unwrap(ctx)
	if r == nil || r.Body == nil || r.Body == http.NoBody || (r.ContentLength >= 0 && r.ContentLength <= smallBody) {
		next(ctx)
		return
	}
	info, _ := r.Context().Value(requestInfoKey).(*requestInfo)
	wait, cancel := r.Context(), context.CancelFunc(func() {})
	if b.readTimeout > 0 {
		wait, cancel = context.WithTimeout(r.Context(), b.readTimeout)
	}
	weight, _ := op.Metadata[bodyWeightKey].(int64)
	body := &budgetedBody{ReadCloser: r.Body, budget: b, wait: wait, info: info,
		length: r.ContentLength, limit: op.MaxBodyBytes - 1, weight: max(weight, 1)}
	if b.minRate > 0 {
		body.setDeadline = ctx.SetReadDeadline
		body.readDeadline, _ = wait.Deadline() // READ_TIMEOUT's, or none
	}
	r.Body = body
	defer func() {
		cancel()
		body.release()
	}()
	// The share is the body's: it goes back when the answer begins, not
	// when the client has read the answer, or a client that sends a body
	// and reads nothing of its 422 (one item per fault: megabytes) held it
	// until WRITE_TIMEOUT, and every large body meanwhile waited out
	// READ_TIMEOUT and answered 503 (found by the hostile-input audit).
	next(&releasingContext{wrapped: ctx, body: body})
}

// releasingContext releases its request body's share of BODY_MEMORY_BYTES
// when the answer's status is set, before its body is written.
type releasingContext struct {
	wrapped
	body *budgetedBody
}

// wrapped is the huma.Context a wrapper embeds (a field named Context
// would hide the interface's Context method).
type wrapped huma.Context

// Unwrap lets humachi.Unwrap reach the request and writer beneath.
func (c *releasingContext) Unwrap() huma.Context { return c.wrapped }

func (c *releasingContext) SetStatus(code int) {
	c.body.release()
	c.wrapped.SetStatus(code)
}

// refusedBody stands in for a body refused before any of it is read (by
// its Content-Length, or its Content-Type: typedBody): its reads fail at
// once (bodyReadProblem answers the error, a 413 or a 415), and its Close
// leaves the body it stands for to net/http.
type refusedBody struct {
	err  error
	info *requestInfo
}

func (b *refusedBody) Read([]byte) (int, error) {
	b.info.noteBodyErr(b.err)
	return 0, b.err
}

func (b *refusedBody) Close() error { return nil }

// budgeted reports whether op's bodies can be large enough for the budget.
func budgeted(op *huma.Operation) bool {
	return op != nil && op.RequestBody != nil && op.MaxBodyBytes > smallBody+1
}

// documentBodyBudget says, in the 503 and 408 answers of every operation
// whose bodies the budget covers, that they may come from the budget.
func documentBodyBudget(oapi *huma.OpenAPI, op *huma.Operation) {
	if !budgeted(op) {
		return
	}
	r := op.Responses["503"]
	if r == nil {
		r = &huma.Response{Content: map[string]*huma.MediaType{"application/problem+json": {
			Schema: oapi.Components.Schemas.Schema(reflectProblem, true, "")}}}
		op.Responses["503"] = r
	}
	r.Description = "Service Unavailable: the database cannot be reached or is overloaded, or a body over 1 MiB " +
		"found no room in BODY_MEMORY_BYTES (the bodies being read or served) within READ_TIMEOUT, or a chunked one " +
		"found none for its next MiB. " +
		"Retry after the Retry-After header's seconds."
	if r := op.Responses["408"]; r != nil { // documentBodyErrors
		r.Description = "Request Timeout: the body did not arrive within READ_TIMEOUT, or, past its first MiB, " +
			"arrived slower than BODY_MIN_RATE while holding room in BODY_MEMORY_BYTES."
	}
}

// budgetedBody is a request body that takes its share of the budget
// before the bytes that need it are read.
type budgetedBody struct {
	io.ReadCloser
	budget *bodyBudget
	wait   context.Context // how long it may wait for its share
	info   *requestInfo
	length int64 // the Content-Length, or -1
	limit  int64 // the most bytes the operation takes
	weight int64 // how many times its bytes count
	read   int64
	held   int64 // its share, once taken
	covers int64 // how many of its bytes its share covers
	whole  bool  // its share covers all it may still read
	err    error // why it stopped (its reader's end included), once it has

	// BODY_MIN_RATE, while the share is held (nil setDeadline: none).
	setDeadline  func(time.Time) error // the connection's read deadline
	readDeadline time.Time             // READ_TIMEOUT's (zero: none)
	takenAt      time.Time
	readAtTake   int64
	late         bool // its pace is READ_TIMEOUT's, faster than BODY_MIN_RATE
}

func (b *budgetedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	switch {
	case b.whole:
	case b.length > b.limit:
		return 0, b.fail(&http.MaxBytesError{Limit: b.limit})
	case b.held == 0 && b.read < smallBody:
		// The first MiB without a share.
		p = p[:min(int64(len(p)), smallBody-b.read)]
	case b.length >= 0:
		if err := b.cover(b.length, true); err != nil {
			return 0, err
		}
	default:
		// Chunked: its next step once it has read what its share covers,
		// and no further than that.
		if b.read >= b.covers {
			n := min(b.read+chunkStep, b.limit)
			if err := b.cover(n, n == b.limit); err != nil {
				return 0, err
			}
		}
		if !b.whole {
			p = p[:min(int64(len(p)), b.covers-b.read)]
		}
	}
	var paced bool // a BODY_MIN_RATE deadline is in force for this read
	if b.held > 0 && b.setDeadline != nil {
		paced = b.pace()
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err != nil {
		// Ended: later reads give the same error without touching the
		// deadline, which is net/http's again.
		b.err = err
		var ne net.Error
		if paced && b.info != nil && errors.As(err, &ne) && ne.Timeout() {
			// Instead of the bare timeout.
			b.info.bodyErr = errBodyTooSlow
			if b.late {
				b.info.bodyErr = errBodyTooLate
			}
		}
	}
	return n, err
}

// pace sets the connection's read deadline to when the body, at its pace
// since it took its share, would be its slack behind, or to READ_TIMEOUT's
// deadline if that comes first, and reports whether the pace's is the one
// set. Its pace is BODY_MIN_RATE, or, for a body of known length, the rate
// at which the rest of it arrives before READ_TIMEOUT when that is faster:
// a body behind that pace would be cut at READ_TIMEOUT anyway, and holding
// its share until then kept every other large body waiting (found by a
// security audit: 64 MiB announced and sent at 300 KiB/s, above
// BODY_MIN_RATE, held the whole budget for the 60 s of READ_TIMEOUT,
// request after request). Its slack is minRateSlack, or at that faster
// pace a sixteenth of its rest when more, for the jitter of a large body's
// transfer. net/http
// clears the deadline itself once the body has been read to its end
// (limits.go), and pace is not called after that.
func (b *budgetedBody) pace() bool {
	rate, slack := float64(b.budget.minRate), int64(minRateSlack)
	b.late = false
	if rest := b.length - b.readAtTake; b.length >= 0 && !b.readDeadline.IsZero() {
		if window := b.readDeadline.Sub(b.takenAt).Seconds(); window > 0 && float64(rest)/window > rate {
			rate, b.late = float64(rest)/window, true
			slack = max(slack, rest/16)
		}
	}
	ahead := b.read - b.readAtTake + slack
	due := b.takenAt.Add(time.Duration(float64(ahead) / rate * float64(time.Second)))
	paced := b.readDeadline.IsZero() || due.Before(b.readDeadline)
	if !paced {
		due = b.readDeadline
	}
	return b.setDeadline(due) == nil && paced
}

// cover makes the body's share cover its first n bytes (all it may still
// read if whole), counted weight times and at most the whole budget: its
// first share waits its turn, a larger one is taken at once or is a 503.
func (b *budgetedBody) cover(n int64, whole bool) error {
	share := min(n*b.weight, b.budget.size)
	if b.held == 0 {
		b.budget.waiting.Add(1)
		err := b.budget.acquire(b.wait, share)
		b.budget.waiting.Add(-1)
		if err != nil {
			return b.fail(errBodyBudget)
		}
		b.takenAt, b.readAtTake = time.Now(), b.read
	} else if !b.budget.grow(share - b.held) {
		return b.fail(errBodyBudget)
	}
	b.budget.held.Add(float64(share - b.held))
	b.held, b.covers, b.whole = share, n, whole || share == b.budget.size
	return nil
}

// fail stops the body with err, recorded for bodyReadProblem.
func (b *budgetedBody) fail(err error) error {
	b.err = err
	b.info.noteBodyErr(err)
	return err
}

// release gives the body's share back, once its answer is written.
func (b *budgetedBody) release() {
	if b.held > 0 {
		b.budget.held.Add(float64(-b.held))
		b.budget.give(b.held)
		b.held = 0
	}
}
