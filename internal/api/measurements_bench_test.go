package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// benchClient keeps a connection per load client.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}

func benchPost(url string, body []byte) error {
	res, err := benchClient.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

func benchGet(url string) error {
	res, err := benchClient.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// benchRecords builds n realistic measurements of the last hour (a
// flask-profiler-sized context: url, query, a few headers, func, ip).
func benchRecords(rng *rand.Rand, n int) ([]MeasurementInput, []store.Measurement) {
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	in := make([]MeasurementInput, n)
	recs := make([]store.Measurement, n)
	now := float64(time.Now().UnixMicro()) / 1e6
	for i := range in {
		route := rng.IntN(50)
		id := rng.IntN(100000)
		start := now - rng.Float64()*3600
		el := rng.ExpFloat64() * 0.05
		ctx, _ := json.Marshal(map[string]any{
			"url": fmt.Sprintf("http://shop.local/api/r%d/%d?verbose=1", route, id), "args": map[string]string{"verbose": "1"},
			"func": fmt.Sprintf("handler%d", route), "ip": "10.0.0.7", "form": map[string]any{}, "body": "",
			"headers": map[string]string{"Accept": "application/json", "User-Agent": "shop-client/2.1", "Host": "shop.local"},
		})
		kw := []byte(fmt.Sprintf(`{"id":"%d"}`, id))
		m := MeasurementInput{Name: fmt.Sprintf("/api/r%d/<id>", route), Method: methods[rng.IntN(len(methods))],
			StartedAt: start, EndedAt: start + el, Elapsed: &el, Args: jsonArray("[]"), Kwargs: kw, Context: ctx, App: "shop"}
		in[i] = m
		recs[i] = store.Measurement{StartedAt: fromEpoch(m.StartedAt), EndedAt: fromEpoch(m.EndedAt), Elapsed: el,
			Name: m.Name, Method: m.Method, Args: []byte("[]"), Kwargs: kw, Context: ctx, App: m.App}
	}
	return in, recs
}

// BenchmarkMeasurementsIngest: records/s through POST /api/measurements in
// batches of 1,000 and 10,000 from several clients, beside pgx CopyFrom of
// the same rows straight into the table (same clients, same run).
func BenchmarkMeasurementsIngest(b *testing.B) {
	s := newTestServer(b)
	const clients = 4
	rng := rand.New(rand.NewPCG(7, 7))
	for _, size := range []int{1000, 10000} {
		const distinct = 8 // distinct batches per size, reused round robin
		bodies := make([][]byte, distinct)
		rows := make([][][]any, distinct)
		for i := range bodies {
			in, recs := benchRecords(rng, size)
			bodies[i], _ = json.Marshal(in)
			rows[i] = make([][]any, size)
			for j, r := range recs {
				rows[i][j] = []any{r.StartedAt, r.EndedAt, r.Elapsed, r.Name, r.Method, r.Args, r.Kwargs, r.Context, r.App}
			}
		}
		cols := []string{"started_at", "ended_at", "elapsed", "name", "method", "args", "kwargs", "context", "app"}
		copyOp := func(ctx context.Context, c int) error {
			_, err := s.Pool.CopyFrom(ctx, pgx.Identifier{"measurements"}, cols, pgx.CopyFromRows(rows[rand.IntN(distinct)]))
			return err
		}
		apiOp := func(ctx context.Context, c int) error {
			return benchPost(s.URL+"/api/measurements", bodies[rand.IntN(distinct)])
		}
		// Alternate short rounds of each, so that both see the same
		// background load (the machine is shared) and the same table size.
		var base, api loadStats
		for round := 0; round < 4; round++ {
			base = addStats(base, runLoad(clients, 2*time.Second, int64(100_000/size*4), copyOp))
			api = addStats(api, runLoad(clients, 2*time.Second, int64(100_000/size*4), apiOp))
		}
		name := fmt.Sprintf("batch%d", size)
		apiRate, baseRate := api.PerSecond()*float64(size), base.PerSecond()*float64(size)
		b.ReportMetric(apiRate, name+"_api_records/s")
		b.ReportMetric(baseRate, name+"_copy_records/s")
		b.ReportMetric(apiRate/baseRate, name+"_api/copy")
		b.ReportMetric(float64(api.P99.Microseconds())/1000, name+"_api_p99_ms")
		b.Logf("%s (%d clients, %d KiB bodies): API %s = %.0f records/s; pgx CopyFrom %s = %.0f records/s; ratio %.2f",
			name, clients, len(bodies[0])/1024, api, apiRate, base, baseRate, apiRate/baseRate)
	}
}

// addStats sums two load runs (the p50 and p99 kept are the worse ones).
func addStats(a, b loadStats) loadStats {
	return loadStats{Requests: a.Requests + b.Requests, Errors: a.Errors + b.Errors, Elapsed: a.Elapsed + b.Elapsed,
		P50: max(a.P50, b.P50), P99: max(a.P99, b.P99)}
}

// benchRows is the row count of the query benchmark (MEASUREMENTS_BENCH_ROWS,
// default 10 million).
func benchRows() int {
	if v, err := strconv.Atoi(os.Getenv("MEASUREMENTS_BENCH_ROWS")); err == nil && v > 0 {
		return v
	}
	return 10_000_000
}

// generateMeasurements fills the table server-side: n rows evenly spread
// over the last `days` days, 50 routes, 4 methods, 3 apps, exponential
// elapsed (mean 50 ms, a few long ones). The secondary indexes are dropped
// for the load and rebuilt after, then the rollup is rebuilt and the table
// analysed.
func generateMeasurements(b *testing.B, s *testServer, n, days int) {
	ctx := context.Background()
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	exec("SET maintenance_work_mem = '512MB'")
	var defs []string
	rows, err := conn.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
		WHERE tablename = 'measurements' AND indexname <> 'measurements_pkey'`)
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			b.Fatal(err)
		}
		names, defs = append(names, name), append(defs, def)
	}
	rows.Close()
	for _, name := range names {
		exec("DROP INDEX " + pgx.Identifier{name}.Sanitize())
	}
	t0 := time.Now()
	exec(`INSERT INTO measurements (started_at, ended_at, elapsed, name, method, args, kwargs, context, app)
		SELECT g.s, g.s + make_interval(secs => g.e), g.e, '/api/r' || (g.i % 50) || '/<id>',
		       (ARRAY['GET','GET','GET','POST','PUT','DELETE'])[1 + (g.i * 7919) % 6],
		       '[]', jsonb_build_object('id', (g.i % 100000)::text),
		       jsonb_build_object('url', 'http://shop.local/api/r' || (g.i % 50) || '/' || (g.i % 100000),
		           'func', 'handler' || (g.i % 50), 'ip', '10.0.0.7', 'args', '{}'::jsonb,
		           'headers', '{"Accept": "application/json", "User-Agent": "shop-client/2.1"}'::jsonb),
		       (ARRAY['shop','shop','billing','telemetry'])[1 + (g.i * 31) % 4]
		FROM (SELECT i, now() - make_interval(secs => (i::float8 / $1) * $2 * 86400) AS s,
		             CASE WHEN i % 1000 = 0 THEN 5 + random() * 60 ELSE -ln(1 - random()) * 0.05 END AS e
		      FROM generate_series(1, $1::bigint) AS i) AS g`, n, days)
	load := time.Since(t0)
	t1 := time.Now()
	for _, def := range defs {
		exec(def)
	}
	indexes := time.Since(t1)
	t2 := time.Now()
	if err := postgres.New(s.Pool, postgres.Options{}).Measurements.RebuildRollup(ctx, time.Now().AddDate(0, 0, -days-1), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	exec("VACUUM ANALYZE measurements")
	exec("VACUUM ANALYZE measurements_hourly")
	b.Logf("generated %d rows over %d days: load %s, %d indexes %s, rollup + vacuum %s",
		n, days, load.Round(time.Second), len(defs), indexes.Round(time.Second), time.Since(t2).Round(time.Second))
}

// BenchmarkMeasurementsQueries: latency of each query over a 7-day window
// with 10 million rows stored (30 days of them), through the API, beside the
// same store call made directly with pgx (no HTTP) in the same run.
func BenchmarkMeasurementsQueries(b *testing.B) {
	s := newTestServer(b)
	n, days := benchRows(), 30
	generateMeasurements(b, s, n, days)
	var total int64
	_ = s.Pool.QueryRow(context.Background(), "SELECT count(*) FROM measurements").Scan(&total)
	b.ReportMetric(float64(total), "rows")

	const clients = 4
	now := time.Now()
	st := postgres.New(s.Pool, postgres.Options{}).Measurements
	window := store.MeasurementFilter{StartedAt: now.Add(-7 * 24 * time.Hour), EndedAt: now}
	name, el := "/api/r7/<id>", 1.0
	withName, withElapsed := window, window
	withName.Name = &name
	withElapsed.MinElapsed = &el
	ctx := context.Background()
	cases := []struct {
		name, path string
		direct     func() error
	}{
		{"list", "/api/measurements/", func() error {
			_, err := st.List(ctx, window, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 50})
			return err
		}},
		{"list_name", "/api/measurements/?name=" + name, func() error {
			_, err := st.List(ctx, withName, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 50})
			return err
		}},
		{"list_page100", "/api/measurements/?page=100", func() error {
			_, err := st.List(ctx, window, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 50, Offset: 99 * 50})
			return err
		}},
		{"list_elapsed", "/api/measurements/?elapsed=1", func() error {
			_, err := st.List(ctx, withElapsed, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 50})
			return err
		}},
		{"list_sort_elapsed", "/api/measurements/?sort=elapsed,desc", func() error {
			_, err := st.List(ctx, window, store.MeasurementSort{Key: "elapsed", Desc: true}, store.PageRequest{Limit: 50})
			return err
		}},
		{"grouped", "/api/measurements/grouped/", func() error {
			_, err := st.Grouped(ctx, window, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 50})
			return err
		}},
		{"grouped_elapsed", "/api/measurements/grouped/?elapsed=1", func() error {
			_, err := st.Grouped(ctx, withElapsed, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 50})
			return err
		}},
		{"distribution", "/api/measurements/methodDistribution/", func() error {
			_, err := st.MethodDistribution(ctx, window)
			return err
		}},
		{"timeseries_hourly", "/api/measurements/timeseries/?interval=hourly", func() error {
			_, err := st.Timeseries(ctx, window, time.Hour)
			return err
		}},
		{"timeseries_daily", "/api/measurements/timeseries/?interval=daily", func() error {
			_, err := st.Timeseries(ctx, window, 24*time.Hour)
			return err
		}},
		{"get", "/api/measurements/123456", func() error {
			_, err := st.Get(ctx, 123456)
			return err
		}},
	}
	for _, c := range cases {
		direct := runLoad(clients, 3*time.Second, 3000, func(context.Context, int) error { return c.direct() })
		api := runLoad(clients, 3*time.Second, 3000, func(context.Context, int) error { return benchGet(s.URL + c.path) })
		report(b, c.name+"_api", api)
		b.ReportMetric(float64(direct.P99.Microseconds())/1000, c.name+"_direct_p99_ms")
		b.ReportMetric(api.PerSecond()/direct.PerSecond(), c.name+"_api/direct")
		b.Logf("%s: direct %s", c.name, direct)
	}
}
