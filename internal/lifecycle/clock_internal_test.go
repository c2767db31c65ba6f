package lifecycle

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The cutoffs of a pass come from this instance's clock: one that jumped
// ahead (a host booted with a wrong clock, before NTP set it: the pass runs
// at start) made the pass delete rows still within their retention, for
// good. A pass now first compares it with the database's clock and refuses
// to run when they disagree by more than maxClockSkew, as a failed pass
// whose error names both clocks (found by an operations audit).
func TestRunnerRefusesAClockThatDisagreesWithTheDatabase(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	// 20 days old: within a 30-day retention, past it 15 days from now.
	if _, err := pool.Exec(ctx, `
		INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now() - interval '20 days', now() - interval '20 days', 0, '/x', 'GET')`); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	r := New(postgres.New(pool, postgres.Options{}).Lifecycle,
		store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour},
		slog.New(slog.NewJSONHandler(&logs, nil)), reg)
	for _, jump := range []time.Duration{15 * 24 * time.Hour, -15 * 24 * time.Hour} {
		r.now = func() time.Time { return time.Now().Add(jump) }
		_, err := r.RunOnce(ctx)
		if err == nil || !strings.Contains(err.Error(), "clock") {
			t.Errorf("a pass with the clock %s off: %v, want it refused", jump, err)
		}
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("the clock %s off: the measurement within its retention was deleted", jump)
		}
		// The sealing pass makes the same check: from a clock far behind
		// it would seal units not closed yet.
		if _, err := r.SealOnce(ctx); err == nil || !strings.Contains(err.Error(), "clock") {
			t.Errorf("a sealing pass with the clock %s off: %v, want it refused", jump, err)
		}
		var sealed int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements_sealed`).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if sealed != 0 {
			t.Fatalf("the clock %s off: a refused sealing pass sealed %d units", jump, sealed)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"maintenance pass failed"`) {
		t.Errorf("log: %s", logs.String())
	}
	var passes strings.Builder
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "telemetry_maintenance_passes_total" {
			passes.WriteString(f.String())
		}
	}
	if !strings.Contains(passes.String(), `value:"failed"`) || strings.Contains(passes.String(), `value:"done"`) {
		t.Errorf("passes: %s", passes.String())
	}

	// With the clocks in agreement the pass runs.
	r.now = time.Now
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatalf("a pass with the clocks in agreement: %v", err)
	}
}
