package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/danielgtaylor/huma/v2/negotiation"
	"github.com/elnormous/contenttype"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/selfprofile"
)

type ctxKey int

const requestInfoKey ctxKey = 0

// requestInfo travels in the request context so that handlers can name
// the request (errors, logs) and build Link headers.
type requestInfo struct {
	id  string
	url *url.URL
	op  string // the huma operation that served the request, set by operationID
	// dbTimeout is DB_TIMEOUT, and bodyErr the error that stopped the
	// reading of the body, if any (limits.go).
	dbTimeout time.Duration
	bodyErr   error
	// head is a HEAD request (served by the GET route, its body
	// discarded): an export then stops after its first row (export.go),
	// isrunning after its first page (events_running.go).
	head bool
	// http10 is an HTTP/1.0 request: its answer ends where the connection
	// does, so one cut short must reset it (cutConnection).
	http10 bool
	// basePath is BASE_PATH: links the service writes (Link headers) are
	// prefixed with it, as clients reach the service through the proxy.
	basePath string
	// export is the CSV or NDJSON format negotiate chose for a list
	// operation (export.go), and w the response writer of every huma
	// operation: exports write to it, and a streamed answer that fails
	// midway closes its connection (collection_stream.go).
	export *exportFormat
	w      http.ResponseWriter
}

// RequestID is the request's X-Request-Id ("" outside a request).
func RequestID(ctx context.Context) string {
	if ri, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		return ri.id
	}
	return ""
}

// noteBodyErr records err as the request body's error unless one is
// already recorded (the first one is the cause); ri may be nil.
func (ri *requestInfo) noteBodyErr(err error) {
	if ri != nil && ri.bodyErr == nil {
		ri.bodyErr = err
	}
}

// isHead reports whether ctx is a HEAD request's, whose body net/http
// discards.
func isHead(ctx context.Context) bool {
	ri, ok := ctx.Value(requestInfoKey).(*requestInfo)
	return ok && ri.head
}

// withBasePath records BASE_PATH in each request's info (after observe,
// which creates it).
func withBasePath(basePath string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ri, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
				ri.basePath = basePath
			}
			next.ServeHTTP(w, r)
		})
	}
}

// basePath is BASE_PATH as the request's info carries it.
func basePath(ctx context.Context) string {
	if ri, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		return ri.basePath
	}
	return ""
}

func requestURL(ctx context.Context) *url.URL {
	if ri, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		return ri.url
	}
	return &url.URL{}
}

// validRequestID accepts a caller's id only when it is a short token,
// ^[A-Za-z0-9._:-]{1,64}$ (UUIDs, hex, trace ids), so that it can forge
// neither log lines nor markup wherever it is shown, nor bloat the logs.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// observe is the outermost middleware: request id, then, once the request
// is served, one JSON log line, the Prometheus figures and the
// self-profiling record, all from one response-writer wrapper and one
// look-up of the route pattern (never the raw path as a label, which would
// let clients explode the label set).
func observe(log *slog.Logger, m *metrics.Metrics, prof *selfprofile.Profiler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-Id")
			if !validRequestID(id) {
				id = newRequestID()
			}
			w.Header().Set("X-Request-Id", id)
			// Every answer (JSON, problem+json, the metrics text, the docs'
			// assets) says its type: browsers must not guess another.
			w.Header().Set("X-Content-Type-Options", "nosniff")
			info := &requestInfo{id: id, url: r.URL, head: r.Method == http.MethodHead, http10: !r.ProtoAtLeast(1, 1)}
			ctx := context.WithValue(r.Context(), requestInfoKey, info)
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			// Not deferred: a handler that panics (http.ErrAbortHandler:
			// an answer cut short) leaves the reset in force.
			restore := resetHTTP10(r.Context(), info.http10)
			next.ServeHTTP(ww, r.WithContext(ctx))
			restore()
			end := time.Now()
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := end.Sub(start)
			route := routePattern(r)
			method := methodLabel(r.Method)
			m.Requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
			m.RequestDuration.WithLabelValues(method, route).Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", clipMethod(r.Method)),
				slog.String("route", route),
				slog.String("path", clipLogged(r.URL.Path)),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.Int("bytes", ww.BytesWritten()),
				slog.String("request_id", id),
				slog.String("remote", r.RemoteAddr),
			}
			if info.bodyErr != nil {
				// A slow or aborted upload: the client's doing, logged at
				// the level of its 4xx, with the cause for the operator.
				attrs = append(attrs, slog.String("body_error", info.bodyErr.Error()))
			}
			log.LogAttrs(ctx, level, "request", attrs...)
			prof.Record(selfprofile.Served{Request: r, Start: start, End: end, Status: status,
				Route: route, OperationID: info.op, RequestID: id})
		})
	}
}

