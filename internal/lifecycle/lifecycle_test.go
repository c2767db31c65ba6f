package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/lifecycle"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

var retention = store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour}

// metric is the text of the metric family name as gathered from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, f := range families {
		if f.GetName() == name {
			out.WriteString(f.String())
		}
	}
	return out.String()
}

// Each outcome is logged on one line and counted: done, skipped (lease
// held elsewhere), failed (the database is gone).
func TestRunnerOutcomes(t *testing.T) {
	url := testdb.URL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), `
		INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now() - interval '60 days', now() - interval '60 days', 0, '/x', 'GET')`); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	r := lifecycle.New(postgres.New(pool, postgres.Options{}).Lifecycle, retention, log, reg)
	ctx := context.Background()

	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Plain PostgreSQL deletes the row, TimescaleDB drops its chunk.
	if !strings.Contains(logs.String(), `"msg":"maintenance pass"`) ||
		(!strings.Contains(logs.String(), `"measurements":{"rows":1`) && !strings.Contains(logs.String(), `"measurements":{"rows":0,"chunks":1`)) {
		t.Errorf("pass log: %s", logs.String())
	}
	if got := metric(t, reg, "telemetry_maintenance_removed_rows_total"); !strings.Contains(got, `value:"measurements"`) {
		t.Errorf("removed rows metric: %s", got)
	}

	if _, err := pool.Exec(ctx, `INSERT INTO maintenance_lease VALUES ('maintenance', gen_random_uuid(), now(), now() + interval '1 hour') ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`); err != nil {
		t.Fatal(err)
	}
	if res, err := r.RunOnce(ctx); err != nil || !res.Skipped {
		t.Fatalf("with the lease held: %+v %v", res, err)
	}

	// A store whose pool is closed: the pass fails, is logged and counted.
	closed, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	failing := lifecycle.New(postgres.New(closed, postgres.Options{}).Lifecycle, retention, log, nil)
	if _, err := failing.RunOnce(ctx); err == nil {
		t.Fatal("a pass on a closed pool succeeded")
	}
	if !strings.Contains(logs.String(), `"msg":"maintenance pass failed"`) {
		t.Errorf("no failure logged: %s", logs.String())
	}
	// The first runner's figures: one pass done, one skipped, no failure.
	passes := metric(t, reg, "telemetry_maintenance_passes_total")
	if !strings.Contains(passes, `value:"done"`) || !strings.Contains(passes, `value:"skipped"`) || strings.Contains(passes, `value:"failed"`) {
		t.Errorf("passes: %s", passes)
	}
	if got := metric(t, reg, "telemetry_maintenance_last_pass_duration_seconds"); got == "" {
		t.Error("no last pass duration")
	}
}

// Start runs a first pass at once; Close stops the loop.
func TestRunnerLoop(t *testing.T) {
	pool := testdb.New(t)
	if _, err := pool.Exec(context.Background(), `
		INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now() - interval '60 days', now() - interval '60 days', 0, '/x', 'GET')`); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := lifecycle.New(postgres.New(pool, postgres.Options{}).Lifecycle, retention, slog.New(slog.DiscardHandler), reg)
	r.Start(time.Hour)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int64
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM measurements`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop's first pass did not run")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Close()
}

// A database that is read-only (DATABASE_URL at a replica, a primary in
// recovery) skips the pass with a warning that says so, counted as skipped,
// not as a failed pass with the lease's SQL error.
func TestRunnerSkipsAReadOnlyDatabase(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	r := lifecycle.New(postgres.New(pool, postgres.Options{}).Lifecycle, retention, slog.New(slog.NewJSONHandler(&logs, nil)), reg)
	if _, err := r.RunOnce(context.Background()); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("a pass on a read-only database: %v, want ErrReadOnly", err)
	}
	if !strings.Contains(logs.String(), `"msg":"maintenance pass skipped: the database is read-only (a replica or in recovery)"`) ||
		strings.Contains(logs.String(), "maintenance pass failed") {
		t.Errorf("log: %s", logs.String())
	}
	if passes := metric(t, reg, "telemetry_maintenance_passes_total"); !strings.Contains(passes, `value:"skipped"`) ||
		strings.Contains(passes, `value:"failed"`) {
		t.Errorf("passes: %s", passes)
	}
}

// A chunk the pass left for the next one (another session held it past the
// pass's lock timeout) is counted in /metrics by table, not only in the
// pass's log line: one left at every pass means a session that never lets
// go of it.
func TestRunnerCountsDeferredChunks(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	var ts bool
	if err := pool.QueryRow(ctx, `SELECT telemetry_timescaledb_enabled()`).Scan(&ts); err != nil {
		t.Fatal(err)
	}
	if !ts {
		t.Skip("SKIPPED: this PostgreSQL server has no TimescaleDB (extension not available or not preloaded): chunks are TimescaleDB only")
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now() - interval '10 days', now() - interval '10 days', 0, '/x', 'GET')`); err != nil {
		t.Fatal(err)
	}
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	var n int64
	if err := holder.QueryRow(ctx, `SELECT count(*) FROM measurements`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d measurements, %v", n, err)
	}
	reg := prometheus.NewRegistry()
	r := lifecycle.New(postgres.New(pool, postgres.Options{}).Lifecycle,
		store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour, CompressAfter: 7 * 24 * time.Hour},
		slog.New(slog.DiscardHandler), reg)
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := deferredChunks(t, reg, "measurements"); got != 1 {
		t.Errorf("deferred chunks of measurements: %v, want 1 (%s)", got, metric(t, reg, "telemetry_maintenance_deferred_chunks_total"))
	}
}

