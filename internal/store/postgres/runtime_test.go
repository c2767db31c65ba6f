package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A sample is stored column for column; CPU and RSS may be absent (NULL).
func TestRuntimeSampleInsert(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	rs := postgres.New(pool, postgres.Options{}).Runtime
	ctx := context.Background()
	at := time.Now().Truncate(time.Microsecond)
	proc, sys, rss := 0.25, 0.5, int64(64<<20)
	full := store.RuntimeSample{InstanceID: uuid.New(), Time: at, Interval: 5 * time.Second,
		ProcessCPU: &proc, SystemCPU: &sys, GCCPUSeconds: 0.125, GCPauseSeconds: 0.001, GCCycles: 3,
		GOMAXPROCS: 4, HeapLiveBytes: 4 << 20, GoMemoryBytes: 16 << 20, RSSBytes: &rss, Goroutines: 42}
	bare := store.RuntimeSample{InstanceID: uuid.New(), Time: at, Interval: 1500 * time.Millisecond, GOMAXPROCS: 1}
	for _, s := range []store.RuntimeSample{full, bare} {
		if err := rs.Insert(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := pool.Query(ctx, `SELECT instance_id, time, interval_seconds, process_cpu, system_cpu, gc_cpu_seconds,
		gc_pause_seconds, gc_cycles, gomaxprocs, heap_live_bytes, go_memory_bytes, rss_bytes, goroutines
		FROM runtime_samples ORDER BY gomaxprocs DESC`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []store.RuntimeSample
	for rows.Next() {
		var s store.RuntimeSample
		var interval float64
		if err := rows.Scan(&s.InstanceID, &s.Time, &interval, &s.ProcessCPU, &s.SystemCPU, &s.GCCPUSeconds,
			&s.GCPauseSeconds, &s.GCCycles, &s.GOMAXPROCS, &s.HeapLiveBytes, &s.GoMemoryBytes, &s.RSSBytes,
			&s.Goroutines); err != nil {
			t.Fatal(err)
		}
		s.Interval = time.Duration(interval * float64(time.Second))
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d rows", len(got))
	}
	g := got[0]
	if g.InstanceID != full.InstanceID || !g.Time.Equal(at) || g.Interval != full.Interval ||
		g.ProcessCPU == nil || *g.ProcessCPU != proc || g.SystemCPU == nil || *g.SystemCPU != sys ||
		g.GCCPUSeconds != 0.125 || g.GCPauseSeconds != 0.001 || g.GCCycles != 3 || g.GOMAXPROCS != 4 ||
		g.HeapLiveBytes != 4<<20 || g.GoMemoryBytes != 16<<20 || g.RSSBytes == nil || *g.RSSBytes != rss ||
		g.Goroutines != 42 {
		t.Fatalf("stored %+v, want %+v", g, full)
	}
	if b := got[1]; b.InstanceID != bare.InstanceID || b.Interval != bare.Interval ||
		b.ProcessCPU != nil || b.SystemCPU != nil || b.RSSBytes != nil {
		t.Fatalf("stored %+v, want %+v", b, bare)
	}
}

// The same instance and time twice is a conflict; a figure out of its range
// is refused as invalid.
func TestRuntimeSampleInsertRefused(t *testing.T) {
	t.Parallel()
	rs := postgres.New(testdb.New(t), postgres.Options{}).Runtime
	ctx := context.Background()
	s := store.RuntimeSample{InstanceID: uuid.New(), Time: time.Now(), Interval: time.Second, GOMAXPROCS: 1}
	if err := rs.Insert(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := rs.Insert(ctx, s); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same instance and time again: %v", err)
	}
	tooBusy := 1.5
	s.Time, s.ProcessCPU = s.Time.Add(time.Second), &tooBusy
	if err := rs.Insert(ctx, s); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("process_cpu 1.5: %v", err)
	}
}
