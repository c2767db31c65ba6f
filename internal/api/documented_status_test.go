package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Every operation documents every status it can return (docs/architecture.md,
// "Conventions every operation follows"). A list kept by hand drifts, so the test servers
// check it on every answer they give: newHTTPTest wraps the API in
// auditStatuses, which finds the operation a request reached (its aliases
// included) and fails the test when the operation's responses in the
// document lack the answer's status. Each test's requests, the error paths
// above all, so keep the document honest as a side effect. Benchmarks are
// not audited (they measure the server as it is).

// documentedOps is what auditStatuses matches requests against: a router
// with every operation's path and aliases, and each operation's documented
// statuses by method and documented path.
type documentedOps struct {
	router   *chi.Mux
	statuses map[string]map[string]bool // "POST /flows" -> {"201": true, ...}
	// schemas is the JSON schema of each operation's answers by status
	// ("POST /flows" -> "201" -> schema), in registry.
	schemas map[string]map[string]*huma.Schema
	// headers is each operation's documented response headers by status
	// ("POST /flows" -> "503" -> "Retry-After" -> required).
	headers map[string]map[string]map[string]bool
	// audited is every header some response documents, and
	// alwaysAudited: an answer must not carry one where its response
	// does not list it.
	audited  map[string]bool
	registry huma.Registry
	aliasOf  map[string]string // "GET /api/v1/timeseries" -> "GET /api/measurements/timeseries/"
}

var documented = sync.OnceValue(func() documentedOps {
	spec := Spec()
	d := documentedOps{router: chi.NewRouter(), statuses: map[string]map[string]bool{},
		schemas: map[string]map[string]*huma.Schema{}, headers: map[string]map[string]map[string]bool{},
		audited: maps.Clone(alwaysAudited), registry: spec.Components.Schemas}
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for path, item := range spec.Paths {
		for method, op := range itemOperations(item) {
			codes, schemas, headers := map[string]bool{}, map[string]*huma.Schema{}, map[string]map[string]bool{}
			for code, r := range op.Responses {
				codes[code] = true
				headers[code] = map[string]bool{}
				for name, h := range r.Headers {
					headers[code][http.CanonicalHeaderKey(name)] = h.Required
					d.audited[http.CanonicalHeaderKey(name)] = true
				}
				for _, ct := range []string{"application/json", "application/problem+json"} {
					if mt := r.Content[ct]; mt != nil && mt.Schema != nil {
						schemas[code] = mt.Schema
					}
				}
			}
			d.statuses[method+" "+path] = codes
			d.schemas[method+" "+path] = schemas
			d.headers[method+" "+path] = headers
			d.router.Method(method, path, noop)
		}
	}
	// An alias answers as its route does: it is checked against the
	// route's documented path.
	aliasOf := map[string]string{}
	d.aliasOf = aliasOf
	for _, r := range (&server{}).routes() {
		for _, a := range r.aliases {
			aliasOf[r.method+" "+a.path] = r.method + " " + r.path
			d.router.Method(r.method, a.path, noop)
		}
	}
	for alias, main := range aliasOf {
		d.statuses[alias] = d.statuses[main]
		d.schemas[alias] = d.schemas[main]
		d.headers[alias] = d.headers[main]
	}
	return d
})

// undocumented names the operation a request reached when its responses
// lack status ("POST /mrd/devices"), or is "" when the status is documented
// or the request reached no operation of the document (the docs, /metrics,
// the dashboard, an unknown path or method).
func (d documentedOps) undocumented(r *http.Request, status int) string {
	key := d.operation(r)
	codes, ok := d.statuses[key]
	if !ok || codes[strconv.Itoa(status)] || codes["default"] {
		return ""
	}
	return key
}

// operation is the operation (method and documented path) r reaches, or ""
// for none of the document's.
func (d documentedOps) operation(r *http.Request) string {
	rctx := chi.NewRouteContext()
	if !d.router.Match(rctx, r.Method, r.URL.Path) {
		return ""
	}
	// RoutePattern would drop a trailing slash, which tells some
	// operations from their aliases.
	return r.Method + " " + strings.Join(rctx.RoutePatterns, "")
}

// alwaysAudited are response headers an answer must not carry where its
// documented response does not list them, whether or not any response
// lists them (beside those some response does: documentedOps.audited).
var alwaysAudited = map[string]bool{"Retry-After": true, "Www-Authenticate": true, "Allow": true,
	"Accept-Encoding": true, "Location": true, "Link": true, "Idempotency-Replayed": true}

// headersOff says how an answer's headers differ from its documented
// response's: one of d.audited sent that the response does not list,
// or one it lists as required missing; "" when they agree or the request
// reached no operation of the document.
func (d documentedOps) headersOff(r *http.Request, a answer) string {
	byStatus, ok := d.headers[d.operation(r)]
	if !ok {
		return ""
	}
	documented := byStatus[strconv.Itoa(a.status)]
	var off []string
	for name := range a.header {
		if _, listed := documented[name]; d.audited[name] && !listed {
			off = append(off, name+" sent, not documented")
		}
	}
	for name, required := range documented {
		if required && a.header.Get(name) == "" {
			off = append(off, name+" documented as always sent, missing")
		}
	}
	slices.Sort(off)
	return strings.Join(off, "; ")
}

// offSchema says how a JSON success answer, or a problem, differs from its
// documented schema (huma's validator, as a generated client reads it), or
// "" when it does not, or when the answer is neither or was too long to
// keep.
func (d documentedOps) offSchema(r *http.Request, a answer) string {
	ct := a.header.Get("Content-Type")
	success := a.status < 300 && strings.HasPrefix(ct, "application/json")
	problem := a.status >= 400 && ct == "application/problem+json"
	if !success && !problem || a.body.cut || len(a.body.kept) == 0 {
		return ""
	}
	schemas := d.schemas[d.operation(r)]
	schema := schemas[strconv.Itoa(a.status)]
	if schema == nil && problem {
		schema = schemas["default"]
	}
	if schema == nil {
		return ""
	}
	var v any
	if err := json.Unmarshal(a.body.kept, &v); err != nil {
		return fmt.Sprintf("not JSON: %v", err)
	}
	res := &huma.ValidateResult{}
	huma.Validate(d.registry, schema, huma.NewPathBuffer([]byte{}, 0), huma.ModeReadFromServer, v, res)
	if len(res.Errors) == 0 {
		return ""
	}
	return fmt.Sprintf("%v (body %.300s)", res.Errors, a.body.kept)
}

// auditStatuses wraps h so that an answer whose status its operation does
// not document fails t.
func auditStatuses(t testing.TB, h http.Handler) http.Handler {
	if _, bench := t.(*testing.B); bench {
		return h
	}
	d := documented()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := &failedWrites{ResponseWriter: w}
		ww := middleware.NewWrapResponseWriter(fw, r.ProtoMajor)
		body := &keptBody{}
		ww.Tee(body)
		h.ServeHTTP(ww, r)
		a := answer{status: ww.Status(), header: ww.Header(), body: body}
		if a.status == 0 || a.status == statusClientGone || fw.failed {
			// Nobody to read the answer, or only its beginning (a client
			// that stopped reading: WRITE_TIMEOUT cut the rest): not part
			// of the contract.
			return
		}
		exercised.add(d, r, a.status)
		if op := d.undocumented(r, a.status); op != "" {
			t.Errorf("%s answered %d (%s %s), which its responses in the document do not list",
				op, a.status, r.Method, r.URL.RequestURI())
		}
		if err := a.notAProblem(r); err != "" {
			t.Errorf("%s %s answered %d: %s", r.Method, r.URL.RequestURI(), a.status, err)
		}
		if err := d.headersOff(r, a); err != "" {
			t.Errorf("%s %s answered %d with headers off its document: %s", r.Method, r.URL.RequestURI(), a.status, err)
		}
		if err := d.offSchema(r, a); err != "" {
			t.Errorf("%s %s answered %d off its documented schema: %s", r.Method, r.URL.RequestURI(), a.status, err)
		}
	})
}

