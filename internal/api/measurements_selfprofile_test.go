package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// newProfiledServer is newTestServer with self-profiling on.
func newProfiledServer(t *testing.T, pc selfprofile.Config) (*testServer, *selfprofile.Profiler) {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if pc.Exclude == nil {
		pc.Exclude = cfg.SelfProfileExclude
	}
	pool := testdb.New(t)
	prom := metrics.New()
	st := postgres.New(pool, postgres.Options{})
	prof := selfprofile.New(st.Measurements, nil, prom.Registry, pc)
	prof.Start()
	t.Cleanup(func() { prof.Close(context.Background()) })
	h, _ := New(Deps{Store: st.Stores(), Config: cfg, Metrics: prom, Profiler: prof})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, Pool: pool, Metrics: prom, t: t}, prof
}

// newTestServerOnDeadDatabase serves the API over a pool whose server does
// not answer.
func newTestServerOnDeadDatabase(t *testing.T) *testServer {
	t.Helper()
	cfg, _ := config.Load(func(string) string { return "" })
	pc, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h, _ := New(Deps{Store: postgres.New(pool, postgres.Options{}).Stores(), Config: cfg})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, Pool: pool, t: t}
}

func countOwn(t *testing.T, s *testServer) int64 {
	t.Helper()
	var n int64
	if err := s.Pool.QueryRow(context.Background(), "SELECT count(*) FROM measurements WHERE app = 'telemetry'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The server's own requests appear as measurements (app=telemetry) within
// two seconds, through the API itself.
func TestSelfProfileRecordsOwnRequests(t *testing.T) {
	t.Parallel()
	s, _ := newProfiledServer(t, selfprofile.Config{Sample: 1})
	id := postIDs(t, s, []rec{mrec("/x", "GET", 100, 1)})[0]
	s.do("GET", fmt.Sprintf("/api/v1/measurements/%d?verbose=1&verbose=2", id), nil,
		"Authorization", "Bearer secret-token", "Cookie", "session=secret", "User-Agent", "probe/1.0", "X-Request-Id", "req-42")
	s.do("GET", "/healthz", nil).wantStatus(t, http.StatusOK) // excluded by default
	s.do("GET", "/no/such/path", nil).wantStatus(t, http.StatusNotFound)

	deadline := time.Now().Add(2 * time.Second)
	var page measurementPage
	for {
		page = list(t, s, "/api/measurements/?app=telemetry&sort=startedAt,asc")
		if page.Total >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The list request that found them is recorded later; the three before it are here.
	if page.Total < 3 {
		t.Fatalf("after 2 s only %d own measurements: %+v", page.Total, page.Items)
	}
	post, get, missing := page.Items[0], page.Items[1], page.Items[2]
	if post.Name != "/api/measurements" || post.Method != "POST" || post.App != selfprofile.App {
		t.Fatalf("post recorded as %+v", post)
	}
	if get.Name != "/api/v1/measurements/{id}" || get.Method != "GET" || string(get.Kwargs) != fmt.Sprintf(`{"id":"%d"}`, id) {
		t.Fatalf("get recorded as %+v kwargs %s", get, get.Kwargs)
	}
	if get.Elapsed <= 0 || get.EndedAt < get.StartedAt {
		t.Fatalf("get timing %+v", get)
	}
	var ctx struct {
		URL, Path, Func, IP string
		Status              int
		Args                map[string]string
		Headers             map[string]string
	}
	if err := json.Unmarshal(get.Context, &ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Func != "getMeasurementV1" || ctx.Path != fmt.Sprintf("/api/v1/measurements/%d", id) ||
		ctx.URL != ctx.Path+"?verbose=1&verbose=2" || ctx.Args["verbose"] != "1" || ctx.IP != "127.0.0.1" || ctx.Status != 200 {
		t.Fatalf("context %s", get.Context)
	}
	if ctx.Headers["User-Agent"] != "probe/1.0" || ctx.Headers["X-Request-Id"] != "req-42" || ctx.Headers["Host"] == "" {
		t.Fatalf("headers %v", ctx.Headers)
	}
	if raw := string(get.Context); strings.Contains(raw, "secret") || strings.Contains(raw, "Authorization") || strings.Contains(raw, "Cookie") {
		t.Fatalf("credentials recorded: %s", raw)
	}
	if missing.Name != "unmatched" || missing.Method != "GET" || !strings.Contains(string(missing.Context), `"status":404`) {
		t.Fatalf("404 recorded as %+v %s", missing, missing.Context)
	}
	// /healthz is excluded.
	var g groupPage
	s.do("GET", "/api/measurements/grouped/?app=telemetry&name=/healthz", nil).decode(t, &g)
	if g.Total != 0 {
		t.Fatalf("/healthz was recorded: %+v", g)
	}
}

// Close writes everything still buffered: nothing is lost at a graceful
// shutdown, even when the periodic flush never ran.
func TestSelfProfileCloseFlushes(t *testing.T) {
	t.Parallel()
	s, prof := newProfiledServer(t, selfprofile.Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000, BufferSize: 100000})
	const n = 57
	for i := 0; i < n; i++ {
		s.do("GET", "/api/measurements/methodDistribution/", nil).wantStatus(t, http.StatusOK)
	}
	if got := countOwn(t, s); got != 0 {
		t.Fatalf("%d written before Close although the flush interval is an hour", got)
	}
	s.Server.Close() // like http.Server.Shutdown: no request in flight afterwards
	if err := prof.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countOwn(t, s); got != n {
		t.Fatalf("after Close %d measurements, want %d", got, n)
	}
	// Close is idempotent, and the rollup saw the rows too.
	if err := prof.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rolled int64
	if err := s.Pool.QueryRow(context.Background(), "SELECT coalesce(sum(count), 0) FROM measurements_hourly WHERE app = 'telemetry'").Scan(&rolled); err != nil || rolled != n {
		t.Fatalf("rollup has %d (%v), want %d", rolled, err, n)
	}
}

func metricValue(t *testing.T, s *testServer, name string) string {
	t.Helper()
	r := s.do("GET", "/metrics", nil).wantStatus(t, http.StatusOK)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	return ""
}

// A full buffer drops records without slowing or failing the request, and
// the drops are counted.
func TestSelfProfileDropsAreCounted(t *testing.T) {
	t.Parallel()
	s, prof := newProfiledServer(t, selfprofile.Config{Sample: 1, FlushEvery: time.Hour, BufferSize: 3, FlushAt: 1000})
	for i := 0; i < 5; i++ {
		s.do("GET", "/api/measurements/methodDistribution/", nil).wantStatus(t, http.StatusOK)
	}
	if got := metricValue(t, s, `telemetry_selfprofile_dropped_total{reason="buffer_full"}`); got != "2" {
		t.Fatalf("dropped = %q, want 2", got)
	}
	if got := metricValue(t, s, "telemetry_selfprofile_buffered"); got != "3" {
		t.Fatalf("buffered = %q, want 3", got)
	}
	if err := prof.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, s, "telemetry_selfprofile_written_total"); got != "3" {
		t.Fatalf("written = %q, want 3", got)
	}
}

func TestSelfProfileSamplingAndExclusion(t *testing.T) {
	t.Parallel()
	s, prof := newProfiledServer(t, selfprofile.Config{Sample: 0})
	for i := 0; i < 5; i++ {
		s.do("GET", "/api/measurements/methodDistribution/", nil).wantStatus(t, http.StatusOK)
	}
	prof.Flush(context.Background())
	if got := countOwn(t, s); got != 0 {
		t.Fatalf("sample 0 recorded %d", got)
	}

	s, prof = newProfiledServer(t, selfprofile.Config{Sample: 1, Exclude: []string{"/api/v1/*", "/api/measurements/grouped/"}})
	s.do("GET", "/api/v1/methodDistribution/", nil).wantStatus(t, http.StatusOK)
	s.do("GET", "/api/measurements/grouped/", nil).wantStatus(t, http.StatusOK)
	s.do("GET", "/api/measurements/grouped", nil).wantStatus(t, http.StatusOK)
	s.do("GET", "/healthz", nil).wantStatus(t, http.StatusOK) // not excluded any more
	prof.Flush(context.Background())
	var names []string
	rows, err := s.Pool.Query(context.Background(), "SELECT name FROM measurements WHERE app = 'telemetry' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	if fmt.Sprint(names) != "[/api/measurements/grouped /healthz]" {
		t.Fatalf("recorded %v", names)
	}
}
