package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Time limits of one request, beyond the server's own (READ_HEADER_TIMEOUT,
// WRITE_TIMEOUT, IDLE_TIMEOUT, set on the http.Server by serve):
//
//   - READ_TIMEOUT bounds the arrival of a request's body: a read deadline
//     on the connection from the start of a request that has one (huma moves
//     it to the start of its body read: every operation's BodyReadTimeout is
//     READ_TIMEOUT, see registerRoutes, instead of huma's 5 s). net/http
//     lifts it once the body has been read to its end, when it starts
//     watching the connection for a client that goes away, so the handler's
//     work is not bounded by it. A handler that never reads the body (a GET
//     with one) leaves it in place: net/http then gives up on draining a
//     dribbled body and closes the connection. The API sets the deadline
//     itself rather than rely on http.Server.ReadTimeout so that the limit
//     holds wherever the handler is served.
//   - DB_TIMEOUT is a deadline on the context handed to the handlers, started
//     once huma has read and validated the input (handle, routes.go), so that
//     a slow upload does not eat the database's time. A query still waiting
//     past it ends, and the store reports it as unavailable: a 503 with
//     Retry-After.
//
// A body that fails to arrive is the client's doing: huma answers a read
// error with a 500 (or a 408 for a timeout); bodyReadProblem makes it a 408,
// a 413 or a 400, never with the reader's own message, and observe logs it
// at info with the cause.

// limits is the router middleware that applies READ_TIMEOUT to a request's
// body, records why a body could not be read, and carries DB_TIMEOUT to
// handle.
func limits(readTimeout, dbTimeout time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info, _ := r.Context().Value(requestInfoKey).(*requestInfo)
			if info != nil {
				info.dbTimeout = dbTimeout
			}
			var body *recordedBody
			if r.Body != nil && r.Body != http.NoBody {
				if readTimeout > 0 {
					// Unsupported only on writers that are no connection
					// (httptest.ResponseRecorder): nothing to bound there.
					_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(readTimeout))
				}
				if info != nil {
					body = &recordedBody{ReadCloser: r.Body, info: info}
					r.Body = body
				}
			}
			next.ServeHTTP(w, r)
			if body != nil && !body.read && r.ProtoAtLeast(1, 1) && expectsContinue(r) {
				// Answered without asking for the body (a 401, 404, 415...):
				// net/http closes the connection after this answer (an
				// HTTP/1.1 request that expected 100-continue and whose
				// body it has not read to its end), but first reads up to
				// 256 KiB of the body looking for its end, until the read
				// deadline (READ_TIMEOUT), and the client, which has its
				// answer, sends none. The answer is written all the same;
				// the close comes a second later: the bytes of a client
				// that sent its body anyway are still read, so that its
				// connection is not reset under its answer.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(expectDrainGrace))
			}
		})
	}
}

// closeAfterChunked answers every request whose body came chunked with
// Connection: close, so that net/http closes the connection after the
// answer. RFC 9112 (6.3) has a server close the connection after a request
// with both Content-Length and Transfer-Encoding, which can be an attempt
// at request smuggling: a proxy in front that went by Content-Length would
// have forwarded bytes past the chunked body's end, which this server
// would read as a request of its own on the same connection. net/http
// follows Transfer-Encoding, as it should, but removes Content-Length
// before any handler runs and keeps the connection open, so such a
// request cannot be told from a plain chunked one here: both close. The
// clients of this API send Content-Length (a body they hold whole); a
// chunked upload costs its client a new connection for the next request.
func closeAfterChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// expectsContinue reports whether net/http treats r as expecting
// 100-continue: its first Expect line lists the token 100-continue, in any
// case, among others separated by commas, spaces or tabs (what net/http's
// own check accepts; `100-continue, foo` is one).
func expectsContinue(r *http.Request) bool {
	for _, tok := range strings.FieldsFunc(r.Header.Get("Expect"), func(c rune) bool {
		return c == ',' || c == ' ' || c == '\t'
	}) {
		if strings.EqualFold(tok, "100-continue") {
			return true
		}
	}
	return false
}

// expectDrainGrace is how long net/http may still read the body of a
// request that expected 100-continue and was answered without it, before
// its connection closes (limits).
const expectDrainGrace = time.Second

// recordedBody remembers the first error of a body's reader (other than
// its end), for bodyReadProblem and the log line.
type recordedBody struct {
	io.ReadCloser
	info *requestInfo
	read bool // asked for (with Expect: 100-continue, net/http's 100 is sent)
}

func (b *recordedBody) Read(p []byte) (int, error) {
	b.read = true
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.info.noteBodyErr(err)
	}
	return n, err
}