// exercised is every operation and status the test servers answered,
// aliases counted as their route. TestMain fails a whole run in which a
// documented answer was produced by no test, and with AUDIT_COVERAGE set
// lists them in any run (unexercised).
var exercised = &answersSeen{seen: map[string]bool{}}

type answersSeen struct {
	sync.Mutex
	seen map[string]bool // "POST /flows 413"
}

func (a *answersSeen) add(d documentedOps, r *http.Request, status int) {
	key := d.operation(r)
	if key == "" {
		return
	}
	if main, ok := d.aliasOf[key]; ok {
		key = main
	}
	a.Lock()
	a.seen[key+" "+strconv.Itoa(status)] = true
	a.Unlock()
}

// unexercised lists, one line per operation, the statuses its document
// lists that no test answered (500 and default aside).
func unexercised() []string {
	d := documented()
	// Under the lock: a handler can still be adding its answer after its
	// test returned (an HTTP/1.0 client sees its answer end when the
	// connection closes, before the handler's last step), and the race
	// detector failed the package on it.
	exercised.Lock()
	defer exercised.Unlock()
	var lines []string
	for key, codes := range d.statuses {
		if _, alias := d.aliasOf[key]; alias {
			continue
		}
		var missing []string
		for code := range codes {
			// Every operation documents a 500 (an internal error, which
			// no test should produce) and some a default answer.
			if code == "500" || code == "default" {
				continue
			}
			if !exercised.seen[key+" "+code] {
				missing = append(missing, code)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			lines = append(lines, fmt.Sprintf("%-55s %s", key, strings.Join(missing, " ")))
		}
	}
	slices.Sort(lines)
	return lines
}

// answer is what the audit saw of an answer: its status, its headers and
// the start of its body (chi's response writer wrapper, as observe uses,
// records the status and tees the body).
type answer struct {
	status int
	header http.Header
	body   *keptBody
}

// keptBody keeps the first keptBodyBytes of an answer's body.
// failedWrites notes whether a write of the answer failed (its client
// gone or not reading past WRITE_TIMEOUT), so that the kept body, cut
// there, is not checked as a whole answer.
type failedWrites struct {
	http.ResponseWriter
	failed bool
}

func (f *failedWrites) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	if err != nil {
		f.failed = true
	}
	return n, err
}

