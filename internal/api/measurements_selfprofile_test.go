package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
	srv := newHTTPTest(t, h)
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
	srv := newHTTPTest(t, h)
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
// seconds (the profiler writes every second), through the API itself.
func TestSelfProfileRecordsOwnRequests(t *testing.T) {
	t.Parallel()
	s, _ := newProfiledServer(t, selfprofile.Config{Sample: 1})
	id := postIDs(t, s, []rec{mrec("/x", "GET", 100, 1)})[0]
	s.do("GET", fmt.Sprintf("/api/v1/measurements/%d?verbose=1&verbose=2", id), nil,
		"Authorization", "Bearer secret-token", "Cookie", "session=secret", "User-Agent", "probe/1.0", "X-Request-Id", "req-42")
	s.do("GET", "/healthz", nil).wantStatus(t, http.StatusOK) // excluded by default
	s.do("GET", "/no/such/path", nil).wantStatus(t, http.StatusNotFound)

	// Waits on the items, not the total: the page and its total are two
	// reads, and a write of the profiler between them gives a total of 3
	// with fewer items. 15 s: a loaded machine delays the profiler's writes.
	deadline := time.Now().Add(15 * time.Second)
	var page measurementPage
	for {
		page = list(t, s, "/api/measurements/?app=telemetry&sort=startedAt,asc")
		if len(page.Items) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The list request that found them is recorded later; the three before it are here.
	if len(page.Items) < 3 {
		t.Fatalf("after 15 s only %d own measurements (total %d): %+v", len(page.Items), page.Total, page.Items)
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
		ctx.URL != ctx.Path+"?verbose=1&verbose=2" || ctx.Args["verbose"] != "1" || ctx.IP != "127.0.0.1" ||
		ctx.Status != http.StatusUnprocessableEntity { // verbose is an unknown parameter: refused, and recorded all the same
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

// A full buffer drops records without slowing or failing the request, and
// the drops are counted.
func TestSelfProfileDropsAreCounted(t *testing.T) {
	t.Parallel()
	s, prof := newProfiledServer(t, selfprofile.Config{Sample: 1, FlushEvery: time.Hour, BufferSize: 3, FlushAt: 1000})
	for i := 0; i < 5; i++ {
		s.do("GET", "/api/measurements/methodDistribution/", nil).wantStatus(t, http.StatusOK)
	}
	if got, _ := metricValue(s, `telemetry_selfprofile_dropped_total{reason="buffer_full"}`); got != 2 {
		t.Fatalf("dropped = %v, want 2", got)
	}
	if got, _ := metricValue(s, "telemetry_selfprofile_buffered"); got != 3 {
		t.Fatalf("buffered = %v, want 3", got)
	}
	if err := prof.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := metricValue(s, "telemetry_selfprofile_written_total"); got != 3 {
		t.Fatalf("written = %v, want 3", got)
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

// ownRows is every stored self-profiling row as PostgreSQL prints it: a
// secret anywhere in a row shows in this text.
func ownRows(t *testing.T, s *testServer) []string {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), "SELECT m::text FROM measurements m WHERE app = 'telemetry' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// No secret is stored: Authorization and Cookie are never recorded, and
// secret-looking query values are redacted in args, url and the Referer;
// other values are kept.
func TestSelfProfileRedactsSecrets(t *testing.T) {
	t.Parallel()
	s, prof := newProfiledServer(t, selfprofile.Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000})
	s.do("GET", "/api/measurements/?token=abc-s3cr3t&access_token=x-s3cr3t&Password=y-s3cr3t&ok=1&to%6Ben=enc-s3cr3t&apiKey=k-s3cr3t", nil,
		"Authorization", "Bearer s3cr3t-bearer", "Cookie", "session=s3cr3t-cookie",
		"Referer", "https://ref.example/page?ok=2&client_secret=ref-s3cr3t#access_token=frag-s3cr3t")
	s.Server.Close() // every request recorded
	if err := prof.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows := ownRows(t, s)
	if len(rows) != 1 {
		t.Fatalf("%d rows recorded, want 1: %v", len(rows), rows)
	}
	row := rows[0]
	for _, leak := range []string{"s3cr3t", "Authorization", "Cookie"} {
		if strings.Contains(row, leak) {
			t.Errorf("%q stored: %s", leak, row)
		}
	}
	var m struct {
		Context struct {
			URL     string
			Args    map[string]string
			Headers map[string]string
		}
	}
	var ctxText string
	if err := s.Pool.QueryRow(context.Background(), "SELECT context::text FROM measurements WHERE app = 'telemetry'").Scan(&ctxText); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(ctxText), &m.Context); err != nil {
		t.Fatal(err)
	}
	c := m.Context
	if c.Args["ok"] != "1" || c.Args["token"] != selfprofile.Redacted || c.Args["access_token"] != selfprofile.Redacted ||
		c.Args["Password"] != selfprofile.Redacted || c.Args["apiKey"] != selfprofile.Redacted {
		t.Errorf("args %v", c.Args)
	}
	wantURL := "/api/measurements/?token=[redacted]&access_token=[redacted]&Password=[redacted]&ok=1&to%6Ben=[redacted]&apiKey=[redacted]"
	if c.URL != wantURL {
		t.Errorf("url %q, want %q", c.URL, wantURL)
	}
	if c.Headers["Referer"] != "https://ref.example/page?ok=2&client_secret=[redacted]" {
		t.Errorf("Referer %q", c.Headers["Referer"])
	}
}

// Hostile requests (NUL bytes and invalid UTF-8 in the query, path and
// headers, a method longer than the column allows, a huge query) are
// recorded like the others, and none of them makes a batch fail: every
// request is stored.
func TestSelfProfileRecordsHostileRequests(t *testing.T) {
	t.Parallel()
	// Detail: every request a row of its own, as the test looks for some.
	s, prof := newProfiledServer(t, selfprofile.Config{Sample: 1, FlushEvery: 50 * time.Millisecond, FlushAt: 100, BufferSize: 100000, Detail: 1 << 30})
	type req struct{ method, path, ua string }
	hostile := []req{
		{"GET", "/nowhere?a=%00", ""},
		{"GET", "/nowhere?a=%ff", ""},
		{"GET", "/api/measurements/?name=%ff", ""},
		{"GET", "/api/measurements/?name=a%00b", ""},
		{"GET", "/nowhere/a%00b/%ff", ""},
		{"GET", "/nowhere?%00=%00&k%ff=v%ff&%ed%a0%80=x", ""},
		{"GET", "/nowhere?" + strings.Repeat("a%00=%ff%00&", 3000), ""},
		{"GET", "/nowhere?ua=1", "agent\xff\xfe"},
		{"VERYLONGMETHODNAME", "/nowhere?m=%00", ""},
		{"GET", "/mrd/devices/a%00b", ""},
	}
	const normal = 960
	work := make(chan req)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				var h []string
				if r.ua != "" {
					h = []string{"User-Agent", r.ua}
				}
				s.do(r.method, r.path, nil, h...)
			}
		}()
	}
	for i := range normal {
		work <- req{"GET", fmt.Sprintf("/nowhere?i=%d", i), ""}
		if i%96 == 0 {
			work <- hostile[i/96]
		}
	}
	close(work)
	wg.Wait()
	s.Server.Close() // every request recorded
	if err := prof.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := countOwn(t, s), int64(normal+len(hostile)); got != want {
		t.Fatalf("%d requests recorded, want %d", got, want)
	}
	var n int64
	if err := s.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM measurements WHERE app = 'telemetry' AND (method = 'OTHER' OR context->>'path' = '/nowhere/ab/`+"\uFFFD"+`')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the long method and the NUL path: %d rows (%v), want 2", n, err)
	}
}

