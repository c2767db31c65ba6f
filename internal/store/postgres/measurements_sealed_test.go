package postgres_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// rawGroup is a group's statistics computed from the raw rows.
type rawGroup struct {
	count             int64
	avg, minEl, maxEl float64
}

// rawGroups is the grouped view of f computed from the raw rows, by "name
// method".
func rawGroups(t *testing.T, pool *pgxpool.Pool, f store.MeasurementFilter) map[string]rawGroup {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT name, method, count(*), avg(elapsed), min(elapsed), max(elapsed) FROM measurements
		WHERE started_at >= $1 AND ended_at <= $2 AND ($3::text IS NULL OR name = $3) AND ($4::text IS NULL OR app = $4)
		  AND (cardinality($5::text[]) = 0 OR method = ANY($5)) AND ($6::float8 IS NULL OR elapsed >= $6)
		GROUP BY name, method`, f.StartedAt, f.EndedAt, f.Name, f.App, append([]string{}, f.Methods...), f.MinElapsed)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]rawGroup{}
	for rows.Next() {
		var n, m string
		var s rawGroup
		if err := rows.Scan(&n, &m, &s.count, &s.avg, &s.minEl, &s.maxEl); err != nil {
			t.Fatal(err)
		}
		want[n+" "+m] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

// sameAsRows reports the groups of page that differ from the raw rows'.
func sameAsRows(t *testing.T, label string, page store.Page[store.MeasurementGroup], want map[string]rawGroup) {
	t.Helper()
	if page.Total != int64(len(want)) || len(page.Items) != len(want) {
		t.Errorf("%s: %d groups (total %d), want %d", label, len(page.Items), page.Total, len(want))
		return
	}
	for _, g := range page.Items {
		w, ok := want[g.Name+" "+g.Method]
		if !ok || g.Count != w.count || g.MinElapsed != w.minEl || g.MaxElapsed != w.maxEl ||
			math.Abs(g.AvgElapsed-w.avg) > 1e-9*w.avg {
			t.Errorf("%s: %s %s count %d avg %v min %v max %v; rows: %+v", label, g.Name, g.Method,
				g.Count, g.AvgElapsed, g.MinElapsed, g.MaxElapsed, w)
		}
	}
}

// sealedWindows are windows over randomMeasurements' two days, of every
// shape the sealed statement splits: whole days and partial hours at both
// ends, a first partial hour with whole 5-minute bins, windows inside one
// day or one hour, the window's last hour with rows that end after it.
func sealedWindows(rng *rand.Rand) map[string]store.MeasurementFilter {
	at := func(day, hour, min, sec int) time.Time { return time.Date(2024, 3, day, hour, min, sec, 0, time.UTC) }
	name := "/b/<id>"
	windows := map[string]store.MeasurementFilter{
		"two days and edges":      {StartedAt: at(10, 22, 31, 7), EndedAt: at(12, 21, 0, 0)},
		"whole day, partial ends": {StartedAt: at(10, 23, 17, 0), EndedAt: at(12, 3, 40, 0)},
		"from a midnight":         {StartedAt: at(11, 0, 0, 0), EndedAt: at(12, 12, 0, 0)},
		"inside one day":          {StartedAt: at(11, 3, 10, 0), EndedAt: at(11, 20, 5, 0)},
		"inside one hour":         {StartedAt: at(11, 5, 2, 0), EndedAt: at(11, 5, 58, 0)},
		"two hours":               {StartedAt: at(11, 5, 2, 0), EndedAt: at(11, 6, 58, 0)},
		"on 5-minute bins":        {StartedAt: at(11, 7, 15, 0), EndedAt: at(12, 7, 15, 0)},
		"by name":                 {StartedAt: at(10, 22, 31, 7), EndedAt: at(12, 21, 0, 0), Name: &name},
		"by methods":              {StartedAt: at(10, 23, 17, 0), EndedAt: at(12, 3, 40, 0), Methods: []string{"GET", "PUT"}},
		"past the rows":           {StartedAt: at(10, 20, 0, 0), EndedAt: at(13, 6, 0, 0)},
	}
	first := time.Date(2024, 3, 10, 22, 30, 0, 0, time.UTC)
	for i := range 12 {
		s := first.Add(time.Duration(rng.Int64N(int64(40 * time.Hour)))).Truncate(time.Microsecond)
		e := s.Add(time.Duration(rng.Int64N(int64(30 * time.Hour)))).Truncate(time.Microsecond)
		windows["random "+string(rune('a'+i))] = store.MeasurementFilter{StartedAt: s, EndedAt: e}
	}
	return windows
}

// The grouped view answers the same from sealed units as from the rollups
// and the rows: before any unit is sealed, once every closed one is, after
// late batches unsealed some (they are then read from the rollups again),
// and once sealed anew. It does read the sealed cells (a cell changed by
// hand changes the answer), and the pass seals each unit once.
func TestMeasurementsSealedUnitsAnswerAlike(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 23))
	recs := randomMeasurements(rng, 5000)
	spreadElapsed(rng, recs)
	insertInBatches(t, ms, recs, 500)
	windows := sealedWindows(rng)
	sortBy := store.MeasurementSort{Key: "count", Desc: true}
	grouped := func(f store.MeasurementFilter) store.Page[store.MeasurementGroup] {
		t.Helper()
		page, err := ms.Grouped(ctx, f, sortBy, store.PageRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	check := func(state string) map[string]store.Page[store.MeasurementGroup] {
		t.Helper()
		out := map[string]store.Page[store.MeasurementGroup]{}
		for label, f := range windows {
			out[label] = grouped(f)
			sameAsRows(t, state+", "+label, out[label], rawGroups(t, pool, f))
		}
		return out
	}
	noRenew := func(context.Context) error { return nil }
	now := time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC)

	open := check("nothing sealed")
	res, err := ms.Seal(ctx, now, time.Time{}, noRenew)
	if err != nil {
		t.Fatal(err)
	}
	hours, quarters, days := countOf(t, pool, `SELECT count(DISTINCT date_trunc('hour', started_at, 'UTC')) FROM measurements`),
		countOf(t, pool, `SELECT count(DISTINCT date_bin('6 hours', started_at, '1970-01-01Z')) FROM measurements`),
		countOf(t, pool, `SELECT count(DISTINCT date_trunc('day', started_at, 'UTC')) FROM measurements`)
	if res.Hours != hours || res.Quarters != quarters || res.Days != days || countOf(t, pool, `SELECT count(*) FROM measurements_sealed`) != hours+quarters+days {
		t.Fatalf("sealed %+v, want %d hours, %d quarters and %d days", res, hours, quarters, days)
	}
	if res, err := ms.Seal(ctx, now, time.Time{}, noRenew); err != nil || res.Hours+res.Quarters+res.Days != 0 {
		t.Fatalf("second pass sealed %+v, %v", res, err)
	}
	sealed := check("sealed")
	// Same statistics, and the same histograms: the same percentiles.
	for label, page := range sealed {
		for i, g := range page.Items {
			o := open[label].Items[i]
			if g.Name != o.Name || g.Method != o.Method || g.Count != o.Count || g.MinElapsed != o.MinElapsed || g.MaxElapsed != o.MaxElapsed ||
				g.P50Elapsed != o.P50Elapsed || g.P95Elapsed != o.P95Elapsed || g.P99Elapsed != o.P99Elapsed {
				t.Errorf("%s: sealed %+v, from the rollups %+v", label, g, o)
			}
		}
	}

	// The sealed cells are what answers: a day's, a quarter's, an hour's
	// and a 5-minute bin's cell changed by hand shows, once its unit's seal
	// (the hour's, for a bin) changes too: the service keeps the cells it
	// has read under their seal (measurements_cells.go).
	for _, unit := range []struct {
		window, unit string
		secs         int
	}{
		{"two days and edges", "2024-03-11Z", 86400},
		{"two days and edges", "2024-03-12 06:00Z", 21600},
		{"from a midnight", "2024-03-12 06:00Z", 3600},
		{"two days and edges", "2024-03-10 22:40Z", 300},
	} {
		f := windows[unit.window]
		var name, method string
		if err := pool.QueryRow(ctx, `SELECT name, method FROM measurements_sealed_cells WHERE unit_secs = $1 AND unit_start = $2 LIMIT 1`,
			unit.secs, unit.unit).Scan(&name, &method); err != nil {
			t.Fatalf("%v: %v", unit, err)
		}
		const cell = `WITH c AS (
				UPDATE measurements_sealed_cells SET count = count + $5, above_counts[1] = above_counts[1] + $5
				WHERE unit_secs = $1 AND unit_start = $2 AND name = $3 AND method = $4
				RETURNING 1)
			UPDATE measurements_sealed SET sealed_at = clock_timestamp()
			WHERE unit_secs = greatest($1, 3600)
			  AND unit_start = date_bin(make_interval(secs => greatest($1, 3600)), $2::timestamptz, 'epoch')
			  AND EXISTS (SELECT 1 FROM c)`
		if tag, err := pool.Exec(ctx, cell, unit.secs, unit.unit, name, method, 1000); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%v: %v, %v", unit, tag, err)
		}
		var changed int64
		for _, g := range grouped(f).Items {
			if g.Name == name && g.Method == method {
				changed = g.Count
			}
		}
		if want := rawGroups(t, pool, f)[name+" "+method].count + 1000; changed != want {
			t.Errorf("with the cell of %v changed by 1000: count %d, want %d", unit, changed, want)
		}
		if tag, err := pool.Exec(ctx, cell, unit.secs, unit.unit, name, method, -1000); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%v: %v, %v", unit, tag, err)
		}
	}

	// Late batches: rows in sealed hours (one in the day sealed above, one
	// in the window's first hour's 5-minute bins, one long row ending in
	// another day) unseal their hours and days, and the answers follow.
	late := []store.Measurement{
		{StartedAt: time.Date(2024, 3, 11, 9, 30, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 11, 9, 30, 9, 0, time.UTC), Elapsed: 9, Name: "/a", Method: "GET", App: "shop"},
		{StartedAt: time.Date(2024, 3, 10, 22, 50, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 10, 22, 50, 1, 0, time.UTC), Elapsed: 1, Name: "/c", Method: "PUT"},
		{StartedAt: time.Date(2024, 3, 11, 23, 10, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 12, 1, 10, 0, 0, time.UTC), Elapsed: 7200, Name: "/new", Method: "GET"},
	}
	if _, err := ms.Insert(ctx, late); err != nil {
		t.Fatal(err)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed WHERE (unit_secs = 3600 AND unit_start IN ('2024-03-11 09:00Z', '2024-03-10 22:00Z', '2024-03-11 23:00Z'))
		OR (unit_secs = 21600 AND unit_start IN ('2024-03-11 06:00Z', '2024-03-10 18:00Z', '2024-03-11 18:00Z'))
		OR (unit_secs = 86400 AND unit_start IN ('2024-03-11 00:00Z', '2024-03-10 00:00Z'))`); n != 0 {
		t.Fatalf("%d of the late rows' units still sealed", n)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed`); n != hours+quarters+days-8 {
		t.Fatalf("%d units sealed after the late batch, want %d", n, hours+quarters+days-8)
	}
	check("after late batches")
	res, err = ms.Seal(ctx, now, time.Time{}, noRenew)
	if err != nil || res.Hours != 3 || res.Quarters != 3 || res.Days != 2 {
		t.Fatalf("sealed again %+v, %v; want the 3 hours, 3 quarters and 2 days", res, err)
	}
	check("sealed again")
}

// The maintenance pass seals what closed SealDelay before its time and no
// more, and its 5-minute bins go with the raw rows while the hours,
// quarters and days stay with the rollups.
func TestMaintainSealsClosedUnitsAndExpiresBins(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 29))
	insertInBatches(t, ms, randomMeasurements(rng, 2000), 500)
	now := time.Date(2024, 3, 12, 12, 10, 0, 0, time.UTC)
	res, err := st.Lifecycle.Maintain(ctx, store.Retention{}, now)
	if err != nil {
		t.Fatal(err)
	}
	var sealed int64
	for _, w := range res.Tables {
		sealed += w.Sealed
	}
	if want := countOf(t, pool, `SELECT count(*) FROM measurements_sealed`); sealed == 0 || sealed != want {
		t.Fatalf("the pass reports %d units sealed, the table holds %d", sealed, want)
	}
	// Every sealed unit has its totals (migration 00026), every sealed
	// hour its twelve bins' as well, counting its rows.
	if n, want := countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals`),
		countOf(t, pool, `SELECT count(*) + 12 * count(*) FILTER (WHERE unit_secs = 3600) FROM measurements_sealed`); n != want {
		t.Errorf("%d totals, want %d", n, want)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals t
		WHERE t.count <> (SELECT count(*) FROM measurements m
		                  WHERE m.started_at >= t.unit_start AND m.started_at < t.unit_start + make_interval(secs => t.unit_secs))`); n != 0 {
		t.Errorf("%d totals differ from their rows' count", n)
	}
	// 12:10: the hour from 10:00 closed 70 minutes ago, the one from 11:00
	// only 10 (SealDelay is 15); the quarter from 06:00 and the 12th not yet.
	for unit, want := range map[string]int64{
		"3600, '2024-03-12 10:00Z'": 1, "3600, '2024-03-12 11:00Z'": 0,
		"21600, '2024-03-12 00:00Z'": 1, "21600, '2024-03-12 06:00Z'": 0,
		"86400, '2024-03-11Z'": 1, "86400, '2024-03-12Z'": 0,
	} {
		if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed WHERE (unit_secs, unit_start) = (`+unit+`)`); n != want {
			t.Errorf("unit (%s): %d seals, want %d", unit, n, want)
		}
	}

	// Raw rows kept a day: the bins of the hours before 2024-03-11 12:10
	// go, the hours' cells stay.
	if _, err := st.Lifecycle.Maintain(ctx, store.Retention{Measurements: 24 * time.Hour, Rollups: 400 * 24 * time.Hour}, now); err != nil {
		t.Fatal(err)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed_cells WHERE unit_secs = 300 AND unit_start <= '2024-03-11 12:05Z'`); n != 0 {
		t.Errorf("%d expired 5-minute bins left", n)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals WHERE unit_secs = 300 AND unit_start <= '2024-03-11 12:05Z'`); n != 0 {
		t.Errorf("%d expired 5-minute bins' totals left", n)
	}
	if countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals WHERE unit_secs = 300 AND unit_start >= '2024-03-11 12:10Z'`) == 0 ||
		countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals WHERE unit_secs = 3600 AND unit_start < '2024-03-11 12:00Z'`) == 0 {
		t.Error("the pass removed totals of kept bins or of hours")
	}
	if countOf(t, pool, `SELECT count(*) FROM measurements_sealed_cells WHERE unit_secs = 300 AND unit_start >= '2024-03-11 12:10Z'`) == 0 ||
		countOf(t, pool, `SELECT count(*) FROM measurements_sealed_cells WHERE unit_secs = 3600 AND unit_start < '2024-03-11 12:00Z'`) == 0 {
		t.Error("the pass removed bins of kept rows or hours' cells")
	}
	f := store.MeasurementFilter{StartedAt: time.Date(2024, 3, 11, 12, 20, 0, 0, time.UTC), EndedAt: time.Date(2024, 3, 12, 11, 40, 0, 0, time.UTC)}
	page, err := ms.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	sameAsRows(t, "after the rows' retention", page, rawGroups(t, pool, f))
}
