package api

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/config"
)

// operation is one operation of the document: method, path (with its
// parameters filled in) and id.
type operation struct{ method, path, id string }

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// itemOperations are the operations of a path, by method.
func itemOperations(item *huma.PathItem) map[string]*huma.Operation {
	ops := map[string]*huma.Operation{}
	for method, op := range map[string]*huma.Operation{http.MethodGet: item.Get, http.MethodPost: item.Post,
		http.MethodPut: item.Put, http.MethodDelete: item.Delete, http.MethodPatch: item.Patch, http.MethodHead: item.Head} {
		if op != nil {
			ops[method] = op
		}
	}
	return ops
}

// operations lists every operation of the API's document, path parameters
// filled in.
func operations(t *testing.T) []operation {
	t.Helper()
	var ops []operation
	for path, item := range Spec().Paths {
		for method, op := range itemOperations(item) {
			ops = append(ops, operation{method, pathParam.ReplaceAllString(path, "1"), op.OperationID})
		}
	}
	if len(ops) < 30 {
		t.Fatalf("only %d operations in the document", len(ops))
	}
	return ops
}

// neverGuarded are the operations that stay open whatever the switches say
// (the test's own list: the code's could not check itself).
var neverGuarded = map[string]bool{"getHealth": true, "getReady": true, "getMrdStatus": true, "createMrdToken": true}

// alwaysGuarded are the operations that need a token whatever the switches
// say (the device registry's writes and the reports).
var alwaysGuarded = map[string]bool{"putDeviceMetric": true, "createDevice": true, "updateDevice": true, "deleteDevice": true}

// unauthorized reports whether an answer is the token 401.
func unauthorized(t *testing.T, r response) bool {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		return false
	}
	r.problem(t, http.StatusUnauthorized)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: Bearer: %v", r.Header)
	}
	return true
}

// Every operation, with each switch: without a token, exactly the
// operations the switches name answer 401; the open ones never do.
func TestAuthSwitchesCoverEveryOperation(t *testing.T) {
	t.Parallel()
	ops := operations(t)
	for _, c := range []struct {
		name          string
		writes, reads bool
	}{{"default", false, false}, {"AUTH_WRITES", true, false}, {"AUTH_READS", false, true}, {"both", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			s := newDevicesServer(t, func(cfg *config.Config) {
				cfg.AuthWrites, cfg.AuthReads, cfg.EnableTokenEndpoint = c.writes, c.reads, true
			})
			for _, op := range ops {
				read := op.method == http.MethodGet
				want := alwaysGuarded[op.id] || !neverGuarded[op.id] && (read && c.reads || !read && c.writes)
				// A body that would be accepted, so that an operation not
				// guarded answers something other than 401 for sure.
				var body any
				if !read {
					body = "{}"
				}
				if got := unauthorized(t, s.do(op.method, op.path, body)); got != want {
					t.Errorf("%s %s (%s): 401 without a token = %v, want %v", op.method, op.path, op.id, got, want)
				}
			}
			// Outside the document: the docs and /metrics stay open.
			for _, path := range []string{"/docs", "/openapi.json", "/openapi-3.0.yaml", "/metrics"} {
				s.do("GET", path, nil).wantStatus(t, http.StatusOK)
			}
		})
	}
}

