package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/pgbouncer"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// Every lag-tolerant read of docs/scaling.md's table is served by a fresh
// replica, without a fallback, and answers what the primary answers: the
// measurements' window queries over rollups and sealed units (their
// PL/pgSQL functions), with and without an elapsed filter, the flows, runs,
// devices and collections reads. Directly, and with each server behind its
// own PgBouncer in transaction pooling mode ("A PgBouncer in front of the
// replica would do as well"). A read that wrote, or needed what a standby
// refuses, would fail on the replica or fall back.
func TestLagTolerantReadsOnTheReplicaAnswerAsThePrimary(t *testing.T) {
	for _, bounced := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "through PgBouncer"}[bounced], func(t *testing.T) {
			ctx := context.Background()
			pair, primaryURL, replicaURL := testdb.Replicated(t)
			if bounced {
				primaryURL = bouncerFor(t, pair.Primary.Port).Via(primaryURL)
				replicaURL = bouncerFor(t, pair.Replica.Port).Via(replicaURL)
			}
			// The exec mode serve uses (pgxpool's default keeps prepared
			// statements, which transaction pooling breaks).
			primaryURL += "&default_query_exec_mode=cache_describe"
			replicaURL += "&default_query_exec_mode=cache_describe"
			st := postgres.New(replicaTestPool(t, primaryURL), postgres.Options{ReadPool: replicaTestPool(t, replicaURL),
				ReadMaxLag: time.Hour})
			defer st.Close()
			primaryOnly := postgres.New(replicaTestPool(t, primaryURL), postgres.Options{})
			defer primaryOnly.Close()
			lagTolerantReadsAgree(t, ctx, st, primaryOnly, pair)
		})
	}
}

func bouncerFor(t *testing.T, port int) *pgbouncer.Bouncer {
	t.Helper()
	return testdb.Bouncer(t, pgbouncer.Options{ServerPort: port, RoundRobin: true, DefaultPoolSize: 4})
}