// methodLabel is the method as a metrics label: the standard methods, and
// "other" for any other token a client sends (net/http accepts any, up to
// a megabyte long: as labels they would add series, kept for the life of
// the process, without bound).
// The standard methods are the ones self-profiling records as they are.
func methodLabel(m string) string {
	if m = selfprofile.Method(m); m == selfprofile.OtherMethod {
		return "other"
	}
	return m
}

// clipMethod bounds a method in the log line (a token: ASCII).
func clipMethod(m string) string {
	const most = 32
	if len(m) > most {
		return m[:most] + "..."
	}
	return m
}

// maxLoggedPath bounds the path in the request's log line, in bytes.
const maxLoggedPath = 1024

// clipLogged bounds a path in the log line: net/http takes a request line
// of up to a megabyte (MaxHeaderBytes), and every request, a 404 included,
// is logged at the info level, so a client could write a megabyte of log
// (twice that once escaped) with each request; the request line of the
// self-profiling record is cut at the same length (found by an audit of
// long runs; TestRequestLogLineIsBounded). The cut is at a character
// boundary.
func clipLogged(p string) string { return clipText(p, maxLoggedPath) }

// operationID is the huma middleware that tells observe which operation
// served the request.
func operationID(ctx huma.Context, next func(huma.Context)) {
	if ri, ok := ctx.Context().Value(requestInfoKey).(*requestInfo); ok && ctx.Operation() != nil {
		ri.op = ctx.Operation().OperationID
	}
	next(ctx)
}

// routePattern is the chi pattern that matched, or "unmatched".
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// ignoreUnreadableAccept drops an Accept header that huma's negotiation
// would misread (found by FuzzRequestHeaders): huma (v2.37.2) panics on a
// parameter without a value before a comma ("a/b;,c/d"), and every
// operation answered 500; and it takes "json", a key of the API's formats
// but no media type (huma finds problem+json's format by its suffix), as a
// choice, so that Accept: json was answered with Content-Type: json. A
// malformed header admits anything (acceptable), so the answer is then what
// it is without one.
func ignoreUnreadableAccept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !humaReadsAccept(r.Header.Get("Accept")) {
			r.Header.Del("Accept")
		}
		next.ServeHTTP(w, r)
	})
}

