package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// batchLog records the device metric batches: committed sizes (through
// ObserveBatch) and attempted sizes (the InsertDeviceMetrics statements
// sent, through a pgx tracer), so that tests see the commits actually made.
type batchLog struct {
	mu        sync.Mutex
	committed []int
	attempted []int
	failed    []int // attempted statements that failed, by size
}

func (b *batchLog) observe(resource string, n int) {
	if resource != "device_metrics" {
		return
	}
	b.mu.Lock()
	b.committed = append(b.committed, n)
	b.mu.Unlock()
}

type batchKey struct{}

func (b *batchLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(data.SQL, "name: InsertDeviceMetrics") || len(data.Args) == 0 {
		return ctx
	}
	n := len(data.Args[0].([]time.Time))
	b.mu.Lock()
	b.attempted = append(b.attempted, n)
	b.mu.Unlock()
	return context.WithValue(ctx, batchKey{}, n)
}

func (b *batchLog) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if n, ok := ctx.Value(batchKey{}).(int); ok && data.Err != nil {
		b.mu.Lock()
		b.failed = append(b.failed, n)
		b.mu.Unlock()
	}
}

func (b *batchLog) snapshot() (committed, attempted, failed []int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.committed...), append([]int(nil), b.attempted...), append([]int(nil), b.failed...)
}

