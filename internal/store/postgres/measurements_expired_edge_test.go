package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A window that ends inside an hour reads that hour (edge B) from its
// cells less the rows in them that ended after the window. Once the rows
// have expired those late rows are gone and cannot be subtracted: edge B
// is then what is left of its rows, as docs/lifecycle.md says, and the
// whole hours still come from the rollups. Every view counts the same:
// before migration 00040 and the queries' change, the expired window
// below counted 3 in every view (the late row among them).
func TestMeasurementsExpiredLastHourCountsWhatIsLeft(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	m := st.Measurements
	ctx := context.Background()
	h := time.Date(2024, 1, 10, 9, 0, 0, 0, time.UTC)
	rec := func(start, end time.Duration) store.Measurement {
		return store.Measurement{StartedAt: h.Add(start), EndedAt: h.Add(end), Elapsed: (end - start).Seconds(),
			Name: "/a", Method: "GET", App: "shop"}
	}
	if _, err := m.Insert(ctx, []store.Measurement{
		rec(65*time.Minute, 70*time.Minute),   // 10:05-10:10: a whole hour of the window
		rec(185*time.Minute, 190*time.Minute), // 12:05-12:10: edge B
		rec(200*time.Minute, 212*time.Minute), // 12:20-12:32: ended after the window, in its last 5-minute bin
	}); err != nil {
		t.Fatal(err)
	}
	shop := "shop"
	windows := []store.MeasurementFilter{
		{StartedAt: h, EndedAt: h.Add(210 * time.Minute)},             // 09:00-12:30
		{StartedAt: h, EndedAt: h.Add(210 * time.Minute), App: &shop}, // the grouped view without its sealed form
	}
	// want: the count of every view but the 5-minute series, whose whole
	// bins reach 12:30 (wantBins).
	check := func(stage string, want, wantBins int64) {
		t.Helper()
		for _, f := range windows {
			n, err := m.Count(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			d, err := m.MethodDistribution(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var series [2]int64
			for i, width := range []time.Duration{time.Hour, 5 * time.Minute} {
				ts, err := m.Timeseries(ctx, f, width)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range ts {
					series[i] += b.Count
				}
			}
			g, err := m.Grouped(ctx, f, store.MeasurementSort{Key: "count"}, store.PageRequest{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var grouped int64
			for _, x := range g.Items {
				grouped += x.Count
			}
			if n != want || d["GET"] != want || series[0] != want || series[1] != wantBins || grouped != want {
				t.Errorf("%s, app %v: count %d, distribution %d, timeseries by hour %d and by 5 minutes %d, grouped %d; want %d (%d by 5 minutes)",
					stage, f.App != nil, n, d["GET"], series[0], series[1], grouped, want, wantBins)
			}
		}
	}
	check("rows kept", 2, 2)
	if _, err := st.Lifecycle.Maintain(ctx, store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour},
		h.Add(60*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements`); n != 0 {
		t.Fatalf("%d rows left after expiry", n)
	}
	// The whole hour 10:00 from the rollups, edge B's rows gone; by 5
	// minutes, the whole bins 10:05 and 12:05 from the rollups.
	check("rows expired", 1, 2)
}
