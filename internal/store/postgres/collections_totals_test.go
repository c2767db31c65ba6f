package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// selfRequests is n requests of the service (app telemetry) and one of
// another app, started at the given offsets from at, over a few paths and
// both methods; a summary row among them.
func selfRequests(rng *rand.Rand, at time.Time, offsets ...time.Duration) []store.Measurement {
	var recs []store.Measurement
	for _, off := range offsets {
		k := selfRequestKinds[rng.IntN(len(selfRequestKinds))]
		elapsed := float64(1+rng.IntN(900)) / 1000
		start := at.Add(off).Truncate(time.Microsecond)
		recs = append(recs, store.Measurement{StartedAt: start, EndedAt: start.Add(time.Duration(elapsed * float64(time.Second))),
			Elapsed: elapsed, Name: "name-fallback", Method: []string{"GET", "POST"}[rng.IntN(2)], App: "telemetry",
			Context: json.RawMessage(k.context)})
	}
	recs = append(recs, store.Measurement{StartedAt: at, EndedAt: at, Elapsed: 0, Name: "/other", Method: "GET", App: "shop",
		Context: json.RawMessage(`{"path": "/other"}`)})
	return recs
}

// totalsMatchWindow fails t unless collection id's running totals are the
// figures of its window read from the cells and rows (HTTP, itself checked
// against hand-computed figures in TestCollectionsHTTPMinuteCellsMatchRows),
// and returns the requests they count.
func totalsMatchWindow(t *testing.T, st *postgres.Store, id int64) int64 {
	t.Helper()
	ctx := context.Background()
	w, err := st.Collections.Window(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Collections.HTTPTotals(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want, err := st.Collections.HTTP(ctx, w.Start, w.End.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !sameURLs(got, want, 1e-12) {
		t.Fatalf("collection %d (window from %s): totals\n%+v\nwant (from the cells and rows)\n%+v", id, w.Start, got, want)
	}
	var hits int64
	for _, u := range got {
		hits += u.Hits
	}
	return hits
}

// A collection's httpUrls come from running totals (migration 00038),
// which must always be the figures of its window: requests written before
// its create (or clear) and started before it are not counted, those
// started in it are, whether written before or after; a clear starts
// them again; each collection has its own; a delete removes them; rows
// loaded straight into the table count after RebuildRollup. It fails when
// the write does not add to the totals, adds to a collection a request
// started before its window, when a clear or a create does not start them
// from what was written, or when the rebuild forgets them.
func TestCollectionsHTTPTotalsFollowWindow(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	insert := func(recs []store.Measurement) {
		t.Helper()
		if _, err := st.Measurements.Insert(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	// Before any collection, and requests that started before the first
	// one but are written after it (an instance flushes a second late),
	// or started after it and were written before (a clock ahead).
	insert(selfRequests(rng, now, -time.Minute, -2*time.Second, -time.Second))
	a, err := st.Collections.Create(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	wa, err := st.Collections.Window(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := totalsMatchWindow(t, st, a); got != 0 {
		t.Fatalf("a new collection counts %d requests", got)
	}
	insert(selfRequests(rng, wa.Start, -500*time.Millisecond, -time.Microsecond, 0, time.Microsecond, 2*time.Second, time.Minute))
	if got := totalsMatchWindow(t, st, a); got < 4 {
		t.Fatalf("collection a counts %d requests, want at least the 4 started in its window", got)
	}
	// A clock ahead: started after the next collection's window opens,
	// written before it is created.
	insert(selfRequests(rng, time.Now(), time.Hour))
	b, err := st.Collections.Create(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := totalsMatchWindow(t, st, b); got < 1 {
		t.Fatalf("collection b counts %d requests, want the one started in its window before its create", got)
	}
	insert(selfRequests(rng, time.Now(), 0, 3*time.Second, 90*time.Second))
	hitsA, hitsB := totalsMatchWindow(t, st, a), totalsMatchWindow(t, st, b)
	if hitsA <= hitsB {
		t.Fatalf("collection a counts %d requests, b %d: a's window holds b's", hitsA, hitsB)
	}

	if err := st.Collections.Clear(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := totalsMatchWindow(t, st, a); got >= hitsA {
		t.Fatalf("collection a counts %d requests after its clear, %d before", got, hitsA)
	}
	insert(selfRequests(rng, time.Now(), 0, time.Second))
	totalsMatchWindow(t, st, a)
	totalsMatchWindow(t, st, b)

	// Rows loaded straight into the table count after the rebuild.
	before := totalsMatchWindow(t, st, b)
	if _, err := pool.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method, context, app)
		SELECT now() + g * interval '1 second', now() + g * interval '1 second', 0.25, '/x', 'GET', '{"path": "/loaded"}', 'telemetry'
		FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	if err := st.Measurements.RebuildRollup(ctx, time.Now().Add(-time.Hour), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := totalsMatchWindow(t, st, b); got != before+5 {
		t.Fatalf("collection b counts %d requests after the rebuild, want %d + the 5 loaded", got, before)
	}
	totalsMatchWindow(t, st, a)

	if err := st.Collections.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	var left int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM collection_http_totals WHERE collection_id = $1", a).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d totals rows of deleted collection %d are left", left, a)
	}
	if got, err := st.Collections.HTTPTotals(ctx, a); err != nil || len(got) != 0 {
		t.Fatalf("a deleted collection's totals: %v, %v", got, err)
	}
	totalsMatchWindow(t, st, b)
}

// Creates, clears and deletes beside writers that never stop, some of them
// stamping their requests ahead of the database's clock: every
// collection's totals must still be its window's figures. A create or clear
// that did not keep the writes out (LockCollections against the write's
// ROW EXCLUSIVE lock) would miss the requests of a write whose snapshot
// came before the collection and whose rows started in its window.
func TestCollectionsHTTPTotalsUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for !stop.Load() {
				ahead := time.Duration(w) * 20 * time.Millisecond
				if _, err := st.Measurements.Insert(ctx, selfRequests(rng, time.Now(), ahead, ahead+time.Millisecond)); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		}(w)
	}
	var ids []int64
	for i := 0; i < 30; i++ {
		switch {
		case len(ids) < 3 || i%5 == 0:
			id, err := st.Collections.Create(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		case i%7 == 0:
			if err := st.Collections.Delete(ctx, ids[0]); err != nil {
				t.Fatal(err)
			}
			ids = ids[1:]
		default:
			if err := st.Collections.Clear(ctx, ids[i%len(ids)]); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var counted int64
	for _, id := range ids {
		counted += totalsMatchWindow(t, st, id)
	}
	if counted == 0 {
		t.Fatal("no collection counts any request: the writers wrote nothing in their windows")
	}
}
