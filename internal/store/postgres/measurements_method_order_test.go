package postgres_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The list in method order is read method by method with the methods'
// counts from the rollups (listByMethod): its pages, put end to end, are
// the window's rows in the documented order, for both directions, several
// page sizes and a method filter, with a window that cuts hours at both ends
// and rows that end after it (late rows, which the counts subtract). After
// the maintenance pass expired the window's first rows (the rollups still
// count them), the same holds: the list falls back to its sorting query.
// Every page's total is the number of those rows until rows expire (then
// it also counts the expired rows' whole hours, as documented in
// docs/lifecycle.md). It fails when the counts
// or the offsets inside a method are wrong, when the expiry mark is
// ignored, or when the total sums every method's count whatever the
// method filter (tried).
func TestMeasurementsListByMethodPages(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	base := time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "PUT", "DELETE"}
	var recs []store.Measurement
	for batch := 0; batch < 4; batch++ {
		var b []store.Measurement
		for i := 0; i < 80; i++ {
			start := base.Add(time.Duration(rng.Int64N(int64(3 * time.Hour)))).Truncate(time.Millisecond)
			el := float64(rng.IntN(1200)) / 1000
			if i%17 == 0 {
				start = base.Add(time.Duration(rng.Int64N(int64(time.Hour))))
				start = start.Truncate(time.Minute) // ended_at ties
				el = 1
			}
			b = append(b, store.Measurement{StartedAt: start, EndedAt: start.Add(time.Duration(el * float64(time.Second))),
				Elapsed: el, Name: "/r", Method: methods[rng.IntN(len(methods))], App: "shop"})
		}
		ids, err := st.Measurements.Insert(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i].ID = ids[i]
		}
		recs = append(recs, b...)
	}
	// A window cutting an hour at each end; some rows end after it.
	window := store.MeasurementFilter{StartedAt: base.Add(20 * time.Minute), EndedAt: base.Add(2*time.Hour + 40*time.Minute)}
	check := func(stage string, rows []store.Measurement) {
		t.Helper()
		for _, filter := range [][]string{nil, {"DELETE", "PUT"}} {
			for _, desc := range []bool{false, true} {
				s := store.MeasurementSort{Key: "method", Desc: desc}
				want := slices.DeleteFunc(slices.Clone(rows), func(r store.Measurement) bool {
					return r.StartedAt.Before(window.StartedAt) || r.StartedAt.After(window.EndedAt) || r.EndedAt.After(window.EndedAt) ||
						(filter != nil && !slices.Contains(filter, r.Method))
				})
				slices.SortFunc(want, measurementLess(s))
				f := window
				f.Methods = filter
				for _, size := range []int64{1, 13, 50} {
					var got []int64
					for off := int64(0); off < int64(len(want))+size; off += size {
						p, err := st.Measurements.List(ctx, f, s, store.PageRequest{Limit: size, Offset: off})
						if err != nil {
							t.Fatal(err)
						}
						if int64(len(p.Items)) > size {
							t.Fatalf("%s: page of %d items, size %d", stage, len(p.Items), size)
						}
						if stage == "all rows" && p.Total != int64(len(want)) {
							t.Fatalf("%s, methods %v: total %d, want %d", stage, filter, p.Total, len(want))
						}
						for _, r := range p.Items {
							got = append(got, r.ID)
						}
					}
					if !slices.Equal(got, idsOf(want)) {
						t.Fatalf("%s, methods %v, desc %v, size %d:\n got %v\nwant %v", stage, filter, desc, size, got, idsOf(want))
					}
				}
			}
		}
	}
	check("all rows", recs)

	// The pass expires rows started before base+90m, inside the window and
	// past its first whole hour, whose rollup cells (kept longer) still
	// count them.
	now := base.Add(90*time.Minute + 24*time.Hour)
	if _, err := st.Lifecycle.Maintain(ctx, store.Retention{Measurements: 24 * time.Hour, Rollups: 400 * 24 * time.Hour}, now); err != nil {
		t.Fatal(err)
	}
	// What is left: on plain PostgreSQL the rows before the cutoff are
	// gone; TimescaleDB drops whole 1-day chunks only, so there it keeps
	// them (the list must still match the rows).
	var kept []int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(id), '{}') FROM measurements`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	left := slices.DeleteFunc(slices.Clone(recs), func(r store.Measurement) bool { return !slices.Contains(kept, r.ID) })
	if !timescaleEnabled(t, pool) && len(left) == len(recs) {
		t.Fatal("the pass expired nothing")
	}
	check("after expiry", left)
}