// app=telemetry is the service's own: a record claiming it is a 422 naming
// it, and nothing of the batch is stored.
func TestPostMeasurementsRefusesReservedApp(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	recs := []rec{mrec("/a", "GET", 100, 1, "app", "shop"), mrec("/b", "GET", 100, 1, "app", selfprofile.App),
		mrec("/c", "GET", 100, 1), mrec("/d", "POST", 100, 1, "app", selfprofile.App)}
	p := s.do("POST", "/api/measurements", recs).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 2 || p.Errors[0].Location != "body[1].app" || p.Errors[1].Location != "body[3].app" ||
		p.Errors[0].Title != "reserved" || p.Errors[0].Source != "app" {
		t.Fatalf("problem %+v", p)
	}
	var n int64
	if err := s.Pool.QueryRow(context.Background(), "SELECT count(*) FROM measurements").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d stored (%v) after a refused batch", n, err)
	}
	// Listed with the batch's other failures, at once (the reserved app
	// used to be checked only once the rest had passed).
	recs[2] = mrec("/c", "FOO", 100, 1)
	p = s.do("POST", "/api/measurements", recs).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 3 || !p.hasError("body[1].app", "reserved") || !p.hasError("body[2].method", "oneof") ||
		!p.hasError("body[3].app", "reserved") {
		t.Fatalf("errors %+v, want body[1].app, body[2].method and body[3].app", p.Errors)
	}
	postIDs(t, s, []rec{recs[0], mrec("/c", "GET", 100, 1)})
}

// A request's method is recorded as one of the standard methods or OTHER,
// whatever token the client sent: each token used to become a method of
// the measurements, a key of every methodDistribution answer over the
// rollups' 400 days and rows of every open collection's totals (the 41
// tokens here made 42 methods with GET). Both ways a request is recorded: a row of its
// own and a second's summary.
func TestSelfProfileMethodsAreBounded(t *testing.T) {
	t.Parallel()
	for _, detail := range []int{1 << 30, -1} {
		s, prof := newProfiledServer(t, selfprofile.Config{Sample: 1, Detail: detail})
		for i := range 40 {
			s.do(fmt.Sprintf("M%d", i), "/nowhere", nil)
		}
		s.do("FOO", "/flows", nil).wantStatus(t, http.StatusMethodNotAllowed)
		s.do("GET", "/nowhere", nil).wantStatus(t, http.StatusNotFound)
		if err := prof.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		var methods []string
		if err := s.Pool.QueryRow(context.Background(),
			`SELECT array_agg(DISTINCT method ORDER BY method) FROM measurements WHERE app = 'telemetry'`).Scan(&methods); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(methods) != "[GET OTHER]" {
			t.Errorf("detail %d: recorded methods %d: %.200v", detail, len(methods), methods)
		}
		var d struct{ Distribution map[string]int64 }
		s.do("GET", "/api/measurements/methodDistribution/", nil).wantStatus(t, http.StatusOK).decode(t, &d)
		if len(d.Distribution) != 2 || d.Distribution[selfprofile.OtherMethod] == 0 {
			t.Errorf("detail %d: methodDistribution has %d methods: %v", detail, len(d.Distribution), d.Distribution)
		}
	}
}
