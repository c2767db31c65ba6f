package postgres_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// percentileSeed fixes the random data of the percentile tests; change it
// to explore, a failure names it.
const percentileSeed = 20261130

// spreadElapsed gives the records elapsed times over many decades: zeros,
// sub-microsecond and microsecond values (the histogram's first bucket and
// its floor), and a log-normal body around 0.2 s with a long tail.
func spreadElapsed(rng *rand.Rand, recs []store.Measurement) {
	for i := range recs {
		switch rng.IntN(20) {
		case 0:
			recs[i].Elapsed = 0
		case 1:
			recs[i].Elapsed = math.Pow(10, -7+2*rng.Float64())
		default:
			recs[i].Elapsed = 0.2 * math.Exp(1.5*rng.NormFloat64())
		}
	}
}

// insertInBatches stores recs through Insert, size at a time.
func insertInBatches(t *testing.T, ms *postgres.Measurements, recs []store.Measurement, size int) {
	t.Helper()
	for i := 0; i < len(recs); i += size {
		if _, err := ms.Insert(context.Background(), recs[i:min(i+size, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
}

type exactPercentiles struct {
	p50, p95, p99 float64
	count         int64
	min, max      float64
}

// exactGroupPercentiles is percentile_disc (and the count, minimum and
// maximum) per (name, method) over the rows the filter's window selects (started at or after StartedAt, ended
// at or before EndedAt), computed from the raw rows.
func exactGroupPercentiles(t *testing.T, pool *pgxpool.Pool, f store.MeasurementFilter) map[string]exactPercentiles {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT name, method, percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY elapsed),
		       count(*), min(elapsed), max(elapsed)
		FROM measurements
		WHERE started_at >= $1 AND ended_at <= $2 AND ($3::text IS NULL OR name = $3) AND ($4::text IS NULL OR app = $4)
		  AND ($5::float8 IS NULL OR elapsed >= $5)
		GROUP BY name, method`, f.StartedAt, f.EndedAt, f.Name, f.App, f.MinElapsed)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]exactPercentiles{}
	for rows.Next() {
		var name, method string
		var ps []float64
		var e exactPercentiles
		if err := rows.Scan(&name, &method, &ps, &e.count, &e.min, &e.max); err != nil {
			t.Fatal(err)
		}
		e.p50, e.p95, e.p99 = ps[0], ps[1], ps[2]
		out[name+" "+method] = e
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withinBound: the documented bound, relative above 1 microsecond and
// absolute at or below it (a hair of slack for float rounding at a bucket's
// edge, where Go's and PostgreSQL's logarithms may differ in the last bit).
func withinBound(got, exact float64) bool {
	if exact <= 1e-6 {
		return math.Abs(got-exact) <= 1e-6
	}
	return math.Abs(got-exact) <= exact*store.PercentileRelativeError*(1+1e-9)
}

// The grouped percentiles, read from the rollups' histograms, are within
// store.PercentileRelativeError of percentile_disc over the raw rows, for
// windows with partial hours and days at both ends and with each filter.
func TestMeasurementsGroupedPercentilesWithinBound(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 2))
	recs := randomMeasurements(rng, 6000)
	spreadElapsed(rng, recs)
	insertInBatches(t, ms, recs, 500)
	// slow reads the slow-row indexes, low measurements_elapsed_bucket_idx
	// (a bound on the bucket beside the filter): just above a row's value,
	// so that its bucket holds rows on both sides of the filter.
	name, app, slow := "/b/<id>", "shop", 0.3
	els := make([]float64, len(recs))
	for i, r := range recs {
		els[i] = r.Elapsed
	}
	slices.Sort(els)
	low := math.Nextafter(els[len(els)/10], math.Inf(1))
	if low >= 0.25 || low <= 1e-6 {
		t.Fatalf("seed %d: %v is no filter below the slow rows", percentileSeed, low)
	}
	windows := []store.MeasurementFilter{
		{StartedAt: measurementBase.Add(-time.Hour), EndedAt: measurementBase.Add(60 * time.Hour)},
		{StartedAt: measurementBase.Add(37*time.Minute + 13*time.Second), EndedAt: measurementBase.Add(40*time.Hour + 11*time.Minute)},
		{StartedAt: measurementBase.Add(2 * time.Hour), EndedAt: measurementBase.Add(2*time.Hour + 20*time.Minute)},
		{StartedAt: measurementBase.Add(90 * time.Minute), EndedAt: measurementBase.Add(30 * time.Hour), Name: &name},
		{StartedAt: measurementBase.Add(90 * time.Minute), EndedAt: measurementBase.Add(30 * time.Hour), App: &app},
		{StartedAt: measurementBase, EndedAt: measurementBase.Add(47 * time.Hour), MinElapsed: &slow},
		{StartedAt: measurementBase.Add(-time.Hour), EndedAt: measurementBase.Add(60 * time.Hour), MinElapsed: &low},
	}
	for wi, f := range windows {
		exact := exactGroupPercentiles(t, pool, f)
		page, err := ms.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != len(exact) || len(exact) == 0 {
			t.Fatalf("seed %d window %d: %d groups, %d exact", percentileSeed, wi, len(page.Items), len(exact))
		}
		for _, g := range page.Items {
			e := exact[g.Name+" "+g.Method]
			if g.Count != e.count || g.MinElapsed != e.min || g.MaxElapsed != e.max {
				t.Errorf("seed %d window %d %s %s: count %d, min %v, max %v; exact %d, %v, %v", percentileSeed, wi, g.Name, g.Method,
					g.Count, g.MinElapsed, g.MaxElapsed, e.count, e.min, e.max)
			}
			for _, c := range []struct {
				q          string
				got, exact float64
			}{{"p50", g.P50Elapsed, e.p50}, {"p95", g.P95Elapsed, e.p95}, {"p99", g.P99Elapsed, e.p99}} {
				if !withinBound(c.got, c.exact) {
					t.Errorf("seed %d window %d %s %s %s: %v, exact %v (error %.4f %%)", percentileSeed, wi, g.Name, g.Method,
						c.q, c.got, c.exact, 100*math.Abs(c.got-c.exact)/c.exact)
				}
			}
		}
	}
}

// Percentiles come from the rollups for whole hours: once the raw rows
// those cells cover are gone, the same window answers the same values.
// RebuildRollup recomputes the histograms with the rollups.
func TestMeasurementsPercentilesSurviveRawRows(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 3))
	recs := randomMeasurements(rng, 3000)
	spreadElapsed(rng, recs)
	if _, err := ms.Insert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	f := store.MeasurementFilter{StartedAt: measurementBase.Add(30 * time.Minute), EndedAt: measurementBase.Add(26*time.Hour + 30*time.Minute)}
	grouped := func() string {
		page, err := ms.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(page.Items)
	}
	before := grouped()
	// Rows that ended before the window's last hour are counted by the
	// rollup cells only (the partial hours at the edges are read from rows).
	tag, err := pool.Exec(ctx, `DELETE FROM measurements WHERE started_at >= $1 AND ended_at < $2`,
		f.StartedAt.Truncate(time.Hour).Add(time.Hour), f.EndedAt.Truncate(time.Hour))
	if err != nil || tag.RowsAffected() < 1000 {
		t.Fatalf("delete: %v, %d rows", err, tag.RowsAffected())
	}
	if after := grouped(); after != before {
		t.Fatalf("after the raw rows went:\n%s\nbefore:\n%s", after, before)
	}
}

// The Go and SQL bucket functions and encodings agree
// (telemetry_elapsed_bucket and telemetry_hist_encode are what the
// migration's backfill, the rebuild and the partial hours use): the
// histograms Insert writes, batch after batch through the read-modify-write,
// are byte for byte those RebuildRollup computes from the rows.
func TestMeasurementsHistogramBackfillMatchesWrites(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 4))
	recs := randomMeasurements(rng, 2000)
	spreadElapsed(rng, recs)
	// Cells whose counts need two and four bytes (the wider encodings).
	for i := range 70300 {
		name := "/wide"
		if i%234 == 0 {
			name = "/mid"
		}
		recs = append(recs, store.Measurement{StartedAt: measurementBase, EndedAt: measurementBase, Elapsed: 0.25,
			Name: name, Method: "GET", Args: []byte("[]"), Kwargs: []byte("{}"), Context: []byte("{}")})
	}
	insertInBatches(t, ms, recs, 5000)
	const snapshot = `SELECT string_agg(concat_ws(' ', start_hour, end_hour, app, name, method, encode(hist, 'hex')), ';'
		ORDER BY start_hour, end_hour, app, name, method) FROM measurements_hourly_hist`
	const daily = `SELECT string_agg(concat_ws(' ', start_day, end_day, app, name, method, encode(hist, 'hex')), ';'
		ORDER BY start_day, end_day, app, name, method) FROM measurements_daily_hist`
	var h1, d1, h2, d2 string
	if err := pool.QueryRow(ctx, snapshot).Scan(&h1); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, daily).Scan(&d1); err != nil {
		t.Fatal(err)
	}
	var widths []int
	if err := pool.QueryRow(ctx, `SELECT array_agg(DISTINCT get_byte(hist, 0) ORDER BY get_byte(hist, 0)) FROM measurements_daily_hist`).Scan(&widths); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(widths) != "[1 2 4]" {
		t.Fatalf("count widths %v, want the test to cover 1, 2 and 4", widths)
	}
	if err := ms.RebuildRollup(ctx, measurementBase.Add(-48*time.Hour), measurementBase.Add(96*time.Hour)); err != nil {
		t.Fatal(err)
	}
	_ = pool.QueryRow(ctx, snapshot).Scan(&h2)
	_ = pool.QueryRow(ctx, daily).Scan(&d2)
	if h1 == "" || h1 != h2 || d1 != d2 {
		t.Fatalf("histograms written by Insert differ from those rebuilt from the rows")
	}
	// telemetry_hist_buckets (for psql) lists what the encoding holds.
	var n, total int64
	if err := pool.QueryRow(ctx, `SELECT sum(b.count), (SELECT sum(count) FROM measurements_daily)
		FROM measurements_daily_hist d, telemetry_hist_buckets(d.hist) b`).Scan(&n, &total); err != nil {
		t.Fatal(err)
	}
	if n != total || n != int64(len(recs)) {
		t.Fatalf("telemetry_hist_buckets sums to %d, the rollup counts %d, %d inserted", n, total, len(recs))
	}
}

// histogramMismatches counts the (cell, bucket) pairs of both histogram
// tables whose count, summed over the cell's parts, differs from the rows'.
func histogramMismatches(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	err := pool.QueryRow(context.Background(), `
		WITH rows AS (
		    SELECT date_trunc('hour', started_at, 'UTC') AS sh, date_trunc('hour', ended_at, 'UTC') AS eh,
		           date_trunc('day', started_at, 'UTC') AS sd, date_trunc('day', ended_at, 'UTC') AS ed,
		           app, name, method, telemetry_elapsed_bucket(elapsed)::integer AS bucket
		    FROM measurements
		), hourly AS (
		    SELECT h.start_hour, h.end_hour, h.app, h.name, h.method, b.bucket, sum(b.count) AS n
		    FROM measurements_hourly_hist h, telemetry_hist_buckets(h.hist) b GROUP BY 1, 2, 3, 4, 5, 6
		), daily AS (
		    SELECT d.start_day, d.end_day, d.app, d.name, d.method, b.bucket, sum(b.count) AS n
		    FROM measurements_daily_hist d, telemetry_hist_buckets(d.hist) b GROUP BY 1, 2, 3, 4, 5, 6
		)
		SELECT
		    (SELECT count(*) FROM (SELECT sh, eh, app, name, method, bucket, count(*) AS n FROM rows GROUP BY 1, 2, 3, 4, 5, 6) w
		     FULL JOIN hourly r ON (r.start_hour, r.end_hour, r.app, r.name, r.method, r.bucket) = (w.sh, w.eh, w.app, w.name, w.method, w.bucket)
		     WHERE w.n IS DISTINCT FROM r.n)
		  + (SELECT count(*) FROM (SELECT sd, ed, app, name, method, bucket, count(*) AS n FROM rows GROUP BY 1, 2, 3, 4, 5, 6) w
		     FULL JOIN daily r ON (r.start_day, r.end_day, r.app, r.name, r.method, r.bucket) = (w.sd, w.ed, w.app, w.name, w.method, w.bucket)
		     WHERE w.n IS DISTINCT FROM r.n)`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A batch does not wait for another batch's histogram cells (migration
// 00016): while a transaction holds every part of a cell, an Insert of the
// same cell completes, adding a part, and the cell's parts add up to its
// rows, as do the percentiles. Then concurrent batches of the same cells
// keep every count exact.
func TestMeasurementsHistogramPartsDoNotWait(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 5))
	batch := func(n int) []store.Measurement {
		recs := make([]store.Measurement, n)
		for i := range recs {
			recs[i] = store.Measurement{StartedAt: measurementBase, EndedAt: measurementBase.Add(time.Second),
				Elapsed: 0.2 * math.Exp(rng.NormFloat64()), Name: fmt.Sprintf("/hot%d", i%3), Method: "GET",
				Args: []byte("[]"), Kwargs: []byte("{}"), Context: []byte("{}")}
		}
		return recs
	}
	if _, err := ms.Insert(ctx, batch(30)); err != nil {
		t.Fatal(err)
	}
	// Another transaction holds every part of the cells, hourly and daily.
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	var held int
	if err := holder.QueryRow(ctx, `SELECT (SELECT count(*) FROM (SELECT 1 FROM measurements_hourly_hist FOR UPDATE) h)
		+ (SELECT count(*) FROM (SELECT 1 FROM measurements_daily_hist FOR UPDATE) d)`).Scan(&held); err != nil || held != 6 {
		t.Fatalf("holder locked %d parts (%v), want 3 hourly and 3 daily", held, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ms.Insert(ctx, batch(30))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Insert waited for the cells another transaction holds")
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var parts int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements_hourly_hist`).Scan(&parts); err != nil || parts != 6 {
		t.Fatalf("%d hourly parts (%v), want 2 for each of the 3 cells", parts, err)
	}
	if n := histogramMismatches(t, pool); n != 0 {
		t.Fatalf("%d histogram buckets differ from the rows", n)
	}
	f := store.MeasurementFilter{StartedAt: measurementBase.Add(-time.Hour), EndedAt: measurementBase.Add(2 * time.Hour)}
	groups, err := ms.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	exact := exactGroupPercentiles(t, pool, f)
	if len(groups.Items) != 3 {
		t.Fatalf("%d groups, want 3", len(groups.Items))
	}
	for _, g := range groups.Items {
		e := exact[g.Name+" "+g.Method]
		if g.Count != 20 || !withinBound(g.P50Elapsed, e.p50) || !withinBound(g.P95Elapsed, e.p95) || !withinBound(g.P99Elapsed, e.p99) {
			t.Errorf("%s %s: count %d p50/p95/p99 %v %v %v, exact %+v", g.Name, g.Method, g.Count, g.P50Elapsed, g.P95Elapsed, g.P99Elapsed, e)
		}
	}

	// Eight writers, twenty batches each, over the same cells.
	errs := make(chan error, 8)
	recsOf := make([][][]store.Measurement, 8)
	for w := range recsOf {
		for range 20 {
			recsOf[w] = append(recsOf[w], batch(12))
		}
	}
	for w := range 8 {
		go func() {
			for _, b := range recsOf[w] {
				if _, err := ms.Insert(ctx, b); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := histogramMismatches(t, pool); n != 0 {
		t.Fatalf("%d histogram buckets differ from the rows after concurrent batches", n)
	}
	if n := rollupMismatches(t, pool); n != 0 {
		t.Fatalf("%d rollup cells differ from the rows after concurrent batches", n)
	}
	// A batch takes one part of a cell, so a new part is added only when
	// every part is taken by a concurrent batch: at most one per writer.
	var most int
	if err := pool.QueryRow(ctx, `SELECT max(n) FROM (SELECT count(*) AS n FROM measurements_hourly_hist
		GROUP BY start_hour, end_hour, app, name, method) c`).Scan(&most); err != nil || most > 8 {
		t.Fatalf("a cell has %d parts (%v) after 8 concurrent writers, want at most 8", most, err)
	}
}
