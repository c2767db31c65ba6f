package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/testdb"
)

// waitForLockWait returns once some backend waits for the advisory lock
// (class, key) (pg_locks: two-key advisory locks have objsubid 2).
func waitForLockWait(t *testing.T, pool *pgxpool.Pool, class, key int32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2 AND NOT granted)`,
			class, key).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nobody waits for the unit's lock after 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// batchInFlight is an ingest transaction of one row started at, in flight:
// the shared lock of its hour (key) taken and the row inserted, not
// committed.
func batchInFlight(t *testing.T, pool *pgxpool.Pool, key int32, at time.Time) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	batch, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := batch.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1, $2)`, sealHourClass, key); err != nil {
		batch.Rollback(ctx)
		t.Fatal(err)
	}
	if _, err := batch.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method, app)
		VALUES ($1, $2, 1, '/a', 'GET', '')`, at, at.Add(time.Second)); err != nil {
		batch.Rollback(ctx)
		t.Fatal(err)
	}
	return batch
}

// The seal's locks: a build waits for a batch of its hour still in flight
// and then counts its rows; a batch that meets a build in flight waits for
// it and then unseals the hour. Without the locks the first build would
// miss the row and the batch would delete the seal before it existed.
func TestSealedUnitLocks(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ms := New(pool, Options{}).Measurements
	ctx := context.Background()
	hour := time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)
	key := lockKey(hour.Unix() / 3600)
	rec := store.Measurement{StartedAt: hour.Add(10 * time.Second), EndedAt: hour.Add(11 * time.Second), Elapsed: 1, Name: "/a", Method: "GET"}
	if _, err := ms.Insert(ctx, []store.Measurement{rec}); err != nil {
		t.Fatal(err)
	}

	// A batch in flight (its shared lock held, its row written, not
	// committed) and a build of its hour.
	batch := batchInFlight(t, pool, key, hour.Add(20*time.Second))
	defer batch.Rollback(ctx)
	built := make(chan error, 1)
	go func() { _, err := ms.sealUnit(ctx, sealWidths[0], hour); built <- err }()
	waitForLockWait(t, pool, sealHourClass, key)
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count FROM measurements_sealed_cells WHERE unit_secs = 3600 AND unit_start = $1`, hour).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the build counted %d rows (%v), want 2: it did not wait for the batch", n, err)
	}

	// A build in flight (lock held, its seal written, not committed) and a
	// batch of its hour.
	build, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer build.Rollback(ctx)
	if _, err := pool.Exec(ctx, `DELETE FROM measurements_sealed`); err != nil {
		t.Fatal(err)
	}
	if _, err := build.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, sealHourClass, key); err != nil {
		t.Fatal(err)
	}
	if _, err := build.Exec(ctx, `INSERT INTO measurements_sealed (unit_secs, unit_start, max_ended_at) VALUES (3600, $1, $2)`, hour, hour.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	inserted := make(chan error, 1)
	go func() {
		_, err := ms.Insert(ctx, []store.Measurement{rec})
		inserted <- err
	}()
	waitForLockWait(t, pool, sealHourClass, key)
	if err := build.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-inserted; err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements_sealed WHERE unit_secs = 3600`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d seals of the hour left after the batch (%v): it did not wait for the build", n, err)
	}
}

// lockKey and unitsOf: hours, quarters and days before the epoch round down, and a
// batch's units come sorted and distinct.
func TestSealUnitsOf(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	u := unitsOf([]store.Measurement{
		{StartedAt: at("1970-01-02T01:30:00Z")}, {StartedAt: at("1969-12-31T23:59:59Z")},
		{StartedAt: at("1970-01-02T01:00:00Z")}, {StartedAt: at("1970-01-01T00:00:00Z")},
	})
	if got, want := u.keys[0], []int32{-1, 0, 25}; !slices.Equal(got, want) {
		t.Errorf("hour keys %v, want %v", got, want)
	}
	if got, want := u.keys[1], []int32{-1, 0, 4}; !slices.Equal(got, want) {
		t.Errorf("quarter keys %v, want %v", got, want)
	}
	if got, want := u.keys[2], []int32{-1, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("day keys %v, want %v", got, want)
	}
	if !u.starts[0][0].Equal(at("1969-12-31T23:00:00Z")) || !u.starts[1][2].Equal(at("1970-01-02T00:00:00Z")) || !u.starts[2][2].Equal(at("1970-01-02T00:00:00Z")) {
		t.Errorf("starts %v", u.starts)
	}
	want := []time.Time{at("1969-12-31T23:55:00Z"), at("1970-01-01T00:00:00Z"), at("1970-01-02T01:00:00Z"), at("1970-01-02T01:30:00Z")}
	if !slices.EqualFunc(u.bins, want, time.Time.Equal) {
		t.Errorf("bins %v, want %v", u.bins, want)
	}
}

// A 5-minute bin sealed on its own (migration 00048) is built under its
// hour's lock: its build waits for a batch of the hour in flight and then
// counts its row. A bin whose hour is sealed is not built (the hour's
// cells hold it), and the hour's build drops the bins' own seals.
func TestSealedBinLocks(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ms := New(pool, Options{}).Measurements
	ctx := context.Background()
	hour := time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)
	bin := hour.Add(10 * time.Minute)
	key := lockKey(hour.Unix() / 3600)
	rec := store.Measurement{StartedAt: bin.Add(10 * time.Second), EndedAt: bin.Add(11 * time.Second), Elapsed: 1, Name: "/a", Method: "GET"}
	if _, err := ms.Insert(ctx, []store.Measurement{rec}); err != nil {
		t.Fatal(err)
	}
	batch := batchInFlight(t, pool, key, bin.Add(20*time.Second))
	defer batch.Rollback(ctx)
	type result struct {
		built bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		built, err := ms.sealUnit(ctx, sealBin, bin)
		done <- result{built, err}
	}()
	waitForLockWait(t, pool, sealHourClass, key)
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || !r.built {
		t.Fatalf("bin build: %+v", r)
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT c.count FROM measurements_sealed_cells c JOIN measurements_sealed s USING (unit_secs, unit_start)
		WHERE c.unit_secs = 300 AND c.unit_start = $1`, bin).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the bin's build counted %d rows (%v), want 2: it did not wait for the batch", n, err)
	}

	// The hour's build replaces the bin's own seal with the hour's.
	if _, err := ms.sealUnit(ctx, sealWidths[0], hour); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements_sealed WHERE unit_secs = 300`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d bins sealed on their own after the hour's build (%v)", n, err)
	}
	// A bin of a sealed hour is not built.
	if built, err := ms.sealUnit(ctx, sealBin, bin); err != nil || built {
		t.Fatalf("bin of a sealed hour: built %v, %v", built, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements_sealed WHERE unit_secs = 300`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d bins sealed on their own beside their sealed hour (%v)", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements_sealed_cells WHERE unit_secs = 300 AND unit_start = $1`, bin).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d cells of the bin (%v), want the hour's build's 1", n, err)
	}
}