func lagTolerantReadsAgree(t *testing.T, ctx context.Context, st, primaryOnly *postgres.Store, pair *testdb.Pair) {
	t.Helper()
	// Ten days of measurements, every five minutes, the first week sealed.
	base := time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)
	recs := make([]store.Measurement, 0, 3000)
	for i := range 3000 {
		s := base.Add(time.Duration(i) * 5 * time.Minute).Add(time.Duration(i%7) * time.Second)
		el := float64(i%50) / 100
		recs = append(recs, store.Measurement{StartedAt: s, EndedAt: s.Add(time.Duration(el * float64(time.Second))),
			Elapsed: el, Name: fmt.Sprintf("/n%d", i%5), Method: []string{"GET", "POST"}[i%2], App: []string{"a", "b"}[i%3%2],
			Args: json.RawMessage(`[]`), Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`)})
	}
	ids, err := st.Measurements.Insert(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := st.Measurements.Seal(ctx, base.Add(8*24*time.Hour), time.Time{}, func(context.Context) error { return nil }); err != nil || res.Days == 0 {
		t.Fatalf("seal: %+v, %v; want days sealed", res, err)
	}
	for h := range int64(5) {
		for k := range int64(4) {
			f := keyFlow(fmt.Sprint("s", k), 100+h)
			f.BytesTx = h*10 + k
			if err := st.Flows.Add(ctx, []store.Flow{f}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := st.Devices.Create(ctx, "dev", "Dev"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 20 {
		if err := st.Devices.Report(ctx, store.MetricRow{Time: now.Add(-time.Duration(i) * time.Minute), DeviceID: "dev",
			Name: "temp", Type: "float", Num: float64(i), Slope: "both", TTL: 3600}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Events.Register(ctx, store.NewRun{Host: "h", Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica in use", inUse(st))

	win := store.MeasurementFilter{StartedAt: base.Add(90 * time.Minute), EndedAt: base.Add(9*24*time.Hour + 17*time.Minute)}
	el := 0.1
	slow := win
	slow.MinElapsed = &el
	name := "/n1"
	named := win
	named.Name = &name
	page := store.PageRequest{Limit: 20, Offset: 3}
	flows := store.FlowFilter{FromHour: 100, ToHour: 105}
	hq := store.HistoryQuery{DeviceID: "dev", Name: "temp", From: now.Add(-time.Hour), To: now.Add(time.Minute)}
	for _, c := range []struct {
		name string
		read func(s *postgres.Store) (any, error)
	}{
		{"flows", func(s *postgres.Store) (any, error) {
			return s.Flows.List(ctx, flows, store.FlowSort{ByBytes: true, Desc: true}, page)
		}},
		{"flows summary", func(s *postgres.Store) (any, error) { return s.Flows.Summary(ctx, flows, "src_app", page) }},
		{"runs", func(s *postgres.Store) (any, error) { return s.Events.List(ctx, store.RunFilter{}, page) }},
		{"devices", func(s *postgres.Store) (any, error) { return s.Devices.List(ctx, page) }},
		{"current metrics", func(s *postgres.Store) (any, error) { return s.Devices.Current(ctx, "dev", now, page) }},
		{"current names", func(s *postgres.Store) (any, error) { return s.Devices.CurrentNames(ctx, now, page) }},
		{"history", func(s *postgres.Store) (any, error) { return s.Devices.History(ctx, hq, page) }},
		{"history buckets", func(s *postgres.Store) (any, error) { return s.Devices.HistoryBuckets(ctx, hq, 5*time.Minute, page) }},
		{"measurement", func(s *postgres.Store) (any, error) { return s.Measurements.Get(ctx, ids[7]) }},
		{"count", func(s *postgres.Store) (any, error) { return s.Measurements.Count(ctx, win) }},
		{"count, elapsed", func(s *postgres.Store) (any, error) { return s.Measurements.Count(ctx, slow) }},
		{"list by elapsed", func(s *postgres.Store) (any, error) {
			return s.Measurements.List(ctx, win, store.MeasurementSort{Key: "elapsed", Desc: true}, page)
		}},
		{"list by method", func(s *postgres.Store) (any, error) {
			return s.Measurements.List(ctx, win, store.MeasurementSort{Key: "method"}, page)
		}},
		{"list, elapsed", func(s *postgres.Store) (any, error) {
			return s.Measurements.List(ctx, slow, store.MeasurementSort{Key: "name"}, page)
		}},
		{"grouped", func(s *postgres.Store) (any, error) {
			return s.Measurements.Grouped(ctx, win, store.MeasurementSort{Key: "count", Desc: true}, page)
		}},
		{"grouped, elapsed", func(s *postgres.Store) (any, error) {
			return s.Measurements.Grouped(ctx, slow, store.MeasurementSort{Key: "name"}, page)
		}},
		{"grouped, name", func(s *postgres.Store) (any, error) {
			return s.Measurements.Grouped(ctx, named, store.MeasurementSort{Key: "name"}, page)
		}},
		{"method distribution", func(s *postgres.Store) (any, error) { return s.Measurements.MethodDistribution(ctx, win) }},
		{"timeseries 1h", func(s *postgres.Store) (any, error) { return s.Measurements.Timeseries(ctx, win, time.Hour) }},
		{"timeseries 5m", func(s *postgres.Store) (any, error) { return s.Measurements.Timeseries(ctx, win, 5*time.Minute) }},
		{"timeseries 1m", func(s *postgres.Store) (any, error) { return s.Measurements.Timeseries(ctx, win, time.Minute) }},
		{"collection runtime", func(s *postgres.Store) (any, error) { return s.Collections.Runtime(ctx, base, now) }},
		{"collection http", func(s *postgres.Store) (any, error) { return s.Collections.HTTP(ctx, base, base.Add(48*time.Hour)) }},
	} {
		before := st.ReplicaStats()
		got, err := c.read(st)
		if err != nil {
			t.Errorf("%s on the replica: %v", c.name, err)
			continue
		}
		if p, r, f := reads(before, st.ReplicaStats()); p != 0 || r != 1 || f != 0 {
			t.Errorf("%s: reads on primary %d, on replica %d, fallbacks %d; want 0, 1, 0", c.name, p, r, f)
		}
		want, err := c.read(primaryOnly)
		if err != nil {
			t.Fatalf("%s on the primary: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: replica\n%+v\nprimary\n%+v", c.name, got, want)
		}
	}
}