// newDevices is a store on a fresh database whose pool traces the batches;
// the devices are closed (their reports committed) before the pool.
func newDevices(t *testing.T, writers, maxBatch int) (*postgres.Devices, *pgxpool.Pool, *batchLog) {
	t.Helper()
	log := &batchLog{}
	cfg, err := pgxpool.ParseConfig(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = log
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := postgres.New(pool, postgres.Options{DeviceWriters: writers, DeviceMaxBatch: maxBatch, ObserveBatch: log.observe})
	t.Cleanup(st.Devices.Close)
	return st.Devices, pool, log
}

func mustCreate(t *testing.T, d *postgres.Devices, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := d.Create(context.Background(), id, "device "+id); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
}

func numRow(dev, name string, v float64, at time.Time, ttl int32) store.MetricRow {
	return store.MetricRow{Time: at, DeviceID: dev, Name: name, Type: "int32", Num: v, Units: "u", Slope: "both", TTL: ttl}
}

func mustReport(t *testing.T, d *postgres.Devices, rows ...store.MetricRow) {
	t.Helper()
	for _, r := range rows {
		if err := d.Report(context.Background(), r); err != nil {
			t.Fatalf("report %+v: %v", r, err)
		}
	}
}

func countRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM device_metrics`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDevicesRegistry(t *testing.T) {
	t.Parallel()
	d, _, _ := newDevices(t, 2, 1000)
	ctx := context.Background()

	dev, err := d.Create(ctx, "n1", "Node 1")
	if err != nil || dev.ID != "n1" || dev.Name != "Node 1" || dev.CreatedAt.IsZero() || dev.CreatedAt.Location() != time.UTC {
		t.Fatalf("create = %+v, %v", dev, err)
	}
	if _, err := d.Create(ctx, "n1", "again"); !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("create of a taken id = %v, want only ErrConflict", err)
	}
	if got, err := d.Get(ctx, "n1"); err != nil || got.Name != dev.Name || !got.CreatedAt.Equal(dev.CreatedAt) {
		t.Fatalf("get = %+v, %v; want %+v", got, err, dev)
	}
	renamed, err := d.Rename(ctx, "n1", "Node one")
	if err != nil || renamed.Name != "Node one" || !renamed.CreatedAt.Equal(dev.CreatedAt) || renamed.UpdatedAt.Before(dev.UpdatedAt) {
		t.Fatalf("rename = %+v, %v", renamed, err)
	}
	for name, err := range map[string]error{
		"get":    func() error { _, err := d.Get(ctx, "nope"); return err }(),
		"rename": func() error { _, err := d.Rename(ctx, "nope", "x"); return err }(),
		"delete": d.Delete(ctx, "nope"),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of an unknown device = %v, want ErrNotFound", name, err)
		}
	}
	if err := d.Delete(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete = %v", err)
	}
	if err := d.Delete(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
}

func TestDevicesListPages(t *testing.T) {
	t.Parallel()
	d, _, _ := newDevices(t, 2, 1000)
	ctx := context.Background()

	page, err := d.List(ctx, store.PageRequest{Limit: 2})
	if err != nil || page.Items == nil || len(page.Items) != 0 || page.Total != 0 {
		t.Fatalf("empty list = %+v, %v", page, err)
	}
	mustCreate(t, d, "e", "c", "a", "d", "b")
	for _, tc := range []struct {
		offset int64
		want   string
	}{{0, "a,b"}, {2, "c,d"}, {4, "e"}, {6, ""}, {100, ""}} {
		page, err := d.List(ctx, store.PageRequest{Limit: 2, Offset: tc.offset})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, dev := range page.Items {
			ids = append(ids, dev.ID)
		}
		if strings.Join(ids, ",") != tc.want || page.Total != 5 {
			t.Errorf("offset %d: %v of %d, want %s of 5", tc.offset, ids, page.Total, tc.want)
		}
	}
}

func TestDevicesCurrentMetrics(t *testing.T) {
	t.Parallel()
	d, _, _ := newDevices(t, 2, 1000)
	ctx := context.Background()
	mustCreate(t, d, "n1", "idle")
	now := time.Now().Truncate(time.Microsecond) // PostgreSQL's precision
	text := store.MetricRow{Time: now, DeviceID: "n1", Name: "b.state", Type: "string", Text: "ok", Units: "-", Slope: "zero", TTL: 60}
	mustReport(t, d,
		numRow("n1", "a.temp", 40, now.Add(-2*time.Second), 60),
		numRow("n1", "a.temp", 42, now.Add(-time.Second), 60), // the latest wins
		text,
		numRow("n1", "c.stale", 1, now.Add(-time.Minute), 10),
		numRow("n1", "d.fan", 1200, now, 60),
	)

	page, err := d.Current(ctx, "n1", now, store.PageRequest{Limit: 2})
	if err != nil || page.Total != 3 || len(page.Items) != 2 {
		t.Fatalf("current = %+v, %v", page, err)
	}
	temp, state := page.Items[0], page.Items[1]
	if temp.Name != "a.temp" || temp.Num != 42 || temp.Text != nil || temp.Type != "int32" || temp.TTL != 60 ||
		!temp.ReportedAt.Equal(now.Add(-time.Second)) || temp.ReportedAt.Location() != time.UTC {
		t.Errorf("a.temp = %+v", temp)
	}
	if state.Name != "b.state" || state.Text == nil || *state.Text != "ok" || state.Units != "-" || state.Slope != "zero" {
		t.Errorf("b.state = %+v", state)
	}
	page, err = d.Current(ctx, "n1", now, store.PageRequest{Limit: 2, Offset: 2})
	if err != nil || page.Total != 3 || len(page.Items) != 1 || page.Items[0].Name != "d.fan" {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	page, err = d.Current(ctx, "n1", now, store.PageRequest{Limit: 2, Offset: 10})
	if err != nil || page.Total != 3 || len(page.Items) != 0 {
		t.Fatalf("past the last page = %+v, %v", page, err)
	}
	// Later, everything is stale.
	if page, err = d.Current(ctx, "n1", now.Add(time.Hour), store.PageRequest{Limit: 2}); err != nil || page.Total != 0 {
		t.Fatalf("an hour later = %+v, %v", page, err)
	}
	if page, err = d.Current(ctx, "idle", now, store.PageRequest{Limit: 2, Offset: 2}); err != nil || page.Total != 0 {
		t.Fatalf("a device without metrics = %+v, %v", page, err)
	}
	if _, err := d.Current(ctx, "ghost", now, store.PageRequest{Limit: 2}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown device = %v", err)
	}
}

func TestDevicesCurrentNames(t *testing.T) {
	t.Parallel()
	d, _, _ := newDevices(t, 2, 1000)
	ctx := context.Background()
	mustCreate(t, d, "a", "b")
	now := time.Now()
	mustReport(t, d,
		numRow("a", "temp", 31, now, 60),
		numRow("b", "temp", 58, now, 60),
		store.MetricRow{Time: now, DeviceID: "a", Name: "version", Type: "string", Text: "1.2", Units: "-", Slope: "zero", TTL: 60},
		numRow("b", "zold", 1, now.Add(-time.Hour), 10),
	)
	page, err := d.CurrentNames(ctx, now, store.PageRequest{Limit: 10})
	if err != nil || page.Total != 2 || len(page.Items) != 2 {
		t.Fatalf("names = %+v, %v", page, err)
	}
	temp, version := page.Items[0], page.Items[1]
	if temp.Name != "temp" || temp.Devices != 2 || temp.Min == nil || *temp.Min != 31 || temp.Max == nil || *temp.Max != 58 {
		t.Errorf("temp = %+v", temp)
	}
	if version.Name != "version" || version.Devices != 1 || version.Min != nil || version.Max != nil {
		t.Errorf("version = %+v", version)
	}
	if page, err = d.CurrentNames(ctx, now, store.PageRequest{Limit: 1, Offset: 5}); err != nil || page.Total != 2 || len(page.Items) != 0 {
		t.Fatalf("past the last page = %+v, %v", page, err)
	}
}

func TestDevicesHistory(t *testing.T) {
	t.Parallel()
	d, _, _ := newDevices(t, 2, 1000)
	ctx := context.Background()
	mustCreate(t, d, "n1")
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 6; i++ { // 10:00, 10:01, ... 10:05 with values 0..5
		mustReport(t, d, numRow("n1", "temp", float64(i), t0.Add(time.Duration(i)*time.Minute), 60))
	}
	mustReport(t, d, store.MetricRow{Time: t0, DeviceID: "n1", Name: "state", Type: "string", Text: "x", Units: "-", Slope: "zero", TTL: 60})

	q := store.HistoryQuery{DeviceID: "n1", Name: "temp", From: t0.Add(time.Minute), To: t0.Add(5 * time.Minute)}
	page, err := d.History(ctx, q, store.PageRequest{Limit: 3})
	if err != nil || page.Total != 4 || len(page.Items) != 3 {
		t.Fatalf("raw history = %+v, %v", page, err)
	}
	for i, p := range page.Items {
		if !p.Time.Equal(t0.Add(time.Duration(i+1)*time.Minute)) || p.Value != float64(i+1) || p.Time.Location() != time.UTC {
			t.Errorf("point %d = %+v", i, p)
		}
	}
	if page, err = d.History(ctx, q, store.PageRequest{Limit: 3, Offset: 9}); err != nil || page.Total != 4 || len(page.Items) != 0 {
		t.Fatalf("raw history past the last page = %+v, %v", page, err)
	}

	// Two-minute buckets over 10:00-10:06: [0,1], [2,3], [4,5].
	q.From, q.To = t0, t0.Add(6*time.Minute)
	buckets, err := d.HistoryBuckets(ctx, q, 2*time.Minute, store.PageRequest{Limit: 2})
	if err != nil || buckets.Total != 3 || len(buckets.Items) != 2 {
		t.Fatalf("buckets = %+v, %v", buckets, err)
	}
	if b := buckets.Items[1]; !b.Start.Equal(t0.Add(2*time.Minute)) || b.Avg != 2.5 || b.Min != 2 || b.Max != 3 || b.Count != 2 {
		t.Errorf("second bucket = %+v", b)
	}
	if buckets, err = d.HistoryBuckets(ctx, q, 2*time.Minute, store.PageRequest{Limit: 2, Offset: 4}); err != nil ||
		buckets.Total != 3 || len(buckets.Items) != 0 {
		t.Fatalf("buckets past the last page = %+v, %v", buckets, err)
	}

	// A string metric has no numeric history; an unknown device is not found.
	if page, err = d.History(ctx, store.HistoryQuery{DeviceID: "n1", Name: "state", From: t0, To: t0.Add(time.Hour)},
		store.PageRequest{Limit: 3}); err != nil || page.Total != 0 {
		t.Fatalf("string history = %+v, %v", page, err)
	}
	q.DeviceID = "ghost"
	if _, err := d.History(ctx, q, store.PageRequest{Limit: 3}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("raw history of an unknown device = %v", err)
	}
	if _, err := d.HistoryBuckets(ctx, q, time.Minute, store.PageRequest{Limit: 3}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("buckets of an unknown device = %v", err)
	}
}

// Concurrent reports share commits: fewer commits than reports, every
// report committed exactly once.
func TestDevicesReportsShareCommits(t *testing.T) {
	t.Parallel()
	d, pool, log := newDevices(t, 2, 1000)
	const devices, clients, perClient = 4, 48, 10
	for i := 0; i < devices; i++ {
		mustCreate(t, d, fmt.Sprint("c", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				if err := d.Report(context.Background(), numRow(fmt.Sprint("c", c%devices), fmt.Sprint("m", c), float64(i), time.Now(), 60)); err != nil {
					errs <- err
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	const reports = clients * perClient
	if n := countRows(t, pool); n != reports {
		t.Fatalf("stored %d rows, want %d", n, reports)
	}
	committed, attempted, _ := log.snapshot()
	rows := 0
	for _, n := range committed {
		rows += n
	}
	if rows != reports || len(attempted) != len(committed) {
		t.Fatalf("%d rows in %d commits (%d statements), want %d rows", rows, len(committed), len(attempted), reports)
	}
	if len(committed) >= reports {
		t.Fatalf("%d commits for %d reports: reports did not share commits", len(committed), reports)
	}
	t.Logf("%d reports in %d commits", reports, len(committed))
}

// forceBatch reports rows while the only commit slot is busy, so that they
// all queue and go to the database as one batch. It holds device holder's
// row so that a first report of it waits on its foreign key check, waits
// until every row is queued, then lets the first report go. It returns
// each row's answer.
func forceBatch(t *testing.T, d *postgres.Devices, pool *pgxpool.Pool, holder string, rows []store.MetricRow) []error {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, holder); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- d.Report(ctx, numRow(holder, "first", 0, time.Now(), 60)) }()
	waitForLockWait(t, pool) // the first report, on the lock

	var wg sync.WaitGroup
	errs := make([]error, len(rows))
	for i, r := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Report(ctx, r)
		}()
	}
	waitFor(t, "the reports to queue", func() bool { return postgres.DeviceReportsQueued(d) == len(rows) })
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first report: %v", err)
	}
	wg.Wait()
	return errs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A batch with reports of unknown and deleted devices commits the others
// in the same commit; those reports alone fail, with ErrNotFound.
func TestDevicesReportUnknownDeviceInBatch(t *testing.T) {
	t.Parallel()
	d, pool, log := newDevices(t, 1, 64)
	mustCreate(t, d, "w1", "gone")
	if err := d.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	var rows []store.MetricRow
	for i := 0; i < 20; i++ {
		r := numRow("w1", fmt.Sprint("m", i), float64(i), time.Now(), 60)
		switch i % 5 {
		case 1:
			r.DeviceID = "ghost"
		case 3:
			r.DeviceID = "gone"
		}
		rows = append(rows, r)
	}
	errs := forceBatch(t, d, pool, "w1", rows)

	want := 1 // the first report
	for i, err := range errs {
		if i%5 == 1 || i%5 == 3 {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("row %d of device %s: %v, want ErrNotFound", i, rows[i].DeviceID, err)
			}
			continue
		}
		want++
		if err != nil {
			t.Errorf("row %d: %v", i, err)
		}
	}
	if n := countRows(t, pool); n != want {
		t.Fatalf("stored %d rows, want %d", n, want)
	}
	// One statement for the queued reports; the commit stored the rows of
	// known devices only, and counts those.
	committed, attempted, _ := log.snapshot()
	if len(committed) != 2 || committed[1] != want-1 || len(attempted) != 2 || attempted[1] != len(rows) {
		t.Fatalf("commits of %v rows (statements of %v), want [1 %d] ([1 %d]): the queued reports did not share one commit",
			committed, attempted, want-1, len(rows))
	}
}

// A report PostgreSQL refuses fails alone: its batch fails, and its rows
// are sent again one by one, so the others are stored.
func TestDevicesReportBadRowFailsAlone(t *testing.T) {
	t.Parallel()
	d, pool, log := newDevices(t, 1, 64)
	mustCreate(t, d, "w1")
	var rows []store.MetricRow
	for i := 0; i < 30; i++ {
		r := numRow("w1", fmt.Sprint("m", i), float64(i), time.Now(), 60)
		switch i % 10 {
		case 3:
			r.Type = "bogus" // violates device_metrics_type_valid
		case 7:
			r.DeviceID = "ghost"
		}
		rows = append(rows, r)
	}
	errs := forceBatch(t, d, pool, "w1", rows)

	want := 1 // the first report
	for i, err := range errs {
		switch i % 10 {
		case 3:
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("row %d with a bad type: %v, want ErrInvalid", i, err)
			}
		case 7:
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("row %d of an unknown device: %v, want ErrNotFound", i, err)
			}
		default:
			want++
			if err != nil {
				t.Errorf("row %d: %v", i, err)
			}
		}
	}
	if n := countRows(t, pool); n != want {
		t.Fatalf("stored %d rows, want %d", n, want)
	}
	// The statements: the first report, the batch of all the queued rows
	// (refused), then each of them alone.
	_, attempted, failed := log.snapshot()
	if len(attempted) != 2+len(rows) || attempted[1] != len(rows) {
		t.Fatalf("statements of %v rows, want 1, %d, then %d of 1", attempted, len(rows), len(rows))
	}
	if len(failed) != 1+3 || failed[0] != len(rows) {
		t.Fatalf("failed statements of %v rows, want the batch of %d then the 3 bad rows alone", failed, len(rows))
	}
}

// Close commits and answers every queued report before it returns, and
// reports after it fail with ErrClosed, an ErrUnavailable.
func TestDevicesCloseCommitsQueuedReports(t *testing.T) {
	t.Parallel()
	d, pool, _ := newDevices(t, 2, 16)
	mustCreate(t, d, "w1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, closed := 0, 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := d.Report(context.Background(), numRow("w1", fmt.Sprint("m", i), float64(i), time.Now(), 60))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrClosed):
				closed++
			default:
				t.Errorf("report %d: %v", i, err)
			}
		}(i)
	}
	time.Sleep(5 * time.Millisecond)
	d.Close()
	// Every report queued before Close is committed by the time it returns
	// (its goroutine may count the answer a moment later): the rows stored
	// then are exactly the reports answered nil.
	stored := countRows(t, pool)
	wg.Wait()
	if stored != ok || ok+closed != 200 {
		t.Fatalf("stored %d at Close, ok %d, closed %d", stored, ok, closed)
	}
	d.Close() // idempotent
	err := d.Report(context.Background(), numRow("w1", "late", 1, time.Now(), 60))
	if !errors.Is(err, store.ErrClosed) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("report after Close = %v", err)
	}
}

// The batch sizes observed (telemetry_ingest_batch_items) are of what a
// commit stored: a keyed report of an unknown device, whose key is taken
// back in its transaction, stores nothing and is not counted; a keyed
// report of a known device is.
func TestDevicesObserveCountsStoredRowsOnly(t *testing.T) {
	t.Parallel()
	d, _, log := newDevices(t, 1, 64)
	mustCreate(t, d, "k1")
	keyed := func(key string) context.Context {
		hash := sha256.Sum256([]byte(key))
		return store.WithIdempotent(context.Background(), &store.Idempotent{Key: key, Endpoint: "PUT /mrd/x/metrics",
			Hash: hash[:], Status: 200, TTL: time.Hour, Body: func(any) ([]byte, error) { return []byte("{}"), nil }})
	}
	if err := d.Report(keyed("ghost-key"), numRow("ghost", "m", 1, time.Now(), 60)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown device: %v, want ErrNotFound", err)
	}
	if err := d.Report(keyed("known-key"), numRow("k1", "m", 1, time.Now(), 60)); err != nil {
		t.Fatal(err)
	}
	if committed, _, _ := log.snapshot(); len(committed) != 1 || committed[0] != 1 {
		t.Fatalf("observed commits of %v rows, want [1]", committed)
	}
}

// A report still queued when its request's deadline passes leaves the
// queue and answers the deadline's error (the API's 503), instead of
// waiting behind every batch before it; nothing of it is stored. The one
// already in a batch waits for the batch's commit, and is stored.
func TestDevicesQueuedReportLeavesAtItsDeadline(t *testing.T) {
	t.Parallel()
	d, pool, _ := newDevices(t, 1, 1)
	mustCreate(t, d, "q1")
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) // a failing test must not hold the lock
	if _, err := tx.Exec(ctx, `LOCK TABLE device_metrics IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- d.Report(context.Background(), numRow("q1", "first", 1, time.Now(), 60)) }()
	time.Sleep(200 * time.Millisecond) // the first holds the one writer, waiting on the lock
	queued := make(chan error, 2)
	for i := range 2 {
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			queued <- d.Report(rctx, numRow("q1", fmt.Sprint("queued", i), 1, time.Now(), 60))
		}()
	}
	// Both answer while the lock is still held.
	for range 2 {
		select {
		case err := <-queued:
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("a queued report past its deadline: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a queued report waited past its deadline for the batches before it")
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the report in a batch: %v", err)
	}
	if n := countRows(t, pool); n != 1 {
		t.Fatalf("%d rows stored, want the first's alone", n)
	}
}
