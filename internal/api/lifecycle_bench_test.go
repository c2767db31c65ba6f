package api

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// The data lifecycle benchmarks (docs/lifecycle.md) load 10 M rows: they
// run only when named explicitly (-bench BenchmarkMaintenancePass10M, not
// a pattern such as .) or with LIFECYCLE_BENCH=1, so `make bench` stays
// short. LIFECYCLE_BENCH_ROWS changes the row count.
func lifecycleBench(b *testing.B, name string) int {
	b.Helper()
	selected := false
	if f := flag.Lookup("test.bench"); f != nil {
		selected = strings.Contains(f.Value.String(), name)
	}
	if !selected && os.Getenv("LIFECYCLE_BENCH") != "1" {
		b.Skipf("SKIPPED: loads 10 M rows; run with -bench %s or LIFECYCLE_BENCH=1", name)
	}
	if v, err := strconv.Atoi(os.Getenv("LIFECYCLE_BENCH_ROWS")); err == nil && v > 0 {
		return v
	}
	return 10_000_000
}

// fillMeasurements stores n measurements spread over `days` days ending
// `age` ago, server side, secondary indexes dropped for the load and
// rebuilt after (as generateMeasurements does). The rollups are not
// filled: these benchmarks do not read them.
func fillAgedMeasurements(b *testing.B, s *testServer, n int, age time.Duration, days int) {
	b.Helper()
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		if _, err := s.Pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	rows, err := s.Pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
		WHERE tablename = 'measurements' AND indexname <> 'measurements_pkey'`)
	if err != nil {
		b.Fatal(err)
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			b.Fatal(err)
		}
		names, defs = append(names, name), append(defs, def)
	}
	rows.Close()
	for _, name := range names {
		exec("DROP INDEX " + name)
	}
	t0 := time.Now()
	exec(`INSERT INTO measurements (started_at, ended_at, elapsed, name, method, kwargs, context, app)
		SELECT g.s, g.s + make_interval(secs => g.e), g.e, '/api/r' || (g.i % 50) || '/<id>',
		       (ARRAY['GET','GET','GET','POST','PUT','DELETE'])[1 + (g.i * 7919) % 6],
		       jsonb_build_object('id', (g.i % 100000)::text),
		       jsonb_build_object('url', 'http://shop.local/api/r' || (g.i % 50) || '/' || (g.i % 100000), 'ip', '10.0.0.7'),
		       (ARRAY['shop','shop','billing','telemetry'])[1 + (g.i * 31) % 4]
		FROM (SELECT i, now() - make_interval(secs => $3 + (i::float8 / $1) * $2 * 86400) AS s,
		             -ln(1 - random()) * 0.05 AS e
		      FROM generate_series(1, $1::bigint) AS i) AS g`, n, days, age.Seconds())
	for _, def := range defs {
		exec(def)
	}
	exec("VACUUM ANALYZE measurements")
	b.Logf("stored %d measurements in %s", n, time.Since(t0).Round(time.Second))
}

// percentile99 of the latencies (sorted in place).
func percentile99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)*99/100]
}

// writeLoad runs PUT /mrd and POST /api/measurements (10 records a
// request) from `clients` goroutines each until stop is closed, and returns
// each kind's latencies and errors.
func writeLoad(b *testing.B, s *testServer, clients int, stop <-chan struct{}) (put, post []time.Duration, errs int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * clients}}
	token := "Bearer " + validToken(b)
	var mu sync.Mutex
	var wg sync.WaitGroup
	do := func(method, url string, body []byte, auth bool) (time.Duration, bool) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth {
			req.Header.Set("Authorization", token)
		}
		t0 := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return time.Since(t0), false
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return time.Since(t0), res.StatusCode < 300
	}
	for c := 0; c < clients; c++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("%s/mrd/bench%02d/metrics", s.URL, c)
			body := []byte(`{"name":"cpu.load","value":42,"units":"percent","type":"int32","slope":"both","ttl":60}`)
			var lat []time.Duration
			bad := 0
			for {
				select {
				case <-stop:
					mu.Lock()
					put, errs = append(put, lat...), errs+bad
					mu.Unlock()
					return
				default:
				}
				d, ok := do(http.MethodPut, url, body, true)
				lat = append(lat, d)
				if !ok {
					bad++
				}
			}
		}()
		go func() {
			defer wg.Done()
			var recs []string
			for i := 0; i < 10; i++ {
				now := float64(time.Now().UnixMicro()) / 1e6
				recs = append(recs, fmt.Sprintf(`{"name":"/bench/%d","method":"GET","startedAt":%.6f,"endedAt":%.6f,"elapsed":0.01,"args":[],"kwargs":{},"context":{}}`, i, now, now+0.01))
			}
			body := []byte("[" + strings.Join(recs, ",") + "]")
			var lat []time.Duration
			bad := 0
			for {
				select {
				case <-stop:
					mu.Lock()
					post, errs = append(post, lat...), errs+bad
					mu.Unlock()
					return
				default:
				}
				d, ok := do(http.MethodPost, s.URL+"/api/measurements", body, false)
				lat = append(lat, d)
				if !ok {
					bad++
				}
			}
		}()
	}
	wg.Wait()
	return put, post, errs
}

// BenchmarkMaintenancePass10M: one pass expiring 10 M measurement rows on
// plain PostgreSQL, its duration, and the p99 of PUT /mrd and POST
// /api/measurements while it runs against the same load without it (the
// target is at most 2x). Run with TESTDB_DURABLE=1 (fsync on), as make
// bench does.
func BenchmarkMaintenancePass10M(b *testing.B) {
	n := lifecycleBench(b, "BenchmarkMaintenancePass10M")
	s := newTestServer(b, func(c *config.Config) { c.JWTSecret = testSecret })
	ctx := context.Background()
	const clients = 4
	for c := 0; c < clients; c++ {
		if _, err := s.Pool.Exec(ctx, `INSERT INTO devices (id, name) VALUES ($1, $1)`, fmt.Sprintf("bench%02d", c)); err != nil {
			b.Fatal(err)
		}
	}
	var ts bool
	if err := s.Pool.QueryRow(ctx, `SELECT telemetry_timescaledb_enabled()`).Scan(&ts); err != nil {
		b.Fatal(err)
	}
	if ts {
		b.Skip("SKIPPED: measures batched deletes on plain PostgreSQL; this server has TimescaleDB (whole chunks are dropped)")
	}
	// 10 M rows over the 20 days before the 30-day retention: all expire.
	fillAgedMeasurements(b, s, n, 31*24*time.Hour, 20)
	st := postgres.New(s.Pool, postgres.Options{})
	retention := store.Retention{Measurements: 30 * 24 * time.Hour}

	const baseline = 20 * time.Second
	for i := 0; i < b.N; i++ {
		stop := make(chan struct{})
		time.AfterFunc(baseline, func() { close(stop) })
		basePut, basePost, baseErrs := writeLoad(b, s, clients, stop)

		stop = make(chan struct{})
		var res store.MaintenanceResult
		var passErr error
		var took time.Duration
		go func() {
			t0 := time.Now()
			res, passErr = st.Lifecycle.Maintain(ctx, retention, time.Now())
			took = time.Since(t0)
			close(stop)
		}()
		put, post, errs := writeLoad(b, s, clients, stop)
		if passErr != nil {
			b.Fatal(passErr)
		}
		var removed int64
		for _, w := range res.Tables {
			removed += w.Rows
		}
		pb, pp, ob, op := percentile99(basePut), percentile99(put), percentile99(basePost), percentile99(post)
		b.Logf("pass: %d rows in %s; PUT /mrd p99 %s -> %s (%d -> %d requests); POST /api/measurements p99 %s -> %s (%d -> %d); errors %d / %d",
			removed, took.Round(time.Millisecond), pb, pp, len(basePut), len(put), ob, op, len(basePost), len(post), baseErrs, errs)
		b.ReportMetric(took.Seconds(), "pass_s")
		b.ReportMetric(float64(removed), "rows_removed")
		b.ReportMetric(float64(removed)/took.Seconds(), "rows_removed/s")
		b.ReportMetric(float64(pb.Microseconds())/1000, "put_mrd_p99_base_ms")
		b.ReportMetric(float64(pp.Microseconds())/1000, "put_mrd_p99_pass_ms")
		b.ReportMetric(float64(ob.Microseconds())/1000, "post_measurements_p99_base_ms")
		b.ReportMetric(float64(op.Microseconds())/1000, "post_measurements_p99_pass_ms")
		b.ReportMetric(float64(pp)/float64(pb), "put_mrd_p99_ratio")
		b.ReportMetric(float64(op)/float64(ob), "post_measurements_p99_ratio")
		b.ReportMetric(float64(baseErrs+errs), "errors")
	}
}

// BenchmarkCompressionStorage10M: on TimescaleDB, the size of 10 M
// measurements and 10 M device metric rows before and after the pass
// compresses their chunks (all older than COMPRESS_AFTER).
func BenchmarkCompressionStorage10M(b *testing.B) {
	n := lifecycleBench(b, "BenchmarkCompressionStorage10M")
	s := newTestServer(b)
	ctx := context.Background()
	var ts bool
	if err := s.Pool.QueryRow(ctx, `SELECT telemetry_timescaledb_enabled()`).Scan(&ts); err != nil {
		b.Fatal(err)
	}
	if !ts {
		b.Skip("SKIPPED: this PostgreSQL server has no TimescaleDB (extension not available or not preloaded): compression is TimescaleDB only")
	}
	fillAgedMeasurements(b, s, n, 8*24*time.Hour, 20)
	// 100 devices x 20 metrics, one report each every ~17 s over 20 days
	// ending 8 days ago: the shape PUT /mrd produces.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO devices (id, name) SELECT 'dev' || d, 'dev' || d FROM generate_series(0, 99) d`); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool.Exec(ctx, `
		INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
		SELECT now() - interval '8 days' - make_interval(secs => (i::float8 / $1) * 20 * 86400),
		       'dev' || (i % 100), 'metric.' || ((i / 100) % 20), 'double', 40 + 10 * sin(i / 1000.0) + random(),
		       'C', 'both', 60
		FROM generate_series(1, $1::bigint) AS i`, n); err != nil {
		b.Fatal(err)
	}
	size := func(table string) float64 {
		var bytes int64
		if err := s.Pool.QueryRow(ctx, `SELECT hypertable_size($1::text::regclass)`, table).Scan(&bytes); err != nil {
			b.Fatal(err)
		}
		return float64(bytes) / (1 << 20)
	}
	st := postgres.New(s.Pool, postgres.Options{})
	for i := 0; i < b.N; i++ {
		mBefore, dBefore := size("measurements"), size("device_metrics")
		t0 := time.Now()
		res, err := st.Lifecycle.Maintain(ctx, store.Retention{CompressAfter: 7 * 24 * time.Hour}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		mAfter, dAfter := size("measurements"), size("device_metrics")
		b.Logf("compression pass in %s: %+v; measurements %.0f -> %.0f MiB, device_metrics %.0f -> %.0f MiB",
			took.Round(time.Second), res.Tables, mBefore, mAfter, dBefore, dAfter)
		b.ReportMetric(mBefore, "measurements_MiB_before")
		b.ReportMetric(mAfter, "measurements_MiB_after")
		b.ReportMetric(dBefore, "device_metrics_MiB_before")
		b.ReportMetric(dAfter, "device_metrics_MiB_after")
		b.ReportMetric(took.Seconds(), "compress_pass_s")
	}
}