// deferredChunks is telemetry_maintenance_deferred_chunks_total{table}, -1
// when reg has none for table.
func deferredChunks(t *testing.T, reg *prometheus.Registry, table string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "telemetry_maintenance_deferred_chunks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == table {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// A sealing pass seals the measurements' closed units and bins (a row 25
// minutes old is in one, whatever the minute: a 5-minute bin of an hour not
// sealed yet, or its hour), counted as done; with the lease held elsewhere
// it is skipped; StartSealing runs it every interval until Close.
func TestRunnerSealingPass(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	st := postgres.New(pool, postgres.Options{})
	at := time.Now().Add(-25 * time.Minute).Truncate(time.Microsecond)
	if _, err := st.Measurements.Insert(ctx, []store.Measurement{{StartedAt: at, EndedAt: at, Name: "/x", Method: "GET"}}); err != nil {
		t.Fatal(err)
	}
	sealedRow := func() bool {
		t.Helper()
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM measurements_sealed s, measurements m
			WHERE m.started_at >= s.unit_start AND m.started_at < s.unit_start + make_interval(secs => s.unit_secs))`).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	reg := prometheus.NewRegistry()
	r := lifecycle.New(st.Lifecycle, retention, slog.New(slog.DiscardHandler), reg)

	if _, err := pool.Exec(ctx, `INSERT INTO maintenance_lease VALUES ('maintenance', gen_random_uuid(), now(), now() + interval '1 hour') ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`); err != nil {
		t.Fatal(err)
	}
	if res, err := r.SealOnce(ctx); err != nil || !res.Skipped || sealedRow() {
		t.Fatalf("with the lease held: %+v %v, sealed %v", res, err, sealedRow())
	}
	if _, err := pool.Exec(ctx, `DELETE FROM maintenance_lease`); err != nil {
		t.Fatal(err)
	}
	res, err := r.SealOnce(ctx)
	if err != nil || res.Skipped || len(res.Tables) != 1 || res.Tables[0].Table != "measurements_sealed" || res.Tables[0].Sealed < 1 {
		t.Fatalf("sealing pass: %+v %v; want the row's unit sealed", res, err)
	}
	if !sealedRow() {
		t.Fatal("the row's bin or hour is not sealed")
	}
	if passes := metric(t, reg, "telemetry_maintenance_seal_passes_total"); !strings.Contains(passes, `value:"done"`) ||
		!strings.Contains(passes, `value:"skipped"`) || strings.Contains(passes, `value:"failed"`) {
		t.Errorf("sealing passes: %s", passes)
	}
	if got := metric(t, reg, "telemetry_maintenance_passes_total"); got != "" {
		t.Errorf("a sealing pass counted as a maintenance pass: %s", got)
	}

	// The loop: with the unit's seal gone (as a late batch's unsealing
	// deletes it), the next tick seals it again.
	if _, err := pool.Exec(ctx, `DELETE FROM measurements_sealed`); err != nil {
		t.Fatal(err)
	}
	r.StartSealing(20 * time.Millisecond)
	defer r.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !sealedRow() {
		if time.Now().After(deadline) {
			t.Fatal("the sealing loop did not seal the row's unit")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sealing passes that fail one after another (the database down, with
// SEAL_INTERVAL as short as 1s) write one failure line per
// warnlimit.Every, not one each; the metric still counts every one.
func TestRunnerSealingFailuresAreThrottled(t *testing.T) {
	ctx := context.Background()
	closed, err := pgxpool.New(ctx, testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	r := lifecycle.New(postgres.New(closed, postgres.Options{}).Lifecycle, retention,
		slog.New(slog.NewJSONHandler(&logs, nil)), reg)
	const passes = 5
	for range passes {
		if _, err := r.SealOnce(ctx); err == nil {
			t.Fatal("a sealing pass on a closed pool succeeded")
		}
	}
	if n := strings.Count(logs.String(), `"msg":"sealing pass failed"`); n != 1 {
		t.Errorf("%d failure lines for %d failed sealing passes, want 1 (within warnlimit.Every): %s", n, passes, logs.String())
	}
	if got := metric(t, reg, "telemetry_maintenance_seal_passes_total"); !strings.Contains(got, `value:"failed"`) ||
		!strings.Contains(got, `counter:{value:5 `) {
		t.Errorf("sealing passes: %s", got)
	}
	// The maintenance passes' failures the same, apart from the sealing
	// ones (MAINTENANCE_INTERVAL=2s gave a line a pass through a full
	// disk, found by TestServeThroughFullDisk in CI).
	for range passes {
		if _, err := r.RunOnce(ctx); err == nil {
			t.Fatal("a maintenance pass on a closed pool succeeded")
		}
	}
	if n := strings.Count(logs.String(), `"msg":"maintenance pass failed"`); n != 1 {
		t.Errorf("%d failure lines for %d failed maintenance passes, want 1 (within warnlimit.Every): %s", n, passes, logs.String())
	}
	if got := metric(t, reg, "telemetry_maintenance_passes_total"); !strings.Contains(got, `value:"failed"`) ||
		!strings.Contains(got, `counter:{value:5 `) {
		t.Errorf("maintenance passes: %s", got)
	}
}
