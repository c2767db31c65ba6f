package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"golang.org/x/sync/semaphore"
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
//   - The size is the Content-Length; a body without one (chunked) takes
//     its operation's whole limit, since nobody knows how much more will
//     come. An operation that parses its body into generic values (the
//     events' register and commit) counts it several times over: its
//     Metadata's bodyWeightKey (eventsBodyWeight, 8), as eight 8 MB events
//     bodies at once took 0.9-1.1 GB.
//   - The first MiB is read before the share is taken so that a client
//     must send it, not only announce a size, to hold the budget: one that
//     then dribbles holds it at most READ_TIMEOUT, like any slow body.
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

// bodyWeightKey is the key, in an operation's Metadata, of how many times
// its bodies count (an int64; 1 when absent).
const bodyWeightKey = "bodyWeight"

// bodyBudget is the shared budget of large request bodies.
type bodyBudget struct {
	sem         *semaphore.Weighted
	size        int64
	readTimeout time.Duration
	held        gauge // bytes taken by bodies being read or served
	waiting     gauge // bodies waiting for their share
}

// gauge is what the budget needs of a Prometheus gauge (metrics.go).
type gauge interface{ Add(float64) }

func newBodyBudget(size int64, readTimeout time.Duration, held, waiting gauge) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(size), size: size, readTimeout: readTimeout,
		held: held, waiting: waiting}
}

// errBodyBudget is the read error of a body that did not get its share of
// the budget in time (bodyReadProblem answers it with a 503).
var errBodyBudget = errors.New("the request body did not fit in BODY_MEMORY_BYTES in time")

// middleware puts every large enough operation's body under the budget.
func (b *bodyBudget) middleware(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	if !budgeted(op) {
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
	r.Body = body
	defer func() {
		cancel()
		body.release()
	}()
	next(ctx)
}

// budgeted reports whether op's bodies can be large enough for the budget.
func budgeted(op *huma.Operation) bool {
	return op != nil && op.RequestBody != nil && op.MaxBodyBytes > smallBody+1
}

// documentBodyBudget says, in the 503 answer of every operation whose
// bodies the budget covers, that it may come from the budget.
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
		"found no room in BODY_MEMORY_BYTES (the bodies being read or served) within READ_TIMEOUT. " +
		"Retry after the Retry-After header's seconds."
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
	err    error // why it stopped, once it has
}

func (b *budgetedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.held == 0 {
		switch {
		case b.length > b.limit:
			return 0, b.fail(&http.MaxBytesError{Limit: b.limit})
		case b.read < smallBody:
			// The first MiB without a share.
			p = p[:min(int64(len(p)), smallBody-b.read)]
		case b.length >= 0:
			if err := b.take(b.length); err != nil {
				return 0, err
			}
		default:
			if err := b.take(b.limit); err != nil {
				return 0, err
			}
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	return n, err
}

// take waits for the share of n bytes of body (at most all of the budget).
func (b *budgetedBody) take(n int64) error {
	n = min(n*b.weight, b.budget.size)
	b.budget.waiting.Add(1)
	err := b.budget.sem.Acquire(b.wait, n)
	b.budget.waiting.Add(-1)
	if err != nil {
		return b.fail(errBodyBudget)
	}
	b.held = n
	b.budget.held.Add(float64(n))
	return nil
}

// fail stops the body with err, recorded for bodyReadProblem.
func (b *budgetedBody) fail(err error) error {
	b.err = err
	if b.info != nil && b.info.bodyErr == nil {
		b.info.bodyErr = err
	}
	return err
}

// release gives the body's share back, once its answer is written.
func (b *budgetedBody) release() {
	if b.held > 0 {
		b.budget.held.Add(float64(-b.held))
		b.budget.sem.Release(b.held)
		b.held = 0
	}
}
