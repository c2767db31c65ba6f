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
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
// the same rows into an unindexed table of the same columns (no index, no
// constraint, no rollup: the ground PostgreSQL allows; same clients, same
// run), and into a table LIKE measurements INCLUDING ALL (its indexes and
// checks, no rollup, the rows in the API's started_at order: the ceiling of
// any API on this table; a table of its own, so that measurements grows with
// the API's rows alone, as before).
func BenchmarkMeasurementsIngest(b *testing.B) {
	s := newTestServer(b)
	if _, err := s.Pool.Exec(context.Background(),
		`CREATE TABLE measurements_copy_baseline (LIKE measurements INCLUDING DEFAULTS INCLUDING IDENTITY);
		 CREATE TABLE measurements_copy_indexed (LIKE measurements INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	const clients = 4
	rng := rand.New(rand.NewPCG(7, 7))
	for _, size := range []int{1000, 10000} {
		const distinct = 8 // distinct batches per size, reused round robin
		bodies := make([][]byte, distinct)
		rows := make([][][]any, distinct)
		for i := range bodies {
			in, recs := benchRecords(rng, size)
			bodies[i], _ = json.Marshal(in)
			// In started_at order, as the API copies them (copyRows): the
			// indexed copy is the ceiling of the API only with its order.
			slices.SortStableFunc(recs, func(a, b store.Measurement) int { return a.StartedAt.Compare(b.StartedAt) })
			rows[i] = make([][]any, size)
			for j, r := range recs {
				rows[i][j] = []any{r.StartedAt, r.EndedAt, r.Elapsed, r.Name, r.Method, r.Args, r.Kwargs, r.Context, r.App}
			}
		}
		cols := []string{"started_at", "ended_at", "elapsed", "name", "method", "args", "kwargs", "context", "app"}
		copyInto := func(table string) func(context.Context, int) error {
			return func(ctx context.Context, c int) error {
				_, err := s.Pool.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows[rand.IntN(distinct)]))
				return err
			}
		}
		copyOp, tableOp := copyInto("measurements_copy_baseline"), copyInto("measurements_copy_indexed")
		apiOp := func(ctx context.Context, c int) error {
			return benchPost(s.URL+"/api/measurements", bodies[rand.IntN(distinct)])
		}
		// Alternate short rounds of each, so that all see the same
		// background load (the machine is shared) and the same table size.
		var base, table, api loadStats
		for round := 0; round < 4; round++ {
			base = addStats(base, runLoad(clients, 2*time.Second, int64(100_000/size*4), copyOp))
			api = addStats(api, runLoad(clients, 2*time.Second, int64(100_000/size*4), apiOp))
			table = addStats(table, runLoad(clients, 2*time.Second, int64(100_000/size*4), tableOp))
		}
		name := fmt.Sprintf("batch%d", size)
		apiRate, baseRate := api.PerSecond()*float64(size), base.PerSecond()*float64(size)
		tableRate := table.PerSecond() * float64(size)
		b.ReportMetric(apiRate, name+"_api_records/s")
		b.ReportMetric(baseRate, name+"_copy_records/s")
		b.ReportMetric(apiRate/baseRate, name+"_api/copy_unindexed")
		b.ReportMetric(tableRate/baseRate, name+"_copy_table/copy_unindexed")
		b.ReportMetric(apiRate/tableRate, name+"_api/copy_table")
		b.ReportMetric(float64(api.P99.Microseconds())/1000, name+"_api_p99_ms")
		b.Logf("%s (%d clients, %d KiB bodies): API %s = %.0f records/s; pgx CopyFrom (unindexed) %s = %.0f records/s; ratio %.2f; "+
			"pgx CopyFrom into a copy of measurements %s = %.0f records/s (%.2f of unindexed; the API %.2f of it)",
			name, clients, len(bodies[0])/1024, api, apiRate, base, baseRate, apiRate/baseRate,
			table, tableRate, tableRate/baseRate, apiRate/tableRate)
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

// benchNow is the query benchmark's "now" (MEASUREMENTS_BENCH_NOW): by
// default the time it is called; set to a UTC clock time such as 00:10:30,
// the latest such instant before it. The rows end there, the units closed
// by then are sealed, and the window ends there too, the API's included
// (its paths then carry the window's bounds). Some windows cost more than
// others: one ending in the first 15 minutes after midnight UTC tiles its
// last day with quarters, hours and bins rather than one sealed day (the
// forty-fifth session's 00:10 run, docs/performance.md).
func benchNow(b *testing.B) (time.Time, bool) {
	v := os.Getenv("MEASUREMENTS_BENCH_NOW")
	now := time.Now().UTC()
	if v == "" {
		return now, false
	}
	clock, err := time.Parse(time.TimeOnly, v)
	if err != nil {
		b.Fatalf("MEASUREMENTS_BENCH_NOW=%q: want a UTC clock time such as 00:10:30", v)
	}
	y, m, d := now.Date()
	t := time.Date(y, m, d, clock.Hour(), clock.Minute(), clock.Second(), 0, time.UTC)
	if t.After(now) {
		t = t.AddDate(0, 0, -1)
	}
	return t, true
}

// generateMeasurements fills the table server-side: n rows evenly spread
// over the `days` days before now (the zero time: the real time), 50
// routes, 4 methods, 3 apps, exponential elapsed (mean 50 ms, a few long
// ones). The secondary indexes are dropped
// for the load and rebuilt after, then the rollup is rebuilt, the closed
// units sealed and the database vacuumed and analysed.
func generateMeasurements(b *testing.B, s *testServer, n, days int, now time.Time) {
	// The clock of the rollup's and the seals' steps: the real time, or
	// with a now given, that now (the seals are then those the sealing
	// pass would have made by then).
	clock := func() time.Time { return now }
	if now.IsZero() {
		now, clock = time.Now(), time.Now
	}
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
		FROM (SELECT i, $3::timestamptz - make_interval(secs => (i::float8 / $1) * $2 * 86400) AS s,
		             CASE WHEN i % 1000 = 0 THEN 5 + random() * 60 ELSE -ln(1 - random()) * 0.05 END AS e
		      FROM generate_series(1, $1::bigint) AS i) AS g`, n, days, now)
	load := time.Since(t0)
	t1 := time.Now()
	for _, def := range defs {
		exec(def)
	}
	indexes := time.Since(t1)
	t2 := time.Now()
	if err := postgres.New(s.Pool, postgres.Options{}).Measurements.RebuildRollup(ctx, now.AddDate(0, 0, -days-1), clock().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	exec("VACUUM ANALYZE measurements")
	exec("VACUUM ANALYZE measurements_hourly")
	rollup := time.Since(t2)
	// The closed hours, quarters and days sealed, and the closed 5-minute
	// bins of the hour after them (migration 00048), as the service's
	// maintenance and sealing passes would do (several passes: one seals
	// at most 2,000).
	t3 := time.Now()
	ms := postgres.New(s.Pool, postgres.Options{}).Measurements
	for {
		res, err := ms.Seal(ctx, clock(), time.Time{}, func(context.Context) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		if res.Units() == 0 {
			break
		}
	}
	// Every table vacuumed and analysed, as autovacuum keeps a database in
	// service (until 2026-12-02 only the cells were: the rollups the
	// rebuild had just written were left to autovacuum, which could run
	// while the queries were measured).
	exec("VACUUM ANALYZE")
	b.Logf("generated %d rows over %d days: load %s, %d indexes %s, rollup + vacuum %s, sealed + vacuum %s",
		n, days, load.Round(time.Second), len(defs), indexes.Round(time.Second), rollup.Round(time.Second),
		time.Since(t3).Round(time.Second))
}

// BenchmarkMeasurementsQueries: latency of every measurements query (each
// list order, each filter, the elapsed filter above and below the slow-row
// threshold, grouped, distribution, timeseries, one by id) over a 7-day
// window with 10 million rows stored (30 days of them), through the API,
// beside the same store call made directly with pgx (no HTTP) in the same
// run. Skipped unless named or BIG_BENCH=1 (MEASUREMENTS_BENCH_ROWS sets the
// row count). MEASUREMENTS_BENCH_EXPLAIN=1 also logs the plans of each
// direct call's first and second run, before the load (EXPLAIN ANALYZE,
// BUFFERS, through auto_explain) from the
// throwaway server's log (into MEASUREMENTS_BENCH_EXPLAIN_FILE when set:
// go test cuts long benchmark logs); MEASUREMENTS_BENCH_CASES=list,grouped measures only
// the cases named; MEASUREMENTS_BENCH_NOW=00:10:30 ends the rows and the
// window at that UTC clock time (benchNow).
func BenchmarkMeasurementsQueries(b *testing.B) {
	bigBenchSelected(b)
	s := newTestServer(b)
	n, days := benchRows(), 30
	// The rows end when they are generated, and the window when the
	// queries start; or both at MEASUREMENTS_BENCH_NOW's clock time, which
	// the API's paths then name (their default window would end at the
	// real time).
	now, clockSet := benchNow(b)
	if clockSet {
		generateMeasurements(b, s, n, days, now)
	} else {
		generateMeasurements(b, s, n, days, time.Time{})
		now = time.Now()
	}
	var total, someID int64
	_ = s.Pool.QueryRow(context.Background(), "SELECT count(*), min(id) + count(*) / 2 FROM measurements").Scan(&total, &someID)
	b.ReportMetric(float64(total), "rows")

	const clients = 4
	window := store.MeasurementFilter{StartedAt: now.Add(-7 * 24 * time.Hour), EndedAt: now}
	name, app, el, low, zero := "/api/r7/<id>", "billing", 1.0, 0.1, 0.0
	with := func(f func(*store.MeasurementFilter)) store.MeasurementFilter {
		w := window
		f(&w)
		return w
	}
	withName := with(func(w *store.MeasurementFilter) { w.Name = &name })
	withElapsed := with(func(w *store.MeasurementFilter) { w.MinElapsed = &el })
	withLow := with(func(w *store.MeasurementFilter) { w.MinElapsed = &low })
	// elapsed=0, which flask-profiler's dashboard sends with every request:
	// every row (elapsed is never negative).
	withZero := with(func(w *store.MeasurementFilter) { w.MinElapsed = &zero })
	withMethod := with(func(w *store.MeasurementFilter) { w.Methods = []string{"POST"} })
	withApp := with(func(w *store.MeasurementFilter) { w.App = &app })
	ctx := context.Background()
	type call func(st *postgres.Measurements) error
	list := func(f store.MeasurementFilter, key string, desc bool, off int64) call {
		return func(st *postgres.Measurements) error {
			_, err := st.List(ctx, f, store.MeasurementSort{Key: key, Desc: desc}, store.PageRequest{Limit: 50, Offset: off})
			return err
		}
	}
	grouped := func(f store.MeasurementFilter, key string) call {
		return func(st *postgres.Measurements) error {
			_, err := st.Grouped(ctx, f, store.MeasurementSort{Key: key, Desc: true}, store.PageRequest{Limit: 50})
			return err
		}
	}
	series := func(w time.Duration) call {
		return func(st *postgres.Measurements) error {
			_, err := st.Timeseries(ctx, window, w)
			return err
		}
	}
	cases := []struct {
		name, path string
		direct     call
	}{
		{"list", "/api/measurements/", list(window, "endedAt", true, 0)},
		{"list_name", "/api/measurements/?name=" + name, list(withName, "endedAt", true, 0)},
		{"list_method", "/api/measurements/?method=POST", list(withMethod, "endedAt", true, 0)},
		{"list_app", "/api/measurements/?app=" + app, list(withApp, "endedAt", true, 0)},
		{"list_page100", "/api/measurements/?page=100", list(window, "endedAt", true, 99*50)},
		{"list_elapsed", "/api/measurements/?elapsed=1", list(withElapsed, "endedAt", true, 0)},
		{"list_elapsed_0.1", "/api/measurements/?elapsed=0.1", list(withLow, "endedAt", true, 0)},
		{"list_elapsed_0", "/api/measurements/?elapsed=0", list(withZero, "endedAt", true, 0)},
		{"list_elapsed_sort_startedAt", "/api/measurements/?elapsed=1&sort=startedAt,asc", list(withElapsed, "startedAt", false, 0)},
		{"list_sort_endedAt_asc", "/api/measurements/?sort=endedAt,asc", list(window, "endedAt", false, 0)},
		{"list_sort_startedAt", "/api/measurements/?sort=startedAt,desc", list(window, "startedAt", true, 0)},
		{"list_sort_elapsed", "/api/measurements/?sort=elapsed,desc", list(window, "elapsed", true, 0)},
		{"list_sort_elapsed_asc", "/api/measurements/?sort=elapsed,asc", list(window, "elapsed", false, 0)},
		{"list_sort_name", "/api/measurements/?sort=name,desc", list(window, "name", true, 0)},
		{"list_sort_method", "/api/measurements/?sort=method,desc", list(window, "method", true, 0)},
		{"grouped", "/api/measurements/grouped/", grouped(window, "count")},
		{"grouped_name", "/api/measurements/grouped/?name=" + name, grouped(withName, "count")},
		{"grouped_sort_avg", "/api/measurements/grouped/?sort=avgElapsed,desc", grouped(window, "avgElapsed")},
		{"grouped_elapsed", "/api/measurements/grouped/?elapsed=1", grouped(withElapsed, "count")},
		{"grouped_elapsed_0.1", "/api/measurements/grouped/?elapsed=0.1", grouped(withLow, "count")},
		{"grouped_elapsed_0", "/api/measurements/grouped/?elapsed=0", grouped(withZero, "count")},
		{"distribution", "/api/measurements/methodDistribution/", func(st *postgres.Measurements) error {
			_, err := st.MethodDistribution(ctx, window)
			return err
		}},
		{"timeseries_hourly", "/api/measurements/timeseries/?interval=hourly", series(time.Hour)},
		{"timeseries_daily", "/api/measurements/timeseries/?interval=daily", series(24 * time.Hour)},
		{"timeseries_5m", "/api/measurements/timeseries/?bucket=5m", series(5 * time.Minute)},
		{"get", "/api/measurements/" + strconv.FormatInt(someID, 10), func(st *postgres.Measurements) error {
			_, err := st.Get(ctx, someID)
			return err
		}},
	}
	if clockSet {
		b.Logf("the rows and the window end at %s (MEASUREMENTS_BENCH_NOW)", now.Format(time.RFC3339))
		for i := range cases {
			if cases[i].name == "get" {
				continue
			}
			sep := "?"
			if strings.Contains(cases[i].path, "?") {
				sep = "&"
			}
			cases[i].path += sep + "startedAt=" + epochText(window.StartedAt) + "&endedAt=" + epochText(window.EndedAt)
		}
	}
	if only := os.Getenv("MEASUREMENTS_BENCH_CASES"); only != "" {
		// A comma list of case names: re-measure a few after a change.
		names := strings.Split(only, ",")
		cases = slices.DeleteFunc(cases, func(c struct {
			name, path string
			direct     call
		}) bool {
			return !slices.Contains(names, c.name)
		})
	}
	if os.Getenv("MEASUREMENTS_BENCH_EXPLAIN") == "1" {
		explainCalls(b, s, func(st *postgres.Measurements, logPlans func(string)) {
			// Each case twice: its first call reads from disk what the
			// measured calls below, made over and over, find in shared
			// buffers (at 10 M rows a grouped call with elapsed=0.1 spent 31
			// of its 72 ms cold reading a week's rows from the heap).
			for _, c := range cases {
				for _, when := range []string{"first call, cold", "second call, warm"} {
					if err := c.direct(st); err != nil {
						b.Fatalf("%s: %v", c.name, err)
					}
					logPlans(c.name + " (" + when + ")")
				}
			}
		})
	}
	st := postgres.New(s.Pool, postgres.Options{}).Measurements
	// The grouped view without an app (and without an elapsed filter or
	// with one below the slow-row threshold) keeps the sealed cells it reads
	// (measurements_cells.go): measured also on a store that keeps none, its
	// cells read from PostgreSQL every call, as before (_direct_kept against
	// _direct_unkept).
	unkept := postgres.New(s.Pool, postgres.Options{KeptCellsBytes: -1}).Measurements
	// The window's tail not sealed (migration 00048): minutes of rows after
	// the last sealed unit, with the 5-minute bins sealed on their own and
	// without them (the hours' end, as before the migration).
	var tailBins, tailHours float64
	if err := s.Pool.QueryRow(ctx, `SELECT extract(epoch FROM m.last - s.bins) / 60, extract(epoch FROM m.last - s.hours) / 60
		FROM (SELECT max(started_at) AS last FROM measurements) m,
		     (SELECT max(unit_start + make_interval(secs => unit_secs)) AS bins,
		             max(unit_start + make_interval(secs => unit_secs)) FILTER (WHERE unit_secs > 300) AS hours
		      FROM measurements_sealed) s`).Scan(&tailBins, &tailHours); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(tailBins, "tail_unsealed_min")
	b.ReportMetric(tailHours, "tail_unsealed_without_bins_min")
	b.Logf("rows not sealed at the window's end: %.1f minutes (%.1f without the bins sealed on their own)", tailBins, tailHours)
	// withoutBins runs f with the bins' own seals set aside (as before
	// migration 00048), then puts them back.
	exec := func(sql string) {
		if _, err := s.Pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	exec(`CREATE TABLE bench_bins AS SELECT * FROM measurements_sealed WHERE unit_secs = 300`)
	withoutBins := func(f func()) {
		exec(`DELETE FROM measurements_sealed WHERE unit_secs = 300`)
		defer exec(`INSERT INTO measurements_sealed SELECT * FROM bench_bins`)
		f()
	}
	// pairs runs five alternating pairs of 3 s of call, first as one() then
	// as other() sets it up, and reports each way's medians of p50 and p99
	// as name_{a,b}_p{50,99}_ms: one pair moves 20 % or more with the
	// machine's hour.
	pairs := func(name, a, bName string, call func() error, one, other func(run func() loadStats) loadStats) {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		load := func() loadStats {
			return runLoad(clients, 3*time.Second, 3000, func(context.Context, int) error { return call() })
		}
		var first, second [][2]float64
		for range 5 {
			x, y := one(load), other(load)
			first, second = append(first, [2]float64{ms(x.P50), ms(x.P99)}), append(second, [2]float64{ms(y.P50), ms(y.P99)})
			b.Logf("%s: direct, %s %s; %s %s", name, a, x, bName, y)
		}
		median := func(rounds [][2]float64, i int) float64 {
			v := make([]float64, len(rounds))
			for j, r := range rounds {
				v[j] = r[i]
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		for _, way := range []struct {
			key    string
			rounds [][2]float64
		}{{a, first}, {bName, second}} {
			b.ReportMetric(median(way.rounds, 0), name+"_direct_"+way.key+"_p50_ms")
			b.ReportMetric(median(way.rounds, 1), name+"_direct_"+way.key+"_p99_ms")
		}
	}
	for _, c := range cases {
		direct := runLoad(clients, 3*time.Second, 3000, func(context.Context, int) error { return c.direct(st) })
		api := runLoad(clients, 3*time.Second, 3000, func(context.Context, int) error { return benchGet(s.URL + c.path) })
		report(b, c.name+"_api", api)
		b.ReportMetric(float64(direct.P99.Microseconds())/1000, c.name+"_direct_p99_ms")
		b.ReportMetric(api.PerSecond()/direct.PerSecond(), c.name+"_api/direct")
		b.Logf("%s: direct %s", c.name, direct)
		if c.name == "grouped_elapsed_0.1" || c.name == "grouped" {
			// The kept cells against a store that keeps none.
			var on *postgres.Measurements
			pairs(c.name, "kept", "unkept", func() error { return c.direct(on) },
				func(run func() loadStats) loadStats { on = st; return run() },
				func(run func() loadStats) loadStats { on = unkept; return run() })
		}
		if c.name == "grouped_elapsed_0.1" || c.name == "list_elapsed_0.1" {
			// With and without the bins sealed on their own (each
			// without-round a second's warm-up first: the kept cells of the
			// hour's bins are read again).
			direct := func() error { return c.direct(st) }
			pairs(c.name, "bins", "nobins", direct,
				func(run func() loadStats) loadStats { return run() },
				func(run func() loadStats) loadStats {
					var o loadStats
					withoutBins(func() {
						runLoad(clients, time.Second, 1000, func(context.Context, int) error { return direct() })
						o = run()
					})
					return o
				})
		}
		if api.Errors > 0 || direct.Errors > 0 {
			// A query slower than the client's timeout: reported, so the
			// other queries are still measured.
			b.ReportMetric(float64(api.Errors+direct.Errors), c.name+"_errors")
			b.Logf("%s: %d API errors, %d direct errors", c.name, api.Errors, direct.Errors)
		}
	}
}

// explainCalls runs calls on a store whose connections log every
// statement's plan with EXPLAIN (ANALYZE, BUFFERS) (auto_explain); logPlans
// logs the plans written since its last call, from the throwaway server's
// log (testdb's cluster writes it next to its data directory).
func explainCalls(b *testing.B, s *testServer, calls func(st *postgres.Measurements, logPlans func(string))) {
	ctx := context.Background()
	var dataDir string
	if err := s.Pool.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(dataDir), "postgres.log")
	seen, _ := os.ReadFile(logPath)
	cfg := s.Pool.Config().Copy()
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `LOAD 'auto_explain';
			SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
			SET auto_explain.log_buffers = on; SET auto_explain.log_nested_statements = on`)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	calls(postgres.New(pool, postgres.Options{}).Measurements, func(name string) {
		all, err := os.ReadFile(logPath)
		if err != nil {
			b.Fatalf("reading the server log: %v", err)
		}
		if len(all) > len(seen) {
			if f := os.Getenv("MEASUREMENTS_BENCH_EXPLAIN_FILE"); f != "" {
				// go test cuts long benchmark logs; the file keeps every plan.
				out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					b.Fatal(err)
				}
				fmt.Fprintf(out, "plans of %s:\n%s\n", name, all[len(seen):])
				out.Close()
			} else {
				b.Logf("plans of %s:\n%s", name, all[len(seen):])
			}
		}
		seen = all
	})
}
