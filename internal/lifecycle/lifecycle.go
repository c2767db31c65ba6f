// Package lifecycle runs the data lifecycle (docs/lifecycle.md): one
// maintenance pass on demand (`telemetry maintain`) or one every interval
// inside serve, each pass logged on one line and counted in /metrics. The
// work itself (retention, compression, the one-pass-at-a-time lease) is the
// store's (store.Maintainer).
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/warnlimit"
)

// Runner runs maintenance passes and reports them.
type Runner struct {
	m         store.Maintainer
	retention store.Retention
	log       *slog.Logger
	now       func() time.Time
	// warns bounds the passes' failure lines, sealing and maintenance
	// each: at most one every warnlimit.Every, whatever SEAL_INTERVAL or
	// MAINTENANCE_INTERVAL (1s is allowed), for as long as the database is
	// down or its disk full (found by the crash and disk-full audits).
	warns *warnlimit.Limiter

	removedRows, removedChunks, compressed *prometheus.CounterVec
	deferred                               *prometheus.CounterVec
	passes, seals                          *prometheus.CounterVec
	failures                               prometheus.Counter
	lastPass, lastDuration                 prometheus.Gauge

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// one keeps this process's passes and sealing passes apart: a sealing
	// pass holding the lease would make the pass it overlaps skip.
	one sync.Mutex
	// heldRetries and heldWait: a pass that finds the lease held tries
	// again that many times, after a wait drawn from [heldWait, 2 heldWait)
	// each time (see RunOnce).
	heldRetries int
	heldWait    time.Duration
}

// A pass that finds the lease held tries again up to heldRetries times,
// 0.5-1 s apart: the holder is most often another instance's sealing pass,
// which holds it for milliseconds. Without the retries such a pass was
// skipped at every interval for as long as both processes ran: the loops'
// tickers keep their phase, and MAINTENANCE_INTERVAL is a multiple of
// SEAL_INTERVAL, so a pass that met a sealing pass once met it every hour
// (found by an audit, reproduced with two runners).
const (
	heldRetries = 3
	heldWait    = 500 * time.Millisecond
)

// New builds a Runner; reg (may be nil) receives its metrics.
func New(m store.Maintainer, r store.Retention, log *slog.Logger, reg prometheus.Registerer) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Runner{
		m: m, retention: r, log: log, now: time.Now, ctx: ctx, cancel: cancel, warns: warnlimit.New(log),
		heldRetries: heldRetries, heldWait: heldWait,
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
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_maintenance_deferred_chunks_total",
			Help: "TimescaleDB chunks the maintenance pass left for the next one, by hypertable: in use by another session past its lock timeout (to drop or compress), or written to while it compressed them again.",
		}, []string{"table"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_maintenance_passes_total",
			Help: "Maintenance passes by outcome: done, skipped (another pass held the lease, the schema is a later release's, or the database is read-only) or failed.",
		}, []string{"outcome"}),
		seals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_maintenance_seal_passes_total",
			Help: "Sealing passes (SEAL_INTERVAL: the measurements' closed units and 5-minute bins, between maintenance passes) by outcome: done, skipped (another pass held the lease, the schema is a later release's, or the database is read-only) or failed.",
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
		reg.MustRegister(l.removedRows, l.removedChunks, l.compressed, l.deferred, l.passes, l.seals, l.failures, l.lastPass, l.lastDuration)
	}
	return l
}

// RunOnce runs one pass, logs it on one line (a failure at most once every
// warnlimit.Every, with the count it stands for) and updates the metrics. A
// pass that finds the lease held tries again a few times, a second or so
// apart (heldRetries), and is skipped only when it is held at each try.
func (l *Runner) RunOnce(ctx context.Context) (store.MaintenanceResult, error) {
	l.one.Lock()
	defer l.one.Unlock()
	start := l.now()
	res, err := l.pass(ctx, start)
	for try := 0; try < l.heldRetries && err == nil && res.Skipped && !res.SchemaAhead; try++ {
		wait := time.NewTimer(l.heldWait + rand.N(l.heldWait+1))
		select {
		case <-ctx.Done():
			wait.Stop()
			err = ctx.Err()
		case <-wait.C:
			res, err = l.pass(ctx, l.now())
		}
	}
	took := l.now().Sub(start)
	l.lastPass.Set(float64(l.now().UnixNano()) / 1e9)
	l.lastDuration.Set(took.Seconds())
	attrs := []any{"duration", took.String(), "mode", res.Mode}
	for _, t := range res.Tables {
		l.removedRows.WithLabelValues(t.Table).Add(float64(t.Rows))
		l.removedChunks.WithLabelValues(t.Table).Add(float64(t.Chunks))
		l.compressed.WithLabelValues(t.Table).Add(float64(t.Compressed))
		l.deferred.WithLabelValues(t.Table).Add(float64(t.Deferred))
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
		l.warns.Error(ctx, "maintenance pass failed", "", append(attrs, "error", err.Error())...)
	case res.SchemaAhead:
		l.passes.WithLabelValues("skipped").Inc()
		l.log.Warn("maintenance pass skipped: the database schema is a later release's; upgrade this binary",
			"schema_version", res.SchemaVersion, "binary_version", res.BinaryVersion)
	case res.Skipped:
		l.passes.WithLabelValues("skipped").Inc()
		l.log.Info("maintenance pass skipped: another pass holds the lease", "duration", took.String(),
			"tries", 1+l.heldRetries)
	default:
		l.passes.WithLabelValues("done").Inc()
		l.log.Info("maintenance pass", attrs...)
	}
	return res, err
}