// AUTH_WRITES=true: a POST /flows needs a token and is stored with one;
// reads stay open.
func TestAuthWrites(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.AuthWrites = true })
	flows := `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":5}]`
	p := s.do("POST", "/flows", flows).problem(t, http.StatusUnauthorized)
	if len(p.Errors) != 1 || p.Errors[0].Location != "header.Authorization" {
		t.Fatalf("errors %+v", p.Errors)
	}
	if got := s.do("POST", "/flows", flows, "Authorization", "Bearer not-a-token").Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Fatalf("bad token: WWW-Authenticate %q", got)
	}
	// Credentials of another scheme are none to Bearer: no error code (RFC
	// 6750 3.1; found by an audit).
	if got := s.do("POST", "/flows", flows, "Authorization", "Basic dXNlcjpwYXNz").Header.Get("WWW-Authenticate"); got != `Bearer` {
		t.Fatalf("Basic credentials: WWW-Authenticate %q", got)
	}
	var page struct{ Total int }
	s.do("GET", "/flows?hour=5", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 0 {
		t.Fatal("a refused write was stored")
	}
	s.do("POST", "/flows", flows, bearer(t)...).wantStatus(t, http.StatusCreated)
	s.do("GET", "/flows?hour=5", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 1 {
		t.Fatalf("total %d after an authorised write", page.Total)
	}
	// The token may come in the jwt cookie, as for /mrd.
	s.do("POST", "/flows", flows, "Cookie", "jwt="+validToken(t)).wantStatus(t, http.StatusCreated)
	s.do("GET", "/healthz", nil).wantStatus(t, http.StatusOK)
	// A write authenticated by the cookie alone must say its body is
	// JSON (another site can make a browser send the cookie with a body
	// of no type, without a CORS preflight); with the Authorization
	// header, no Content-Type stays accepted, as the seeds' clients send.
	untyped := func(method, path, body string, header ...string) *http.Response {
		t.Helper()
		return rawRequest(t, method, s.URL+path, body, header...)
	}
	cookie := []string{"Cookie", "jwt=" + validToken(t)}
	if res := untyped("POST", "/flows", flows, cookie...); res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("cookie, no Content-Type: %d", res.StatusCode)
	}
	p = s.do("PUT", "/mrd/n1/metrics", metricDoc("x", 1, "int8", 5), append(cookie, "Content-Type", "")...).
		problem(t, http.StatusUnsupportedMediaType)
	if len(p.Errors) != 1 || p.Errors[0].Title != "contentType" || !strings.Contains(p.Errors[0].Detail, "jwt cookie") {
		t.Fatalf("errors %+v", p.Errors)
	}
	s.do("GET", "/flows?hour=5", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 1 {
		t.Fatalf("total %d: a write refused for its Content-Type was stored", page.Total)
	}
	if res := untyped("POST", "/flows", strings.Replace(flows, `"hour":5`, `"hour":6`, 1), bearer(t)...); res.StatusCode != http.StatusCreated {
		t.Fatalf("bearer, no Content-Type: %d", res.StatusCode)
	}
	// A write without a body (DELETE) needs no Content-Type.
	s.do("POST", "/mrd/devices", `{"id": "n9", "name": "n9"}`, bearer(t)...).wantStatus(t, http.StatusCreated)
	if res := untyped("DELETE", "/mrd/devices/n9", "", cookie...); res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNoContent {
		t.Fatalf("cookie DELETE: %d", res.StatusCode)
	}
}

// rawRequest sends a request with only the headers given (s.do sets a
// Content-Type for a body), its answer's body read and closed.
func rawRequest(t *testing.T, method, url, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

// TestCookiePostMustBeJSON: a POST authenticated by the jwt cookie alone
// must say it is JSON even without a body: POST is a simple CORS request,
// so another site's form (text/plain, a form, multipart) or a body-less
// fetch could create collections as the victim (found by an audit: each
// answered 201). With Authorization, or a JSON type, it stays accepted.
func TestCookiePostMustBeJSON(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.AuthWrites = true })
	cookie := "jwt=" + validToken(t)
	send := func(contentType string, header ...string) int {
		t.Helper()
		if contentType != "" {
			header = append(header, "Content-Type", contentType)
		}
		return rawRequest(t, "POST", s.URL+"/appmetrics/api/v1/collections", "", header...).StatusCode
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset"} {
		if got := send(ct, "Cookie", cookie); got != http.StatusUnsupportedMediaType {
			t.Errorf("cookie, Content-Type %q: %d, want 415", ct, got)
		}
	}
	var list struct {
		CollectionURIs []string `json:"collectionUris"`
	}
	s.do("GET", "/appmetrics/api/v1/collections", nil).wantStatus(t, http.StatusOK).decode(t, &list)
	if len(list.CollectionURIs) != 0 {
		t.Fatalf("%d collections created by refused requests", len(list.CollectionURIs))
	}
	for _, ct := range []string{"application/json", "Application/JSON; charset=UTF-8"} {
		if got := send(ct, "Cookie", cookie); got != http.StatusCreated {
			t.Errorf("cookie, Content-Type %q: %d, want 201", ct, got)
		}
	}
	if got := send("", bearer(t)...); got != http.StatusCreated {
		t.Errorf("bearer, no Content-Type: %d, want 201", got)
	}
}

