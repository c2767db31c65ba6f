package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
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
	mu      sync.Mutex
	rows    []int
	hold    chan struct{} // closed by release
	held    chan struct{} // closed when an upsert is held
	heldPID uint32        // backend of the upsert held last
}

func (tr *upsertTracer) TraceQueryStart(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
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
	if hold != nil {
		tr.heldPID = c.PgConn().PID()
	}
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
	st, tr, _ := tracedStorePool(t)
	return st, tr
}

// tracedStorePool is tracedStore with the store's pool.
func tracedStorePool(t *testing.T) (*postgres.Store, *upsertTracer, *pgxpool.Pool) {
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
	return st, tr, pool
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
	page, err := st.Flows.List(context.Background(), store.FlowFilter{FromHour: hour, ToHour: hour + 1}, store.FlowSort{}, store.PageRequest{Limit: 100})
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

// A batch holding a string PostgreSQL refuses fails alone with ErrInvalid,
// before it joins a round: the valid batches added with it are combined
// and committed, and the bad one never reaches the database.
func TestFlowsAddRefusesInvalidBatchBeforeTheRound(t *testing.T) {
	t.Parallel()
	st, tr := tracedStore(t)
	const hour = 12
	flow := func(src string, tx int64) store.Flow {
		return store.Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: tx, BytesRx: 2 * tx, Hour: hour}
	}
	bad := map[string]store.Flow{
		"NUL in src_app":          flow("a\x00b", 1),
		"invalid UTF-8 in dest":   {SrcApp: "s", DestApp: "\xff\xfe", VpcID: "v", BytesTx: 1, Hour: hour},
		"vpc_id too long":         {SrcApp: "s", DestApp: "d", VpcID: strings.Repeat("é", 256), BytesTx: 1, Hour: hour},
		"dest_app of 804 bytes":   {SrcApp: "s", DestApp: strings.Repeat("😀", 201), VpcID: "v", BytesTx: 1, Hour: hour},
		"empty src_app":           flow("", 1),
		"negative bytes":          flow("neg", -1),
		"hour beyond the maximum": {SrcApp: "s", DestApp: "d", VpcID: "v", BytesTx: 1, Hour: store.MaxFlowHour + 1},
		"negative hour":           {SrcApp: "s", DestApp: "d", VpcID: "v", BytesTx: 1, Hour: -1},
	}
	for name, f := range bad {
		// The bad flow is the third of its batch: the whole batch fails.
		err := st.Flows.Add(context.Background(), []store.Flow{flow("ok1", 1), flow("ok2", 1), f})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", name, err)
		}
		if rule, detail := store.Explain(err); rule == "" || !strings.HasPrefix(detail, "flow 2: ") {
			t.Errorf("%s: rule %q detail %q, want a rule and the flow's index", name, rule, detail)
		}
	}
	if got := totals(t, st, hour); len(got) != 0 {
		t.Fatalf("refused batches stored %v", got)
	}

	const n = 8
	batches := make([][]store.Flow, 0, n+1)
	for i := range n {
		batches = append(batches, []store.Flow{flow("hot", 1), flow(fmt.Sprintf("own%d", i), int64(i+1))})
	}
	const badAt = 3
	batches = slices.Insert(batches, badAt, []store.Flow{flow("hot", 1000), flow("a\x00b", 1)})
	before := tr.count()
	errs := heldRound(t, st, tr, []store.Flow{flow("first", 1)}, batches)
	for i, err := range errs {
		switch {
		case i == badAt && !errors.Is(err, store.ErrInvalid):
			t.Errorf("bad batch: error %v, want ErrInvalid", err)
		case i != badAt && err != nil:
			t.Errorf("valid batch %d: %v", i, err)
		}
	}
	// The first batch, then the valid ones combined: no batch retried alone.
	upserts := tr.since(before)
	sum := 0
	for _, rows := range upserts[1:] {
		sum += rows
	}
	if len(upserts)-1 >= n || sum != n+1 {
		t.Errorf("rows per upsert %v: want the %d valid batches combined (%d keys in all, no retries)", upserts, n, n+1)
	}
	want := map[string][2]int64{"first": {1, 2}, "hot": {n, 2 * n}}
	for i := range n {
		want[fmt.Sprintf("own%d", i)] = [2]int64{int64(i + 1), int64(2 * (i + 1))}
	}
	if got := totals(t, st, hour); !maps.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

