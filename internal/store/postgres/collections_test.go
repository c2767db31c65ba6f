package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

const maxCollections = 10

func collectionsStore(t *testing.T) (*postgres.Collections, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.New(t)
	return postgres.New(pool, postgres.Options{}).Collections, pool
}

func mustCreateCollection(t *testing.T, c *postgres.Collections) int64 {
	t.Helper()
	id, err := c.Create(context.Background(), maxCollections)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ids(t *testing.T, c *postgres.Collections) string {
	t.Helper()
	got, err := c.IDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(got)
}

// Concurrent creates through several pools (as several server processes
// would) never exceed the limit: exactly maxCollections succeed, the others
// are ErrTooManyCollections, an ErrConflict.
func TestCollectionsLimitUnderConcurrentCreates(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	var stores []*postgres.Collections
	for range 3 {
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		stores = append(stores, postgres.New(pool, postgres.Options{}).Collections)
	}
	const attempts = 30
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		created, refused int
		unexpected       []error
	)
	for i := range attempts {
		wg.Go(func() {
			_, err := stores[i%len(stores)].Create(context.Background(), maxCollections)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, store.ErrTooManyCollections) && errors.Is(err, store.ErrConflict):
				refused++
			default:
				unexpected = append(unexpected, err)
			}
		})
	}
	wg.Wait()
	if created != maxCollections || refused != attempts-maxCollections || unexpected != nil {
		t.Fatalf("created %d, refused %d, other errors %v", created, refused, unexpected)
	}
	if got, want := ids(t, stores[0]), "[0 1 2 3 4 5 6 7 8 9]"; got != want {
		t.Fatalf("ids %s, want %s", got, want)
	}
	_, detail := store.Explain(func() error { _, err := stores[0].Create(context.Background(), maxCollections); return err }())
	if detail != "at most 10 collections may exist at a time" {
		t.Fatalf("detail %q", detail)
	}
}

// Ids start at 0 and are never given again, even after a delete; a
// refused create takes none.
func TestCollectionsIDsNeverReused(t *testing.T) {
	t.Parallel()
	c, _ := collectionsStore(t)
	ctx := context.Background()
	if got := ids(t, c); got != "[]" {
		t.Fatalf("fresh ids %s", got)
	}
	for want := range int64(3) {
		if id := mustCreateCollection(t, c); id != want {
			t.Fatalf("id %d, want %d", id, want)
		}
	}
	if err := c.Delete(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if id := mustCreateCollection(t, c); id != 3 {
		t.Fatalf("id after deleting the last one: %d, want 3", id)
	}
	if err := c.Delete(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, c); got != "[1 3]" {
		t.Fatalf("ids %s", got)
	}
	if _, err := c.Create(ctx, 2); !errors.Is(err, store.ErrTooManyCollections) {
		t.Fatalf("create past a limit of 2: %v", err)
	}
	if id := mustCreateCollection(t, c); id != 4 {
		t.Fatalf("id %d, want 4", id)
	}
}

// Clear moves the window's start to now; the id stays.
func TestCollectionsClearRestartsWindow(t *testing.T) {
	t.Parallel()
	c, _ := collectionsStore(t)
	ctx := context.Background()
	id := mustCreateCollection(t, c)
	before, err := c.Window(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if before.ID != id || before.End.Before(before.Start) {
		t.Fatalf("window %+v", before)
	}
	time.Sleep(20 * time.Millisecond)
	if err := c.Clear(ctx, id); err != nil {
		t.Fatal(err)
	}
	after, err := c.Window(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != id || !after.Start.After(before.End) || after.End.Before(after.Start) {
		t.Fatalf("window %+v after clear, %+v before", after, before)
	}
	if got := ids(t, c); got != fmt.Sprintf("[%d]", id) {
		t.Fatalf("ids %s", got)
	}
}

func TestCollectionsUnknownID(t *testing.T) {
	t.Parallel()
	c, _ := collectionsStore(t)
	ctx := context.Background()
	id := mustCreateCollection(t, c)
	if err := c.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, unknown := range []int64{id, 99, -1} {
		if _, err := c.Window(ctx, unknown); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("window of %d: %v", unknown, err)
		}
		if err := c.Clear(ctx, unknown); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("clear of %d: %v", unknown, err)
		}
		if err := c.Delete(ctx, unknown); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete of %d: %v", unknown, err)
		}
	}
}

