package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := s.do("GET", "/healthz", nil).wantStatus(t, http.StatusOK)
	if string(r.Body) != "{\"status\":\"ok\"}\n" && string(r.Body) != `{"status":"ok"}` {
		t.Fatalf("healthz body %s", r.Body)
	}
	var ready struct {
		Status        string
		SchemaVersion int64
		Mode          string
	}
	s.do("GET", "/readyz", nil).wantStatus(t, http.StatusOK).decode(t, &ready)
	if ready.Status != "ready" || ready.SchemaVersion < 2 || (ready.Mode != "postgresql" && ready.Mode != "timescaledb") {
		t.Fatalf("readyz = %+v", ready)
	}
}

func TestReadyFailsWhenSchemaIsBehind(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	if _, err := s.Pool.Exec(context.Background(), `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	r := s.do("GET", "/readyz", nil)
	p := r.problem(t, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "schema") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("detail %q, Retry-After %q", p.Detail, r.Header.Get("Retry-After"))
	}
}

// A database failure /readyz cannot classify (here the schema's version
// table is missing: a database restored without it, or a role that may not
// read it) is a 503 that says what was being checked, never the driver's
// message: /readyz is open whatever AUTH_READS says, and the message names
// tables, roles and SQLSTATEs (found by a security audit: the answer was
// "not ready: schema version: schema version: failed to get latest version:
// ERROR: relation \"goose_db_version\" does not exist (SQLSTATE 42P01)").
func TestReadyHidesDriverMessages(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("GET", "/readyz", nil).wantStatus(t, http.StatusOK)
	if _, err := s.Pool.Exec(context.Background(), `ALTER TABLE goose_db_version RENAME TO goose_db_version_gone`); err != nil {
		t.Fatal(err)
	}
	r := s.do("GET", "/readyz", nil)
	p := r.problem(t, http.StatusServiceUnavailable)
	for _, leak := range []string{"goose_db_version", "SQLSTATE", "ERROR", "relation"} {
		if strings.Contains(string(r.Body), leak) {
			t.Errorf("the answer shows the driver's message (%q): %s", leak, r.Body)
		}
	}
	if !strings.Contains(p.Detail, "schema version") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("detail %q, Retry-After %q", p.Detail, r.Header.Get("Retry-After"))
	}
}

// With the database gone, requests answer 503 with Retry-After (not 500,
// and no driver message).
func TestDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	pc, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	cfg, _ := config.Load(func(string) string { return "" })
	h, _ := New(Deps{Store: postgres.New(pool, postgres.Options{}).Stores(), Config: cfg})
	s := &testServer{Server: newHTTPTest(t, h), t: t}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/flows?hour=1", ""},
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`},
		{"GET", "/readyz", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := s.do(c.method, c.path, body)
		p := r.problem(t, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s: no Retry-After", c.method, c.path)
		}
		if strings.Contains(p.Detail, "dial") || strings.Contains(p.Detail, "127.0.0.1") {
			t.Fatalf("driver message leaked: %q", p.Detail)
		}
	}
	// Liveness does not depend on the database.
	s.do("GET", "/healthz", nil).wantStatus(t, http.StatusOK)
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	p := s.do("GET", "/no/such/path", nil).problem(t, http.StatusNotFound)
	if !strings.Contains(p.Detail, "/no/such/path") {
		t.Fatalf("detail %q", p.Detail)
	}
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/flows", "GET, HEAD, POST"},
		{"PUT", "/flows", "GET, HEAD, POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"POST", "/readyz", "GET, HEAD"},
		{"DELETE", "/openapi.json", "GET, HEAD"},
		{"POST", "/docs", "GET, HEAD"},
		{"POST", "/metrics", "GET, HEAD"},
		{"HEAD", "/mrd/token", "POST"},
		{"HEAD", "/apiv0.1/events/register", "POST"},
	} {
		r := s.do(c.method, c.path, nil)
		if c.method == "HEAD" { // no body to read
			r.wantStatus(t, http.StatusMethodNotAllowed)
		} else {
			r.problem(t, http.StatusMethodNotAllowed)
		}
		if got := r.Header.Get("Allow"); got != c.allow {
			t.Fatalf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	// A method no route knows: 405 where the path has routes, 404 where it
	// has none (chi sends unknown methods to its 405 handler first).
	r := s.do("FROB", "/flows", nil)
	if p := r.problem(t, http.StatusMethodNotAllowed); r.Header.Get("Allow") != "GET, HEAD, POST" || !strings.Contains(p.Detail, "allowed: GET, HEAD, POST") {
		t.Fatalf("FROB /flows: Allow %q, detail %q", r.Header.Get("Allow"), p.Detail)
	}
	for _, m := range []string{"FROB", "GET", "DELETE"} {
		r := s.do(m, "/no/such/path", nil)
		if p := r.problem(t, http.StatusNotFound); r.Header.Get("Allow") != "" || p.Detail != "no resource at /no/such/path" {
			t.Fatalf("%s /no/such/path: Allow %q, detail %q", m, r.Header.Get("Allow"), p.Detail)
		}
	}
}

// HEAD is answered wherever GET is (RFC 9110 9.1), as GET would answer
// but without the body: uptime checks and load balancers probe with it.
func TestHeadWhereGet(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml", "/openapi.json", "/docs", "/metrics",
		"/mrd/status", "/apiv0.1/ping", "/flows?hour=1", "/api/measurements/", "/api/v1/timeseries",
		"/appmetrics/api/v1/collections", "/ui/"} {
		get := s.do("GET", path, nil)
		head := s.do("HEAD", path, nil)
		if head.Status != get.Status || head.Status != http.StatusOK {
			t.Fatalf("HEAD %s: %d, GET %d", path, head.Status, get.Status)
		}
		if h, g := head.Header.Get("Content-Type"), get.Header.Get("Content-Type"); h != g {
			t.Fatalf("HEAD %s: Content-Type %q, GET's %q", path, h, g)
		}
		if len(head.Body) != 0 {
			t.Fatalf("HEAD %s: %d bytes of body", path, len(head.Body))
		}
	}
	// The same validation as GET, the problem's body left out.
	r := s.do("HEAD", "/flows?hour=1&nope=1", nil)
	if r.Status != http.StatusUnprocessableEntity || len(r.Body) != 0 ||
		r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("HEAD with an unknown parameter: %d %q, %d bytes", r.Status, r.Header.Get("Content-Type"), len(r.Body))
	}
}

