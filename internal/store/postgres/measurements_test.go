package postgres_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

func newMeasurements(t *testing.T) (*postgres.Measurements, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.New(t)
	return postgres.New(pool, postgres.Options{}).Measurements, pool
}

// measurementBase is a UTC day boundary minus 90 minutes, so that batches
// around it span hours and days.
var measurementBase = time.Date(2024, 3, 10, 22, 30, 0, 0, time.UTC)

// randomMeasurements builds n measurements over the two days after
// measurementBase, some lasting over an hour (their start and end fall in
// different hour and day cells), with few distinct names, methods and apps
// so that cells hold several rows.
func randomMeasurements(rng *rand.Rand, n int) []store.Measurement {
	names := []string{"/a", "/b/<id>", "/c"}
	methods := []string{"GET", "POST", "PUT"}
	apps := []string{"", "shop", "telemetry"}
	out := make([]store.Measurement, n)
	for i := range out {
		start := measurementBase.Add(time.Duration(rng.Int64N(int64(48 * time.Hour)))).Truncate(time.Microsecond)
		d := time.Duration(rng.Int64N(int64(2 * time.Second)))
		if rng.IntN(10) == 0 {
			d = time.Duration(rng.Int64N(int64(3 * time.Hour)))
		}
		end := start.Add(d).Truncate(time.Microsecond)
		out[i] = store.Measurement{StartedAt: start, EndedAt: end, Elapsed: end.Sub(start).Seconds(),
			Name: names[rng.IntN(len(names))], Method: methods[rng.IntN(len(methods))], App: apps[rng.IntN(len(apps))],
			Kwargs: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))}
	}
	return out
}