// A round PostgreSQL refuses for a reason checkFlows does not know (here a
// CHECK added to the table for the test) is retried batch by batch: only
// the batch at fault fails, with ErrInvalid.
func TestFlowsAddIsolatesRefusedRound(t *testing.T) {
	t.Parallel()
	st, tr, pool := tracedStorePool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE flows ADD CONSTRAINT test_no_evil CHECK (src_app <> 'evil')`); err != nil {
		t.Fatal(err)
	}
	const hour = 13
	flow := func(src string, tx int64) store.Flow {
		return store.Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: tx, Hour: hour}
	}
	const n = 8
	var batches [][]store.Flow
	for i := range n {
		batches = append(batches, []store.Flow{flow("hot", 1), flow(fmt.Sprintf("own%d", i), 1)})
	}
	const badAt = 5
	batches = slices.Insert(batches, badAt, []store.Flow{flow("hot", 1000), flow("evil", 1)})
	before := tr.count()
	errs := heldRound(t, st, tr, []store.Flow{flow("first", 1)}, batches)
	for i, err := range errs {
		switch {
		case i == badAt && !errors.Is(err, store.ErrInvalid):
			t.Errorf("bad batch: error %v, want ErrInvalid", err)
		case i != badAt && err != nil:
			t.Errorf("valid batch %d: %v", i, err)
		}
	}
	// At least one combined round failed and its batches went alone.
	if upserts := tr.since(before); len(upserts) < 1+2+n/2 {
		t.Errorf("rows per upsert %v: want a refused combined round, then its batches one by one", upserts)
	}
	want := map[string][2]int64{"first": {1, 0}, "hot": {n, 0}}
	for i := range n {
		want[fmt.Sprintf("own%d", i)] = [2]int64{1, 0}
	}
	if got := totals(t, st, hour); !maps.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

// A round whose connection breaks fails whole, as before: whether it was
// committed is unknown, so its batches are not retried (a retry could add
// their bytes twice); the clients retry.
func TestFlowsAddConnectionFailureFailsTheRound(t *testing.T) {
	t.Parallel()
	st, tr, pool := tracedStorePool(t)
	ctx := context.Background()
	const hour = 14
	flow := func(src string) store.Flow {
		return store.Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: 1, Hour: hour}
	}
	held1, release1 := tr.arm()
	t.Cleanup(release1)
	firstErr := make(chan error, 1)
	go func() { firstErr <- st.Flows.Add(ctx, []store.Flow{flow("first")}) }()
	<-held1
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Flows.Add(ctx, []store.Flow{flow(fmt.Sprintf("b%d", i))})
		}()
	}
	time.Sleep(300 * time.Millisecond) // the batches queue behind the held upsert
	// Hold the next upsert too (the round of the n batches), and kill its
	// connection while it waits.
	held2, release2 := tr.arm()
	t.Cleanup(release2)
	before := tr.count()
	release1()
	if err := <-firstErr; err != nil {
		t.Fatalf("first batch: %v", err)
	}
	select {
	case <-held2:
	case <-time.After(30 * time.Second):
		t.Fatal("the round never reached the database")
	}
	tr.mu.Lock()
	pid := tr.heldPID
	tr.mu.Unlock()
	var killed bool
	if err := pool.QueryRow(ctx, "SELECT pg_terminate_backend($1::int)", int32(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminating backend %d: %v %v", pid, killed, err)
	}
	// Wait until the backend is gone, so that the held upsert meets a
	// closed connection.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var alive bool
		if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1::int)", int32(pid)).Scan(&alive); err != nil {
			t.Fatal(err)
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	release2()
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrTooLarge) {
				t.Errorf("error %v: a broken connection is no data error", err)
			}
		}
	}
	upserts := tr.since(before)
	// The held round failed; batches that came later may have had a round
	// of their own, but none was retried alone after the failure.
	if failed == 0 || upserts[0] != failed {
		t.Fatalf("%d of %d batches failed, rows per upsert %v: want the whole held round (%d rows) failed", failed, n, upserts, upserts[0])
	}
	rest := 0
	for _, rows := range upserts[1:] {
		rest += rows
	}
	if rest != n-failed {
		t.Fatalf("rows per upsert %v with %d failed: the failed round's batches were retried", upserts, failed)
	}
	got := totals(t, st, hour)
	if len(got) != 1+n-failed {
		t.Fatalf("stored %v with %d of %d failed", got, failed, n)
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
		page, err := st.Flows.List(ctx, store.FlowFilter{FromHour: c.hour, ToHour: c.hour + 1}, store.FlowSort{}, c.p)
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
	page, err := st.Flows.List(ctx, store.FlowFilter{FromHour: 5, ToHour: 6}, store.FlowSort{}, store.PageRequest{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Flow{SrcApp: "a", DestApp: "d", VpcID: "v", BytesTx: 13, BytesRx: 24, Hour: 5}); page.Items[0] != want {
		t.Fatalf("summed item %+v, want %+v", page.Items[0], want)
	}
}