func (f *failedWrites) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (f *failedWrites) Unwrap() http.ResponseWriter { return f.ResponseWriter }

type keptBody struct {
	kept []byte
	cut  bool // the body was longer than what was kept
}

const keptBodyBytes = 1 << 20

func (b *keptBody) Write(p []byte) (int, error) {
	if !b.cut {
		if len(b.kept)+len(p) > keptBodyBytes {
			b.cut = true
		} else {
			b.kept = append(b.kept, p...)
		}
	}
	return len(p), nil
}

// notAProblem says how an error answer breaks the error format
// (README.md, "API at a glance": Errors), or "" when it does not: problem+json, a body
// whose status and title are the answer's, and the request id of the
// X-Request-Id header. A HEAD answer has no body to check.
func (a answer) notAProblem(r *http.Request) string {
	if a.status < 400 || r.Method == http.MethodHead {
		return ""
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Sprintf("Content-Type %q, not application/problem+json", ct)
	}
	if a.body.cut {
		return ""
	}
	var p Problem
	if err := json.Unmarshal(a.body.kept, &p); err != nil {
		return fmt.Sprintf("a body that is not a problem (%v): %.200s", err, a.body.kept)
	}
	if p.Status != a.status || p.Title != http.StatusText(a.status) {
		return fmt.Sprintf("problem status %d and title %q", p.Status, p.Title)
	}
	if p.RequestID == "" || p.RequestID != a.header.Get("X-Request-Id") {
		return fmt.Sprintf("problem requestId %q, X-Request-Id %q", p.RequestID, a.header.Get("X-Request-Id"))
	}
	return ""
}