// bodyReadProblem is the answer to a body that could not be read, or nil
// when the error huma is about to write (status, errs) does not come from
// reading the body: 408 when it did not arrive in time, 413 when it was too
// large for a limit, 503 when it found no room in BODY_MEMORY_BYTES in time
// (body_budget.go), 400 when it was cut off or its chunked encoding is
// malformed. The reader's own message is never shown.
func bodyReadProblem(ctx context.Context, status int, errs []error) *Problem {
	info, _ := ctx.Value(requestInfoKey).(*requestInfo)
	if info == nil || info.bodyErr == nil {
		return nil
	}
	switch status {
	case http.StatusRequestTimeout:
		// huma's own answer to a timeout: same status, a better detail.
	case http.StatusInternalServerError:
		// huma's "cannot read request body", carrying the reader's error.
		fromBody := false
		for _, err := range errs {
			fromBody = fromBody || err == info.bodyErr
		}
		if !fromBody {
			return nil
		}
	default:
		return nil
	}
	var ne net.Error
	var tooLarge *http.MaxBytesError
	var notJSON *errNotJSON
	switch {
	case errors.Is(info.bodyErr, errBodyTooLate):
		return NewProblem(http.StatusRequestTimeout, "the request body arrived too slowly to end before READ_TIMEOUT "+
			"while holding room in BODY_MEMORY_BYTES that other bodies wait for")
	case errors.Is(info.bodyErr, errBodyTooSlow):
		return NewProblem(http.StatusRequestTimeout, "the request body arrived slower than BODY_MIN_RATE while holding "+
			"room in BODY_MEMORY_BYTES that other bodies wait for")
	case errors.As(info.bodyErr, &ne) && ne.Timeout():
		return NewProblem(http.StatusRequestTimeout, "the request body did not arrive in time (READ_TIMEOUT)")
	case errors.As(info.bodyErr, &tooLarge):
		// Content-Length over the operation's limit (body_budget.go). The
		// connection is closed after the answer: net/http would otherwise
		// read what is left of a body under 256 KiB before it answers,
		// waiting for bytes the client may never send.
		return NewProblem(http.StatusRequestEntityTooLarge, tooLargeDetail(tooLarge.Limit)).WithHeader("Connection", "close")
	case errors.Is(info.bodyErr, errBodyBudget):
		return unavailable("the service is holding BODY_MEMORY_BYTES of other request bodies; retry later")
	case errors.As(info.bodyErr, &notJSON):
		// Refused before any of the body was read (requestShape).
		return unknownContentType(notJSON.contentType)
	}
	return NewProblem(http.StatusBadRequest, "the request body was cut off or its chunked encoding is malformed", &ProblemItem{
		Title: "body", Location: "body",
		Detail: "the body ended before its announced length, or a chunk of a chunked body is malformed",
	})
}

// withDBDeadline gives ctx the request's DB_TIMEOUT, if any (see limits).
func withDBDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if info, _ := ctx.Value(requestInfoKey).(*requestInfo); info != nil && info.dbTimeout > 0 {
		return context.WithTimeout(ctx, info.dbTimeout)
	}
	return ctx, func() {}
}

// withReadTimeout gives an operation READ_TIMEOUT as its body read timeout
// (huma's default, 5 s, would cut a large batch on a slow link short).
func withReadTimeout(op *huma.Operation, readTimeout time.Duration) {
	if op.BodyReadTimeout == 0 && readTimeout > 0 {
		op.BodyReadTimeout = readTimeout
	}
}

// documentBodyErrors lists, on every operation that takes a body, the
// answers to a body that does not arrive or cannot be taken: 400 (cut off,
// malformed chunked encoding), 408 (too slow), 413 (over the operation's
// limit, which the example states) and 415 (not JSON); documentErrors gives
// the others their examples.
func documentBodyErrors(oapi *huma.OpenAPI, op *huma.Operation) {
	if op.RequestBody == nil {
		return
	}
	if op.Responses == nil {
		op.Responses = map[string]*huma.Response{}
	}
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestTimeout, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType} {
		code := strconv.Itoa(status)
		if op.Responses[code] == nil {
			op.Responses[code] = &huma.Response{
				Description: http.StatusText(status),
				Content: map[string]*huma.MediaType{"application/problem+json": {
					Schema: oapi.Components.Schemas.Schema(reflectProblem, true, "")}},
			}
		}
	}
	if r := op.Responses["413"]; r != nil && r.Content["application/problem+json"] != nil && op.MaxBodyBytes > 0 {
		example := problemExample(http.StatusRequestEntityTooLarge)
		example.Detail = tooLargeDetail(op.MaxBodyBytes - 1)
		r.Content["application/problem+json"].Example = example
	}
}

// tooLargeDetail is the detail of a 413 with the most bytes a body may
// have: an operation's MaxBodyBytes less one, since huma's limit refuses a
// body of exactly that size (api.go, bodyLimit).
func tooLargeDetail(atMost int64) string {
	return fmt.Sprintf("request body is too large: at most %d bytes", atMost)
}