// TestJSONContentTypeCaseInsensitive: a media type is case-insensitive and
// may carry parameters (RFC 9110 8.3.1), on the operations huma decodes as
// on those the service decodes itself; a malformed one is a 415 on both
// (found by an audit: Application/JSON was a 415 on POST /mrd/devices and
// accepted on POST /flows, and a malformed one the other way round).
func TestJSONContentTypeCaseInsensitive(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	ops := []struct{ method, path, body string }{
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":5}]`},
		{"POST", "/mrd/devices", `{"id": "%s", "name": "n"}`},
		{"POST", "/apiv0.1/events/register", `{"host": "h", "measurement": {"fields": {"clients": 1}}}`},
	}
	for i, ct := range []string{"Application/JSON", "APPLICATION/JSON; charset=UTF-8", "application/json ; charset=utf-8", "application/problem+json"} {
		for _, op := range ops {
			body := op.body
			if strings.Contains(body, "%s") {
				body = fmt.Sprintf(body, fmt.Sprintf("d%d", i))
			}
			r := s.do(op.method, op.path, body, append(bearer(t), "Content-Type", ct)...)
			if r.Status >= 300 {
				t.Errorf("%s %s, Content-Type %q: %d %s", op.method, op.path, ct, r.Status, r.Body)
			}
		}
	}
	for _, op := range ops {
		body := strings.ReplaceAll(op.body, "%s", "bad")
		p := s.do(op.method, op.path, body, append(bearer(t), "Content-Type", "application/json; charset")...).
			problem(t, http.StatusUnsupportedMediaType)
		if len(p.Errors) != 1 || p.Errors[0].Title != "contentType" {
			t.Errorf("%s %s: %+v", op.method, op.path, p.Errors)
		}
	}
}

// AUTH_READS=true: GET /flows needs a token; health, readiness and
// /metrics do not.
func TestAuthReads(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.AuthReads = true })
	s.do("GET", "/flows?hour=1", nil).problem(t, http.StatusUnauthorized)
	s.do("GET", "/flows?hour=1", nil, bearer(t)...).wantStatus(t, http.StatusOK)
	// An answer given for a token is no cache's to keep: a shared cache
	// that ignores the request's credentials (nginx's proxy_cache keys on
	// the URL alone) would hand it to clients without one (found by a
	// security audit: the JSON answers carried no Cache-Control, only the
	// exports said no-store). Errors after the check too, and the
	// device registry's always-guarded operations.
	for _, c := range []struct {
		method, path string
		body         any
		header       []string
		status       int
	}{
		{"GET", "/flows?hour=1", nil, bearer(t), http.StatusOK},
		{"GET", "/flows?hour=1", nil, []string{"Cookie", "jwt=" + validToken(t)}, http.StatusOK},
		{"HEAD", "/flows?hour=1", nil, bearer(t), http.StatusOK},
		{"GET", "/mrd/devices/nobody", nil, bearer(t), http.StatusNotFound},
		{"GET", "/flows?hour=x", nil, bearer(t), http.StatusUnprocessableEntity},
		{"POST", "/mrd/devices", `{"id": "cc1", "name": "cc1"}`, bearer(t), http.StatusCreated},
	} {
		r := s.do(c.method, c.path, c.body, c.header...).wantStatus(t, c.status)
		if got := r.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s with a token: Cache-Control %q, want no-store", c.method, c.path, got)
		}
	}
	// Writes stay open with AUTH_READS alone.
	s.do("POST", "/flows", `[]`).wantStatus(t, http.StatusCreated)
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/mrd/status"} {
		s.do("GET", path, nil).wantStatus(t, http.StatusOK)
	}
}