func TestAcceptNegotiation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, accept := range []string{"", "*/*", "application/*", "application/json", "application/problem+json",
		"text/html, application/xhtml+xml, */*;q=0.8", "application/json; charset=utf-8"} {
		r := s.do("GET", "/flows?hour=1", nil, "Accept", accept)
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("Accept %q: %d %s", accept, r.Status, r.Header.Get("Content-Type"))
		}
	}
	for _, accept := range []string{"text/html", "application/xml", "text/plain, image/png", "application/json;q=0"} {
		p := s.do("GET", "/flows?hour=1", nil, "Accept", accept).problem(t, http.StatusNotAcceptable)
		if !strings.Contains(p.Detail, "application/json") {
			t.Fatalf("Accept %q: detail %q", accept, p.Detail)
		}
		s.do("POST", "/flows", "[]", "Accept", accept).problem(t, http.StatusNotAcceptable)
	}
}

// An Accept header huma's negotiation misreads is ignored: the answer is
// what it is without one. With a parameter without a value before a comma
// every operation answered 500 (huma panicked), and "json" (a key of the
// formats, no media type) was answered with Content-Type: json (found by
// FuzzRequestHeaders).
func TestUnreadableAcceptIsIgnored(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, accept := range []string{"a/b;,c/d", "x;,y", "0000;,0", "text/csv;,application/json", "application/json;q=0;,x",
		"json", "json;q=0.5", "json;q=0", "text/csv, json"} {
		for _, c := range []struct {
			method, path, body string
			status             int
		}{
			{"GET", "/healthz", "", http.StatusOK},
			{"GET", "/flows?hour=1", "", http.StatusOK},
			{"GET", "/api/measurements/", "", http.StatusOK},
			{"GET", "/flows?hour=x", "", http.StatusUnprocessableEntity},
			{"PUT", "/mrd/d1/metrics", "{}", http.StatusUnauthorized},
			{"POST", "/flows", "{", http.StatusBadRequest},
			{"POST", "/flows", "[]", http.StatusCreated},
		} {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := s.do(c.method, c.path, body, "Accept", accept)
			ct := r.Header.Get("Content-Type")
			want := "application/json"
			if c.status >= 400 {
				want = "application/problem+json"
			}
			if r.Status != c.status || !strings.HasPrefix(ct, want) {
				t.Errorf("%s %s, Accept %q: %d %q, want %d as JSON; body %.200s", c.method, c.path, accept, r.Status, ct, c.status, r.Body)
			}
		}
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := s.do("GET", "/healthz", nil, "X-Request-Id", "abc-123")
	if got := r.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("echoed id %q", got)
	}
	a := s.do("GET", "/healthz", nil).Header.Get("X-Request-Id")
	b := s.do("GET", "/healthz", nil).Header.Get("X-Request-Id")
	if a == "" || a == b {
		t.Fatalf("generated ids %q %q", a, b)
	}
	// An id that could forge log lines is replaced.
	if got := s.do("GET", "/healthz", nil, "X-Request-Id", "bad id\twith spaces").Header.Get("X-Request-Id"); got == "bad id\twith spaces" || got == "" {
		t.Fatalf("unsafe id kept: %q", got)
	}
}

