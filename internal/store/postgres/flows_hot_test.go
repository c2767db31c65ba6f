package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// POST /flows adds to the same keys again and again, and those updates
// must be HOT (migration 00032): no index of flows holds a column the
// upsert changes, and the pages keep room for the new versions. Otherwise
// every update writes an entry in each of the five indexes (under the mixed
// load of docs/performance-mixed.md that was half of POST /flows' cost).
// The store's statement re-adds 1,000 keys of one hour in 12 rounds, each
// committed, on one connection; the table's statistics (on TimescaleDB its
// chunks') must count at least half the updates of the last 10 rounds as
// HOT.
//
// Not parallel: a round's old versions can be pruned (and their space
// reused by the next round's HOT updates) only once no snapshot may see
// them, and every snapshot's xmin is held back by any transaction running
// in the cluster, whatever its database. A parallel test's long COPY in its
// own database made 25-43 % of the updates HOT instead of 83 % (one run in
// three of the package on TimescaleDB); the package's other tests wait
// while this one runs.
func TestFlowsUpsertsAreHOT(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	q := db.New(conn)
	const keys = 1000
	const hour = 480000
	var flows []store.Flow
	for i := range keys {
		flows = append(flows, store.Flow{Hour: hour, SrcApp: fmt.Sprintf("app-%03d", i/10), DestApp: fmt.Sprintf("db-%d", i%10),
			VpcID: "vpc-1", BytesTx: int64(1000 + i), BytesRx: int64(2*i + 1)})
	}
	p, err := postgres.FlowUpsert(flows)
	if err != nil {
		t.Fatal(err)
	}
	// The statistics a backend gathers reach the shared ones when it is
	// next idle; pg_stat_force_next_flush makes that flush unconditional.
	updates := func() (upd, hot int64) {
		t.Helper()
		if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		st, err := testdb.ReadTableStats(ctx, conn, "flows")
		if err != nil {
			t.Fatal(err)
		}
		return st.Updates, st.HOTUpdates
	}
	var upd0, hot0 int64
	for round := range 12 {
		if round == 2 {
			// The first round inserts, the second takes the pages' free space.
			upd0, hot0 = updates()
		}
		if err := q.UpsertFlows(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	upd, hot := updates()
	upd, hot = upd-upd0, hot-hot0
	t.Logf("the last 10 rounds: %d updates, %d HOT (the first two rounds: %d updates, %d HOT)", upd, hot, upd0, hot0)
	if upd != 10*keys {
		t.Fatalf("the last 10 rounds updated %d rows, want %d", upd, 10*keys)
	}
	// Measured here: 83 % with fillfactor 80, 17 % with the pages full,
	// none with an index on the counters.
	if hot < upd/2 {
		t.Errorf("%d of %d updates HOT, want at least half: does an index hold a counter, or is the fillfactor gone?", hot, upd)
	}
}
