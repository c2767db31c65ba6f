package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// RuntimeSamples is the store of runtime samples: each server process's
// CPU, garbage collection and memory figures, which collections aggregate.
type RuntimeSamples struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

func newRuntimeSamples(pool *pgxpool.Pool, q *db.Queries) *RuntimeSamples {
	return &RuntimeSamples{pool: pool, q: q}
}

// RuntimeSample is the figures of one instance (server process) over the
// interval that ends at Time.
type RuntimeSample struct {
	InstanceID uuid.UUID
	Time       time.Time
	Interval   time.Duration
	// ProcessCPU and SystemCPU are fractions 0..1 of the machine's CPU
	// capacity; nil when they could not be measured.
	ProcessCPU, SystemCPU *float64
	GCCPUSeconds          float64 // GC CPU time during the interval
	GCPauseSeconds        float64 // stop-the-world GC pauses during the interval (estimate)
	GCCycles              int64   // GC cycles completed during the interval
	GOMAXPROCS            int32
	HeapLiveBytes         int64  // heap live after the last GC
	GoMemoryBytes         int64  // all memory mapped by the Go runtime
	RSSBytes              *int64 // resident set size; nil when it could not be measured
	Goroutines            int64
}

// Insert writes one sample.
func (r *RuntimeSamples) Insert(ctx context.Context, s RuntimeSample) error {
	err := r.q.InsertRuntimeSample(ctx, db.InsertRuntimeSampleParams{
		Time: s.Time, InstanceID: s.InstanceID, IntervalSeconds: s.Interval.Seconds(),
		ProcessCpu: s.ProcessCPU, SystemCpu: s.SystemCPU,
		GcCpuSeconds: s.GCCPUSeconds, GcPauseSeconds: s.GCPauseSeconds, GcCycles: s.GCCycles,
		Gomaxprocs: s.GOMAXPROCS, HeapLiveBytes: s.HeapLiveBytes, GoMemoryBytes: s.GoMemoryBytes,
		RssBytes: s.RSSBytes, Goroutines: s.Goroutines,
	})
	return wrap("insert runtime sample", err)
}