func TestOpenAPIDocumentsAndDocs(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for path, want := range map[string]string{
		"/openapi.json":     `"openapi":"3.1.0"`,
		"/openapi.yaml":     "openapi: 3.1.0",
		"/openapi-3.0.json": `"openapi":"3.0.3"`,
		"/openapi-3.0.yaml": "openapi: 3.0.3",
	} {
		r := s.do("GET", path, nil).wantStatus(t, http.StatusOK)
		if !strings.Contains(string(r.Body), want) || !strings.Contains(string(r.Body), "postFlows") {
			t.Fatalf("%s lacks %q or postFlows", path, want)
		}
	}
	page := s.do("GET", "/docs", nil).wantStatus(t, http.StatusOK)
	if !strings.Contains(string(page.Body), `"docs/swagger-ui-bundle.js"`) || strings.Contains(string(page.Body), "https://") {
		t.Fatalf("docs page must load its assets locally: %s", page.Body)
	}
	for _, asset := range []string{"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js", "/docs/LICENSE"} {
		r := s.do("GET", asset, nil).wantStatus(t, http.StatusOK)
		if len(r.Body) == 0 {
			t.Fatalf("%s is empty", asset)
		}
	}
	init := s.do("GET", "/docs/init.js", nil)
	if !strings.Contains(string(init.Body), `"openapi.json"`) {
		t.Fatalf("init.js does not point at the served spec: %s", init.Body)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`).wantStatus(t, http.StatusCreated)
	s.do("GET", "/flows?hour=3", nil).wantStatus(t, http.StatusOK)
	r := s.do("GET", "/metrics", nil).wantStatus(t, http.StatusOK)
	body := string(r.Body)
	for _, want := range []string{
		`telemetry_http_requests_total{method="POST",route="/flows",status="201"} 1`,
		`telemetry_http_request_duration_seconds_bucket{method="GET",route="/flows"`,
		`telemetry_db_pool_max_conns`,
		"telemetry_measurements_kept_cells_bytes 0\n",
		"telemetry_measurements_kept_cells_limit_bytes 6.7108864e+07\n",
		`telemetry_batch_items_count{resource="flows"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
}

// TestMetricsMethodLabelBounded: a client may send any method token
// (net/http accepts one up to a megabyte long); each used to become a label
// value of the request metrics, kept for the life of the process (500
// invented methods, 500 series each; 200 of 100 KB made every scrape 343
// MB, found by an audit). Any method but the standard ones is "other".
func TestMetricsMethodLabelBounded(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for i := range 50 {
		s.do(fmt.Sprintf("X%05d%s", i, strings.Repeat("Y", 1000)), "/healthz", nil).wantStatus(t, http.StatusMethodNotAllowed)
	}
	s.do("DELETE", "/healthz", nil).wantStatus(t, http.StatusMethodNotAllowed)
	body := string(s.do("GET", "/metrics", nil).wantStatus(t, http.StatusOK).Body)
	if strings.Contains(body, "X00000") {
		t.Fatal("an invented method is a label value")
	}
	for _, want := range []string{
		`telemetry_http_requests_total{method="other",route="unmatched",status="405"} 50`,
		`telemetry_http_requests_total{method="DELETE",route="unmatched",status="405"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// The schema must be the same whichever way it was built; when the server
// has TimescaleDB, the time-series tables must be hypertables.
func TestTimescaleDBHypertables(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	var enabled bool
	if err := pool.QueryRow(context.Background(), `SELECT telemetry_timescaledb_enabled()`).Scan(&enabled); err != nil {
		t.Fatal(err)
	}
	if !enabled {
		t.Skip("SKIPPED: this PostgreSQL server has no TimescaleDB (extension not available or not preloaded); the schema was built as plain tables")
	}
	for table, column := range map[string]string{
		"flows": "hour", "events": "time", "device_metrics": "time", "measurements": "started_at", "runtime_samples": "time",
	} {
		var dim string
		err := pool.QueryRow(context.Background(),
			`SELECT column_name FROM timescaledb_information.dimensions WHERE hypertable_name = $1`, table).Scan(&dim)
		if err != nil || dim != column {
			t.Errorf("%s is not a hypertable partitioned on %s: %q %v", table, column, dim, err)
		}
	}
}

// An unexpected failure is a 500 that names the request and nothing else:
// no SQL, no driver message.
func TestUnexpectedErrorIs500WithRequestID(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	// Both flows tables: a list counts its rows from the rollup
	// (migration 00014) and reads flows only when there are some.
	for _, sql := range []string{`ALTER TABLE flows RENAME TO flows_gone`, `ALTER TABLE flows_hourly RENAME TO flows_hourly_gone`} {
		if _, err := s.Pool.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/flows?hour=1", ""},
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := s.do(c.method, c.path, body)
		p := r.problem(t, http.StatusInternalServerError)
		if !strings.Contains(p.Detail, p.RequestID) || strings.Contains(string(r.Body), "flows") || strings.Contains(string(r.Body), "SQLSTATE") {
			t.Fatalf("%s %s: 500 body %s", c.method, c.path, r.Body)
		}
	}
}

func TestPanicIs500(t *testing.T) {
	t.Parallel()
	h := observe(slog.New(slog.DiscardHandler), metrics.New(), nil)(recoverer(slog.New(slog.DiscardHandler))(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	s := &testServer{Server: newHTTPTest(t, h), t: t}
	r := s.do("GET", "/anything", nil)
	r.problem(t, http.StatusInternalServerError)
	if strings.Contains(string(r.Body), "boom") {
		t.Fatalf("panic value leaked: %s", r.Body)
	}
}

// Every operation is documented as docs/architecture.md asks: an operationId, a
// summary, a tag, 406, 421, 422 and 500 among its answers, and an example body for
// every error answer.
func TestEveryOperationIsDocumented(t *testing.T) {
	t.Parallel()
	spec := Spec()
	tags := map[string]bool{}
	for _, tag := range spec.Tags {
		tags[tag.Name] = true
	}
	n := 0
	for path, item := range spec.Paths {
		for method, op := range itemOperations(item) {
			n++
			where := method + " " + path
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) != 1 || !tags[op.Tags[0]] {
				t.Errorf("%s: operationId %q, summary %q, tags %v", where, op.OperationID, op.Summary, op.Tags)
			}
			codes := []string{"406", "421", "422", "500"}
			if op.RequestBody != nil {
				codes = append(codes, "400", "408", "413", "415")
			}
			for _, code := range codes {
				if op.Responses[code] == nil {
					t.Errorf("%s does not document %s", where, code)
				}
			}
			for code, r := range op.Responses {
				if code == "default" || code[0] < '4' {
					continue
				}
				mt := r.Content["application/problem+json"]
				if mt == nil || (mt.Example == nil && len(mt.Examples) == 0) {
					t.Errorf("%s: answer %s has no problem+json example", where, code)
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d operations found", n)
	}
}
