package postgres_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
)

// The grouped statistics (count, min, max, average) equal the same
// aggregates over the raw rows, and the percentiles stay within their
// bound, for windows of every shape the rollups split them into: whole
// days and hours at both ends or none, rows that ended later the same day
// or in the window's last hour (late rows: that hour is then read from the
// rows), windows inside one day, each with and without filters.
func TestMeasurementsGroupedExactOverWindowShapes(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 7))
	recs := randomMeasurements(rng, 4000)
	insertInBatches(t, ms, recs, 400)
	var last time.Time
	if err := pool.QueryRow(ctx, `SELECT max(ended_at) FROM measurements`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	at := func(day, hour, min int) time.Time { return time.Date(2024, 3, day, hour, min, 0, 0, time.UTC) }
	name, app := "/b/<id>", "shop"
	windows := map[string]store.MeasurementFilter{
		"nothing after it that day":          {StartedAt: at(10, 23, 17), EndedAt: at(13, 12, 0)},
		"rows after it that day":             {StartedAt: at(10, 23, 17), EndedAt: at(13, 0, 40)},
		"later days":                         {StartedAt: at(11, 3, 10), EndedAt: at(12, 20, 5)},
		"late row in the last hour":          {StartedAt: at(11, 0, 30), EndedAt: last.Add(-time.Microsecond)},
		"from a midnight":                    {StartedAt: at(11, 0, 0), EndedAt: at(13, 12, 0)},
		"ends just after the last row":       {StartedAt: at(12, 21, 40), EndedAt: last.Add(time.Microsecond)},
		"one day, no whole day":              {StartedAt: at(12, 21, 0), EndedAt: at(12, 23, 30)},
		"its first whole day its last":       {StartedAt: at(12, 22, 5), EndedAt: at(13, 12, 0)},
		"nothing after it, by name":          {StartedAt: at(10, 23, 17), EndedAt: at(13, 12, 0), Name: &name},
		"nothing after it, by app":           {StartedAt: at(10, 23, 17), EndedAt: at(13, 12, 0), App: &app},
		"nothing after it, by methods":       {StartedAt: at(10, 23, 17), EndedAt: at(13, 12, 0), Methods: []string{"GET", "PUT"}},
		"rows after it, by app":              {StartedAt: at(10, 23, 17), EndedAt: at(13, 0, 40), App: &app},
		"late row in the last hour, by name": {StartedAt: at(11, 0, 30), EndedAt: last.Add(-time.Microsecond), Name: &name},
	}
	for label, f := range windows {
		want := rawGroups(t, pool, f)
		if len(want) == 0 {
			t.Fatalf("%s: no rows in the window: the test data moved", label)
		}
		page, err := ms.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		sameAsRows(t, label, page, want)
		var exact map[string]exactPercentiles
		if f.Methods == nil {
			exact = exactGroupPercentiles(t, pool, f)
		}
		for _, g := range page.Items {
			if e, ok := exact[g.Name+" "+g.Method]; ok && (!withinBound(g.P50Elapsed, e.p50) || !withinBound(g.P95Elapsed, e.p95) || !withinBound(g.P99Elapsed, e.p99)) {
				t.Errorf("%s: %s %s percentiles %v %v %v, exact %+v", label, g.Name, g.Method, g.P50Elapsed, g.P95Elapsed, g.P99Elapsed, e)
			}
		}
	}
}
