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

// A window that starts inside an hour reads the part of that hour after
// its first 5-minute boundary (edge A) from the 5-minute bins sealed with
// the hour, which hold what the rows held when sealed. Once rows at or
// after that boundary may have expired, the bins no longer match: on
// PostgreSQL the bin holding the cutoff still counted deleted rows, on
// TimescaleDB (drop_chunks keeps rows a chunk longer) the bins before the
// cutoff were deleted while their rows remained. Edge A is then read from
// what is left of the rows (migration 00041): every view counts the rows
// the database still holds in the window.
func TestMeasurementsExpiredFirstHourCountsWhatIsLeft(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	m := st.Measurements
	ctx := context.Background()
	h := time.Date(2024, 1, 10, 9, 0, 0, 0, time.UTC)
	rec := func(start time.Duration) store.Measurement {
		return store.Measurement{StartedAt: h.Add(start), EndedAt: h.Add(start + time.Second), Elapsed: 1,
			Name: "/a", Method: "GET", App: "shop"}
	}
	if _, err := m.Insert(ctx, []store.Measurement{
		rec(6 * time.Minute),                 // bin 09:05, wholly before the cutoff below
		rec(15*time.Minute + 30*time.Second), // bin 09:15, before the cutoff
		rec(18 * time.Minute),                // bin 09:15, after the cutoff
	}); err != nil {
		t.Fatal(err)
	}
	retention := store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour}
	// A pass two hours later seals 09:00; one 30 days after 09:17 expires
	// the rows started before 09:17.
	for _, now := range []time.Time{h.Add(2 * time.Hour), h.Add(17*time.Minute + 30*24*time.Hour)} {
		if _, err := st.Lifecycle.Maintain(ctx, retention, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed WHERE unit_secs = 3600 AND unit_start = '2024-01-10 09:00:00+00'`); n != 1 {
		t.Fatalf("09:00 not sealed (%d)", n)
	}
	left := countOf(t, pool, `SELECT count(*) FROM measurements WHERE started_at >= '2024-01-10 09:01:00+00'`)
	if left == 3 && !timescaleEnabled(t, pool) {
		t.Fatal("no row expired")
	}
	shop := "shop"
	for _, f := range []store.MeasurementFilter{
		{StartedAt: h.Add(time.Minute), EndedAt: h.Add(3 * time.Hour)},             // 09:01-12:00
		{StartedAt: h.Add(time.Minute), EndedAt: h.Add(3 * time.Hour), App: &shop}, // without the sealed form
	} {
		n, err := m.Count(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.MethodDistribution(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		g, err := m.Grouped(ctx, f, store.MeasurementSort{Key: "count"}, store.PageRequest{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var grouped int64
		for _, x := range g.Items {
			grouped += x.Count
		}
		if n != left || d["GET"] != left || grouped != left {
			t.Errorf("app %v: count %d, distribution %d, grouped %d; want the %d rows left", f.App != nil, n, d["GET"], grouped, left)
		}
	}
}
