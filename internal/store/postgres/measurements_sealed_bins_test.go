package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// The closed 5-minute bins of an hour not sealed yet are sealed on their
// own (migration 00048): the count and the grouped view with an elapsed
// filter read them (the window's unsealed tail is then at most SealDelay
// and 5 minutes), a late batch unseals exactly the bins its rows start
// in, the hour's build replaces their seals with its own, and the answers
// stay the rows' throughout.
func TestMeasurementsSealedBinsOnTheirOwn(t *testing.T) {
	t.Parallel()
	ms, pool := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 48))
	recs := randomMeasurements(rng, 5000)
	spreadElapsed(rng, recs)
	insertInBatches(t, ms, recs, 500)
	noRenew := func(context.Context) error { return nil }
	at := func(hour, minute int) time.Time { return time.Date(2024, 3, 11, hour, minute, 0, 0, time.UTC) }
	hour := at(10, 0)
	ownBins := func() []time.Time {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT unit_start FROM measurements_sealed WHERE unit_secs = 300 ORDER BY unit_start`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []time.Time
		for rows.Next() {
			var s time.Time
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s.UTC())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	binsFrom := func(from time.Time, n int) []time.Time {
		var out []time.Time
		for i := range n {
			out = append(out, from.Add(time.Duration(i)*5*time.Minute))
		}
		return out
	}
	sameTimes := func(state string, got, want []time.Time) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: bins sealed on their own %v, want %v", state, got, want)
		}
	}
	windows := map[string]store.MeasurementFilter{
		"to the bins' end":    {StartedAt: at(7, 12), EndedAt: at(10, 30)},
		"inside the hour":     {StartedAt: at(10, 2), EndedAt: at(10, 27)},
		"across the bins":     {StartedAt: at(9, 17), EndedAt: at(10, 41)},
		"a day to the bins":   {StartedAt: at(10, 30).Add(-24 * time.Hour), EndedAt: at(10, 30)},
		"within a bin":        {StartedAt: at(10, 11), EndedAt: at(10, 14)},
		"bins of the next hr": {StartedAt: at(9, 0), EndedAt: at(11, 10)},
	}
	filters := []float64{0.001, 0.1, 1e-6 * 1.05 * 1.05}
	byCount := store.MeasurementSort{Key: "count", Desc: true}
	check := func(state string) {
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
				groupedAsFromRows(t, ms, pool, fmt.Sprintf("%s, %s, elapsed >= %v", state, label, el), f, byCount)
			}
		}
	}
	// tiles is the number of bins sealed on their own that the tiling of
	// the window [10:00, 10:30] uses.
	tiles := func() int64 {
		t.Helper()
		return countOf(t, pool, `SELECT count(*) FROM telemetry_measurements_sealed_tiling($1, $2, 0.001, false) t
			JOIN measurements_sealed s ON s.unit_secs = 300 AND s.unit_start = t.tile_start
			WHERE t.tile_secs = 300`, at(10, 0), at(10, 30))
	}

	// 10:47: the hours up to 10:00 are closed, and the bins of 10:00 to
	// 10:30 ended 15 minutes (SealDelay) ago.
	res, err := ms.Seal(ctx, at(10, 47), time.Time{}, noRenew)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bins != 6 || res.Hours == 0 {
		t.Fatalf("first pass %+v; want the hours before 10:00 and 6 bins", res)
	}
	sameTimes("first pass", ownBins(), binsFrom(hour, 6))
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed WHERE unit_secs = 3600 AND unit_start = $1`, hour); n != 0 {
		t.Fatalf("the hour of 10:00 is sealed at 10:47")
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals WHERE unit_secs = 300 AND unit_start >= $1 AND unit_start < $2`, hour, at(10, 30)); n != 6 {
		t.Fatalf("%d totals of the bins, want 6", n)
	}
	if n := tiles(); n == 0 {
		t.Fatalf("the tiling of [10:00, 10:30] uses none of the bins sealed on their own")
	}
	check("bins sealed")
	// A second pass at the same time has nothing to do.
	if res, err := ms.Seal(ctx, at(10, 47), time.Time{}, noRenew); err != nil || res != (postgres.SealResult{}) {
		t.Fatalf("second pass: %+v, %v; want nothing sealed", res, err)
	}

	// A late batch into the bin of 10:10 unseals that bin (and nothing else
	// of the hour); the next pass builds it again.
	late := []store.Measurement{
		{StartedAt: at(10, 12), EndedAt: at(10, 12).Add(120 * time.Millisecond), Elapsed: 0.12, Name: "/a", Method: "GET"},
		{StartedAt: at(10, 13), EndedAt: at(10, 13).Add(3 * time.Millisecond), Elapsed: 0.003, Name: "/late", Method: "PUT", App: "shop"},
	}
	if _, err := ms.Insert(ctx, late); err != nil {
		t.Fatal(err)
	}
	want := binsFrom(hour, 6)
	sameTimes("after a late batch", ownBins(), append(want[:2:2], want[3:]...))
	check("a bin unsealed")
	if res, err := ms.Seal(ctx, at(10, 47), time.Time{}, noRenew); err != nil || res != (postgres.SealResult{Bins: 1}) {
		t.Fatalf("pass after the late batch: %+v, %v; want the bin built again", res, err)
	}
	sameTimes("bin sealed again", ownBins(), binsFrom(hour, 6))
	check("bin sealed again")

	// Instances from before migration 00048 unseal with the three-array
	// form: every bin of the hours given goes.
	if _, err := pool.Exec(ctx, `SELECT telemetry_unseal_measurement_units(ARRAY[$1::timestamptz], '{}', '{}')`, hour); err != nil {
		t.Fatal(err)
	}
	sameTimes("unsealed by the old form", ownBins(), nil)
	check("unsealed by the old form")
	if res, err := ms.Seal(ctx, at(10, 47), time.Time{}, noRenew); err != nil || res != (postgres.SealResult{Bins: 6}) {
		t.Fatalf("pass after the old form: %+v, %v; want the 6 bins built again", res, err)
	}

	// 11:22: the hour of 10:00 is closed and sealed, its bins' own seals go
	// (its cells hold them), and the bin of 11:00 is sealed on its own.
	if res, err := ms.Seal(ctx, at(11, 22), time.Time{}, noRenew); err != nil || res != (postgres.SealResult{Hours: 1, Bins: 1}) {
		t.Fatalf("pass at 11:22: %+v, %v; want the hour of 10:00 and the bin of 11:00", res, err)
	}
	sameTimes("hour sealed", ownBins(), binsFrom(at(11, 0), 1))
	if n := countOf(t, pool, `SELECT count(*) FROM measurements_sealed_totals WHERE unit_secs = 300 AND unit_start >= $1 AND unit_start < $2`, hour, at(11, 0)); n != 12 {
		t.Fatalf("%d totals of the hour's bins, want 12", n)
	}
	check("hour sealed")
}