// telemetry_measurements_grouped keeps its plan per connection: rows
// written after the plan was made, in a part of the table that did not
// exist yet (a new TimescaleDB chunk, on TimescaleDB), are still read.
func TestSealedGroupedPlanSeesNewRows(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ms := New(pool, Options{}).Measurements
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	q := db.New(customPlans{conn})
	day := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	f := store.MeasurementFilter{StartedAt: day.Add(30 * time.Minute), EndedAt: day.Add(30*24*time.Hour + 10*time.Minute)}
	count := func() int64 {
		t.Helper()
		params := groupPageParams(f, store.MeasurementSort{Key: "count", Desc: true})
		params.RowLimit = 10
		rows, err := groupPage(ctx, q, f, params)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rows {
			n += r.Count
		}
		return n
	}
	var want int64
	for i, at := range []time.Time{day.Add(45 * time.Minute), day.Add(20 * 24 * time.Hour), day.Add(30*24*time.Hour + 5*time.Minute), day.Add(29*24*time.Hour + 7*time.Hour)} {
		// Each batch lands in days the table had no row in.
		if _, err := ms.Insert(ctx, []store.Measurement{{StartedAt: at, EndedAt: at.Add(time.Second), Elapsed: 1, Name: "/a", Method: "GET"}}); err != nil {
			t.Fatal(err)
		}
		want++
		for range 7 { // past PostgreSQL's five custom plans, in case
			if got := count(); got != want {
				t.Fatalf("after batch %d: the grouped view counts %d rows, want %d", i, got, want)
			}
		}
	}
}