// SealOnce runs one sealing pass (store.Maintainer's Seal) and counts it.
// One that sealed something or was skipped is logged at debug level (one a
// minute is normal), a failure as an error (at most one line every
// warnlimit.Every, which counts the ones it stands for); it does not retry a held lease
// (the next one is a minute away); the units it sealed are not counted in
// the maintenance metrics, which are the full passes'.
func (l *Runner) SealOnce(ctx context.Context) (store.MaintenanceResult, error) {
	l.one.Lock()
	defer l.one.Unlock()
	start := l.now()
	res, err := l.run(ctx, start, l.m.Seal)
	var sealed int64
	for _, t := range res.Tables {
		sealed += t.Sealed
	}
	switch {
	case err != nil && l.ctx.Err() != nil && errors.Is(err, context.Canceled):
	case errors.Is(err, store.ErrReadOnly) || (err == nil && res.Skipped):
		// At debug level, as the passes that sealed something: a
		// replica's instance would say so every minute.
		l.seals.WithLabelValues("skipped").Inc()
		reason := "another pass holds the lease"
		switch {
		case err != nil:
			reason = "the database is read-only (a replica or in recovery)"
		case res.SchemaAhead:
			reason = "the database schema is a later release's"
		}
		l.log.Debug("sealing pass skipped", "reason", reason)
	case err != nil:
		l.seals.WithLabelValues("failed").Inc()
		l.warns.Error(ctx, "sealing pass failed", "", "duration", l.now().Sub(start).String(), "error", err.Error())
	default:
		l.seals.WithLabelValues("done").Inc()
		if sealed > 0 {
			l.log.Debug("sealing pass", "duration", l.now().Sub(start).String(), "sealed", sealed)
		}
	}
	return res, err
}

// maxClockSkew is how far this instance's clock and the database's may
// disagree for a pass to run.
const maxClockSkew = 5 * time.Minute

// pass runs one pass with now as the current time, once the database's
// clock agrees with it. A pass cuts every retention at now: from a clock
// that jumped ahead (a host that booted with a wrong clock runs its first
// pass before NTP has set it) it would delete rows still within their
// retention, for good; from one far behind, seal units that are not closed
// yet. Found by an operations audit.
func (l *Runner) pass(ctx context.Context, now time.Time) (store.MaintenanceResult, error) {
	return l.run(ctx, now, l.m.Maintain)
}

// run runs fn (a pass or a sealing pass) with now as the current time, once
// the database's clock agrees with it.
func (l *Runner) run(ctx context.Context, now time.Time, fn func(context.Context, store.Retention, time.Time) (store.MaintenanceResult, error)) (store.MaintenanceResult, error) {
	db, err := l.m.Clock(ctx)
	if err != nil {
		return store.MaintenanceResult{}, err
	}
	if skew := now.Sub(db); skew > maxClockSkew || skew < -maxClockSkew {
		return store.MaintenanceResult{}, fmt.Errorf("not run: this instance's clock (%s) and the database's (%s) "+
			"disagree by %s, more than %s: the retention would be cut at the wrong time; synchronise the clocks (NTP)",
			now.UTC().Format(time.RFC3339), db.UTC().Format(time.RFC3339), skew.Round(time.Second), maxClockSkew)
	}
	return fn(ctx, l.retention, now)
}

// Start runs a pass now and then every interval, until Close.
func (l *Runner) Start(interval time.Duration) { l.loop(interval, true, l.RunOnce) }

// StartSealing runs a sealing pass every interval (the first after one
// interval: Start's first pass seals too), until Close.
func (l *Runner) StartSealing(interval time.Duration) { l.loop(interval, false, l.SealOnce) }

// loop runs pass every interval (and at once when now), until Close.
func (l *Runner) loop(interval time.Duration, now bool, pass func(context.Context) (store.MaintenanceResult, error)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if now {
				_, _ = pass(l.ctx)
			}
			now = true
			select {
			case <-l.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the loops, cancelling a pass in flight (it stops between two
// batches, its lease released), and waits for it.
func (l *Runner) Close() {
	l.cancel()
	l.wg.Wait()
}
