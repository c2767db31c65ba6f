// Package lifecycle runs the data lifecycle (docs/lifecycle.md): one
// maintenance pass on demand (`telemetry maintain`) or one every interval
// inside serve, each pass logged on one line and counted in /metrics. The
// work itself (retention, compression, the one-pass-at-a-time lease) is the
// store's (store.Maintainer).
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/store"
)

// Runner runs maintenance passes and reports them.
type Runner struct {
	m         store.Maintainer
	retention store.Retention
	log       *slog.Logger
	now       func() time.Time

	removedRows, removedChunks, compressed *prometheus.CounterVec
	passes                                 *prometheus.CounterVec
	failures                               prometheus.Counter
	lastPass, lastDuration                 prometheus.Gauge

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a Runner; reg (may be nil) receives its metrics.
func New(m store.Maintainer, r store.Retention, log *slog.Logger, reg prometheus.Registerer) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Runner{
		m: m, retention: r, log: log, now: time.Now, ctx: ctx, cancel: cancel,
		removedRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_maintenance_removed_rows_total",
			Help: "Rows the maintenance pass deleted, by table (plain tables; dropped TimescaleDB chunks are counted apart).",
		}, []string{"table"}),
		removedChunks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_maintenance_removed_chunks_total",
			Help: "TimescaleDB chunks the maintenance pass dropped, by hypertable.",
		}, []string{"table"}),
		compressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_maintenance_compressed_chunks_total",
			Help: "TimescaleDB chunks the maintenance pass compressed, by hypertable.",
		}, []string{"table"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_maintenance_passes_total",
			Help: "Maintenance passes by outcome: done, skipped (another pass held the lease, the schema is a later release's, or the database is read-only) or failed.",
		}, []string{"outcome"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_maintenance_failures_total",
			Help: "Maintenance passes that failed (in whole or in part).",
		}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telemetry_maintenance_last_pass_timestamp_seconds",
			Help: "When the last maintenance pass of this process ended (Unix time).",
		}),
		lastDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telemetry_maintenance_last_pass_duration_seconds",
			Help: "How long the last maintenance pass of this process took.",
		}),
	}
	if reg != nil {
		reg.MustRegister(l.removedRows, l.removedChunks, l.compressed, l.passes, l.failures, l.lastPass, l.lastDuration)
	}
	return l
}

// RunOnce runs one pass, logs it on one line and updates the metrics.
func (l *Runner) RunOnce(ctx context.Context) (store.MaintenanceResult, error) {
	start := l.now()
	res, err := l.m.Maintain(ctx, l.retention, start)
	took := time.Since(start)
	l.lastPass.Set(float64(l.now().UnixNano()) / 1e9)
	l.lastDuration.Set(took.Seconds())
	attrs := []any{"duration", took.String(), "mode", res.Mode}
	for _, t := range res.Tables {
		l.removedRows.WithLabelValues(t.Table).Add(float64(t.Rows))
		l.removedChunks.WithLabelValues(t.Table).Add(float64(t.Chunks))
		l.compressed.WithLabelValues(t.Table).Add(float64(t.Compressed))
		group := []any{"rows", t.Rows, "chunks", t.Chunks, "compressed", t.Compressed}
		if t.Sealed > 0 {
			group = append(group, "sealed", t.Sealed)
		}
		if t.Deferred > 0 {
			group = append(group, "deferred", t.Deferred)
		}
		attrs = append(attrs, slog.Group(t.Table, group...))
	}
	switch {
	case err != nil && l.ctx.Err() != nil && errors.Is(err, context.Canceled):
		// Shutdown stopped the pass between two batches: not a failure.
		l.log.Info("maintenance pass stopped by shutdown", attrs...)
	case errors.Is(err, store.ErrReadOnly):
		// DATABASE_URL reaches a replica or a primary in recovery (a
		// failover under way): nothing to maintain here; the primary's
		// instances do it.
		l.passes.WithLabelValues("skipped").Inc()
		l.log.Warn("maintenance pass skipped: the database is read-only (a replica or in recovery)",
			"duration", took.String())
	case err != nil:
		l.passes.WithLabelValues("failed").Inc()
		l.failures.Inc()
		l.log.Error("maintenance pass failed", append(attrs, "error", err.Error())...)
	case res.SchemaAhead:
		l.passes.WithLabelValues("skipped").Inc()
		l.log.Warn("maintenance pass skipped: the database schema is a later release's; upgrade this binary",
			"schema_version", res.SchemaVersion, "binary_version", res.BinaryVersion)
	case res.Skipped:
		l.passes.WithLabelValues("skipped").Inc()
		l.log.Info("maintenance pass skipped: another pass is running", "duration", took.String())
	default:
		l.passes.WithLabelValues("done").Inc()
		l.log.Info("maintenance pass", attrs...)
	}
	return res, err
}

// Start runs a pass now and then every interval, until Close.
func (l *Runner) Start(interval time.Duration) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			_, _ = l.RunOnce(l.ctx)
			select {
			case <-l.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the loop, cancelling a pass in flight (it stops between two
// batches, its lease released), and waits for it.
func (l *Runner) Close() {
	l.cancel()
	l.wg.Wait()
}