// The grouped view's functions, without a filter and with an elapsed filter
// below 0.25 s, plan once per connection (force_generic_plan, migrations
// 00023 and 00028) and group their parts by hashing (enable_sort off,
// migrations 00029 and 00030): sorting a week's sealed cells by group was a
// fifth of the first's statement at 10 M rows. The page's order, which
// still needs its sorts, is TestMeasurementsGrouped's (internal/api); the
// second's answers are TestMeasurementsCountAboveFromSealedUnits'. So are
// those of the list's total with a low elapsed filter and no name or
// methods, which plans once per connection too (migration 00050), without
// bitmap scans: its generic plan ANDed a week of measurements_end_idx with
// the bucket index for each gap (79 ms instead of 3 at 10 M rows).
func TestSealedGroupedFunctionSettings(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	for fn, settings := range map[string][]string{
		"telemetry_measurements_grouped":       {"plan_cache_mode=force_generic_plan", "enable_sort=off"},
		"telemetry_measurements_grouped_above": {"plan_cache_mode=force_generic_plan", "enable_sort=off"},
		"telemetry_measurements_count_above":   {"plan_cache_mode=force_generic_plan", "enable_bitmapscan=off"},
	} {
		var config []string
		if err := pool.QueryRow(context.Background(), `SELECT coalesce(proconfig, '{}') FROM pg_proc
			WHERE proname = $1`, fn).Scan(&config); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		for _, want := range settings {
			if !slices.Contains(config, want) {
				t.Errorf("%s's settings %v lack %s", fn, config, want)
			}
		}
	}
}

// With an elapsed filter below the slow-row threshold, the grouped view's
// function sends each sealed cell's histogram from its first occupied
// bucket above the filter's own (migration 00036): the buckets up to it
// were only skipped in Go. Its answers are TestMeasurementsCountAboveFromSealedUnits'.
func TestSealedGroupedAboveCutsHistograms(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ms := New(pool, Options{}).Measurements
	ctx := context.Background()
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var recs []store.Measurement
	for i, e := range []float64{0.0001, 0.004, 0.05, 0.0999, 0.1, 0.101, 0.13, 0.5, 0.5, 2, 40} {
		for j, name := range []string{"/a", "/b"} {
			at := day.Add(time.Duration(i*3+j) * time.Hour)
			recs = append(recs, store.Measurement{StartedAt: at, EndedAt: at.Add(time.Minute), Elapsed: e * float64(j+1), Name: name, Method: "GET"})
		}
	}
	if _, err := ms.Insert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.Seal(ctx, day.Add(10*24*time.Hour), time.Time{}, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	rows, err := db.New(customPlans{pool}).GroupMeasurementsAboveSealed(ctx, db.GroupMeasurementsAboveSealedParams{
		StartedAt: day, EndedAt: day.Add(2 * 24 * time.Hour), MinElapsed: 0.1, Methods: []string{},
		SortKey: "count", Descending: true, RowLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, r := range rows {
		for _, h := range r.Hists {
			_, first, _, err := histHeader(h)
			if err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
			if first <= int(r.FloorBucket) {
				t.Errorf("%s: a histogram from bucket %d, the filter's is %d", r.Name, first, r.FloorBucket)
			}
			n++
		}
	}
	if len(rows) != 2 || n == 0 {
		t.Fatalf("%d groups, %d histograms: the day was not sealed", len(rows), n)
	}
}
