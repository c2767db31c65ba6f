package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The exporter's contract: rows in the list's order, fn's error returned
// as is and the iteration stopped, ErrNotFound for an unknown device before
// any row, and the connection back in the pool after each.
func TestExporter(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{}).Stores()
	ctx := context.Background()
	for _, id := range []string{"c", "a", "b"} {
		if _, err := st.Devices.Create(ctx, id, "n"); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	if err := st.Export.Devices(ctx, func(d store.Device) error { ids = append(ids, d.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || ids[0] != "a" || ids[2] != "c" {
		t.Fatalf("devices %v, want a b c", ids)
	}

	stop := errors.New("stop")
	calls := 0
	err := st.Export.Devices(ctx, func(store.Device) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("fn's error: got %v after %d calls, want it as is after 1", err, calls)
	}

	now := time.Now()
	for name, run := range map[string]func() error{
		"current": func() error {
			return st.Export.CurrentMetrics(ctx, "ghost", now, func(store.CurrentMetric) error { return nil })
		},
		"history": func() error {
			return st.Export.History(ctx, store.HistoryQuery{DeviceID: "ghost", Name: "x", From: now.Add(-time.Hour), To: now},
				func(store.HistoryPoint) error { return nil })
		},
		"buckets": func() error {
			return st.Export.HistoryBuckets(ctx, store.HistoryQuery{DeviceID: "ghost", Name: "x", From: now.Add(-time.Hour), To: now},
				time.Minute, func(store.HistoryBucket) error { return nil })
		},
	} {
		if err := run(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of an unknown device: %v, want ErrNotFound", name, err)
		}
	}
	// A known device with no rows: no error, no row.
	if err := st.Export.CurrentMetrics(ctx, "a", now, func(store.CurrentMetric) error { return errors.New("no row expected") }); err != nil {
		t.Fatal(err)
	}

	err = st.Export.Measurements(ctx, store.MeasurementFilter{StartedAt: now.Add(-time.Hour), EndedAt: now},
		store.MeasurementSort{Key: "nope"}, func(store.Measurement) error { return nil })
	if err == nil {
		t.Fatal("an unknown sort key was accepted")
	}
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still acquired", n)
	}
}