// TestStatusAuditFindsUndocumented checks the audit itself: a documented
// status passes, an undocumented one is named with its operation, aliases
// are checked as their route, and paths outside the document are left
// alone.
func TestStatusAuditFindsUndocumented(t *testing.T) {
	t.Parallel()
	d := documented()
	req := func(method, path string) *http.Request {
		r, err := http.NewRequest(method, "http://x"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		method, path string
		status       int
		want         string
	}{
		{post, "/flows", http.StatusCreated, ""},
		{post, "/flows", http.StatusNotAcceptable, ""},
		{post, "/flows", http.StatusTeapot, "POST /flows"},
		{get, "/mrd/devices/abc", http.StatusNotFound, ""},
		{get, "/mrd/devices/abc", http.StatusTeapot, "GET /mrd/devices/{id}"},
		{get, "/api/measurements/", http.StatusOK, ""},
		{get, "/api/measurements/", http.StatusTeapot, "GET /api/measurements/"},
		{get, "/api/v1/timeseries", http.StatusOK, ""},
		{get, "/api/v1/timeseries", http.StatusTeapot, "GET /api/v1/timeseries"},
		{get, "/metrics", http.StatusTeapot, ""},
		{get, "/no/such/path", http.StatusNotFound, ""},
		{http.MethodPatch, "/flows", http.StatusMethodNotAllowed, ""},
	} {
		if got := d.undocumented(req(c.method, c.path), c.status); got != c.want {
			t.Errorf("%s %s %d: undocumented = %q, want %q", c.method, c.path, c.status, got, c.want)
		}
	}
}

// TestProblemAuditFindsMalformedErrors checks the audit of error bodies:
// a conforming problem passes; a plain JSON error, a problem with another
// status, or one without the request id does not.
func TestProblemAuditFindsMalformedErrors(t *testing.T) {
	t.Parallel()
	r, err := http.NewRequest(get, "http://x/flows", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, contentType, body string
		ok                      bool
	}{
		{"problem", "application/problem+json", `{"title":"Not Found","status":404,"requestId":"abc"}`, true},
		{"plain JSON", "application/json", `{"title":"Not Found","status":404,"requestId":"abc"}`, false},
		{"another status", "application/problem+json", `{"title":"Bad Request","status":400,"requestId":"abc"}`, false},
		{"no request id", "application/problem+json", `{"title":"Not Found","status":404}`, false},
		{"not JSON", "application/problem+json", `not found`, false},
	} {
		a := answer{status: http.StatusNotFound, header: http.Header{}, body: &keptBody{kept: []byte(c.body)}}
		a.header.Set("Content-Type", c.contentType)
		a.header.Set("X-Request-Id", "abc")
		if got := a.notAProblem(r); (got == "") != c.ok {
			t.Errorf("%s: notAProblem = %q", c.name, got)
		}
	}
}

// TestSchemaAuditFindsOffSchemaAnswers checks the audit of success bodies
// and problems against the document: POST /flows answers 201 {"received":
// n}, its errors are Problems.
func TestSchemaAuditFindsOffSchemaAnswers(t *testing.T) {
	t.Parallel()
	d := documented()
	r, err := http.NewRequest(post, "http://x/flows", nil)
	if err != nil {
		t.Fatal(err)
	}
	for body, ok := range map[string]bool{
		`{"received":3}`:              true,
		`{"received":"3"}`:            false,
		`{"received":3,"extra":true}`: false,
		`{}`:                          false,
	} {
		a := answer{status: http.StatusCreated, header: http.Header{"Content-Type": {"application/json"}},
			body: &keptBody{kept: []byte(body)}}
		if got := d.offSchema(r, a); (got == "") != ok {
			t.Errorf("%s: offSchema = %q", body, got)
		}
	}
	// A problem is checked against the Problem schema too.
	for body, ok := range map[string]bool{
		`{"title":"Conflict","status":409,"requestId":"a"}`:                       true,
		`{"title":"Conflict","status":409,"requestId":"a","instance":"/x"}`:       false,
		`{"title":"Conflict","status":"409","requestId":"a"}`:                     false,
		`{"title":"Conflict","status":409,"errors":[{"title":"x","status":409}]}`: false,
	} {
		a := answer{status: http.StatusConflict, header: http.Header{"Content-Type": {"application/problem+json"}},
			body: &keptBody{kept: []byte(body)}}
		if got := d.offSchema(r, a); (got == "") != ok {
			t.Errorf("%s: offSchema = %q", body, got)
		}
	}
}

// TestHeaderAuditFindsUndocumentedHeaders checks the audit of answer
// headers against the document: a 503 always carries Retry-After, which
// its responses list (as a 401 does WWW-Authenticate and a 405 Allow),
// and a header an answer carries is listed on its response.
func TestHeaderAuditFindsUndocumentedHeaders(t *testing.T) {
	t.Parallel()
	d := documented()
	for _, c := range []struct {
		method, path string
		status       int
		header       http.Header
		ok           bool
	}{
		{post, "/flows", http.StatusServiceUnavailable, http.Header{"Retry-After": {"5"}}, true},
		{post, "/flows", http.StatusServiceUnavailable, http.Header{}, false},
		{get, "/api/measurements/grouped/", http.StatusServiceUnavailable, http.Header{"Retry-After": {"5"}}, true},
		{post, "/flows", http.StatusConflict, http.Header{"Retry-After": {"1"}}, true},        // an Idempotency-Key's
		{post, "/mrd/devices", http.StatusConflict, http.Header{"Retry-After": {"1"}}, false}, // takes no key
		{post, "/mrd/devices", http.StatusUnauthorized, http.Header{"Www-Authenticate": {"Bearer"}}, true},
		{post, "/mrd/devices", http.StatusUnauthorized, http.Header{}, false},
		{get, "/apiv0.1/events/register", http.StatusMethodNotAllowed, http.Header{"Allow": {"POST"}}, true},
		{post, "/flows", http.StatusUnsupportedMediaType, http.Header{"Accept-Encoding": {"identity"}}, true},
		{post, "/flows", http.StatusCreated, http.Header{"Idempotency-Replayed": {"true"}}, true},
		{post, "/flows", http.StatusCreated, http.Header{"Retry-After": {"5"}}, false},
		{get, "/flows", http.StatusOK, http.Header{"Link": {`</flows?page=1>; rel="first"`}}, true},
		{get, "/flows", http.StatusNotAcceptable, http.Header{"Link": {`</flows?page=1>; rel="first"`}}, false},
		{post, "/mrd/devices", http.StatusCreated, http.Header{"Location": {"/mrd/devices/n1"}}, true},
		{get, "/mrd/devices/n1", http.StatusNotFound, http.Header{"Location": {"/mrd/devices/n1"}}, false},
	} {
		r, err := http.NewRequest(c.method, "http://x"+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		a := answer{status: c.status, header: c.header, body: &keptBody{}}
		if got := d.headersOff(r, a); (got == "") != c.ok {
			t.Errorf("%s %s %d %v: headersOff = %q", c.method, c.path, c.status, c.header, got)
		}
	}
}
