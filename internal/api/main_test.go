package api

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

func TestMain(m *testing.M) {
	code := testdb.Run(m)
	// Every documented answer is one some test produces (an error path
	// without a test fails the run): checked when every test ran and
	// passed; AUDIT_COVERAGE lists what is missing in any run.
	whole := code == 0 && !testing.Short()
	for _, f := range []string{"test.run", "test.skip", "test.bench"} {
		whole = whole && flag.Lookup(f).Value.String() == ""
	}
	if missing := unexercised(); os.Getenv("AUDIT_COVERAGE") != "" || (whole && len(missing) > 0) {
		fmt.Printf("documented answers no test produced (%d operations):\n%s\n", len(missing), strings.Join(missing, "\n"))
		if whole && len(missing) > 0 {
			fmt.Println("FAIL: every documented answer must be produced by a test (docs/architecture.md, \"Conventions every operation follows\")")
			code = 1
		}
	}
	os.Exit(code)
}

// testServer is a real API on a real, freshly migrated database.
type testServer struct {
	*httptest.Server
	Pool    *pgxpool.Pool
	Metrics *metrics.Metrics
	t       testing.TB
	// handler is the API without the test server's audit (which keeps a
	// copy of each answer's first MiB): what a test that counts the
	// service's own allocations calls.
	handler http.Handler
}

// newTestServer starts the API on its own database; tweak adjusts the
// configuration (defaults are those of production).
func newTestServer(t testing.TB, tweak ...func(*config.Config)) *testServer {
	t.Helper()
	return newTestServerOver(t, nil, tweak...)
}

// newTestServerOver is newTestServer with the stores the API gets passed
// through wrap first, when it is not nil: to make one store's answer what
// no request can otherwise make it (the database stays real).
func newTestServerOver(t testing.TB, wrap func(*store.Store), tweak ...func(*config.Config)) *testServer {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tweak {
		f(&cfg)
	}
	pool := testdb.New(t)
	prom := metrics.New()
	// The store as serve builds it (TestDevicesConcurrentReports reads the
	// batch histogram).
	st := postgres.New(pool, postgres.Options{
		DeviceWriters:  cfg.DeviceMetricsWriters,
		DeviceMaxBatch: cfg.DeviceMetricsBatch,
		ObserveBatch: func(resource string, n int) {
			prom.BatchItems.WithLabelValues(resource).Observe(float64(n))
		},
	})
	prom.RegisterPool(st.PoolStats)
	prom.RegisterKeptCells(st.KeptCells)
	stores := st.Stores()
	if wrap != nil {
		wrap(stores)
	}
	h, _ := New(Deps{Store: stores, Config: cfg, Metrics: prom})
	return &testServer{Server: newHTTPTest(t, h), Pool: pool, Metrics: prom, t: t, handler: h}
}

// lockTable takes an ACCESS EXCLUSIVE lock on table, in a transaction of
// its own, until release is called (or the test ends): the API's queries on
// it wait meanwhile.
func (s *testServer) lockTable(t testing.TB, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// response is what a test needs of an answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends method path with body (a string or []byte is sent as is, anything
// else as JSON) and optional header pairs.
func (s *testServer) do(method, path string, body any, header ...string) response {
	s.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" { // the client sends req.Host, never a Host header
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// decode unmarshals the body into v, failing the test when it cannot.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// problem decodes an error answer, checking its status and content type.
func (r response) problem(t testing.TB, status int) Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, r.Body)
	}
	var p Problem
	r.decode(t, &p)
	if p.Status != status || p.Title != http.StatusText(status) {
		t.Fatalf("problem status/title = %d %q, want %d %q", p.Status, p.Title, status, http.StatusText(status))
	}
	if p.RequestID == "" || p.RequestID != r.Header.Get("X-Request-Id") {
		t.Fatalf("problem requestId %q does not match X-Request-Id %q", p.RequestID, r.Header.Get("X-Request-Id"))
	}
	return p
}

// wantStatus fails unless the answer has the status.
func (r response) wantStatus(t testing.TB, status int) response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	return r
}

// hasError reports whether the problem lists an item for location with title.
func (p Problem) hasError(location, title string) bool {
	for _, e := range p.Errors {
		if e.Location == location && e.Title == title {
			return true
		}
	}
	return false
}

// newHTTPTest serves h for a test, checking that every answer's status is
// documented for its operation (auditStatuses).
func newHTTPTest(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(auditStatuses(t, h))
	srv.Config.ConnContext = ConnContext // as serve sets it
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
