package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/lifecycle"
	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// maintain runs one data lifecycle pass and exits (docs/lifecycle.md): for
// cron users, and for instances started with MAINTENANCE_INTERVAL=0.
func maintain(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	st, err := openStore(ctx, cfg, postgres.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := migrate.New(st.Pool())
	if err != nil {
		return err
	}
	err = m.CheckCurrent(ctx)
	m.Close()
	if err != nil {
		return err
	}
	res, err := lifecycle.New(st.Lifecycle, retentionOf(cfg), log, nil).RunOnce(ctx)
	if errors.Is(err, store.ErrReadOnly) {
		return errMaintainReplica
	}
	if err != nil {
		return fmt.Errorf("maintenance: %w", err)
	}
	if res.Skipped {
		_, err = fmt.Fprintln(stdout, "telemetry: maintenance skipped: another pass holds the lease")
		return err
	}
	fmt.Fprintf(stdout, "telemetry: maintenance done (%s)\n", res.Mode)
	for _, t := range res.Tables {
		fmt.Fprintf(stdout, "  %-28s rows %d, chunks dropped %d, chunks compressed %d", t.Table, t.Rows, t.Chunks, t.Compressed)
		if t.Deferred > 0 {
			// Being written to: left for the next pass (docs/lifecycle.md).
			fmt.Fprintf(stdout, ", chunks left for the next pass %d", t.Deferred)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// errMaintainReplica is maintain's answer on a server in recovery, as
// migrate's (migrate.ErrReadOnly), instead of the lease's raw SQL error.
var errMaintainReplica = errors.New("maintenance: the database server is in recovery (a read-only replica): " +
	"run maintain against the primary (DATABASE_URL)")

// retentionOf is the lifecycle part of the configuration.
func retentionOf(cfg config.Config) store.Retention {
	return store.Retention{
		Measurements:   cfg.MeasurementsRetention,
		DeviceMetrics:  cfg.DeviceMetricsRetention,
		RuntimeSamples: cfg.RuntimeSamplesRetention,
		Events:         cfg.EventsRetention,
		Flows:          cfg.FlowsRetention,
		Rollups:        cfg.RollupsRetention,
		CompressAfter:  cfg.CompressAfter,
	}
}
