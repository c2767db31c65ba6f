package postgres_test

import (
	"context"
	"errors"
	"math"
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

// upsertTracer sees every flows upsert that reaches PostgreSQL: it records
// how many rows each one carries and, when armed, holds the next one until
// released, so that the batches added meanwhile queue up for one round.
type upsertTracer struct {
	mu   sync.Mutex
	rows []int
	hold chan struct{} // closed by release
	held chan struct{} // closed when an upsert is held
}

func (tr *upsertTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(d.SQL, "INSERT INTO flows") {
		return ctx
	}
	tr.mu.Lock()
	n := -1
	if len(d.Args) > 0 {
		if hours, ok := d.Args[0].([]time.Time); ok {
			n = len(hours)
		}
	}
	tr.rows = append(tr.rows, n)
	hold, held := tr.hold, tr.held
	tr.hold, tr.held = nil, nil
	tr.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
	}
	return ctx
}

func (tr *upsertTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// arm makes the next upsert wait for release; held is closed once it does.
func (tr *upsertTracer) arm() (held chan struct{}, release func()) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	hold := make(chan struct{})
	tr.hold, tr.held = hold, make(chan struct{})
	var once sync.Once
	return tr.held, func() { once.Do(func() { close(hold) }) }
}

// since returns the rows of each upsert after the first n.
func (tr *upsertTracer) since(n int) []int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]int(nil), tr.rows[n:]...)
}

func (tr *upsertTracer) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.rows)
}

// tracedStore is a store on a fresh database whose upserts tr sees.
func tracedStore(t *testing.T) (*postgres.Store, *upsertTracer) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &upsertTracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := postgres.New(pool, postgres.Options{})
	t.Cleanup(st.Close)
	return st, tr
}

// heldRound adds first, holds its upsert at the database while the batches
// are added concurrently, then lets it go: the batches queue behind it and
// are written in the next round. It returns each batch's error.
func heldRound(t *testing.T, st *postgres.Store, tr *upsertTracer, first []store.Flow, batches [][]store.Flow) []error {
	t.Helper()
	ctx := context.Background()
	held, release := tr.arm()
	// Closing the store waits for the held connection: never leave it held.
	t.Cleanup(release)
	firstErr := make(chan error, 1)
	go func() { firstErr <- st.Flows.Add(ctx, first) }()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the first upsert never reached the database")
	}
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Flows.Add(ctx, b)
		}()
	}
	// Nothing outside the writer can see its queue: give the goroutines
	// ample time to join it.
	time.Sleep(300 * time.Millisecond)
	release()
	wg.Wait()
	if err := <-firstErr; err != nil {
		t.Fatalf("first batch: %v", err)
	}
	return errs
}

// totals is the hour's stored (bytes_tx, bytes_rx) by src_app.
func totals(t *testing.T, st *postgres.Store, hour int64) map[string][2]int64 {
	t.Helper()
	page, err := st.Flows.ListHour(context.Background(), hour, store.PageRequest{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]int64{}
	for _, f := range page.Items {
		got[f.SrcApp] = [2]int64{f.BytesTx, f.BytesRx}
	}
	return got
}

// Batches that arrive while an upsert runs go to PostgreSQL together: fewer
// upserts than batches, and every total exact.
func TestFlowsAddCombinesConcurrentBatches(t *testing.T) {
	t.Parallel()
	st, tr := tracedStore(t)
	const hour = 8
	flow := func(src string, tx, rx int64) store.Flow {
		return store.Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: tx, BytesRx: rx, Hour: hour}
	}
	const n = 8
	var batches [][]store.Flow
	for i := range n {
		own := string(rune('a' + i))
		batches = append(batches, []store.Flow{flow("hot", 2, 3), flow(own, int64(i), 1), flow("hot", 2, 3)})
	}
	before := tr.count()
	errs := heldRound(t, st, tr, []store.Flow{flow("first", 1, 1)}, batches)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	upserts := tr.since(before)
	// The first batch's upsert, then the rounds of the n batches.
	if len(upserts)-1 >= n {
		t.Fatalf("%d upserts for %d concurrent batches (rows %v): batches were not combined", len(upserts)-1, n, upserts)
	}
	t.Logf("%d batches in %d upserts (rows per upsert %v)", n, len(upserts)-1, upserts[1:])

	want := map[string][2]int64{"first": {1, 1}, "hot": {4 * n, 6 * n}}
	for i := range n {
		want[string(rune('a'+i))] = [2]int64{int64(i), 1}
	}
	got := totals(t, st, hour)
	if len(got) != len(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("stored %v, want %v", got, want)
		}
	}
}

