package postgres_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A collection's runtime figures read the window's whole hours from the
// hourly cells (migration 00054) and only the edges from the samples: over
// six hours of samples of four instances (one every 10 s, one every 13 s
// without CPU figures one time in five nor RSS, one that stopped after two
// hours, one whose single sample covers 90 minutes), each window's figures
// are those of every sample weighted by the part of its interval inside the
// window, computed here from the samples, one instance's written by a bare
// INSERT (a release before the cells); the cells the inserts wrote are those
// telemetry_runtime_hourly_rebuild builds from the samples; and a window of
// four and a half hours reads the samples of its two partial hours only,
// not the whole window's (before the cells it read them all: 0.5 s a read
// at 242,000 samples, docs/collections.md, "At volume").
func TestCollectionsRuntimeHourlyCells(t *testing.T) {
	t.Parallel()
	base := testdb.New(t)
	ctx := context.Background()
	st := postgres.New(base, postgres.Options{})
	rng := rand.New(rand.NewPCG(11, 13))
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	f := func(v float64) *float64 { return &v }
	i := func(v int64) *int64 { return &v }
	var samples []store.RuntimeSample
	series := func(id uuid.UUID, every time.Duration, from, to time.Time, odd bool) {
		for at := from; at.Before(to); at = at.Add(every) {
			s := store.RuntimeSample{InstanceID: id, Time: at, Interval: every, SystemCPU: f(rng.Float64()),
				ProcessCPU: f(rng.Float64() / 4), GCCPUSeconds: rng.Float64() / 50, GOMAXPROCS: 2,
				HeapLiveBytes: rng.Int64N(1 << 30), RSSBytes: i(rng.Int64N(1 << 31))}
			if odd {
				s.GOMAXPROCS, s.RSSBytes = 4, nil
				if rng.IntN(5) == 0 {
					s.SystemCPU, s.ProcessCPU = nil, nil
				}
			}
			samples = append(samples, s)
		}
	}
	series(uuid.New(), 10*time.Second, t0.Add(3*time.Second), t0.Add(6*time.Hour), false)
	// This instance's samples are written by a bare INSERT, as a release
	// before migration 00054 still serving during a rolling upgrade writes
	// them (or an analyst's load): the trigger adds them to their cells too.
	earlier := uuid.New()
	series(earlier, 13*time.Second, t0.Add(7*time.Second), t0.Add(6*time.Hour), true)
	series(uuid.New(), 10*time.Second, t0.Add(5*time.Second), t0.Add(2*time.Hour), false)
	samples = append(samples, store.RuntimeSample{InstanceID: uuid.New(), Time: t0.Add(3*time.Hour + 10*time.Minute),
		Interval: 90 * time.Minute, SystemCPU: f(0.9), ProcessCPU: f(0.8), GCCPUSeconds: 3, GOMAXPROCS: 2, HeapLiveBytes: 1 << 31})
	for _, s := range samples {
		if s.InstanceID == earlier {
			if _, err := base.Exec(ctx, `INSERT INTO runtime_samples (time, instance_id, interval_seconds, process_cpu,
				system_cpu, gc_cpu_seconds, gc_pause_seconds, gc_cycles, gomaxprocs, heap_live_bytes, go_memory_bytes,
				rss_bytes, goroutines) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8, 0, $9, 1)`,
				s.Time, s.InstanceID, s.Interval.Seconds(), s.ProcessCPU, s.SystemCPU, s.GCCPUSeconds, s.GOMAXPROCS,
				s.HeapLiveBytes, s.RSSBytes); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := st.Runtime.Insert(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// The figures, from the samples themselves.
	want := func(since, until time.Time) store.CollectionRuntime {
		var out store.CollectionRuntime
		var sysW, sysWS, procW, procWS, gc, gm float64
		for _, s := range samples {
			if !s.Time.After(since) || s.Time.After(until) {
				continue
			}
			w := min(s.Interval.Seconds(), s.Time.Sub(since).Seconds())
			out.Samples++
			if s.SystemCPU != nil {
				sysW, sysWS, out.SystemPeak = sysW+w, sysWS+w**s.SystemCPU, max(out.SystemPeak, *s.SystemCPU)
			}
			if s.ProcessCPU != nil {
				procW, procWS, out.ProcessPeak = procW+w, procWS+w**s.ProcessCPU, max(out.ProcessPeak, *s.ProcessCPU)
			}
			gc, gm = gc+s.GCCPUSeconds*w/s.Interval.Seconds(), gm+w*float64(s.GOMAXPROCS)
			out.HeapLivePeak = max(out.HeapLivePeak, s.HeapLiveBytes)
			if s.RSSBytes != nil {
				out.RSSPeak = max(out.RSSPeak, *s.RSSBytes)
			}
		}
		if sysW > 0 {
			out.SystemMean = min(sysWS/sysW, out.SystemPeak)
		}
		if procW > 0 {
			out.ProcessMean = min(procWS/procW, out.ProcessPeak)
		}
		if gm > 0 {
			out.GCTime = min(1, gc/gm)
		}
		return out
	}
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*max(1, math.Abs(y)) }
	for _, w := range []struct{ since, until time.Time }{
		{t0.Add(17*time.Minute + 13*time.Second), t0.Add(4*time.Hour + 41*time.Minute + 7*time.Second)},
		// The first whole hour's first samples began before the window:
		// that hour is read from the rows.
		{t0.Add(time.Hour - time.Second), t0.Add(5 * time.Hour)},
		// The 90-minute sample's cell began before the window.
		{t0.Add(2 * time.Hour), t0.Add(6 * time.Hour)},
		{t0.Add(-time.Hour), t0.Add(7 * time.Hour)},
		{t0.Add(30 * time.Minute), t0.Add(50 * time.Minute)},
		{t0.Add(2 * time.Hour), t0.Add(3 * time.Hour)},
		{t0.Add(2*time.Hour + time.Microsecond), t0.Add(4*time.Hour - time.Microsecond)},
		{t0.Add(7 * time.Hour), t0.Add(8 * time.Hour)},
	} {
		got, err := st.Collections.Runtime(ctx, w.since, w.until)
		if err != nil {
			t.Fatal(err)
		}
		exp := want(w.since, w.until)
		if got.Samples != exp.Samples || !near(got.SystemMean, exp.SystemMean) || got.SystemPeak != exp.SystemPeak ||
			!near(got.ProcessMean, exp.ProcessMean) || got.ProcessPeak != exp.ProcessPeak || !near(got.GCTime, exp.GCTime) ||
			got.HeapLivePeak != exp.HeapLivePeak || got.RSSPeak != exp.RSSPeak {
			t.Fatalf("window %s to %s:\n got %+v\nwant %+v", w.since.Sub(t0), w.until.Sub(t0), got, exp)
		}
	}

	// The cells each insert added to are those the rebuild sums.
	type cell struct {
		Hour                  time.Time
		Instance              uuid.UUID
		Samples               int64
		FirstStart            time.Time
		SystemWSum, SystemW   float64
		SystemPeak            *float64
		ProcessWSum, ProcessW float64
		ProcessPeak           *float64
		GCCPU, GomaxprocsW    float64
		HeapPeak              int64
		RSSPeak               *int64
	}
	cells := func() []cell {
		rows, err := base.Query(ctx, `SELECT hour, instance_id, samples, first_start, system_wsum, system_w, system_peak,
			process_wsum, process_w, process_peak, gc_cpu_seconds, gomaxprocs_w, heap_peak, rss_peak
			FROM runtime_samples_hourly ORDER BY hour, instance_id`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[cell])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	written := cells()
	if _, err := base.Exec(ctx, `SELECT telemetry_runtime_hourly_rebuild('-infinity', 'infinity')`); err != nil {
		t.Fatal(err)
	}
	rebuilt := cells()
	if len(written) != len(rebuilt) || len(written) != 6+6+2+1 {
		t.Fatalf("%d cells written, %d rebuilt", len(written), len(rebuilt))
	}
	eqp := func(a, b *float64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
	for k, a := range written {
		b := rebuilt[k]
		if !a.Hour.Equal(b.Hour) || a.Instance != b.Instance || a.Samples != b.Samples || !a.FirstStart.Equal(b.FirstStart) ||
			!near(a.SystemWSum, b.SystemWSum) || !near(a.SystemW, b.SystemW) || !eqp(a.SystemPeak, b.SystemPeak) ||
			!near(a.ProcessWSum, b.ProcessWSum) || !near(a.ProcessW, b.ProcessW) || !eqp(a.ProcessPeak, b.ProcessPeak) ||
			!near(a.GCCPU, b.GCCPU) || !near(a.GomaxprocsW, b.GomaxprocsW) || a.HeapPeak != b.HeapPeak ||
			(a.RSSPeak == nil) != (b.RSSPeak == nil) || a.RSSPeak != nil && *a.RSSPeak != *b.RSSPeak {
			t.Fatalf("cell %d as written %+v, rebuilt %+v", k, a, b)
		}
	}

	// The long window's statement reads the samples of its partial hours
	// only (about 85 of its 265 minutes), the rest from 4 x 3 cells.
	pool, received := explainedPool(t, base, true)
	explained := postgres.New(pool, postgres.Options{})
	since, until := t0.Add(17*time.Minute+13*time.Second), t0.Add(4*time.Hour+41*time.Minute+7*time.Second)
	if _, err := explained.Collections.Runtime(ctx, since, until); err != nil {
		t.Fatal(err)
	}
	var read float64
	for _, node := range scansOf(t, received(), relationAndChunks(t, base, "runtime_samples")) {
		out, _ := node["Actual Rows"].(float64)
		removed, _ := node["Rows Removed by Filter"].(float64)
		loops, _ := node["Actual Loops"].(float64)
		read += (out + removed) * loops
	}
	inWindow := want(since, until).Samples
	if read == 0 || read > float64(inWindow)/2 {
		t.Fatalf("the window's statement read %.0f samples of the %d in it; want those of its two partial hours, "+
			"under half", read, inWindow)
	}
}
