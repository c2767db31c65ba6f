package postgres

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// The grouped measurements' percentiles come from elapsed histograms kept
// beside the rollups (measurements_hourly_hist, measurements_daily_hist,
// migration 00010): per cell, the count of measurements in each bucket of
// a fixed log scale. A window's histogram is the sum of its cells' (and of
// the partial hours' rows, bucketed by the same function in SQL), so a
// percentile costs one read of the page's groups' buckets whatever the
// number of rows, and keeps answering after raw rows expire.
//
// Bucket 0 holds elapsed <= histFloor; bucket b >= 1 holds
// [histFloor*histRatio^(b-1), histFloor*histRatio^b). A percentile is the
// bucket holding its rank, answered as the point of the bucket equally far
// (relatively) from both ends, 2*lo*histRatio/(histRatio+1), then clamped
// to the group's exact min and max. The true value at that rank is in the
// same bucket, so for elapsed above histFloor the relative error is at most
// (histRatio-1)/(histRatio+1) = store.PercentileRelativeError (2.44 %); at
// or below histFloor the error is at most histFloor in absolute terms.
const (
	histFloor = 1e-6
	histRatio = 1.05
)

// elapsedBucket is telemetry_elapsed_bucket (migration 00010) in Go.
func elapsedBucket(e float64) int16 {
	if !(e > histFloor) {
		return 0
	}
	return int16(min(1+math.Floor(math.Log(e/histFloor)/math.Log(histRatio)), math.MaxInt16))
}

// bucketValue is the value a percentile falling in bucket b is answered with.
func bucketValue(b int32) float64 {
	if b <= 0 {
		return 0 // clamped to the group's min by the caller
	}
	lo := histFloor * math.Pow(histRatio, float64(b-1))
	return 2 * lo * histRatio / (histRatio + 1)
}

// bucketCount is one occupied bucket of a merged histogram.
type bucketCount struct {
	bucket int32
	count  int64
}

// percentile is the nearest-rank q-quantile (as PostgreSQL's
// percentile_disc: the smallest value whose cumulative share is >= q) of a
// histogram in bucket order, clamped to [lo, hi]. ok is false for an empty
// histogram.
func percentile(h []bucketCount, q, lo, hi float64) (v float64, ok bool) {
	var n int64
	for _, b := range h {
		n += b.count
	}
	if n == 0 {
		return 0, false
	}
	rank := max(int64(math.Ceil(q*float64(n))), 1)
	// The extreme ranks are the exact min and max the rollups keep.
	switch rank {
	case 1:
		return lo, true
	case n:
		return hi, true
	}
	var seen int64
	for _, b := range h {
		seen += b.count
		if seen >= rank {
			return min(max(bucketValue(b.bucket), lo), hi), true
		}
	}
	return hi, true
}

// histCells is a batch's histogram rows for one rollup: per cell key and
// bucket, the number of measurements.
type histCell struct {
	cellKey
	bucket int16
}

func sortedHist(cells map[histCell]int64) []histCell {
	keys := make([]histCell, 0, len(cells))
	for k := range cells {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].cellKey != keys[j].cellKey {
			return keys[i].less(keys[j].cellKey)
		}
		return keys[i].bucket < keys[j].bucket
	})
	return keys
}

// histOf is a batch's additions to the two histogram tables, each in key
// order (as the rollups, so concurrent batches lock rows in one order).
func histOf(recs []store.Measurement) (db.AddMeasurementHourlyHistParams, db.AddMeasurementDailyHistParams) {
	hourly := make(map[histCell]int64)
	daily := make(map[histCell]int64)
	for i := range recs {
		r := &recs[i]
		b := elapsedBucket(r.Elapsed)
		hourly[histCell{cellKey{hourOf(r.StartedAt).Unix(), hourOf(r.EndedAt).Unix(), r.App, r.Name, r.Method}, b}]++
		daily[histCell{cellKey{dayOf(r.StartedAt).Unix(), dayOf(r.EndedAt).Unix(), r.App, r.Name, r.Method}, b}]++
	}
	var h db.AddMeasurementHourlyHistParams
	for _, k := range sortedHist(hourly) {
		h.StartHours = append(h.StartHours, time.Unix(k.start, 0).UTC())
		h.EndHours = append(h.EndHours, time.Unix(k.end, 0).UTC())
		h.Apps, h.Names, h.Methods = append(h.Apps, k.app), append(h.Names, k.name), append(h.Methods, k.method)
		h.Buckets, h.Counts = append(h.Buckets, k.bucket), append(h.Counts, hourly[k])
	}
	var d db.AddMeasurementDailyHistParams
	for _, k := range sortedHist(daily) {
		d.StartDays = append(d.StartDays, time.Unix(k.start, 0).UTC())
		d.EndDays = append(d.EndDays, time.Unix(k.end, 0).UTC())
		d.Apps, d.Names, d.Methods = append(d.Apps, k.app), append(d.Names, k.name), append(d.Methods, k.method)
		d.Buckets, d.Counts = append(d.Buckets, k.bucket), append(d.Counts, daily[k])
	}
	return h, d
}

// addPercentiles fills P50, P95 and P99 of a page of groups from their
// merged histograms over the window (one query for the page).
func (m *Measurements) addPercentiles(ctx context.Context, q *db.Queries, f store.MeasurementFilter, b bounds, groups []store.MeasurementGroup) error {
	if len(groups) == 0 {
		return nil
	}
	p := db.GroupMeasurementHistogramsParams{
		H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour), D1: b.d1, D2: b.d2, StartedAt: f.StartedAt, EndedAt: f.EndedAt,
		Name: f.Name, Methods: methodsOf(f), App: f.App, MinElapsed: f.MinElapsed,
	}
	for _, g := range groups {
		p.GroupNames, p.GroupMethods = append(p.GroupNames, g.Name), append(p.GroupMethods, g.Method)
	}
	rows, err := q.GroupMeasurementHistograms(ctx, p)
	if err != nil {
		return wrap("group measurements: percentiles", err)
	}
	type key struct{ name, method string }
	hists := make(map[key][]bucketCount, len(groups))
	for _, r := range rows { // in bucket order per group
		k := key{r.Name, r.Method}
		hists[k] = append(hists[k], bucketCount{r.Bucket, r.Count})
	}
	for i := range groups {
		g := &groups[i]
		h := hists[key{g.Name, g.Method}]
		g.P50Elapsed, _ = percentile(h, 0.50, g.MinElapsed, g.MaxElapsed)
		g.P95Elapsed, _ = percentile(h, 0.95, g.MinElapsed, g.MaxElapsed)
		g.P99Elapsed, _ = percentile(h, 0.99, g.MinElapsed, g.MaxElapsed)
	}
	return nil
}