// humaReadsAccept reports whether huma's negotiation reads accept as a
// media type (or reads it as none); the common headers skip it.
func humaReadsAccept(accept string) (ok bool) {
	if commonAccept(accept) {
		return true
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return negotiation.SelectQValueFast(accept, []string{"json"}) != "json"
}

// produced is what the API answers: JSON, and problem+json for errors,
// both UTF-8 (so an Accept naming charset=utf-8 matches too).
var produced = []contenttype.MediaType{
	contenttype.NewMediaType("application/json; charset=utf-8"),
	contenttype.NewMediaType("application/problem+json; charset=utf-8"),
}

// commonAccept reports whether accept is one of the headers most clients
// send, all of which mean JSON: none, */* or application/json.
func commonAccept(accept string) bool {
	switch strings.TrimSpace(accept) {
	case "", "*/*", "application/json":
		return true
	}
	return false
}

// acceptable reports whether an Accept header admits JSON (or problem+json),
// by RFC 9110 proactive negotiation (wildcards, q=0 refusals, precedence).
// A missing header admits anything, and so does a malformed one (a server
// may ignore it); the common headers skip the parser.
func acceptable(accept string) bool {
	if commonAccept(accept) {
		return true
	}
	_, _, err := contenttype.GetAcceptableMediaTypeFromHeader(accept, produced)
	return err == nil || !errors.Is(err, contenttype.ErrNoAcceptableTypeFound)
}

// negotiate answers 406 when the client accepts nothing this API produces
// (huma alone would answer JSON whatever the Accept header says).
// The list operations that export (export.go) also produce text/csv and
// application/x-ndjson, and remember which one the client chose.
func negotiate(ctx huma.Context, next func(huma.Context)) {
	exports := exportsOf(ctx.Operation())
	if exports {
		// The same URL answers JSON, CSV or NDJSON by Accept: a cache
		// (a proxy's, a browser's) must key its copies on it, or it hands
		// a JSON page it kept to a client that asked for CSV (RFC 9110
		// 12.5.5). Every answer of these operations says so, errors too.
		ctx.AppendHeader("Vary", "Accept")
	}
	if f, ok := chooseFormat(ctx.Header("Accept"), exports); ok {
		if ri, _ := ctx.Context().Value(requestInfoKey).(*requestInfo); ri != nil {
			// The writer, for an export and for an answer that may have to
			// be cut short (collection_stream.go).
			_, ri.w = humachi.Unwrap(ctx)
			ri.export = f
		}
		next(ctx)
		return
	}
	detail := "this endpoint produces application/json (errors: application/problem+json); the Accept header admits neither"
	if exports {
		detail = "this endpoint produces application/json, text/csv and application/x-ndjson (errors: application/problem+json); the Accept header admits none of them"
	}
	writeMiddlewareProblem(ctx, NewProblem(http.StatusNotAcceptable, detail))
}

// A request's query holds at most maxQueryParams parameters and
// maxQueryBytes bytes. Past Go's own 10,000, url.ParseQuery returns none,
// so the strict checks (strict_query.go) saw nothing while huma still read
// its parameters; and huma's reading of a parameter scans the query once
// per bare key (?x&x&...), so that 400,000 of them (800 KB, under the
// header limit) took over 30 s of CPU (found by the hostile-input audit).
// The most the operations and the seeds' clients send (flask-profiler's
// DataTables parameters) is about a hundred.
const (
	maxQueryParams = 1000
	maxQueryBytes  = 64 << 10
)

// requestShape answers, before huma reads anything of the request, a
// query past its bounds (422) and a body with a Content-Encoding (415, with
// Accept-Encoding: identity, RFC 9110 15.5.16): the service reads bodies
// as they are sent, so a gzip body was a 400 "not valid JSON" and a plain
// one labelled br was stored as if the label were not there.
func requestShape(ctx huma.Context, next func(huma.Context)) {
	// The query as sent (observe keeps it), not as bareQueryKeys gave it
	// to the router: its added "=" must not make a query within the bounds
	// a 422.
	q := ctx.URL().RawQuery
	if ri, ok := ctx.Context().Value(requestInfoKey).(*requestInfo); ok && ri.url != nil {
		q = ri.url.RawQuery
	}
	if len(q) > maxQueryBytes || strings.Count(q, "&") >= maxQueryParams {
		writeMiddlewareProblem(ctx, NewProblem(http.StatusUnprocessableEntity, "validation failed", &ProblemItem{
			Title: "max", Location: "query",
			Detail: fmt.Sprintf("a query holds at most %d parameters and %d bytes", maxQueryParams, maxQueryBytes)}))
		return
	}
	if enc := contentEncoding(ctx); enc != "" && takesBody(ctx.Operation()) {
		ctx.SetHeader("Accept-Encoding", "identity")
		writeMiddlewareProblem(ctx, NewProblem(http.StatusUnsupportedMediaType, "validation failed", &ProblemItem{
			Title: "contentEncoding", Location: "header.Content-Encoding", Source: "Content-Encoding", Value: shownText(enc),
			Detail: "Content-Encoding " + shownText(enc) + " is not supported: send the body as it is (identity)"}))
		return
	}
	if ct := ctx.Header("Content-Type"); ct != "" && ct != "application/json" && takesBody(ctx.Operation()) {
		// Media types are case-insensitive and may carry parameters (RFC
		// 9110 8.3.1): huma matched the header's text as it is, so that
		// Application/JSON was a 415 on the operations it decodes and
		// accepted on those decoded here, and a malformed header the
		// other way round (found by an audit). Every operation now reads
		// the header as checkContentType does.
		isJSON, err := jsonMediaType(ct)
		r, _ := humachi.Unwrap(ctx)
		switch {
		case err != nil:
			writeMiddlewareProblem(ctx, unknownContentType(ct))
			return
		case isJSON:
			if r != nil {
				r.Header.Set("Content-Type", "application/json")
			}
		case r != nil:
			// Another type is a 415 whatever the body holds: refused at its
			// first read, before a byte of it is read, so that a client
			// sending Expect: 100-continue hears the 415 instead of "100
			// Continue" followed by the whole body (found by an audit of
			// HTTP edge cases). At the read, not here: the token check
			// comes first (401), and POST /mrd/token reads a form as JSON
			// (formAsJSON). No body (Content-Length: 0) is refused the
			// same, as an empty chunked body is: POST /mrd/token, whose
			// body is optional, answered the one 200 and the other 415.
			body := r.Body
			if body == nil {
				body = http.NoBody
			}
			info, _ := r.Context().Value(requestInfoKey).(*requestInfo)
			r.Body = &typedBody{ReadCloser: body, header: r.Header, info: info}
		}
	}
	next(ctx)
}

// errNotJSON stops the reading of a body whose Content-Type is not JSON;
// bodyReadProblem answers it with the 415 of its type.
type errNotJSON struct{ contentType string }

func (e *errNotJSON) Error() string { return "the body's Content-Type is not JSON: " + e.contentType }

// typedBody is a request body that is read only if its Content-Type, as
// the operation's middlewares leave it, is JSON (or none). Refused, it
// becomes a refusedBody, whose Close leaves the body to net/http, which
// closes it once the answer is sent: closing it here (huma does, right
// after reading) would read what is left of a body under 256 KiB before
// the answer, and a client that sent Expect: 100-continue sends nothing
// until it has one.
type typedBody struct {
	io.ReadCloser
	header  http.Header
	info    *requestInfo
	checked bool
}

func (b *typedBody) Read(p []byte) (int, error) {
	if !b.checked {
		b.checked = true
		if ct := b.header.Get("Content-Type"); checkContentType(ct) != nil {
			b.ReadCloser = &refusedBody{err: &errNotJSON{contentType: ct}, info: b.info}
		}
	}
	return b.ReadCloser.Read(p)
}

// contentEncoding is the request's Content-Encoding when it names a coding
// other than identity, else "". Every line of the header counts: they make
// one list (RFC 9110 5.3), and a gzip on the second line was read as if
// only the first, identity, had been sent.
func contentEncoding(ctx huma.Context) string {
	var lines []string
	ctx.EachHeader(func(name, value string) {
		if strings.EqualFold(name, "Content-Encoding") {
			lines = append(lines, value)
		}
	})
	all := strings.Join(lines, ", ")
	for _, c := range strings.Split(all, ",") {
		if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
			return strings.TrimSpace(all)
		}
	}
	return ""
}