// What AUTH_READS=true leaves open, the OpenAPI document's description
// (the top of /docs) says so: it used to leave out the dashboard's files,
// and listed /metrics among nothing, so that it read as needing a JWT.
func TestDocumentNamesWhatAuthReadsLeavesOpen(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.AuthReads = true })
	desc := Spec().Info.Description
	for _, c := range []struct{ path, named string }{
		{"/healthz", "/healthz"},
		{"/readyz", "/readyz"},
		{"/mrd/status", "/mrd/status"},
		{"/docs", "/docs"},
		{"/ui/", "/ui/"},
		{"/openapi.json", "the OpenAPI documents"},
		{"/metrics", "/metrics takes no JWT"},
	} {
		s.do("GET", c.path, nil).wantStatus(t, http.StatusOK)
		if !strings.Contains(desc, c.named) {
			t.Errorf("GET %s is open with AUTH_READS=true, but the document's description does not say %q:\n%s", c.path, c.named, desc)
		}
	}
}

// METRICS_TOKEN puts /metrics behind its own Bearer token.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	const token = "metrics-token-0123456789"
	s := newTestServer(t, func(c *config.Config) { c.MetricsToken = token })
	r := s.do("GET", "/metrics", nil)
	if !unauthorized(t, r) || r.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("/metrics without a token: %d %v", r.Status, r.Header)
	}
	for _, bad := range []string{"Bearer wrong", "Bearer " + token + "x", "Bearer " + token[:len(token)-1], "Basic " + token} {
		if r := s.do("GET", "/metrics", nil, "Authorization", bad); !unauthorized(t, r) {
			t.Fatalf("/metrics with %q: %d", bad, r.Status)
		}
	}
	r = s.do("GET", "/metrics", nil, "Authorization", "Bearer "+token).wantStatus(t, http.StatusOK)
	if !strings.Contains(string(r.Body), "telemetry_http_requests_total") {
		t.Fatalf("/metrics body: %.200s", r.Body)
	}
	// The API's token does not open /metrics, nor METRICS_TOKEN the API.
	open := newTestServer(t)
	open.do("GET", "/metrics", nil).wantStatus(t, http.StatusOK)
}

// The document says which operations may need a token: every operation
// not always guarded nor open lists the token as optional ({} first) and
// documents the 401.
func TestAuthSwitchesDocumented(t *testing.T) {
	t.Parallel()
	for _, item := range Spec().Paths {
		for _, op := range itemOperations(item) {
			id := op.OperationID
			switch {
			case neverGuarded[id]:
				// [{}]: no token, stated (openapi_strict.go explicitSecurity).
				if len(op.Security) != 1 || len(op.Security[0]) != 0 {
					t.Errorf("%s: open operation with security %v", id, op.Security)
				}
			case alwaysGuarded[id]:
				if len(op.Security) == 0 || len(op.Security[0]) == 0 {
					t.Errorf("%s: security %v, want a required token", id, op.Security)
				}
			default:
				if len(op.Security) != 3 || len(op.Security[0]) != 0 {
					t.Errorf("%s: security %v, want an optional token", id, op.Security)
				}
				if op.Responses["401"] == nil {
					t.Errorf("%s: no 401 documented", id)
				}
				if !strings.Contains(op.Description, "AUTH_WRITES=true") && !strings.Contains(op.Description, "AUTH_READS=true") {
					t.Errorf("%s: the description does not name its switch", id)
				}
			}
			if op.RequestBody != nil && (op.Responses["408"] == nil || op.Responses["400"] == nil) {
				t.Errorf("%s: takes a body but does not document 400 and 408", id)
			}
		}
	}
	if !strings.Contains(Spec().Info.Description, "AUTH_WRITES=true") {
		t.Error("the document's description does not mention AUTH_WRITES")
	}
}
