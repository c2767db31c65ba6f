package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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

// The groups' export reads the grouped page's statement a run of groups at
// a time: over more groups than a run it gives every group once, in the
// asked order, with the same statistics and percentiles as the API's pages.
func TestExportMeasurementGroupsAcrossRuns(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{}).Stores()
	ctx := context.Background()
	base := time.Date(2024, 5, 1, 10, 20, 0, 0, time.UTC)
	var recs []store.Measurement
	for i := range 700 { // 700 groups, more than two runs of 256
		for j := range 1 + i%3 {
			start := base.Add(time.Duration(i*7+j*3) * time.Minute)
			elapsed := float64(1+(i*j)%17) / 100
			recs = append(recs, store.Measurement{StartedAt: start, EndedAt: start.Add(time.Duration(elapsed * float64(time.Second))),
				Elapsed: elapsed, Name: fmt.Sprintf("/r%03d", i), Method: "GET", App: "a"})
		}
	}
	if _, err := st.Measurements.Insert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	f := store.MeasurementFilter{StartedAt: base.Add(-13 * time.Minute), EndedAt: base.Add(100 * time.Hour)}
	for _, s := range []store.MeasurementSort{{Key: "count", Desc: true}, {Key: "name"}} {
		var want []store.MeasurementGroup
		for page := int64(0); ; page++ {
			p, err := st.Measurements.Grouped(ctx, f, s, store.PageRequest{Limit: 100, Offset: page * 100})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, p.Items...)
			if len(p.Items) < 100 {
				break
			}
		}
		var got []store.MeasurementGroup
		if err := st.Export.MeasurementGroups(ctx, f, s, func(g store.MeasurementGroup) error {
			got = append(got, g)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(want) != 700 || !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v: exported %d groups, the pages %d (equal: %v)", s, len(got), len(want), reflect.DeepEqual(got, want))
		}
	}
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still acquired", n)
	}
}