// The runtime figures of a window aggregate every instance's samples that
// end in it, weighted by the part of their interval inside it.
func TestCollectionsRuntimeFigures(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	f := func(v float64) *float64 { return &v }
	i := func(v int64) *int64 { return &v }
	a, b := uuid.New(), uuid.New()
	for _, s := range []store.RuntimeSample{
		{InstanceID: a, Time: t0.Add(10 * time.Second), Interval: 5 * time.Second, SystemCPU: f(0.2), ProcessCPU: f(0.1),
			GCCPUSeconds: 0.5, GOMAXPROCS: 2, HeapLiveBytes: 100, RSSBytes: i(1000)},
		{InstanceID: b, Time: t0.Add(10 * time.Second), Interval: 5 * time.Second, SystemCPU: f(0.4), ProcessCPU: f(0.3),
			GCCPUSeconds: 1, GOMAXPROCS: 2, HeapLiveBytes: 300, RSSBytes: i(500)},
		// Half inside the window: weight 2 s of 4, half its GC time.
		{InstanceID: b, Time: t0.Add(2 * time.Second), Interval: 4 * time.Second, SystemCPU: f(0.1), ProcessCPU: f(0.05),
			GCCPUSeconds: 0.2, GOMAXPROCS: 2},
		// Outside the window.
		{InstanceID: a, Time: t0, Interval: 5 * time.Second, SystemCPU: f(1), ProcessCPU: f(1), GCCPUSeconds: 5,
			GOMAXPROCS: 2, HeapLiveBytes: 1 << 40, RSSBytes: i(1 << 40)},
		{InstanceID: a, Time: t0.Add(time.Hour + time.Second), Interval: 5 * time.Second, SystemCPU: f(1), GOMAXPROCS: 2},
	} {
		if err := st.Runtime.Insert(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Collections.Runtime(ctx, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if got.Samples != 3 ||
		!near(got.SystemMean, (5*0.2+5*0.4+2*0.1)/12) || got.SystemPeak != 0.4 ||
		!near(got.ProcessMean, (5*0.1+5*0.3+2*0.05)/12) || got.ProcessPeak != 0.3 ||
		!near(got.GCTime, (0.5+1+0.1)/(2*12)) || got.HeapLivePeak != 300 || got.RSSPeak != 1000 {
		t.Fatalf("figures %+v", got)
	}

	// One sample whose weighted mean rounds above it (0.1 * 3 / 3 is
	// 0.10000000000000002 in float8): the mean is still at most the peak.
	t1 := t0.Add(10 * time.Hour)
	if err := st.Runtime.Insert(ctx, store.RuntimeSample{InstanceID: a, Time: t1.Add(3 * time.Second), Interval: 3 * time.Second,
		SystemCPU: f(0.1), ProcessCPU: f(0.1), GOMAXPROCS: 2}); err != nil {
		t.Fatal(err)
	}
	one, err := st.Collections.Runtime(ctx, t1, t1.Add(time.Hour))
	if err != nil || one.SystemMean > one.SystemPeak || one.ProcessMean > one.ProcessPeak || one.SystemPeak != 0.1 {
		t.Fatalf("one sample: %+v, %v", one, err)
	}

	empty, err := st.Collections.Runtime(ctx, t0.Add(2*time.Hour), t0.Add(3*time.Hour))
	if err != nil || empty != (store.CollectionRuntime{}) {
		t.Fatalf("empty window: %+v, %v", empty, err)
	}
}

// The HTTP figures of a window are the service's own requests (app
// telemetry) started in it, per path (without the query) and method, for a
// window starting mid-minute (read from the rows) and one starting on a
// minute's first second (its first minute whole, read from the minute
// cells Insert writes).
func TestCollectionsHTTPFigures(t *testing.T) {
	t.Parallel()
	c, pool := collectionsStore(t)
	ms := postgres.New(pool, postgres.Options{}).Measurements
	ctx := context.Background()
	base := time.Now().Truncate(time.Minute).Add(-time.Hour)
	for _, t0 := range []time.Time{base.Add(10*time.Minute + 27*time.Second), base} {
		for _, m := range []struct {
			at              time.Duration
			elapsed         float64
			method, context string
			app             string
		}{
			{time.Second, 0.010, "GET", `{"path": "/a"}`, "telemetry"},
			{2 * time.Second, 0.030, "GET", `{"path": "/a", "url": "/a?x=1"}`, "telemetry"},
			{3 * time.Second, 0.005, "POST", `{"path": "/a"}`, "telemetry"},
			{4 * time.Second, 0.002, "GET", `{"url": "/b?page=2"}`, "telemetry"},
			{5 * time.Second, 9, "GET", `{"path": "/a"}`, "someone-else"},
			{-time.Second, 9, "GET", `{"path": "/a"}`, "telemetry"},
		} {
			start := t0.Add(m.at)
			if _, err := ms.Insert(ctx, []store.Measurement{{
				StartedAt: start, EndedAt: start.Add(time.Duration(m.elapsed * float64(time.Second))), Elapsed: m.elapsed,
				Name: "x", Method: m.method, Context: json.RawMessage(m.context), App: m.app}}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := c.HTTP(ctx, t0, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		want := []store.CollectionURL{
			{Path: "/a", Method: "GET", Hits: 2, AvgSeconds: 0.02, MaxSeconds: 0.03},
			{Path: "/a", Method: "POST", Hits: 1, AvgSeconds: 0.005, MaxSeconds: 0.005},
			{Path: "/b", Method: "GET", Hits: 1, AvgSeconds: 0.002, MaxSeconds: 0.002},
		}
		if len(got) != len(want) {
			t.Fatalf("window from %s: figures %+v", t0, got)
		}
		for k := range want {
			g, w := got[k], want[k]
			if g.Path != w.Path || g.Method != w.Method || g.Hits != w.Hits ||
				math.Abs(g.AvgSeconds-w.AvgSeconds) > 1e-12 || g.MaxSeconds != w.MaxSeconds {
				t.Fatalf("window from %s: figure %d: %+v, want %+v", t0, k, g, w)
			}
		}
	}
	none, err := c.HTTP(ctx, base.Add(2*time.Hour), base.Add(3*time.Hour))
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("empty window: %#v, %v", none, err)
	}
}
