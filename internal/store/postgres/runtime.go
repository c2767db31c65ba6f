package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
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

// Insert writes one sample.
func (r *RuntimeSamples) Insert(ctx context.Context, s store.RuntimeSample) error {
	err := r.q.InsertRuntimeSample(ctx, db.InsertRuntimeSampleParams{
		Time: s.Time, InstanceID: s.InstanceID, IntervalSeconds: s.Interval.Seconds(),
		ProcessCpu: s.ProcessCPU, SystemCpu: s.SystemCPU,
		GcCpuSeconds: s.GCCPUSeconds, GcPauseSeconds: s.GCPauseSeconds, GcCycles: s.GCCycles,
		Gomaxprocs: s.GOMAXPROCS, HeapLiveBytes: s.HeapLiveBytes, GoMemoryBytes: s.GoMemoryBytes,
		RssBytes: s.RSSBytes, Goroutines: s.Goroutines,
	})
	return wrap("insert runtime sample", err)
}