// writeMiddlewareProblem writes p as the answer of a huma middleware.
func writeMiddlewareProblem(ctx huma.Context, p *Problem) {
	p.RequestID = RequestID(ctx.Context())
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(p.Status)
	_ = json.NewEncoder(ctx.BodyWriter()).Encode(p)
}

// staticProblems makes the error answers of a handler of static files
// (the docs page's assets, the dashboard) problems like every other error
// of the service: net/http writes its 404, 405 and 416 as plain text.
func staticProblems(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&problemOnError{ResponseWriter: w, r: r}, r)
	})
}

// problemOnError writes a problem instead of an error answer's own body.
type problemOnError struct {
	http.ResponseWriter
	r      *http.Request
	failed bool
}

func (p *problemOnError) WriteHeader(code int) {
	if code < 400 || p.failed {
		p.ResponseWriter.WriteHeader(code)
		return
	}
	p.failed = true
	detail := http.StatusText(code)
	switch code {
	case http.StatusNotFound:
		detail = fmt.Sprintf("no resource at %s", p.r.URL.Path)
	case http.StatusMethodNotAllowed:
		detail = fmt.Sprintf("%s is not supported on %s; allowed: %s", p.r.Method, p.r.URL.Path, p.Header().Get("Allow"))
	}
	for _, k := range []string{"Content-Length", "Cache-Control", "ETag", "Last-Modified"} {
		p.Header().Del(k)
	}
	writeProblem(p.ResponseWriter, p.r, NewProblem(code, detail))
}

func (p *problemOnError) Write(b []byte) (int, error) {
	if p.failed {
		return len(b), nil // the handler's own text: the problem replaced it
	}
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (p *problemOnError) Unwrap() http.ResponseWriter { return p.ResponseWriter }
