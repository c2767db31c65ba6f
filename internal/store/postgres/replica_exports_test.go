package postgres_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// Exports read where the lists they export read (docs/scaling.md): on a
// fresh replica, whole; a replica that cannot answer before the first row
// is handed on is asked again of the primary; once a row is on its way, a
// failure ends the export instead of starting it again on the primary
// (the client would get the first rows twice). They used to read on the
// primary alone, each holding a primary (or PgBouncer server) connection
// while its client read (found by the scale-out audit).
func TestExportsReadWhereTheirListsRead(t *testing.T) {
	ctx := context.Background()
	st, pair, _, _ := replicated(t, postgres.Options{ReadMaxLag: time.Hour})
	exports := st.Stores().Export
	if err := st.Flows.Add(ctx, []store.Flow{keyFlow("first", 7), keyFlow("other", 7)}); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica in use", inUse(st))
	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pair.ResumeReplay(ctx); err != nil {
			t.Error(err)
		}
	}()
	if err := st.Flows.Add(ctx, []store.Flow{keyFlow("second", 7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Devices.Create(ctx, "late", "registered after the replica paused"); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if err := st.Devices.Report(ctx, store.MetricRow{Time: at, DeviceID: "late", Name: "temp", Type: "int32", Num: 3,
		Units: "C", Slope: "both", TTL: 60}); err != nil {
		t.Fatal(err)
	}

	// The replica, behind the primary, answers the flows export.
	flows := store.FlowFilter{FromHour: 7, ToHour: 8}
	before := st.ReplicaStats()
	var srcs []string
	if err := exports.Flows(ctx, flows, store.FlowSort{}, func(f store.Flow) error {
		srcs = append(srcs, f.SrcApp)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 {
		t.Fatalf("flows export on a paused replica: %v, want the two replayed flows (the primary has three)", srcs)
	}
	if p, r, f := reads(before, st.ReplicaStats()); p != 0 || r != 1 || f != 0 {
		t.Fatalf("flows export: reads on primary %d, on replica %d, fallbacks %d; want 0, 1, 0", p, r, f)
	}

	// A device the replica does not have yet: the primary answers.
	before = st.ReplicaStats()
	var points []store.HistoryPoint
	if err := exports.History(ctx, store.HistoryQuery{DeviceID: "late", Name: "temp", From: at.Add(-time.Hour),
		To: at.Add(time.Hour)}, func(p store.HistoryPoint) error {
		points = append(points, p)
		return nil
	}); err != nil {
		t.Fatalf("history export of a device registered a moment ago: %v", err)
	}
	if len(points) != 1 || points[0].Value != 3 {
		t.Fatalf("history export: %+v, want the primary's one point", points)
	}
	if p, r, f := reads(before, st.ReplicaStats()); p != 1 || r != 0 || f != 1 {
		t.Fatalf("history export: reads on primary %d, on replica %d, fallbacks %d; want 1, 0, 1", p, r, f)
	}

	// A failure once a row was handed on ends the export: here its client's
	// (a broken pipe, which from the replica's connection would take the
	// replica out of service and run the read again on the primary).
	before = st.ReplicaStats()
	fail := &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}
	calls := 0
	err := exports.Flows(ctx, flows, store.FlowSort{}, func(store.Flow) error {
		calls++
		return fail
	})
	if !errors.Is(err, fail) || calls != 1 {
		t.Fatalf("export failing at its first row: %v after %d rows, want the failure after 1", err, calls)
	}
	if p, r, f := reads(before, st.ReplicaStats()); p != 0 || r != 1 || f != 0 {
		t.Fatalf("failed export: reads on primary %d, on replica %d, fallbacks %d; want 0, 1, 0 (not run again)", p, r, f)
	}
	if !st.ReplicaStats().InUse {
		t.Fatal("the replica left service for its export's client's failure")
	}
}
