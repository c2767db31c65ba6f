package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The device metrics API (/mrd) at volume: a database as months of
// unattended service leave it, many devices and the whole retention window
// of history, generated with SQL straight into the tables in the shape the
// API writes (loadDeviceScale), then every read endpoint through the real
// API (BenchmarkDevicesReads10M) and the report's latency on it against an
// empty table (BenchmarkDevicesWrites10M). Both load 10 M rows, so they run
// only when -bench names them or BIG_BENCH=1 (bigBenchSelected), as the
// other 10 M benchmarks; DEVICES_BENCH_ROWS sets the row count of a quicker
// run. docs/devices.md, "At volume", has the figures.

// deviceScaleMetrics are the metrics every device of the grid reports: nine
// numeric ones and a string. scale bounds the values.
var deviceScaleMetrics = []struct {
	name, typ, units, slope string
	scale                   float64
}{
	{"ct.cpu.load", "float", "percent", "both", 100},
	{"ct.mem.used", "uint32", "MB", "both", 65536},
	{"ct.temp.cpu", "int32", "degrees C", "both", 90},
	{"ct.temp.inlet", "int16", "degrees C", "both", 40},
	{"ct.power", "double", "W", "both", 800},
	{"ct.fan1", "uint16", "rpm", "both", 12000},
	{"ct.net.rx", "double", "bytes/s", "positive", 1e9},
	{"ct.net.tx", "double", "bytes/s", "positive", 1e9},
	{"ct.disk.used", "float", "percent", "positive", 100},
	{"ct.state", "string", "state", "zero", 0},
}

const (
	// deviceScaleDevices devices of the grid, node0000 .. node1999.
	deviceScaleDevices = 2000
	// deviceScaleRetention is DEVICE_METRICS_RETENTION's default
	// (docs/lifecycle.md): what the service keeps of the history.
	deviceScaleRetention = 90 * 24 * time.Hour
	// deviceScaleHot is the device that reports its metrics every minute.
	deviceScaleHot = "hot01"
)

// deviceScale is what loadDeviceScale stored.
type deviceScale struct {
	rows      int64         // device_metrics rows
	end       time.Time     // the newest report (less each device's phase)
	steps     int           // reports per series of the grid
	interval  time.Duration // between two reports of a grid series
	hotPoints int           // reports per series of deviceScaleHot (one a minute)
}

// deviceScaleRows is the size of the history (DEVICES_BENCH_ROWS, default
// 10 M), without the hot device's rows (an eighth more).
func deviceScaleRows(b *testing.B) int {
	if v := os.Getenv("DEVICES_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2*deviceScaleDevices*len(deviceScaleMetrics) {
			b.Fatalf("DEVICES_BENCH_ROWS=%q: a number, at least %d", v, 2*deviceScaleDevices*len(deviceScaleMetrics))
		}
		return n
	}
	return 10_000_000
}

// deviceScaleMetricsSQL is deviceScaleMetrics as a VALUES list m.
func deviceScaleMetricsSQL() string {
	var rows []string
	for _, m := range deviceScaleMetrics {
		rows = append(rows, fmt.Sprintf("('%s', '%s', '%s', '%s', %g::float8)", m.name, m.typ, m.units, m.slope, m.scale))
	}
	return "(VALUES " + strings.Join(rows, ", ") + ") AS m (name, type, units, slope, scale)"
}

// deviceScaleRowSQL selects the reports of the grid's steps [$3, $4) (step
// k at $1 - k * $2 seconds, less the device's phase: devices do not report
// in step) of $5 devices, and of the hot device's minutes [$6, $7) (minute
// j at $1 - j minutes - 7 s), with their values, as the API stores them: a
// value in value_num or value_text by type. A tenth of the grid's devices
// report with a TTL of 60 s, so their latest reports are stale by the time
// they are read (they stay in device_metrics_latest: docs/lifecycle.md);
// the others with a day's.
func deviceScaleRowSQL() string {
	value := `CASE WHEN m.type = 'string' THEN NULL
	               WHEN m.type IN ('float', 'double') THEN round((random() * m.scale)::numeric, 2)::float8
	               ELSE floor(random() * m.scale) END`
	text := `CASE WHEN m.type = 'string' THEN (ARRAY['ok', 'ok', 'ok', 'degraded'])[1 + floor(random() * 4)::int] END`
	return `SELECT $1::timestamptz - (k * $2::float8 + (d * 37) % 3600) * interval '1 second' AS time,
	               'node' || lpad(d::text, 4, '0') AS device_id, m.name, m.type, ` + value + ` AS value_num, ` + text + ` AS value_text,
	               m.units, m.slope, CASE WHEN d % 10 = 9 THEN 60 ELSE 86400 END AS ttl
	        FROM generate_series($3::int, $4::int - 1) AS k, generate_series(0, $5::int - 1) AS d, ` + deviceScaleMetricsSQL() + `
	        UNION ALL
	        SELECT $1::timestamptz - j * interval '1 minute' - interval '7 seconds', '` + deviceScaleHot + `', m.name, m.type,
	               ` + value + `, ` + text + `, m.units, m.slope, 86400
	        FROM generate_series($6::int, $7::int - 1) AS j, ` + deviceScaleMetricsSQL()
}

