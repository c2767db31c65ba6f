package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A batch's COMMIT goes in its last round trip, after the rollups
// (Measurements.insert). When a statement of that round trip fails, the
// server skips the rest, COMMIT included: nothing of the batch is stored,
// and the connection (the pool's only one here) goes back clean, in no
// transaction, so the next batch on it commits.
func TestMeasurementsFailedLastRoundTripCommitsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := poolOf(t, 1)
	m := postgres.New(pool, postgres.Options{}).Measurements
	rng := rand.New(rand.NewPCG(3, 3))

	// The 5-minute rollup, written in the last round trip, refuses every
	// cell.
	if _, err := pool.Exec(ctx, `ALTER TABLE measurements_5min ADD CONSTRAINT zz_refuse CHECK (count < 0) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	conns := pool.Stat().NewConnsCount()
	_, err := m.Insert(ctx, randomMeasurements(rng, 50))
	if err == nil {
		t.Fatal("the batch was stored although its 5-minute rollup was refused")
	}
	t.Logf("refused: %v", err)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pool.Acquire(actx)
	if err != nil {
		t.Fatalf("no connection back after the failed batch: %v", err)
	}
	released := false
	defer func() {
		if !released {
			c.Release() // before pool.Close, which waits for it
		}
	}()
	// pgxpool closes a connection given back inside a transaction: the
	// next acquire would then open a new one.
	if st, n := c.Conn().PgConn().TxStatus(), pool.Stat().NewConnsCount(); st != 'I' || n != conns {
		t.Fatalf("after the failed batch: transaction status %q, %d new connections: the batch's was not given back clean", st, n-conns)
	}
	c.Release()
	released = true
	for _, table := range []string{"measurements", "measurements_hourly", "measurements_daily", "measurements_method_hourly",
		"measurements_hourly_hist", "measurements_daily_hist"} {
		if n := countOf(t, pool, `SELECT count(*) FROM `+table); n != 0 {
			t.Errorf("%s holds %d rows of the refused batch", table, n)
		}
	}

	if _, err := pool.Exec(ctx, `ALTER TABLE measurements_5min DROP CONSTRAINT zz_refuse`); err != nil {
		t.Fatal(err)
	}
	recs := randomMeasurements(rng, 50)
	ids, err := m.Insert(ctx, recs)
	if err != nil || len(ids) != len(recs) {
		t.Fatalf("the next batch: %d ids, %v", len(ids), err)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements`); n != int64(len(recs)) {
		t.Fatalf("%d rows stored, want %d", n, len(recs))
	}
	if n := rollupMismatches(t, pool); n != 0 {
		t.Fatalf("%d rollup cells differ from the rows", n)
	}
}

// The round trip that carries a batch's COMMIT is not cut by the request's
// deadline: sent, the COMMIT may be carried out before a cancellation
// reaches the server, and the request would then answer a failure for a
// stored batch (a client retrying without an Idempotency-Key stores it
// twice). Here the batch's 5-minute cells are locked by another session
// until after the request's deadline: the batch waits, then commits, and
// Insert says so.
func TestMeasurementsLastRoundTripOutlivesRequestDeadline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m := postgres.New(pool, postgres.Options{}).Measurements
	recs := randomMeasurements(rand.New(rand.NewPCG(4, 4)), 20)
	if _, err := m.Insert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	locker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM measurements_5min FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	reqCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := m.Insert(reqCtx, recs)
		done <- err
	}()
	// The batch is waiting for the cells when its deadline passes.
	waitLocked := time.Now().Add(10 * time.Second)
	for countOf(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(waitLocked) {
			t.Fatal("the batch never waited for the locked 5-minute cells")
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-reqCtx.Done()
	time.Sleep(200 * time.Millisecond)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the batch was cut by the request's deadline in the round trip of its COMMIT: %v", err)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements`); n != int64(2*len(recs)) {
		t.Fatalf("%d rows stored, want %d", n, 2*len(recs))
	}
	if n := rollupMismatches(t, pool); n != 0 {
		t.Fatalf("%d rollup cells differ from the rows", n)
	}
}

// Whatever the point at which a request's deadline passes, a batch is
// stored if and only if Insert answered its ids: a failure answered for a
// stored batch would be stored twice by a client's retry. (Before the
// COMMIT's round trip had its own deadline, 4 to 11 of about 85 batches cut
// this way were stored anyway.)
func TestMeasurementsCutBatchStoredIffAnswered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := poolOf(t, 2)
	m := postgres.New(pool, postgres.Options{}).Measurements
	rng := rand.New(rand.NewPCG(5, 5))
	answered := map[int]bool{}
	failed := 0
	for b := 0; b < 100; b++ {
		recs := randomMeasurements(rng, 300)
		for i := range recs {
			recs[i].Kwargs = json.RawMessage(fmt.Sprintf(`{"b": %d}`, b))
		}
		c, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(100_000))*time.Microsecond)
		_, err := m.Insert(c, recs)
		cancel()
		if err == nil {
			answered[b] = true
		} else {
			failed++
		}
	}
	t.Logf("%d batches answered, %d cut", len(answered), failed)
	rows, err := pool.Query(ctx, `SELECT (kwargs->>'b')::int, count(*) FROM measurements GROUP BY 1 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int]int64{}
	for rows.Next() {
		var b int
		var n int64
		if err := rows.Scan(&b, &n); err != nil {
			t.Fatal(err)
		}
		stored[b] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for b, n := range stored {
		if n != 300 {
			t.Errorf("batch %d: %d rows stored (half a batch)", b, n)
		}
		if !answered[b] {
			t.Errorf("batch %d stored although Insert answered a failure", b)
		}
	}
	for b := range answered {
		if _, ok := stored[b]; !ok {
			t.Errorf("batch %d answered but not stored", b)
		}
	}
	if n := rollupMismatches(t, pool); n != 0 {
		t.Errorf("%d rollup cells differ from the rows", n)
	}
}

// A name too long for its index entry (2,704 bytes at most: here 1,024
// four-byte characters, which do not compress) is the request's fault:
// ErrInvalid, a 422, not an unexpected error. The API bounds names in bytes
// so that none reaches this; the store does not rely on it.
func TestMeasurementsNameTooLongForTheIndexIsInvalid(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m := postgres.New(pool, postgres.Options{}).Measurements
	rng := rand.New(rand.NewPCG(6, 6))
	recs := randomMeasurements(rng, 3)
	var name []rune
	for range 1024 {
		name = append(name, 0x10000+rune(rng.IntN(0xF0000)))
	}
	recs[1].Name = string(name)
	_, err = m.Insert(context.Background(), recs)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("error %v, want ErrInvalid", err)
	}
	if n := countOf(t, pool, `SELECT count(*) FROM measurements`); n != 0 {
		t.Fatalf("%d rows of the refused batch stored", n)
	}
}

// poolOf is a pool of at most maxConns connections to a new test database.
func poolOf(t *testing.T, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
