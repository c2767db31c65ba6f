package postgres_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
)

// The elapsed orders and an elapsed filter below the slow-row threshold
// read measurements_elapsed_bucket_idx (migration 00024): rows ordered by
// (bucket, elapsed, id), the filter doubled by a bound on the bucket. The
// rows here share buckets (values 0.1 % apart) and straddle bucket edges,
// and the filters fall inside a bucket, so that an order by bucket alone, or
// the bucket bound standing in for the filter, gives other pages or totals.
func TestMeasurementsElapsedOrderWithinBuckets(t *testing.T) {
	t.Parallel()
	m, _ := newMeasurements(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(24, 24))
	t0 := measurementBase
	var recs []store.Measurement
	add := func(el float64) {
		start := t0.Add(time.Duration(rng.IntN(100)) * time.Minute)
		recs = append(recs, store.Measurement{StartedAt: start, EndedAt: start.Add(time.Duration(el * float64(time.Second))),
			Elapsed: el, Name: []string{"/x", "/y"}[rng.IntN(2)], Method: "GET"})
	}
	for _, base := range []float64{0.0001, 0.01, 0.1, 0.2, 0.3} {
		for i := 0; i < 12; i++ {
			add(base * (1 + float64(rng.IntN(6))/1000)) // ties as well
		}
	}
	// Either side of the edges of bucket 236 (0.1 s falls in it) and of
	// the bucket of 0.3 s.
	for _, b := range []int{236, 237, 259, 260} {
		edge := 1e-6 * math.Pow(1.05, float64(b-1))
		for _, f := range []float64{0.9999, 1, 1.0001} {
			add(edge * f)
		}
	}
	add(0)
	add(1e-6)
	// The largest elapsed the table accepts (its CHECK, migration 00007):
	// the filter's count names every bucket up to this one's.
	recs = append(recs, store.Measurement{StartedAt: t0, EndedAt: t0.Add(time.Second), Elapsed: 253402300799,
		Name: "/x", Method: "GET"})
	ids, err := m.Insert(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i].ID = ids[i]
	}
	for _, min := range []float64{-1, 0.1002, 0.2, 0.3003} {
		f := store.MeasurementFilter{StartedAt: t0.Add(-time.Hour), EndedAt: t0.Add(4 * time.Hour)}
		var match []store.Measurement
		for _, r := range recs {
			if min < 0 || r.Elapsed >= min {
				match = append(match, r)
			}
		}
		if min >= 0 {
			f.MinElapsed = &min
		}
		for _, desc := range []bool{false, true} {
			s := store.MeasurementSort{Key: "elapsed", Desc: desc}
			t.Run(fmt.Sprintf("elapsed>=%v,desc=%v", min, desc), func(t *testing.T) {
				want := slices.Clone(match)
				slices.SortFunc(want, measurementLess(s))
				got := pagedIDs(t, m, f, s, 9, int64(len(want)), int64(len(want)))
				if !slices.Equal(got, idsOf(want)) {
					t.Fatalf("ids %v, want %v", got, idsOf(want))
				}
			})
		}
	}
}
