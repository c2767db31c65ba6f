package postgres_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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
	cfg, err := pgxpool.ParseConfig(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m := postgres.New(pool, postgres.Options{}).Measurements
	rng := rand.New(rand.NewPCG(3, 3))

	// The 5-minute rollup, written in the last round trip, refuses every
	// cell.
	if _, err := pool.Exec(ctx, `ALTER TABLE measurements_5min ADD CONSTRAINT zz_refuse CHECK (count < 0) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	conns := pool.Stat().NewConnsCount()
	_, err = m.Insert(ctx, randomMeasurements(rng, 50))
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