// rollupMismatches counts the cells of the four rollups that differ from
// the same aggregates computed from the rows (missing or extra cells
// included).
func rollupMismatches(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	const q = `
WITH rows AS (
    SELECT date_trunc('hour', started_at, 'UTC') AS sh, date_trunc('hour', ended_at, 'UTC') AS eh,
           date_trunc('day', started_at, 'UTC') AS sd, date_trunc('day', ended_at, 'UTC') AS ed,
           date_bin('5 minutes', started_at, '1970-01-01 00:00:00+00') AS sb,
           date_bin('5 minutes', ended_at, '1970-01-01 00:00:00+00') AS eb,
           app, name, method, elapsed
    FROM measurements
), hourly AS (
    SELECT sh, eh, app, name, method, count(*) AS n, sum(elapsed) AS s, min(elapsed) AS lo, max(elapsed) AS hi
    FROM rows GROUP BY 1, 2, 3, 4, 5
), daily AS (
    SELECT sd, ed, app, name, method, count(*) AS n, sum(elapsed) AS s, min(elapsed) AS lo, max(elapsed) AS hi
    FROM rows GROUP BY 1, 2, 3, 4, 5
), methods AS (
    SELECT sh, eh, method, count(*) AS n FROM rows GROUP BY 1, 2, 3
), bins AS (
    SELECT sb, eb, count(*) AS n FROM rows GROUP BY 1, 2
)
SELECT
    (SELECT count(*) FROM hourly w FULL JOIN measurements_hourly r
        ON (r.start_hour, r.end_hour, r.app, r.name, r.method) = (w.sh, w.eh, w.app, w.name, w.method)
     WHERE w.n IS DISTINCT FROM r.count OR abs(w.s - r.sum_elapsed) > 1e-9 OR r.sum_elapsed IS NULL
        OR w.lo IS DISTINCT FROM r.min_elapsed OR w.hi IS DISTINCT FROM r.max_elapsed)
  + (SELECT count(*) FROM daily w FULL JOIN measurements_daily r
        ON (r.start_day, r.end_day, r.app, r.name, r.method) = (w.sd, w.ed, w.app, w.name, w.method)
     WHERE w.n IS DISTINCT FROM r.count OR abs(w.s - r.sum_elapsed) > 1e-9 OR r.sum_elapsed IS NULL
        OR w.lo IS DISTINCT FROM r.min_elapsed OR w.hi IS DISTINCT FROM r.max_elapsed)
  + (SELECT count(*) FROM methods w FULL JOIN measurements_method_hourly r
        ON (r.start_hour, r.end_hour, r.method) = (w.sh, w.eh, w.method)
     WHERE w.n IS DISTINCT FROM r.count)
  + (SELECT count(*) FROM bins w FULL JOIN measurements_5min r
        ON (r.start_bin, r.end_bin) = (w.sb, w.eb)
     WHERE w.n IS DISTINCT FROM r.count)`
	var n int64
	if err := pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Insert writes the rows and, in the same transaction, their cells in the
// four rollups; batches touching the same cells add up. RebuildRollup
// recomputes the same cells from the rows.
func TestMeasurementsInsertRollups(t *testing.T) {
	t.Parallel()
	m, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var all []store.Measurement
	var lastID int64
	for batch := 0; batch < 3; batch++ {
		recs := randomMeasurements(rng, 400)
		ids, err := m.Insert(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != len(recs) {
			t.Fatalf("%d ids for %d measurements", len(ids), len(recs))
		}
		for i, id := range ids {
			if id <= lastID {
				t.Fatalf("ids not increasing: %d after %d", id, lastID)
			}
			lastID = id
			recs[i].ID = id
		}
		all = append(all, recs...)
	}
	if n := rollupMismatches(t, pool); n != 0 {
		t.Fatalf("%d rollup cells differ from the rows after Insert", n)
	}
	// Insert copies each batch in started_at order (randomMeasurements'
	// are not): every id still names the record it was answered for.
	stored := map[int64]store.Measurement{}
	rows, err := pool.Query(ctx, `SELECT id, started_at, ended_at, name, method, app, kwargs FROM measurements`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r store.Measurement
		if err := rows.Scan(&r.ID, &r.StartedAt, &r.EndedAt, &r.Name, &r.Method, &r.App, &r.Kwargs); err != nil {
			t.Fatal(err)
		}
		stored[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(all) {
		t.Fatalf("%d rows stored, want %d", len(stored), len(all))
	}
	for _, want := range all {
		got, ok := stored[want.ID]
		if !ok || !got.StartedAt.Equal(want.StartedAt) || !got.EndedAt.Equal(want.EndedAt) || got.Name != want.Name ||
			got.Method != want.Method || got.App != want.App || !jsonEqual(got.Kwargs, want.Kwargs) {
			t.Fatalf("id %d holds %+v, want %+v", want.ID, got, want)
		}
	}

	// Get answers every field as posted, the empty JSON values filled in.
	want := all[17]
	got, err := m.Get(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartedAt.Equal(want.StartedAt) || !got.EndedAt.Equal(want.EndedAt) || got.Elapsed != want.Elapsed ||
		got.Name != want.Name || got.Method != want.Method || got.App != want.App ||
		string(got.Args) != "[]" || string(got.Context) != "{}" || !jsonEqual(got.Kwargs, want.Kwargs) {
		t.Fatalf("Get(%d) = %+v, want %+v", want.ID, got, want)
	}

	// The rollups answer the window queries exactly.
	f := store.MeasurementFilter{StartedAt: measurementBase.Add(95 * time.Minute), EndedAt: measurementBase.Add(40*time.Hour + 7*time.Minute)}
	var wantCount int64
	for _, r := range all {
		if !r.StartedAt.Before(f.StartedAt) && !r.EndedAt.After(f.EndedAt) {
			wantCount++
		}
	}
	if n, err := m.Count(ctx, f); err != nil || n != wantCount {
		t.Fatalf("Count = %d, %v; want %d", n, err, wantCount)
	}
	dist, err := m.MethodDistribution(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, n := range dist {
		sum += n
	}
	if sum != wantCount {
		t.Fatalf("distribution %v sums to %d, want %d", dist, sum, wantCount)
	}
	// Every bucket width: the buckets follow each other, and each counts
	// exactly the rows started in it (per-method rollup for whole hours,
	// 5-minute bins for whole 5 minutes, rows for the others), in this
	// window and in one whose ends fall inside 5-minute bins.
	odd := store.MeasurementFilter{StartedAt: f.StartedAt.Add(2*time.Minute + 13*time.Second), EndedAt: f.EndedAt.Add(-4 * time.Minute)}
	for _, c := range []struct {
		f     store.MeasurementFilter
		width time.Duration
	}{
		{f, 5 * time.Minute}, {f, 15 * time.Minute}, {f, time.Hour}, {f, 6 * time.Hour}, {f, 24 * time.Hour},
		{f, 2 * time.Minute}, {f, 10 * time.Minute}, {odd, 5 * time.Minute}, {odd, 15 * time.Minute}, {odd, 3 * time.Minute},
	} {
		f, width := c.f, c.width
		wantCount := int64(0)
		for _, r := range all {
			if !r.StartedAt.Before(f.StartedAt) && !r.EndedAt.After(f.EndedAt) {
				wantCount++
			}
		}
		buckets, err := m.Timeseries(ctx, f, width)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := pool.Query(ctx, `SELECT date_bin(make_interval(secs => $3), started_at, '1970-01-01 00:00:00+00'), count(*)
			FROM measurements WHERE started_at >= $1 AND ended_at <= $2 GROUP BY 1`, f.StartedAt, f.EndedAt, int(width.Seconds()))
		if err != nil {
			t.Fatal(err)
		}
		exact := map[time.Time]int64{}
		for rows.Next() {
			var at time.Time
			var n int64
			if err := rows.Scan(&at, &n); err != nil {
				t.Fatal(err)
			}
			exact[at.UTC()] = n
		}
		rows.Close()
		sum = 0
		for i, b := range buckets {
			sum += b.Count
			if i > 0 && !b.Start.Equal(buckets[i-1].Start.Add(width)) {
				t.Fatalf("%s: bucket %d starts at %s after %s", width, i, b.Start, buckets[i-1].Start)
			}
			if b.Count != exact[b.Start.UTC()] {
				t.Fatalf("%s: bucket %s counts %d, the rows %d", width, b.Start, b.Count, exact[b.Start.UTC()])
			}
		}
		if sum != wantCount {
			t.Fatalf("%s: %d buckets summing to %d, want %d", width, len(buckets), sum, wantCount)
		}
		// From the bucket of the window's start to that of its end (the
		// epoch-aligned grid of date_bin).
		var first, last time.Time
		if err := pool.QueryRow(ctx, `SELECT date_bin(make_interval(secs => $3), $1::timestamptz, '1970-01-01 00:00:00+00'),
			date_bin(make_interval(secs => $3), $2::timestamptz, '1970-01-01 00:00:00+00')`,
			f.StartedAt, f.EndedAt, int(width.Seconds())).Scan(&first, &last); err != nil {
			t.Fatal(err)
		}
		if len(buckets) == 0 || !buckets[0].Start.Equal(first) || !buckets[len(buckets)-1].Start.Equal(last) {
			t.Fatalf("%s: %d buckets, want %s to %s", width, len(buckets), first, last)
		}
		if width == time.Hour && len(buckets) != 39 {
			t.Fatalf("%d hourly buckets, want 39 (00:00 to 14:00 the next day)", len(buckets))
		}
	}
	if _, err := m.Timeseries(ctx, f, 7*time.Minute); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a width that does not divide a day: %v", err)
	}
	if b, err := m.Timeseries(ctx, store.MeasurementFilter{StartedAt: f.EndedAt, EndedAt: f.StartedAt}, time.Hour); err != nil || len(b) != 0 {
		t.Fatalf("a window ending before it starts: %v, %v", b, err)
	}

	// Cells lost (as if the rows had been loaded around Insert) come back.
	if _, err := pool.Exec(ctx, `DELETE FROM measurements_hourly WHERE start_hour < $1`, measurementBase.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE measurements_daily SET count = count + 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM measurements_5min WHERE start_bin < $1`, measurementBase.Add(12*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := rollupMismatches(t, pool); n == 0 {
		t.Fatal("the damaged rollups still match the rows")
	}
	if err := m.RebuildRollup(ctx, measurementBase, measurementBase.Add(50*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := rollupMismatches(t, pool); n != 0 {
		t.Fatalf("%d rollup cells differ from the rows after RebuildRollup", n)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// A batch with a value PostgreSQL cannot store is refused whole, as
// ErrInvalid.
func TestMeasurementsInsertAllOrNone(t *testing.T) {
	t.Parallel()
	m, pool := newMeasurements(t)
	ctx := context.Background()
	recs := randomMeasurements(rand.New(rand.NewPCG(3, 4)), 10)
	recs[7].Name = "bad\x00name"
	if _, err := m.Insert(ctx, recs); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Insert with a NUL byte: %v, want ErrInvalid", err)
	}
	var rows, cells int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM measurements), (SELECT count(*) FROM measurements_hourly)`).
		Scan(&rows, &cells); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || cells != 0 {
		t.Fatalf("%d rows and %d cells stored by a refused batch", rows, cells)
	}
	if ids, err := m.Insert(ctx, nil); err != nil || len(ids) != 0 || ids == nil {
		t.Fatalf("Insert(nil) = %v, %v; want an empty list", ids, err)
	}
}

func TestMeasurementsGetNotFound(t *testing.T) {
	t.Parallel()
	m, _ := newMeasurements(t)
	if _, err := m.Get(context.Background(), 12345); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing id: %v, want ErrNotFound", err)
	}
}

// less is the list order of a sort key: the key, then (for name and
// method) ended_at, then id, all in the sort's direction.
func measurementLess(s store.MeasurementSort) func(a, b store.Measurement) int {
	return func(a, b store.Measurement) int {
		var c int
		switch s.Key {
		case "startedAt":
			c = a.StartedAt.Compare(b.StartedAt)
		case "endedAt":
			c = a.EndedAt.Compare(b.EndedAt)
		case "elapsed":
			c = cmp.Compare(a.Elapsed, b.Elapsed)
		case "name":
			c = cmp.Or(cmp.Compare(a.Name, b.Name), a.EndedAt.Compare(b.EndedAt))
		case "method":
			c = cmp.Or(cmp.Compare(a.Method, b.Method), a.EndedAt.Compare(b.EndedAt))
		}
		c = cmp.Or(c, cmp.Compare(a.ID, b.ID))
		if s.Desc {
			c = -c
		}
		return c
	}
}

// Every sort key and direction orders the list as documented, ties broken
// by id; pages put end to end give the whole list, each with the exact
// total; filters apply.
func TestMeasurementsListOrders(t *testing.T) {
	t.Parallel()
	m, _ := newMeasurements(t)
	ctx := context.Background()
	// Few distinct values: every key has ties.
	t0 := measurementBase
	var recs []store.Measurement
	for i := 0; i < 40; i++ {
		start := t0.Add(time.Duration(i%4) * time.Minute)
		el := float64(i%3) * 0.5
		end := start.Add(time.Duration(el * float64(time.Second)))
		if i%5 == 0 {
			end = t0.Add(10 * time.Minute) // ended_at ties across started_at values
			el = end.Sub(start).Seconds()
		}
		recs = append(recs, store.Measurement{StartedAt: start, EndedAt: end, Elapsed: el,
			Name: []string{"/x", "/y"}[i%2], Method: []string{"GET", "PUT", "POST"}[i%3], App: []string{"a", "b"}[i/20]})
	}
	ids, err := m.Insert(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i].ID = ids[i]
	}
	window := store.MeasurementFilter{StartedAt: t0.Add(-time.Hour), EndedAt: t0.Add(time.Hour)}
	for _, key := range store.MeasurementSortKeys() {
		for _, desc := range []bool{false, true} {
			s := store.MeasurementSort{Key: key, Desc: desc}
			t.Run(fmt.Sprintf("%s,%v", key, desc), func(t *testing.T) {
				want := slices.Clone(recs)
				slices.SortFunc(want, measurementLess(s))
				got := pagedIDs(t, m, window, s, 7, 50, int64(len(recs)))
				for i := range want {
					if i >= len(got) || got[i] != want[i].ID {
						t.Fatalf("order by %+v: ids %v, want %v", s, got, idsOf(want))
					}
				}
				if len(got) != len(want) {
					t.Fatalf("%d ids listed, want %d", len(got), len(want))
				}
			})
		}
	}

	// An elapsed filter at or above the slow-row threshold (0.25 s) reads
	// ListSlowMeasurements, whose order is a parameter: every order again.
	slowMin := 0.5
	slowWindow := window
	slowWindow.MinElapsed = &slowMin
	var slow []store.Measurement
	for _, r := range recs {
		if r.Elapsed >= slowMin {
			slow = append(slow, r)
		}
	}
	for _, key := range store.MeasurementSortKeys() {
		for _, desc := range []bool{false, true} {
			s := store.MeasurementSort{Key: key, Desc: desc}
			want := slices.Clone(slow)
			slices.SortFunc(want, measurementLess(s))
			got := pagedIDs(t, m, slowWindow, s, 5, int64(len(slow))+7, int64(len(slow)))
			if !slices.Equal(got, idsOf(want)) {
				t.Fatalf("elapsed >= %v, order by %+v: ids %v, want %v", slowMin, s, got, idsOf(want))
			}
		}
	}

	if _, err := m.List(ctx, window, store.MeasurementSort{Key: "id"}, store.PageRequest{Limit: 10}); err == nil {
		t.Fatal("List by an unknown sort key succeeded")
	}

	// Filters: methods, name, app, elapsed.
	name, app, minEl := "/y", "b", 0.5
	f := window
	f.Methods, f.Name, f.App, f.MinElapsed = []string{"GET", "POST"}, &name, &app, &minEl
	p, err := m.List(ctx, f, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, r := range recs {
		if (r.Method == "GET" || r.Method == "POST") && r.Name == name && r.App == app && r.Elapsed >= minEl {
			want = append(want, r.ID)
		}
	}
	got := idsOf(p.Items)
	slices.Sort(got)
	if !slices.Equal(got, want) || p.Total != int64(len(want)) || len(want) == 0 {
		t.Fatalf("filtered list %v (total %d), want %v", got, p.Total, want)
	}
}

// pagedIDs lists f in the order s page by page (size rows a page, from
// offset 0 while it is below upTo) and gives the ids end to end; every
// page must carry the total wantTotal.
func pagedIDs(t *testing.T, m *postgres.Measurements, f store.MeasurementFilter, s store.MeasurementSort, size, upTo, wantTotal int64) []int64 {
	t.Helper()
	var got []int64
	for off := int64(0); off < upTo; off += size {
		p, err := m.List(context.Background(), f, s, store.PageRequest{Limit: size, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != wantTotal {
			t.Fatalf("order %+v, offset %d: total %d, want %d", s, off, p.Total, wantTotal)
		}
		got = append(got, idsOf(p.Items)...)
	}
	return got
}

func idsOf(recs []store.Measurement) []int64 {
	ids := make([]int64, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

// Past the last page a list is empty and still carries the exact total,
// for the list and for the groups.
func TestMeasurementsPagePastEnd(t *testing.T) {
	t.Parallel()
	m, _ := newMeasurements(t)
	ctx := context.Background()
	recs := randomMeasurements(rand.New(rand.NewPCG(5, 6)), 300)
	if _, err := m.Insert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	window := store.MeasurementFilter{StartedAt: measurementBase, EndedAt: measurementBase.Add(72 * time.Hour)}
	p, err := m.List(ctx, window, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 50, Offset: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 0 || p.Items == nil || p.Total != int64(len(recs)) {
		t.Fatalf("list past the end: %d items (nil %v), total %d; want none of %d", len(p.Items), p.Items == nil, p.Total, len(recs))
	}

	groups := map[string]int64{}
	for _, r := range recs {
		groups[r.Name+" "+r.Method]++
	}
	sort := store.MeasurementSort{Key: "count", Desc: true}
	all, err := m.Grouped(ctx, window, sort, store.PageRequest{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if all.Total != int64(len(groups)) || len(all.Items) != len(groups) {
		t.Fatalf("%d groups, total %d; want %d", len(all.Items), all.Total, len(groups))
	}
	for i, g := range all.Items {
		if groups[g.Name+" "+g.Method] != g.Count {
			t.Fatalf("group %+v, want count %d", g, groups[g.Name+" "+g.Method])
		}
		if i > 0 && all.Items[i-1].Count < g.Count {
			t.Fatalf("groups not by count descending: %+v", all.Items)
		}
	}
	past, err := m.Grouped(ctx, window, sort, store.PageRequest{Limit: 5, Offset: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(past.Items) != 0 || past.Items == nil || past.Total != int64(len(groups)) {
		t.Fatalf("groups past the end: %d items, total %d; want none of %d", len(past.Items), past.Total, len(groups))
	}
	empty := store.MeasurementFilter{StartedAt: measurementBase.Add(-72 * time.Hour), EndedAt: measurementBase.Add(-48 * time.Hour)}
	if none, err := m.Grouped(ctx, empty, sort, store.PageRequest{Limit: 5, Offset: 5}); err != nil || none.Total != 0 || len(none.Items) != 0 {
		t.Fatalf("groups of an empty window: %+v, %v", none, err)
	}
}
