package selfprofile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// countingWriter counts the inserts reaching w; poison (when set) spoils
// the records it picks with a value PostgreSQL refuses, on every attempt.
type countingWriter struct {
	w      Writer
	poison func(store.Measurement) bool

	mu    sync.Mutex
	calls int
}

// spoiled is a context PostgreSQL refuses: jsonb cannot hold \u0000.
var spoiled = []byte(`{"a":"\u0000"}`)

func (c *countingWriter) Insert(ctx context.Context, recs []store.Measurement) ([]int64, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	if c.poison != nil {
		recs = slices.Clone(recs)
		for i, r := range recs {
			if c.poison(r) {
				recs[i].Context = spoiled
			}
		}
	}
	return c.w.Insert(ctx, recs)
}

func (c *countingWriter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// failingWriter refuses every insert with err.
type failingWriter struct{ err error }

func (f failingWriter) Insert(context.Context, []store.Measurement) ([]int64, error) {
	return nil, f.err
}

// storeOn is a fresh database and the measurements store on it.
func storeOn(t *testing.T) (*pgxpool.Pool, *postgres.Measurements) {
	t.Helper()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	t.Cleanup(st.Close)
	return pool, st.Measurements
}

// measurements is a store on a fresh database.
func measurements(t *testing.T) (*postgres.Measurements, func() int64) {
	t.Helper()
	pool, m := storeOn(t)
	return m, func() int64 {
		var n int64
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM measurements").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// counter reads a counter of reg; reason picks one of a vector's.
func counter(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s %s", name, reason)
	return 0
}

func served(path string) Served {
	now := time.Now()
	return Served{Request: httptest.NewRequest("GET", path, nil), Start: now, End: now.Add(time.Millisecond),
		Status: 200, Route: path}
}

// One record PostgreSQL refuses, written with 100 good ones, is the only
// one lost, found in a few halvings.
func TestWriteLosesOnlyTheRefusedRecord(t *testing.T) {
	t.Parallel()
	m, count := measurements(t)
	w := &countingWriter{w: m}
	p := New(w, nil, nil, Config{Sample: 1})
	var recs []store.Measurement
	for i := range 100 {
		p.Record(served(fmt.Sprintf("/r/%d", i)))
	}
	for _, e := range p.buf {
		recs = append(recs, e.record())
	}
	bad := recs[0]
	bad.Context = spoiled
	recs = slices.Insert(recs, 37, bad)

	budget := maxIsolationWrites
	lost, err := p.write(context.Background(), recs, &budget)
	if lost != 1 || !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("lost %d, error %v; want 1 and ErrInvalid", lost, err)
	}
	if n := count(); n != 100 {
		t.Fatalf("%d stored, want 100", n)
	}
	// The batch, then two halves per level down to the bad record: 1 + 2·7.
	if calls := w.count(); calls > 15 {
		t.Fatalf("%d inserts to find one bad record in 101", calls)
	}
}

// Through Flush: the refused records are counted as dropped (write_failed),
// the rest as written, and the batch as one failure.
func TestFlushDropsOnlyRefusedRecords(t *testing.T) {
	t.Parallel()
	m, count := measurements(t)
	w := &countingWriter{w: m, poison: func(r store.Measurement) bool { return r.Name == "/poison" }}
	reg := prometheus.NewRegistry()
	p := New(w, nil, reg, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000, Detail: 1 << 30})
	for i := range 300 {
		path := fmt.Sprintf("/r/%d", i)
		if i == 10 || i == 250 {
			path = "/poison"
		}
		p.Record(served(path))
	}
	if err := p.Flush(context.Background()); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Flush: %v, want ErrInvalid", err)
	}
	if n := count(); n != 298 {
		t.Fatalf("%d stored, want 298", n)
	}
	if got := counter(t, reg, "telemetry_selfprofile_written_total", ""); got != 298 {
		t.Errorf("written %v, want 298", got)
	}
	if got := counter(t, reg, "telemetry_selfprofile_dropped_total", "write_failed"); got != 2 {
		t.Errorf("dropped (write_failed) %v, want 2", got)
	}
	if got := counter(t, reg, "telemetry_selfprofile_write_failures_total", ""); got != 1 {
		t.Errorf("failures %v, want 1 (one batch)", got)
	}
}

