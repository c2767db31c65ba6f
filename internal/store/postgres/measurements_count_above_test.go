package postgres_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// rawCount is the number of rows f matches, counted from the rows.
func rawCount(t *testing.T, pool *pgxpool.Pool, f store.MeasurementFilter) int64 {
	t.Helper()
	return countOf(t, pool, `SELECT count(*) FROM measurements
		WHERE started_at >= $1 AND ended_at <= $2 AND ($3::text IS NULL OR name = $3) AND ($4::text IS NULL OR app = $4)
		  AND (cardinality($5::text[]) = 0 OR method = ANY($5)) AND ($6::float8 IS NULL OR elapsed >= $6)`,
		f.StartedAt, f.EndedAt, f.Name, f.App, append([]string{}, f.Methods...), f.MinElapsed)
}

// groupedAsFromRows reports where the grouped view of f (with an elapsed
// filter below the slow-row threshold and no app: from the sealed units
// where the window has them, GroupMeasurementsAboveSealed) differs from
// the statement that reads every row above the filter, in each order: the
// same groups in the same order, counts, minima, maxima and percentiles
// equal (the same buckets), averages to the last digits (sums added in
// another order); and from the raw rows.
func groupedAsFromRows(t *testing.T, ms *postgres.Measurements, pool *pgxpool.Pool, label string, f store.MeasurementFilter, sorts ...store.MeasurementSort) {
	t.Helper()
	ctx := context.Background()
	for _, s := range sorts {
		got, err := ms.Grouped(ctx, f, s, store.PageRequest{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		want, err := ms.GroupedFromRows(ctx, f, s, store.PageRequest{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != want.Total || len(got.Items) != len(want.Items) {
			t.Errorf("%s, by %s: %d groups (total %d), from the rows %d (total %d)", label, s.Key, len(got.Items), got.Total, len(want.Items), want.Total)
			continue
		}
		for i, g := range got.Items {
			w := want.Items[i]
			if avg := g.AvgElapsed; math.Abs(avg-w.AvgElapsed) <= 1e-12*w.AvgElapsed {
				g.AvgElapsed = w.AvgElapsed
			}
			if g != w {
				t.Errorf("%s, by %s, #%d: %+v; from the rows %+v", label, s.Key, i, g, w)
			}
		}
		if s == sorts[0] {
			sameAsRows(t, label, got, rawGroups(t, pool, f))
		}
	}
}

// The list's total with an elapsed filter below the slow-row threshold and
// no app is counted from the sealed units' histograms where the window has
// them (countAboveSealed): the same number as the rows' before any unit is
// sealed, once they are, after late batches unsealed some, with filters
// equal to a row's elapsed and just above it (the filter's own bucket comes
// from the rows), and after rows expired (the units older than the
// retention mark are not used). The histograms are read: a count added to
// a sealed cell by hand shows.
func TestMeasurementsCountAboveFromSealedUnits(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 29))
	recs := randomMeasurements(rng, 5000)
	spreadElapsed(rng, recs)
	// Twins: rows alike in started_at and elapsed, every other one in its
	// name too (the grouped view finds its filter's bucket's rows by these
	// two and must read each once).
	for i := 0; i < len(recs); i += 25 {
		twin := recs[i]
		if i%50 == 0 {
			twin.Name = "/twin"
		}
		recs = append(recs, twin)
	}
	insertInBatches(t, ms, recs, 500)

	// Filters: bucket edges and the elapsed of a row with a twin, with the
	// next float above it (which leaves the two out), over every window shape.
	var at float64
	if err := pool.QueryRow(ctx, `SELECT m.elapsed FROM measurements m WHERE m.elapsed BETWEEN 0.05 AND 0.2
		AND EXISTS (SELECT 1 FROM measurements t WHERE t.started_at = m.started_at AND t.elapsed = m.elapsed AND t.id <> m.id)
		ORDER BY m.id LIMIT 1`).Scan(&at); err != nil {
		t.Fatal(err)
	}
	filters := []float64{0, 1e-6, 0.001, 0.1, 0.2, at, math.Nextafter(at, 1), 1e-6 * math.Pow(1.05, 200)}
	windows := sealedWindows(rng)
	name := "/c"
	windows["by name, whole days"] = store.MeasurementFilter{StartedAt: measurementBase, EndedAt: measurementBase.Add(50 * time.Hour), Name: &name}
	// The grouped view (about 30 ms a window and filter, both ways) at
	// five of the filters, in a second order only once everything is sealed.
	groupFilter := map[float64]bool{0: true, 0.001: true, 0.1: true, at: true, math.Nextafter(at, 1): true}
	byCount := store.MeasurementSort{Key: "count", Desc: true}
	check := func(state string, sorts ...store.MeasurementSort) {
		t.Helper()
		for label, w := range windows {
			for _, el := range filters {
				f := w
				f.MinElapsed = &el
				got, err := ms.Count(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if want := rawCount(t, pool, f); got != want {
					t.Errorf("%s, %s, elapsed >= %v: count %d, rows %d", state, label, el, got, want)
				}
				page, err := ms.List(ctx, f, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 1})
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != got {
					t.Errorf("%s, %s, elapsed >= %v: list total %d, count %d", state, label, el, page.Total, got)
				}
				if groupFilter[el] {
					groupedAsFromRows(t, ms, pool, fmt.Sprintf("%s, %s, elapsed >= %v", state, label, el), f, sorts...)
				}
			}
		}
	}
	noRenew := func(context.Context) error { return nil }
	now := time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC)

	check("nothing sealed", byCount)
	if _, err := ms.Seal(ctx, now, time.Time{}, noRenew); err != nil {
		t.Fatal(err)
	}
	check("sealed", byCount, store.MeasurementSort{Key: "minElapsed"})

	// Measurements added by hand to the top bucket of one sealed day's
	// totals (a thousand) and of one of its cells (700): every count of a
	// window holding the day grows, by the totals' without a name or
	// methods, by the cell's with its name or method (the window's rows all
	// end within it).
	const day = "2024-03-11Z"
	const more = `SELECT telemetry_hist_encode(array_agg(b.bucket) || (max(b.bucket) + 1), array_agg(b.count) || %d::bigint)
		FROM telemetry_hist_buckets(%s.hist) b`
	for _, change := range []string{
		`UPDATE measurements_sealed_totals t SET count = count + 1000, hist = (` + fmt.Sprintf(more, 1000, "t") + `)
			WHERE t.unit_secs = 86400 AND t.unit_start = $1`,
		// The cell's suffix statistics (migration 00027) with them: 700
		// rows of elapsed v in the bucket above its top one.
		`UPDATE measurements_sealed_cells c SET count = count + 700, hist = (` + fmt.Sprintf(more, 700, "c") + `),
				sum_elapsed = sum_elapsed + 700 * v.v, max_elapsed = v.v,
				above_buckets = above_buckets || (above_buckets[cardinality(above_buckets)] + 1)::smallint,
				above_counts = ARRAY(SELECT x + 700 FROM unnest(c.above_counts) WITH ORDINALITY AS u (x, o) ORDER BY o) || 700::bigint,
				above_sums = ARRAY(SELECT x + 700 * v.v FROM unnest(c.above_sums) WITH ORDINALITY AS u (x, o) ORDER BY o) || (700 * v.v),
				above_mins = above_mins || v.v
			FROM (SELECT 1e-6 * power(1.05::float8, above_buckets[cardinality(above_buckets)] + 1.5) AS v
			      FROM measurements_sealed_cells
			      WHERE unit_secs = 86400 AND unit_start = $1 AND name = '/a' AND method = 'GET') v
			WHERE c.unit_secs = 86400 AND c.unit_start = $1 AND c.name = '/a' AND c.method = 'GET'`,
	} {
		if tag, err := pool.Exec(ctx, change, day); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("changing the day: %v, %v", tag, err)
		}
	}
	a := "/a"
	whole := store.MeasurementFilter{StartedAt: time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 13, 0, 0, 0, 0, time.UTC)}
	byName, byMethod := whole, whole
	byName.Name, byMethod.Methods = &a, []string{"GET"}
	countsMore := func(state string, windows map[string]store.MeasurementFilter, extra map[string]int64) {
		t.Helper()
		for label, w := range windows {
			for _, el := range filters {
				f := w
				f.MinElapsed = &el
				if got, err := ms.Count(ctx, f); err != nil || got != rawCount(t, pool, f)+extra[label] {
					t.Errorf("%s, %s, elapsed >= %v: %d, %v; want the rows' %d + %d", state, label, el, got, err, rawCount(t, pool, f), extra[label])
				}
			}
		}
	}
	windowsOfDay := map[string]store.MeasurementFilter{"whole": whole, "by name": byName, "by method": byMethod}
	countsMore("day changed", windowsOfDay, map[string]int64{"whole": 1000, "by name": 700, "by method": 700})
	// The grouped view keeps the sealed cells it read, keyed by their seal
	// (measurements_cells.go): with the day's seal unchanged it still
	// answers from the cells read before the edit, as the rows do. A build
	// writes a new seal with every change of the cells: once the day's seal
	// is renewed, the edited cell is read.
	findGroup := func(p store.Page[store.MeasurementGroup], err error) store.MeasurementGroup {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range p.Items {
			if g.Name == "/a" && g.Method == "GET" {
				return g
			}
		}
		return store.MeasurementGroup{}
	}
	for _, el := range filters {
		f := whole
		f.MinElapsed = &el
		got := findGroup(ms.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 1000}))
		want := findGroup(ms.GroupedFromRows(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 1000}))
		if got.Count != want.Count || got.MaxElapsed != want.MaxElapsed {
			t.Errorf("day changed, seal kept, elapsed >= %v: /a GET %+v; want the kept cells' answer, the rows' %+v", el, got, want)
		}
	}
	if tag, err := pool.Exec(ctx, `UPDATE measurements_sealed SET sealed_at = clock_timestamp() WHERE unit_secs = 86400 AND unit_start = $1`, day); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("renewing the day's seal: %v, %v", tag, err)
	}
	// The grouped view reads the cell's suffix statistics: its group has the
	// 700 rows more, whatever the filter, and their elapsed as its maximum.
	for label, w := range windowsOfDay {
		for _, el := range filters {
			f := w
			f.MinElapsed = &el
			got := findGroup(ms.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 1000}))
			want := findGroup(ms.GroupedFromRows(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 1000}))
			if got.Count != want.Count+700 || !(got.MaxElapsed > want.MaxElapsed) || !(got.AvgElapsed > want.AvgElapsed) {
				t.Errorf("day changed, %s, elapsed >= %v: /a GET %+v; from the rows %+v, want 700 slower rows more", label, el, got, want)
			}
		}
	}
	// A unit without its totals (only a hand edit leaves one: every build
	// writes them with the cells) is read from its rows without a name or
	// methods (its cells still answer with them), and the next pass builds
	// it again, the totals with it.
	if _, err := pool.Exec(ctx, `DELETE FROM measurements_sealed_totals WHERE unit_secs = 86400 AND unit_start = $1`, day); err != nil {
		t.Fatal(err)
	}
	countsMore("day without totals", windowsOfDay, map[string]int64{"by name": 700, "by method": 700})
	if res, err := ms.Seal(ctx, now, time.Time{}, noRenew); err != nil || res != (postgres.SealResult{Days: 1}) {
		t.Fatalf("pass after the totals went: %+v, %v; want the day built again", res, err)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals WHERE unit_secs = 86400 AND unit_start = $1 AND count > 0`, day); n != 1 {
		t.Fatalf("%d totals of the day after the pass", n)
	}
	check("resealed", byCount)

	// A 5-minute bin of a sealed hour without its totals (a hand edit too):
	// a window starting inside the hour uses the hour's bins from its start
	// on, and without a name or methods this one is read from its rows
	// (migration 00051; before, the hour's totals let the bin in, and the
	// count missed its rows above the filter's bucket). Put back after.
	var bin time.Time
	if err := pool.QueryRow(ctx, `SELECT t.unit_start FROM measurements_sealed_totals t
		JOIN measurements_sealed s ON s.unit_secs = 3600 AND s.unit_start = date_bin('1 hour', t.unit_start, '1970-01-01 00:00:00+00')
		WHERE t.unit_secs = 300 AND t.count > 0 AND extract(minute FROM t.unit_start) >= 30
		ORDER BY t.unit_start LIMIT 1`).Scan(&bin); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE TABLE kept_bin_totals AS SELECT * FROM measurements_sealed_totals WHERE unit_secs = 300 AND unit_start = $1`,
		`DELETE FROM measurements_sealed_totals WHERE unit_secs = 300 AND unit_start = $1`,
	} {
		if _, err := pool.Exec(ctx, sql, bin); err != nil {
			t.Fatal(err)
		}
	}
	hour := bin.Truncate(time.Hour)
	insideHour := store.MeasurementFilter{StartedAt: hour.Add(20 * time.Minute), EndedAt: hour.Add(5 * time.Hour)}
	countsMore("bin without totals", map[string]store.MeasurementFilter{"from inside its hour": insideHour}, nil)
	if _, err := pool.Exec(ctx, `INSERT INTO measurements_sealed_totals SELECT * FROM kept_bin_totals; DROP TABLE kept_bin_totals`); err != nil {
		t.Fatal(err)
	}
	check("bin's totals back", byCount)

	// Late batches unseal their units (one long row ends a day later).
	late := []store.Measurement{
		{StartedAt: time.Date(2024, 3, 11, 9, 30, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 11, 9, 30, 0, 150000, time.UTC), Elapsed: 0.15, Name: "/a", Method: "GET", App: "shop"},
		{StartedAt: time.Date(2024, 3, 10, 22, 50, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 10, 22, 50, 0, 100000, time.UTC), Elapsed: 0.1, Name: "/c", Method: "PUT"},
		{StartedAt: time.Date(2024, 3, 11, 23, 10, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 12, 23, 10, 0, 0, time.UTC), Elapsed: 86400, Name: "/c", Method: "GET"},
	}
	if _, err := ms.Insert(ctx, late); err != nil {
		t.Fatal(err)
	}
	check("after late batches", byCount)
	if _, err := ms.Seal(ctx, now, time.Time{}, noRenew); err != nil {
		t.Fatal(err)
	}
	check("sealed again", byCount)

	// Rows expire up to a mark inside the first day (the maintenance pass
	// records the mark first, then deletes): the units before it still
	// hold the expired rows and must not be counted.
	mark := time.Date(2024, 3, 11, 13, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `UPDATE retention_watermarks SET deleted_before = $1 WHERE table_name = 'measurements'`, mark); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM measurements WHERE started_at < $1`, mark); err != nil {
		t.Fatal(err)
	}
	check(fmt.Sprintf("rows expired before %s", mark.Format(time.RFC3339)), byCount)
}