// loadDeviceScale fills the database at url as the API would have after
// months of service: deviceScaleDevices devices reporting the ten metrics
// of deviceScaleMetrics over DEVICE_METRICS_RETENTION's default window
// (rows reports in all, evenly spread: about one every 4.3 hours per
// series at 10 M rows), and deviceScaleHot reporting its ten every minute
// (rows/80 minutes each, 125,000 at 10 M: 86.8 days), in time order, as
// the reports arrive, so that a series' rows lie among every other's.
//
// The history but the last report of each series is inserted straight
// into device_metrics (with its indexes and foreign key in place, as the
// reports built them); the last reports go through
// telemetry_insert_device_metrics, the statement the API writes with,
// which fills device_metrics_latest as the API does. Then VACUUM ANALYZE,
// what autovacuum has done to a table months old (its pages all visible,
// so the history reads are index-only scans as docs/devices.md says).
func loadDeviceScale(b *testing.B, pool *pgxpool.Pool, rows int) deviceScale {
	b.Helper()
	ctx := context.Background()
	series := deviceScaleDevices * len(deviceScaleMetrics)
	sc := deviceScale{steps: rows / series, end: time.Now().UTC().Truncate(time.Second)}
	sc.interval = deviceScaleRetention / time.Duration(sc.steps)
	sc.hotPoints = min(int(deviceScaleRetention/time.Minute), rows/80)
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%v\n%s", err, sql)
		}
	}
	t0 := time.Now()
	exec(`INSERT INTO devices (id, name, created_at, updated_at)
		SELECT 'node' || lpad(d::text, 4, '0'), 'Compute node ' || d, $1::timestamptz - interval '200 days' + d * interval '1 minute',
		       $1::timestamptz - interval '200 days' + d * interval '1 minute'
		FROM generate_series(0, $2::int - 1) AS d
		UNION ALL SELECT $3, 'Busy node', $1::timestamptz - interval '200 days', $1::timestamptz - interval '200 days'`,
		sc.end, deviceScaleDevices, deviceScaleHot)
	// Oldest first, in chunks of the timeline (about 20), each in time
	// order.
	insert := `INSERT INTO device_metrics (time, device_id, name, type, value_num, value_text, units, slope, ttl)
		SELECT * FROM (` + deviceScaleRowSQL() + `) AS r ORDER BY time`
	exec(`SELECT setseed(0.5)`)
	chunk := max(1, sc.steps/20)
	hotMinute := func(k int) int { return int(time.Duration(k) * sc.interval / time.Minute) }
	for kHi := sc.steps; kHi > 1; kHi -= chunk {
		kLo := max(1, kHi-chunk)
		jLo, jHi := hotMinute(kLo), hotMinute(kHi)
		if kLo == 1 {
			jLo = 1
		}
		if kHi == sc.steps {
			jHi = sc.hotPoints
		}
		jLo, jHi = min(jLo, sc.hotPoints), min(jHi, sc.hotPoints)
		exec(insert, sc.end, sc.interval.Seconds(), kLo, kHi, deviceScaleDevices, jLo, max(jLo, jHi))
	}
	// The last report of every series, through the API's statement.
	exec(`SELECT count(*)
		FROM (SELECT array_agg(time) AS t, array_agg(device_id) AS d, array_agg(name) AS n, array_agg(type) AS ty,
		             array_agg(value_num) AS vn, array_agg(value_text) AS vt, array_agg(units) AS u, array_agg(slope) AS s,
		             array_agg(ttl) AS tt
		      FROM (`+deviceScaleRowSQL()+`) AS r) AS a,
		     telemetry_insert_device_metrics(a.t, a.d, a.n, a.ty, a.vn, a.vt, a.u, a.s, a.tt)`,
		sc.end, sc.interval.Seconds(), 0, 1, deviceScaleDevices, 0, 1)
	loaded := time.Since(t0)
	t0 = time.Now()
	for _, t := range []string{"devices", "device_metrics", "device_metrics_latest"} {
		exec("VACUUM ANALYZE " + t)
	}
	var notVisible, pages int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(relpages - relallvisible), 0), coalesce(sum(relpages), 0) FROM pg_class
		WHERE oid = 'device_metrics'::regclass OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'device_metrics'::regclass)`).
		Scan(&notVisible, &pages); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM device_metrics`).Scan(&sc.rows); err != nil {
		b.Fatal(err)
	}
	var sizes string
	if err := pool.QueryRow(ctx, `SELECT string_agg(c.relname || ' ' || pg_size_pretty(pg_relation_size(c.oid)), ', ' ORDER BY c.relname)
		FROM pg_class c WHERE c.relname LIKE 'device%' AND c.relkind IN ('r', 'i')`).Scan(&sizes); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("loaded %d device_metrics rows (%d devices x %d metrics x %d reports every %v, and %s's %d a minute) in %v, "+
		"VACUUM ANALYZE %v (%d of %d heap pages not all visible); %s\n",
		sc.rows, deviceScaleDevices, len(deviceScaleMetrics), sc.steps, sc.interval.Round(time.Second), deviceScaleHot,
		sc.hotPoints, loaded.Round(time.Second), time.Since(t0).Round(time.Second), notVisible, pages, sizes)
	return sc
}