// A connection failure loses the batch as before: splitting it would fail
// the same way, once per half.
func TestConnectionFailureIsNotSplit(t *testing.T) {
	t.Parallel()
	w := &countingWriter{w: failingWriter{&store.Error{Op: "insert measurements", Kind: store.ErrUnavailable,
		Err: errors.New("connection refused")}}}
	reg := prometheus.NewRegistry()
	p := New(w, nil, reg, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000})
	for i := range 50 {
		p.Record(served(fmt.Sprintf("/r/%d", i)))
	}
	if err := p.Flush(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Flush: %v", err)
	}
	if calls := w.count(); calls != 1 {
		t.Errorf("%d inserts, want 1", calls)
	}
	if got := counter(t, reg, "telemetry_selfprofile_dropped_total", "write_failed"); got != 50 {
		t.Errorf("dropped %v, want 50", got)
	}
}

// When every record is refused, the search stops after maxIsolationWrites
// extra inserts and the batch is dropped.
func TestIsolationIsBounded(t *testing.T) {
	t.Parallel()
	w := &countingWriter{w: failingWriter{&store.Error{Op: "insert measurements", Kind: store.ErrInvalid,
		Err: errors.New("refused")}}}
	reg := prometheus.NewRegistry()
	p := New(w, nil, reg, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000, BufferSize: 20000, Detail: 1 << 30})
	for i := range writeBatch {
		p.Record(served(fmt.Sprintf("/r/%d", i)))
	}
	_ = p.Flush(context.Background())
	if calls := w.count(); calls > 1+maxIsolationWrites {
		t.Errorf("%d inserts for one batch, want at most %d", calls, 1+maxIsolationWrites)
	}
	if got := counter(t, reg, "telemetry_selfprofile_dropped_total", "write_failed"); got != writeBatch {
		t.Errorf("dropped %v, want %d", got, writeBatch)
	}
}

// During a database outage every flush fails alike: the failure is logged
// once (then once every warnlimit.Every), while every lost record is
// counted.
func TestOutageFailuresAreLoggedOnce(t *testing.T) {
	t.Parallel()
	pool, m := storeOn(t)
	pool.Close()
	var logs strings.Builder
	reg := prometheus.NewRegistry()
	p := New(m, slog.New(slog.NewTextHandler(&logs, nil)), reg, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000})
	for i := range 5 {
		p.Record(served(fmt.Sprintf("/r/%d", i)))
		if err := p.Flush(context.Background()); err == nil {
			t.Fatal("a flush with the database closed succeeded")
		}
	}
	if n := strings.Count(logs.String(), "writing measurements failed"); n != 1 {
		t.Fatalf("%d lines for 5 failed flushes, want 1:\n%s", n, logs.String())
	}
	if got := counter(t, reg, "telemetry_selfprofile_dropped_total", "write_failed"); got != 5 {
		t.Errorf("dropped %v, want 5", got)
	}
}

// Close reports the failure of the writer's last write. It used to say nil
// when the records buffered at shutdown could not be written (the database
// down): the writer's final flush dropped its error and Close's own found
// nothing left, so serve's "self-profiling: final flush failed" never
// showed, and the rate-limited line of the write (at most one every 10 s)
// stayed silent during an outage, its count of failures going with the
// process (found by a crash audit).
func TestCloseReportsTheFinalWriteFailing(t *testing.T) {
	t.Parallel()
	pool, m := storeOn(t)
	p := New(m, nil, nil, Config{Sample: 1, FlushEvery: time.Hour})
	p.Start()
	p.Record(served("/x"))
	pool.Close() // the database gone
	if err := p.Close(context.Background()); err == nil {
		t.Fatal("Close lost a record and said nil")
	}
}
