package postgres_test

import (
	"context"
	"crypto/sha256"
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

// keyed is a context asking the write to record its answer under key: the
// body is {"result": <the write's result>}.
func keyed(key string) context.Context {
	h := sha256.Sum256([]byte("request " + key))
	return store.WithIdempotent(context.Background(), &store.Idempotent{
		Key: key, Endpoint: "POST /test", Hash: h[:], Status: 201, TTL: time.Hour,
		Body: func(result any) ([]byte, error) { return json.Marshal(map[string]any{"result": result}) },
	})
}

func newIdemStore(t *testing.T) *postgres.Store {
	t.Helper()
	st := postgres.New(testdb.New(t), postgres.Options{})
	t.Cleanup(st.Devices.Close)
	return st
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// answerOf is the answer recorded under key: its result, or ok false when
// there is none.
func answerOf(t *testing.T, st *postgres.Store, key string) (result any, ok bool) {
	t.Helper()
	a, err := st.Idempotency.Answer(context.Background(), key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("answer %s: %v", key, err)
	}
	h := sha256.Sum256([]byte("request " + key))
	if a.Key != key || a.Status != 201 || a.Endpoint != "POST /test" || string(a.Hash) != string(h[:]) ||
		!a.ExpiresAt.After(a.CreatedAt) {
		t.Fatalf("answer %s = %+v", key, a)
	}
	var body struct{ Result any }
	if err := json.Unmarshal(a.Body, &body); err != nil {
		t.Fatalf("answer %s body %s: %v", key, a.Body, err)
	}
	return body.Result, true
}

func flow(src string, tx int64) store.Flow {
	return store.Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: tx, BytesRx: 1, Hour: 5}
}

func measurement(name string) store.Measurement {
	at := time.Unix(1700000000, 0).UTC()
	return store.Measurement{StartedAt: at, EndedAt: at.Add(time.Second), Elapsed: 1, Name: name, Method: "GET", App: "a"}
}

func newRun(host string) store.NewRun {
	return store.NewRun{Host: host, Payload: json.RawMessage(`{}`)}
}

// Each keyed write records its answer, made from its result, with it.
func TestIdempotentWritesRecordTheirAnswer(t *testing.T) {
	t.Parallel()
	st := newIdemStore(t)
	pool := st.Pool()

	if err := st.Flows.Add(keyed("flows"), []store.Flow{flow("a", 3)}); err != nil {
		t.Fatal(err)
	}
	if r, ok := answerOf(t, st, "flows"); !ok || r != nil {
		t.Fatalf("flows answer %v %v", r, ok)
	}
	ids, err := st.Measurements.Insert(keyed("measurements"), []store.Measurement{measurement("/a"), measurement("/b")})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := answerOf(t, st, "measurements"); !ok || fmt.Sprint(r) != fmt.Sprint([]any{float64(ids[0]), float64(ids[1])}) {
		t.Fatalf("measurements answer %v, ids %v", r, ids)
	}
	id, err := st.Events.Register(keyed("register"), newRun("h"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := answerOf(t, st, "register"); !ok || r != id.String() {
		t.Fatalf("register answer %v, id %v", r, id)
	}
	if err := st.Events.Commit(keyed("commit"), store.RunCommit{ID: id, Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := answerOf(t, st, "commit"); !ok {
		t.Fatal("no commit answer")
	}
	if _, err := st.Devices.Create(context.Background(), "d1", "D1"); err != nil {
		t.Fatal(err)
	}
	if err := st.Devices.Report(keyed("report"), numRow("d1", "m", 1, time.Now(), 60)); err != nil {
		t.Fatal(err)
	}
	if _, ok := answerOf(t, st, "report"); !ok {
		t.Fatal("no report answer")
	}
	// Empty batches record their answers too.
	if err := st.Flows.Add(keyed("no flows"), nil); err != nil {
		t.Fatal(err)
	}
	if ids, err := st.Measurements.Insert(keyed("no measurements"), nil); err != nil || len(ids) != 0 {
		t.Fatalf("empty insert: %v %v", ids, err)
	}
	for _, k := range []string{"no flows", "no measurements"} {
		if _, ok := answerOf(t, st, k); !ok {
			t.Fatalf("no answer for %s", k)
		}
	}
	if _, ok := answerOf(t, st, "never used"); ok {
		t.Fatal("an answer for a key never used")
	}
	if n := count(t, pool, `SELECT count(*) FROM idempotency_keys`); n != 7 {
		t.Fatalf("%d keys recorded, want 7", n)
	}
	if n := count(t, pool, `SELECT sum(bytes_tx) FROM flows`) + count(t, pool, `SELECT count(*) FROM measurements`) +
		count(t, pool, `SELECT count(*) FROM events`) + count(t, pool, `SELECT count(*) FROM device_metrics`); n != 3+2+2+1 {
		t.Fatalf("%d things written, want 8", n)
	}
}

// A keyed write that fails records nothing: its key and its rows go
// together or not at all.
func TestIdempotentFailedWriteRecordsNothing(t *testing.T) {
	t.Parallel()
	st := newIdemStore(t)
	pool := st.Pool()
	bg := context.Background()

	// A total that would overflow (the upsert fails after the key insert).
	if err := st.Flows.Add(bg, []store.Flow{flow("a", math.MaxInt64)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Flows.Add(keyed("overflow"), []store.Flow{flow("a", 1), flow("b", 1)}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("overflow: %v", err)
	}
	// An answer body that cannot be made.
	h := sha256.Sum256([]byte("x"))
	broken := store.WithIdempotent(bg, &store.Idempotent{Key: "broken", Endpoint: "POST /test", Hash: h[:], Status: 201,
		TTL: time.Hour, Body: func(any) ([]byte, error) { return nil, errors.New("no body") }})
	if err := st.Flows.Add(broken, []store.Flow{flow("c", 1)}); err == nil {
		t.Fatal("a write whose answer cannot be made succeeded")
	}
	if n := count(t, pool, `SELECT count(*) FROM flows`); n != 1 {
		t.Fatalf("%d flow rows, want 1", n)
	}
	// Values PostgreSQL refuses, after the key insert (measurements: the
	// copy; register: the statement itself).
	if _, err := st.Measurements.Insert(keyed("measurements"), []store.Measurement{measurement("/ok"), measurement("/a\x00b")}); err == nil {
		t.Fatal("a NUL was stored")
	}
	if n := count(t, pool, `SELECT count(*) FROM measurements`); n != 0 {
		t.Fatalf("%d measurements stored", n)
	}
	if _, err := st.Events.Register(keyed("register"), newRun("h\x00")); err == nil {
		t.Fatal("a NUL host was stored")
	}
	// Refused commits: unknown run, run already committed.
	if err := st.Events.Commit(keyed("commit unknown"), store.RunCommit{ID: uuid.New(), Payload: json.RawMessage(`{}`)}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("commit unknown: %v", err)
	}
	id, err := st.Events.Register(bg, newRun("h"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Events.Commit(bg, store.RunCommit{ID: id, Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Events.Commit(keyed("commit twice"), store.RunCommit{ID: id, Payload: json.RawMessage(`{}`)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit twice: %v", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM event_runs`); n != 1 {
		t.Fatalf("%d runs", n)
	}
	// A report of an unknown device.
	if err := st.Devices.Report(keyed("report"), numRow("ghost", "m", 1, time.Now(), 60)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("report of an unknown device: %v", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("%d keys recorded by failed writes", n)
	}
}

// A write whose key another request recorded first writes nothing:
// ErrKeyInUse.
func TestIdempotentKeyInUse(t *testing.T) {
	t.Parallel()
	st := newIdemStore(t)
	pool := st.Pool()
	bg := context.Background()
	if err := st.Flows.Add(keyed("k"), []store.Flow{flow("a", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Devices.Create(bg, "d1", "D1"); err != nil {
		t.Fatal(err)
	}
	id, err := st.Events.Register(bg, newRun("h"))
	if err != nil {
		t.Fatal(err)
	}
	for what, write := range map[string]func() error{
		"flows": func() error { return st.Flows.Add(keyed("k"), []store.Flow{flow("a", 1)}) },
		"measurements": func() error {
			_, err := st.Measurements.Insert(keyed("k"), []store.Measurement{measurement("/a")})
			return err
		},
		"register": func() error { _, err := st.Events.Register(keyed("k"), newRun("h2")); return err },
		"commit": func() error {
			return st.Events.Commit(keyed("k"), store.RunCommit{ID: id, Payload: json.RawMessage(`{}`)})
		},
		"report": func() error { return st.Devices.Report(keyed("k"), numRow("d1", "m", 1, time.Now(), 60)) },
	} {
		if err := write(); !errors.Is(err, store.ErrKeyInUse) {
			t.Errorf("%s with a recorded key: %v, want ErrKeyInUse", what, err)
		}
	}
	if n := count(t, pool, `SELECT sum(bytes_tx) FROM flows`) + count(t, pool, `SELECT count(*) FROM measurements`) +
		count(t, pool, `SELECT count(*) FROM event_runs`) + count(t, pool, `SELECT count(*) FROM events`) +
		count(t, pool, `SELECT count(*) FROM device_metrics`); n != 1+0+1+1+0 {
		t.Fatalf("writes with a recorded key wrote: %d", n)
	}
}

// Requests with one key at the same time: the second key insert waits for
// the first transaction, then finds the key taken; one write.
func TestIdempotentConcurrentWritesOneKey(t *testing.T) {
	t.Parallel()
	st := newIdemStore(t)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Events.Register(keyed("one"), newRun("h"))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrKeyInUse):
			t.Fatalf("register: %v", err)
		}
	}
	if runs := count(t, st.Pool(), `SELECT count(*) FROM event_runs`); ok != 1 || runs != 1 {
		t.Fatalf("%d registers succeeded, %d runs stored; want 1 and 1", ok, runs)
	}
}

// In a combined round of flows, keyed batches record their keys in the
// round's transaction; a batch whose key is taken (recorded before, or
// carried by another batch of the round) fails alone, and the others are
// written.
func TestIdempotentFlowsRound(t *testing.T) {
	t.Parallel()
	st, tr := tracedStore(t)
	pool := st.Pool()
	if err := st.Flows.Add(keyed("taken"), []store.Flow{flow("pre", 1)}); err != nil {
		t.Fatal(err)
	}
	batches := []struct {
		key string
		tx  int64
	}{{"a", 1}, {"dup", 10}, {"dup", 100}, {"taken", 1000}, {"", 10000}, {"b", 100000}}
	ctx := func(key string) context.Context {
		if key == "" {
			return context.Background()
		}
		return keyed(key)
	}
	held, release := tr.arm()
	t.Cleanup(release)
	first := make(chan error, 1)
	go func() { first <- st.Flows.Add(context.Background(), []store.Flow{flow("first", 0)}) }()
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
			errs[i] = st.Flows.Add(ctx(b.key), []store.Flow{flow("x", b.tx)})
		}()
	}
	// Nothing outside the writer can see its queue: give the goroutines
	// ample time to join it.
	time.Sleep(300 * time.Millisecond)
	release()
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	want := int64(1 + 100000 + 10000 + 1) // the batches that must be written, and "pre"
	for i, b := range batches {
		switch b.key {
		case "dup":
		case "taken":
			if !errors.Is(errs[i], store.ErrKeyInUse) {
				t.Errorf("batch with a taken key: %v", errs[i])
			}
		default:
			if errs[i] != nil {
				t.Errorf("batch %q: %v", b.key, errs[i])
			}
		}
	}
	switch {
	case errs[1] == nil && errors.Is(errs[2], store.ErrKeyInUse):
		want += 10
	case errs[2] == nil && errors.Is(errs[1], store.ErrKeyInUse):
		want += 100
	default:
		t.Fatalf("two batches with one key: %v and %v, want one written and one ErrKeyInUse", errs[1], errs[2])
	}
	if got := count(t, pool, `SELECT sum(bytes_tx) FROM flows`); got != want {
		t.Fatalf("stored %d bytes, want %d", got, want)
	}
	if n := count(t, pool, `SELECT count(*) FROM idempotency_keys WHERE key IN ('a', 'b', 'dup', 'taken')`); n != 4 {
		t.Fatalf("%d keys recorded, want 4", n)
	}
}

// In a device metrics batch, keyed reports record their keys in the
// batch's transaction; a report whose key is taken fails alone, and a
// report refused for an unknown device leaves no key.
func TestIdempotentDevicesBatch(t *testing.T) {
	t.Parallel()
	d, pool, log := newDevices(t, 1, 64)
	mustCreate(t, d, "w1")
	if err := d.Report(keyed("taken"), numRow("w1", "pre", 0, time.Now(), 60)); err != nil {
		t.Fatal(err)
	}
	reports := []struct {
		key, device string
	}{{"x", "w1"}, {"x", "w1"}, {"taken", "w1"}, {"ghost", "ghost"}, {"", "w1"}, {"y", "w1"}}
	rows := make([]store.MetricRow, len(reports))
	ctxs := make([]context.Context, len(reports))
	for i, r := range reports {
		rows[i] = numRow(r.device, fmt.Sprint("m", i), float64(i), time.Now(), 60)
		ctxs[i] = context.Background()
		if r.key != "" {
			ctxs[i] = keyed(r.key)
		}
	}
	errs := forceBatchCtx(t, d, pool, "w1", rows, ctxs)
	for i, r := range reports {
		switch {
		case i <= 1: // the same key twice
		case r.key == "taken":
			if !errors.Is(errs[i], store.ErrKeyInUse) {
				t.Errorf("report with a taken key: %v", errs[i])
			}
		case r.device == "ghost":
			if !errors.Is(errs[i], store.ErrNotFound) {
				t.Errorf("report of an unknown device: %v", errs[i])
			}
		default:
			if errs[i] != nil {
				t.Errorf("report %d: %v", i, errs[i])
			}
		}
	}
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs[0], errs[1]), store.ErrKeyInUse) {
		t.Fatalf("two reports with one key: %v and %v, want one stored and one ErrKeyInUse", errs[0], errs[1])
	}
	// pre, first (forceBatch's), one of x, the unkeyed and y.
	if n := countRows(t, pool); n != 5 {
		t.Fatalf("%d rows stored, want 5", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM idempotency_keys`); n != 3 {
		t.Fatalf("%d keys, want 3 (taken, x, y; not ghost)", n)
	}
	// One statement of 4 rows (one of x, ghost, the unkeyed and y), of
	// which the commit stored 3 (not ghost's).
	if committed, attempted, _ := log.snapshot(); len(committed) != 3 || committed[2] != 3 || len(attempted) != 3 || attempted[2] != 4 {
		t.Fatalf("commits of %v rows (statements of %v), want [1 1 3] ([1 1 4]): the keyed reports did not share one commit",
			committed, attempted)
	}
}

// An expired key is free again: it is not answered, and a write with it
// records a new answer. Each lookup deletes up to 10 expired keys.
func TestIdempotentExpiredKey(t *testing.T) {
	t.Parallel()
	st := newIdemStore(t)
	pool := st.Pool()
	ctx := context.Background()
	if err := st.Flows.Add(keyed("k"), []store.Flow{flow("a", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (key, endpoint, request_hash, status, body, created_at, expires_at)
		SELECT 'old-' || i, 'POST /flows', sha256('x'::bytea), 201, '{}', now() - interval '2 days', now() - interval '1 day'
		FROM generate_series(1, 14) i`); err != nil {
		t.Fatal(err)
	}
	if _, ok := answerOf(t, st, "k"); ok {
		t.Fatal("an expired key was answered")
	}
	if n := count(t, pool, `SELECT count(*) FROM idempotency_keys`); n != 5 {
		t.Fatalf("%d keys left of 15 expired after one lookup, want 5", n)
	}
	if err := st.Flows.Add(keyed("k"), []store.Flow{flow("a", 1)}); err != nil {
		t.Fatalf("write with an expired key: %v", err)
	}
	if _, ok := answerOf(t, st, "k"); !ok {
		t.Fatal("the expired key was not recorded again")
	}
	if n := count(t, pool, `SELECT sum(bytes_tx) FROM flows`); n != 2 {
		t.Fatalf("bytes %d, want 2", n)
	}
}

// forceBatchCtx is forceBatch with a context for each row: the rows are
// reported together while a first report holds the only commit slot, so
// that they form one batch.
func forceBatchCtx(t *testing.T, d *postgres.Devices, pool *pgxpool.Pool, holder string, rows []store.MetricRow, ctxs []context.Context) []error {
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
			errs[i] = d.Report(ctxs[i], r)
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