// In a combined round, a batch whose total would overflow fails alone with
// ErrTooLarge; the other batches of the round are committed.
func TestFlowsAddIsolatesOverflowingBatch(t *testing.T) {
	t.Parallel()
	st, tr := tracedStore(t)
	ctx := context.Background()
	const hour = 7
	flow := func(src string, tx int64) store.Flow {
		return store.Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: tx, Hour: hour}
	}
	// The database already holds a total close to the limit.
	if err := st.Flows.Add(ctx, []store.Flow{flow("near", math.MaxInt64-10)}); err != nil {
		t.Fatal(err)
	}

	t.Run("against the stored total", func(t *testing.T) {
		// Only the database knows the stored total: the combined upsert
		// fails, then each batch is written alone.
		before := tr.count()
		errs := heldRound(t, st, tr, []store.Flow{flow("first", 1)},
			[][]store.Flow{{flow("near", 20)}, {flow("fine", 5)}, {flow("other", 1)}})
		if !errors.Is(errs[0], store.ErrTooLarge) {
			t.Errorf("overflowing batch: error %v, want ErrTooLarge", errs[0])
		}
		if errs[1] != nil || errs[2] != nil {
			t.Errorf("other batches of the round: errors %v, %v, want none", errs[1], errs[2])
		}
		// The first batch, one combined upsert of the three, then one each.
		if got := tr.since(before); len(got) != 5 || got[1] != 3 {
			t.Errorf("rows per upsert %v, want [1 3 1 1 1]: the three batches combined, then one by one", got)
		}
	})

	t.Run("in the batches' sum", func(t *testing.T) {
		// Summing in Go already overflows: the batches are written one by
		// one, and whichever of the two comes second fails.
		errs := heldRound(t, st, tr, []store.Flow{flow("first", 1)},
			[][]store.Flow{{flow("k", 1<<62)}, {flow("k", 1<<62)}, {flow("other2", 1)}})
		failed := 0
		for _, err := range errs[:2] {
			if err != nil {
				if !errors.Is(err, store.ErrTooLarge) {
					t.Errorf("error %v, want ErrTooLarge", err)
				}
				failed++
			}
		}
		if failed != 1 || errs[2] != nil {
			t.Errorf("errors %v: want exactly one of the first two to fail, the third to succeed", errs)
		}
	})

	got := totals(t, st, hour)
	want := map[string][2]int64{"near": {math.MaxInt64 - 10, 0}, "first": {2, 0}, "fine": {5, 0},
		"other": {1, 0}, "k": {1 << 62, 0}, "other2": {1, 0}}
	if len(got) != len(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("stored %v, want %v", got, want)
		}
	}
}

// A page past the last keeps the hour's exact total; an empty hour has none.
func TestFlowsListHour(t *testing.T) {
	t.Parallel()
	st := postgres.New(testdb.New(t), postgres.Options{})
	t.Cleanup(st.Close)
	ctx := context.Background()
	flows := []store.Flow{
		{SrcApp: "c", DestApp: "d", VpcID: "v", BytesTx: 1, BytesRx: 2, Hour: 5},
		{SrcApp: "a", DestApp: "d", VpcID: "v", BytesTx: 3, BytesRx: 4, Hour: 5},
		{SrcApp: "b", DestApp: "d", VpcID: "v", BytesTx: 5, BytesRx: 6, Hour: 5},
		{SrcApp: "a", DestApp: "d", VpcID: "v", BytesTx: 10, BytesRx: 20, Hour: 5},
		{SrcApp: "a", DestApp: "d", VpcID: "v", BytesTx: 7, BytesRx: 7, Hour: 6},
	}
	if err := st.Flows.Add(ctx, flows); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		hour  int64
		p     store.PageRequest
		srcs  string
		total int64
	}{
		{"first page", 5, store.PageRequest{Limit: 2}, "a b", 3},
		{"last page", 5, store.PageRequest{Limit: 2, Offset: 2}, "c", 3},
		{"past the end", 5, store.PageRequest{Limit: 2, Offset: 10}, "", 3},
		{"empty hour", 9, store.PageRequest{Limit: 2}, "", 0},
		{"empty hour past the end", 9, store.PageRequest{Limit: 2, Offset: 4}, "", 0},
	}
	for _, c := range cases {
		page, err := st.Flows.ListHour(ctx, c.hour, c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var srcs []string
		for _, f := range page.Items {
			srcs = append(srcs, f.SrcApp)
			if f.Hour != c.hour {
				t.Errorf("%s: item %+v has hour %d, want %d", c.name, f, f.Hour, c.hour)
			}
		}
		if page.Items == nil || strings.Join(srcs, " ") != c.srcs || page.Total != c.total {
			t.Errorf("%s: items %+v total %d, want src_apps %q total %d (items never nil)", c.name, page.Items, page.Total, c.srcs, c.total)
		}
	}
	page, err := st.Flows.ListHour(ctx, 5, store.PageRequest{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Flow{SrcApp: "a", DestApp: "d", VpcID: "v", BytesTx: 13, BytesRx: 24, Hour: 5}); page.Items[0] != want {
		t.Fatalf("summed item %+v, want %+v", page.Items[0], want)
	}
}
