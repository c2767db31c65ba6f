package api

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// roundOf is a run's loadStats with its quantiles, from its latencies.
func roundOf(lat []time.Duration) loadStats {
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	s := loadStats{Requests: int64(len(sorted)), P99: atPercentile(sorted, 99)}
	for _, p := range latencyGrid {
		s.Quantiles = append(s.Quantiles, atPercentile(sorted, p))
	}
	return s
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// The p99 of several runs' requests, pooled from their quantiles: the
// runs' own p99 when they are alike; the pooled one, not the worst run's,
// when a small run is slow; and never under the exact pooled p99 nor over
// the worst run's.
func TestPooledQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sample := func(n int, scale float64) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(rng.ExpFloat64()*scale) + time.Microsecond
		}
		return out
	}
	alike := sample(20000, float64(time.Millisecond))
	one := roundOf(alike)
	if got := pooledQuantile([]loadStats{one, one, one}, 99); got != one.P99 {
		t.Errorf("three equal runs: pooled p99 %v, want their p99 %v", got, one.P99)
	}

	// 9,950 requests at 1 ms and 50 at 100 ms, then 20 at 50 ms: the p99 of
	// the 10,020 is 1 ms, where the worst run's p99 is 50 ms.
	fast := roundOf(append(repeat(time.Millisecond, 9950), repeat(100*time.Millisecond, 50)...))
	slow := roundOf(repeat(50*time.Millisecond, 20))
	if got := pooledQuantile([]loadStats{fast, slow}, 99); got != time.Millisecond {
		t.Errorf("a small slow run: pooled p99 %v, want 1ms", got)
	}

	for trial := range 20 {
		var runs []loadStats
		var all []time.Duration
		worst := time.Duration(0)
		for range 6 {
			lat := sample(500+rng.IntN(20000), float64(time.Duration(1+rng.IntN(20))*time.Millisecond))
			r := roundOf(lat)
			runs = append(runs, r)
			all = append(all, lat...)
			worst = max(worst, r.P99)
		}
		slices.Sort(all)
		exact, got := atPercentile(all, 99), pooledQuantile(runs, 99)
		if got < exact || got > worst {
			t.Errorf("trial %d: pooled p99 %v, want between the exact %v and the worst run's %v", trial, got, exact, worst)
		}
	}
	if got := pooledQuantile([]loadStats{{Requests: 10}}, 99); got != 0 {
		t.Errorf("a run without quantiles: %v, want 0 (unknown)", got)
	}
}

// Two runs of the same size whose p99s differ: the pooled p99 falls between
// them (a grid of whole percentiles below 99 gave the slower run's p99).
func TestPooledQuantileBetweenRuns(t *testing.T) {
	var a, b []time.Duration
	for i := range 10000 {
		a = append(a, time.Duration(i+1)*time.Microsecond)    // p99 9.9 ms
		b = append(b, time.Duration(i+1)*990*time.Nanosecond) // p99 9.801 ms
	}
	ra, rb := roundOf(a), roundOf(b)
	all := append(slices.Clone(a), b...)
	slices.Sort(all)
	exact, got := atPercentile(all, 99), pooledQuantile([]loadStats{ra, rb}, 99)
	// The exact p99 of both is about 9.85 ms; a run's share is known to 0.1
	// point.
	if got < exact || got >= ra.P99 || got > atPercentile(all, 99.1) {
		t.Fatalf("pooled p99 %v: want from the exact %v to its p99.1 %v, under the slower run's %v",
			got, exact, atPercentile(all, 99.1), ra.P99)
	}
}