// deviceScaleServer is the API as serve builds it (pool of 16, the default
// exec mode) on the database at dbURL, its pool traced by tr when not nil.
func deviceScaleServer(b *testing.B, dbURL string, tr pgx.QueryTracer, prom *metrics.Metrics) *httptest.Server {
	b.Helper()
	pc, err := pgxpool.ParseConfig(dbURL + "&pool_max_conns=16&default_query_exec_mode=" + postgres.DefaultExecMode)
	if err != nil {
		b.Fatal(err)
	}
	if tr != nil {
		pc.ConnConfig.Tracer = tr
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	st := postgres.New(pool, postgres.Options{
		DeviceWriters:  cfg.DeviceMetricsWriters,
		DeviceMaxBatch: cfg.DeviceMetricsBatch,
		ObserveBatch: func(resource string, n int) {
			prom.BatchItems.WithLabelValues(resource).Observe(float64(n))
		},
	})
	h, _ := New(Deps{Store: st.Stores(), Config: cfg, Metrics: prom})
	srv := httptest.NewServer(h)
	b.Cleanup(func() {
		srv.Close()
		st.Devices.Close()
		pool.Close()
	})
	return srv
}

// planFigures are what EXPLAIN (ANALYZE, BUFFERS) says of a statement.
type planFigures struct {
	ms       float64 // execution time
	rowsRead float64 // rows the scans visited (returned or filtered out), over their loops
	rowsOut  float64 // rows the statement answered
	buffers  float64 // shared buffers hit and read
	text     string
}

// explainStmt runs EXPLAIN (ANALYZE, BUFFERS) of a recorded statement, in
// JSON for the figures and in text to print; then, when the statement
// calls a function (telemetry_device_metric_buckets), the plans of the
// statements the function ran (nestedPlans), whose rows count among those
// read.
func explainStmt(b *testing.B, pool *pgxpool.Pool, nested *planLogger, s recordedStmt) planFigures {
	b.Helper()
	ctx := context.Background()
	var raw []byte
	if err := pool.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+s.sql, s.args...).Scan(&raw); err != nil {
		b.Fatalf("%v: %s", err, s.sql)
	}
	var doc []struct {
		Plan          map[string]any `json:"Plan"`
		ExecutionTime float64        `json:"Execution Time"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) == 0 {
		b.Fatalf("EXPLAIN JSON: %v: %s", err, raw)
	}
	f := planFigures{ms: doc[0].ExecutionTime, rowsRead: rowsRead(doc[0].Plan)}
	f.rowsOut = planNumber(doc[0].Plan, "Actual Rows") * planNumber(doc[0].Plan, "Actual Loops")
	// The top node's buffers count those of the functions it called too.
	f.buffers = planNumber(doc[0].Plan, "Shared Hit Blocks") + planNumber(doc[0].Plan, "Shared Read Blocks")
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+s.sql, s.args...)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	f.text = strings.Join(lines, "\n")
	if strings.Contains(s.sql, "telemetry_device_metric_buckets(") {
		for _, msg := range nested.nestedPlans(b, s, "json") {
			var plan struct {
				Plan map[string]any `json:"Plan"`
			}
			if i := strings.Index(msg, "{"); i < 0 || json.Unmarshal([]byte(msg[i:]), &plan) != nil {
				b.Fatalf("auto_explain: %s", msg)
			}
			f.rowsRead += rowsRead(plan.Plan)
		}
		for _, msg := range nested.nestedPlans(b, s, "text") {
			f.text += "\n-- inside the function (auto_explain):\n" + msg
		}
	}
	return f
}

func planNumber(n map[string]any, k string) float64 { v, _ := n[k].(float64); return v }

// rowsRead is the number of rows the scans of a plan (EXPLAIN in JSON)
// visited: returned or filtered out, over their loops.
func rowsRead(n map[string]any) float64 {
	var read float64
	kind, _ := n["Node Type"].(string)
	if strings.HasSuffix(kind, "Scan") && kind != "Bitmap Index Scan" && kind != "Function Scan" &&
		kind != "Subquery Scan" && kind != "CTE Scan" && kind != "Values Scan" {
		read += (planNumber(n, "Actual Rows") + planNumber(n, "Rows Removed by Filter") +
			planNumber(n, "Rows Removed by Index Recheck")) * planNumber(n, "Actual Loops")
	}
	if kids, ok := n["Plans"].([]any); ok {
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				read += rowsRead(m)
			}
		}
	}
	return read
}

// planLogger is a connection whose session sends the plan of every
// statement it runs, those inside functions included, as a NOTICE
// (auto_explain, with actual rows and buffers).
type planLogger struct {
	conn    *pgx.Conn
	mu      sync.Mutex
	notices []string
}

func newPlanLogger(b *testing.B, dbURL string) *planLogger {
	b.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	pl := &planLogger{}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		pl.mu.Lock()
		pl.notices = append(pl.notices, n.Message)
		pl.mu.Unlock()
	}
	if pl.conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pl.conn.Close(ctx) })
	for _, set := range []string{"LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
		"SET auto_explain.log_nested_statements = on", "SET auto_explain.log_analyze = on",
		"SET auto_explain.log_buffers = on", "SET auto_explain.log_level = notice", "SET client_min_messages = notice"} {
		if _, err := pl.conn.Exec(ctx, set); err != nil {
			b.Fatal(err)
		}
	}
	return pl
}

// nestedPlans runs s and answers the plans, in format (json or text), of
// the statements it ran inside functions: every plan but the last, which
// is the statement's own (auto_explain logs a statement as it ends).
func (pl *planLogger) nestedPlans(b *testing.B, s recordedStmt, format string) []string {
	b.Helper()
	ctx := context.Background()
	if _, err := pl.conn.Exec(ctx, "SET auto_explain.log_format = "+format); err != nil {
		b.Fatal(err)
	}
	pl.mu.Lock()
	pl.notices = nil
	pl.mu.Unlock()
	rows, err := pl.conn.Query(ctx, s.sql, s.args...)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
	}
	if rows.Close(); rows.Err() != nil {
		b.Fatal(rows.Err())
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.notices) < 2 {
		b.Fatalf("auto_explain sent %d plans for a statement that calls a function", len(pl.notices))
	}
	return slices.Clone(pl.notices[:len(pl.notices)-1])
}

// resetPeakRSS starts a new peak of the process's resident set (VmHWM).
func resetPeakRSS() {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// BenchmarkDevicesReads10M measures every read endpoint of /mrd on a
// database loaded by loadDeviceScale (10 M rows of history), through the
// API as serve builds it, with 4 concurrent clients for
// DEVICES_BENCH_SECONDS (5) each (exports: one client), each request on a
// device and metric drawn at random: p50, p99, and the process's peak
// resident memory during the figure (server and client: the server runs
// in this process; VmHWM, reset before each figure), and the CPU time per
// request of this process and of PostgreSQL. Then it records the
// statements one request of each figure sent and prints EXPLAIN (ANALYZE,
// BUFFERS) of each, with the rows its scans read. DEVICES_BENCH_ONLY=a,b
// runs the figures whose names start with one of those.
func BenchmarkDevicesReads10M(b *testing.B) {
	bigBenchSelected(b)
	ctx := context.Background()
	dbURL := testdb.URL(b)
	loader, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer loader.Close()
	sc := loadDeviceScale(b, loader, deviceScaleRows(b))
	b.ReportMetric(float64(sc.rows), "rows")
	perFigure := 5 * time.Second
	if v, err := strconv.Atoi(os.Getenv("DEVICES_BENCH_SECONDS")); err == nil && v > 0 {
		perFigure = time.Duration(v) * time.Second
	}

	// The API's pool traced: only the device statements are kept.
	tr := &stmtRecorder{skip: func(sql string) bool { return !strings.Contains(sql, "device") }}
	srv := deviceScaleServer(b, dbURL, tr, metrics.New())
	nested := newPlanLogger(b, dbURL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	// get answers the status and the body, or only its size for an
	// export (discarded as read: the peak resident memory is then the
	// server's, not a client's copy of the export).
	get := func(path, accept string) (int, []byte, int64, error) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return 0, nil, 0, err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, 0, err
		}
		defer res.Body.Close()
		if accept != "" && res.StatusCode == http.StatusOK {
			lc := &lineCounter{}
			_, err := io.Copy(lc, res.Body)
			return res.StatusCode, nil, lc.bytes, err
		}
		body, err := io.ReadAll(res.Body)
		return res.StatusCode, body, int64(len(body)), err
	}
	pageTotal := func(path string) int64 {
		status, body, _, err := get(path, "")
		if err != nil || status != http.StatusOK {
			b.Fatalf("GET %s: %d %v %s", path, status, err, body)
		}
		var p struct{ Total int64 }
		if err := json.Unmarshal(body, &p); err != nil {
			b.Fatal(err)
		}
		return p.Total
	}

	// Requests pick a device and a metric at random.
	grid := func(rng *rand.Rand) string { return fmt.Sprintf("node%04d", rng.IntN(deviceScaleDevices)) }
	numeric := func(rng *rand.Rand) string { return deviceScaleMetrics[rng.IntN(len(deviceScaleMetrics)-1)].name }
	since := func(span time.Duration) string {
		return url.QueryEscape(time.Now().Add(-span).UTC().Format(time.RFC3339))
	}
	const day = 24 * time.Hour
	retention := deviceScaleRetention
	hotHistory := "/mrd/devices/" + deviceScaleHot + "/metrics/ct.cpu.load/history?size=100&from=" + since(retention)
	hotPages := (pageTotal(hotHistory) + 99) / 100
	devicePages := int64(deviceScaleDevices+1+49) / 50

	type figure struct {
		name    string
		path    func(rng *rand.Rand) string
		accept  string // an export's
		clients int
	}
	hist := func(dev func(*rand.Rand) string, span time.Duration, query string) func(*rand.Rand) string {
		return func(rng *rand.Rand) string {
			p := fmt.Sprintf("/mrd/devices/%s/metrics/%s/history?", dev(rng), numeric(rng))
			if span > 0 {
				p += "from=" + since(span) + "&"
			}
			return p + query
		}
	}
	hot := func(*rand.Rand) string { return deviceScaleHot }
	fixed := func(p string) func(*rand.Rand) string { return func(*rand.Rand) string { return p } }
	figures := []figure{
		{name: "devices_first", path: fixed("/mrd/devices")},
		{name: "devices_first_size100", path: fixed("/mrd/devices?size=100")},
		{name: "devices_deep", path: func(rng *rand.Rand) string {
			return fmt.Sprintf("/mrd/devices?page=%d", devicePages/2+rng.Int64N(devicePages/2+1))
		}},
		{name: "devices_past_end", path: fixed(fmt.Sprintf("/mrd/devices?page=%d", devicePages+10))},
		{name: "device_get", path: func(rng *rand.Rand) string { return "/mrd/devices/" + grid(rng) }},
		{name: "device_metrics", path: func(rng *rand.Rand) string { return "/mrd/devices/" + grid(rng) + "/metrics" }},
		{name: "current_names", path: fixed("/mrd/metrics/current")},
		{name: "current_names_past_end", path: fixed("/mrd/metrics/current?page=3")},
		// A grid series: one report every few hours.
		{name: "grid_raw_1h", path: hist(grid, time.Hour, "")},
		{name: "grid_raw_24h", path: hist(grid, 0, "")}, // the default window
		{name: "grid_raw_7d", path: hist(grid, 7*day, "")},
		{name: "grid_raw_90d", path: hist(grid, retention, "")},
		{name: "grid_bucket_24h_1h", path: hist(grid, 0, "bucket=1h")},
		{name: "grid_bucket_90d_1d", path: hist(grid, retention, "bucket=24h")},
		// The hot series: one report a minute.
		{name: "hot_raw_1h", path: hist(hot, time.Hour, "")},
		{name: "hot_raw_24h", path: hist(hot, 0, "")},
		{name: "hot_raw_7d", path: hist(hot, 7*day, "")},
		{name: "hot_raw_90d", path: hist(hot, retention, "")},
		{name: "hot_raw_90d_size100", path: hist(hot, retention, "size=100")},
		{name: "hot_raw_90d_deep", path: func(rng *rand.Rand) string {
			return hist(hot, retention, fmt.Sprintf("size=100&page=%d", hotPages/2+rng.Int64N(hotPages/2+1)))(rng)
		}},
		{name: "hot_raw_all_time", path: func(rng *rand.Rand) string {
			return fmt.Sprintf("/mrd/devices/%s/metrics/%s/history?from=2000-01-01T00:00:00Z", deviceScaleHot, numeric(rng))
		}},
		{name: "hot_bucket_1h_1m", path: hist(hot, time.Hour, "bucket=1m")},
		{name: "hot_bucket_24h_5m", path: hist(hot, 0, "bucket=5m")},
		{name: "hot_bucket_7d_1h", path: hist(hot, 7*day, "bucket=1h")},
		{name: "hot_bucket_90d_1d", path: hist(hot, retention, "bucket=24h")},
		{name: "hot_bucket_90d_1h", path: hist(hot, retention, "bucket=1h")},
		{name: "hot_bucket_90d_1m", path: hist(hot, retention, "bucket=1m")},
		{name: "hot_bucket_90d_1m_deep", path: func(rng *rand.Rand) string {
			return hist(hot, retention, fmt.Sprintf("bucket=1m&size=100&page=%d", hotPages/2+rng.Int64N(hotPages/2+1)))(rng)
		}},
		// Exports (Accept: text/csv): every item, no page.
		{name: "export_devices", path: fixed("/mrd/devices"), accept: "text/csv", clients: 1},
		{name: "export_device_metrics", path: func(rng *rand.Rand) string { return "/mrd/devices/" + grid(rng) + "/metrics" },
			accept: "text/csv", clients: 1},
		{name: "export_current_names", path: fixed("/mrd/metrics/current"), accept: "text/csv", clients: 1},
		{name: "export_hot_raw_90d", path: hist(hot, retention, ""), accept: "text/csv", clients: 1},
		{name: "export_hot_bucket_90d_1m", path: hist(hot, retention, "bucket=1m"), accept: "text/csv", clients: 1},
		{name: "export_hot_raw_90d_ndjson", path: hist(hot, retention, ""), accept: "application/x-ndjson", clients: 1},
	}
	var only []string
	if v := os.Getenv("DEVICES_BENCH_ONLY"); v != "" {
		only = strings.Split(v, ",")
	}

	fmt.Printf("%-28s %9s %9s %9s %8s %8s %9s %9s  %s\n", "figure", "req/s", "p50 ms", "p99 ms", "RSS MB", "peak MB",
		"go cpu ms", "pg cpu ms", "statements: ms, rows read, rows out, buffers")
	var plans []string
	for _, f := range figures {
		if only != nil && !func() bool {
			for _, o := range only {
				if strings.HasPrefix(f.name, o) {
					return true
				}
			}
			return false
		}() {
			continue
		}
		clients := 4
		if f.clients > 0 {
			clients = f.clients
		}
		rngs := make([]*rand.Rand, clients)
		for i := range rngs {
			rngs[i] = rand.New(rand.NewPCG(uint64(i), 11))
		}
		op := func(_ context.Context, c int) error {
			status, body, _, err := get(f.path(rngs[c]), f.accept)
			if err != nil {
				return err
			}
			if status != http.StatusOK {
				return fmt.Errorf("status %d: %s", status, body)
			}
			return nil
		}
		// Warm, then measure.
		if err := op(ctx, 0); err != nil {
			b.Fatalf("%s: %v", f.name, err)
		}
		resetPeakRSS()
		rss0 := residentKB(os.Getpid())
		cpu0 := readCPU(b, loader)
		st := runLoad(clients, perFigure, 1_000_000, op)
		cpu1 := readCPU(b, loader)
		peak := vmHWM(b)
		report(b, f.name, st)
		b.ReportMetric(float64(peak)/1024, f.name+"_peak_rss_MB")
		// CPU per request (this process: server and client; PostgreSQL):
		// steadier than latency on a machine shared with other work.
		perReq := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(max(1, st.Requests)) }
		b.ReportMetric(perReq(cpu1.PG-cpu0.PG), f.name+"_pg_cpu_ms")
		if st.Errors > 0 {
			b.Errorf("%s: %d errors", f.name, st.Errors)
		}

		// One request alone, its statements explained.
		rng := rand.New(rand.NewPCG(99, 99))
		path := f.path(rng)
		var sent []byte
		var size int64
		stmts := tr.record(func() {
			status, body, n, err := get(path, f.accept)
			if err != nil || status != http.StatusOK {
				b.Fatalf("%s: %d %v", path, status, err)
			}
			sent, size = body, n
		})
		var figs []string
		var read float64
		for i, s := range stmts {
			pf := explainStmt(b, loader, nested, s)
			read += pf.rowsRead
			figs = append(figs, fmt.Sprintf("%.1f ms, %.0f read, %.0f out, %.0f buf", pf.ms, pf.rowsRead, pf.rowsOut, pf.buffers))
			plans = append(plans, fmt.Sprintf("== %s (%s) statement %d:\n%s\n%s\n", f.name, path, i+1, oneLine(s.sql), pf.text))
		}
		b.ReportMetric(read, f.name+"_rows_read")
		answer := fmt.Sprintf("%d bytes", size)
		if f.accept == "" {
			var p struct {
				Items []json.RawMessage
				Total int64
			}
			if json.Unmarshal(sent, &p) == nil && p.Items != nil { // a page
				answer = fmt.Sprintf("%d items of %d", len(p.Items), p.Total)
			}
		}
		fmt.Printf("%-28s %9.0f %9.2f %9.2f %8d %8d %9.2f %9.2f  %s [%s]\n", f.name, st.PerSecond(), float64(st.P50.Microseconds())/1000,
			float64(st.P99.Microseconds())/1000, rss0/1024, peak/1024, perReq(cpu1.Go-cpu0.Go), perReq(cpu1.PG-cpu0.PG),
			strings.Join(figs, "; "), answer)
	}
	// Printed, not logged: the test log cuts long benchmark output.
	fmt.Println(strings.Join(plans, "\n"))
}

// oneLine is a statement's text on one line, comments out.
func oneLine(sql string) string {
	var out []string
	for _, l := range strings.Split(sql, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			out = append(out, l)
		}
	}
	return strings.Join(out, " ")
}

// wrkScalePutScript makes wrk report metrics of series that exist: request
// i reports metric i / devices of device node(i % devices), over the nine
// numeric metrics of every grid device (18,000 series at 2,000 devices),
// so that consecutive reports touch different series as a fleet's do.
var wrkScalePutScript = `
local reqs, n, i = {}, 0, 0
local names = {` + func() string {
	var q []string
	for _, m := range deviceScaleMetrics[:len(deviceScaleMetrics)-1] {
		q = append(q, fmt.Sprintf("{%q, %q, %q, %q}", m.name, m.typ, m.units, m.slope))
	}
	return strings.Join(q, ", ")
}() + `}
function init(args)
  local devices, token = tonumber(args[1]), args[2]
  for j = 0, devices * #names - 1 do
    local m = names[math.floor(j / devices) + 1]
    local path = string.format("/mrd/node%04d/metrics", j % devices)
    local body = string.format('{"name":"%s","value":%d,"units":"%s","type":"%s","slope":"%s","ttl":86400}',
      m[1], j % 90, m[3], m[2], m[4])
    reqs[j + 1] = wrk.format("PUT", path, {["Authorization"] = token, ["Content-Type"] = "application/json"}, body)
  end
  n = #reqs
end

function request()
  i = i % n + 1
  return reqs[i]
end
` + wrkDone

// BenchmarkDevicesWrites10M: PUT /mrd/{id}/metrics, 64 connections for
// DEVICES_BENCH_SECONDS (5) through wrk, against a database loaded by
// loadDeviceScale (10 M rows) and one with the same devices and no
// metrics, alternating DEVICES_BENCH_ROUNDS (2) times, each round right
// after a CHECKPOINT. The reports go to the grid's existing series, every
// series in turn. Per figure: req/s, p50, p99, PostgreSQL CPU, WAL and
// full-page images per request (the whole cluster's, in which nothing else
// runs meanwhile), rows per commit.
func BenchmarkDevicesWrites10M(b *testing.B) {
	bigBenchSelected(b)
	wrk := wrkPath()
	if wrk == "" {
		b.Skip("needs wrk (Debian package wrk; make bench installs it)")
	}
	ctx := context.Background()
	perFigure := 5 * time.Second
	if v, err := strconv.Atoi(os.Getenv("DEVICES_BENCH_SECONDS")); err == nil && v > 0 {
		perFigure = time.Duration(v) * time.Second
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("DEVICES_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	type target struct {
		name string
		pool *pgxpool.Pool
		srv  *httptest.Server
		prom *metrics.Metrics
		runs []loadStats
	}
	var targets []*target
	for _, name := range []string{"empty", "10M"} {
		dbURL := testdb.URL(b)
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		if name == "empty" {
			if _, err := pool.Exec(ctx, `INSERT INTO devices (id, name) SELECT 'node' || lpad(d::text, 4, '0'), 'Compute node ' || d
				FROM generate_series(0, $1::int - 1) AS d`, deviceScaleDevices); err != nil {
				b.Fatal(err)
			}
		} else {
			loadDeviceScale(b, pool, deviceScaleRows(b))
		}
		prom := metrics.New()
		targets = append(targets, &target{name: name, pool: pool, srv: deviceScaleServer(b, dbURL, nil, prom), prom: prom})
	}
	token := "Bearer " + validToken(b)
	for _, t := range targets { // warm: connections, plans
		if _, _, err := runWrkScript(wrk, t.srv.URL, wrkScalePutScript, 64, time.Second, strconv.Itoa(deviceScaleDevices), token); err != nil {
			b.Fatal(err)
		}
	}
	// The cluster's WAL position and full-page images written so far.
	wal := func(pool *pgxpool.Pool) (bytes, fpi int64) {
		if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, wal_fpi FROM pg_stat_wal`).Scan(&bytes, &fpi); err != nil {
			b.Fatal(err)
		}
		return bytes, fpi
	}
	for r := range rounds {
		order := targets
		if r%2 == 1 {
			order = []*target{targets[1], targets[0]}
		}
		for _, t := range order {
			if _, err := t.pool.Exec(ctx, "CHECKPOINT"); err != nil {
				b.Fatal(err)
			}
			batches0, rows0 := batchStats(t.prom)
			cpu0 := readCPU(b, t.pool)
			wal0, fpi0 := wal(t.pool)
			st, _, err := runWrkScript(wrk, t.srv.URL, wrkScalePutScript, 64, perFigure, strconv.Itoa(deviceScaleDevices), token)
			if err != nil {
				b.Fatal(err)
			}
			cpu1 := readCPU(b, t.pool)
			wal1, fpi1 := wal(t.pool)
			batches1, rows1 := batchStats(t.prom)
			if st.Errors > 0 {
				b.Errorf("%s: %d errors", t.name, st.Errors)
			}
			t.runs = append(t.runs, st)
			fmt.Printf("round %d, %s: %.0f req/s, p50 %s, p99 %s, CPU per request go %s pg %s, WAL %.0f bytes and %.2f full-page images per request, %.1f rows per commit\n",
				r+1, t.name, st.PerSecond(), ms(st.P50), ms(st.P99), perOp(cpu1.Go-cpu0.Go, st), perOp(cpu1.PG-cpu0.PG, st),
				float64(wal1-wal0)/float64(max(1, st.Requests)), float64(fpi1-fpi0)/float64(max(1, st.Requests)),
				(rows1-rows0)/max(1, batches1-batches0))
		}
	}
	for _, t := range targets {
		var req int64
		var el time.Duration
		for _, s := range t.runs {
			req, el = req+s.Requests-s.Errors, el+s.Elapsed
		}
		b.ReportMetric(float64(req)/el.Seconds(), "put_"+t.name+"/s")
		b.ReportMetric(float64(pooledQuantile(t.runs, 50).Microseconds())/1000, "put_"+t.name+"_p50_ms")
		b.ReportMetric(float64(pooledQuantile(t.runs, 99).Microseconds())/1000, "put_"+t.name+"_p99_ms")
	}
}
