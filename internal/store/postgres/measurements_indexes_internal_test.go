package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// slowElapsed is measurements_slow_idx's threshold: when the two disagree,
// the elapsed-descending list either misses slow rows below the Go constant
// (the index then holds rows it does not read first; still exact, but the
// first query no longer proves anything) or asks a query the index cannot
// serve. The planner's own check is the proof: a query with elapsed >=
// slowElapsed must be able to use the partial index.
func TestMeasurementsSlowIndexMatchesThreshold(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	// The slow rows' time orders (migration 00018) hold the same rows.
	for _, name := range []string{"measurements_slow_idx", "measurements_slow_end_idx", "measurements_slow_start_idx"} {
		var pred string
		if err := pool.QueryRow(ctx, `SELECT pg_get_expr(i.indpred, i.indrelid)
			FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			WHERE c.relname = $1`, name).Scan(&pred); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := "(elapsed >= (" + strconv.FormatFloat(slowElapsed, 'f', -1, 64) + ")::double precision)"
		if pred != want {
			t.Fatalf("%s predicate %q, want %q (slowElapsed = %v)", name, pred, want, slowElapsed)
		}
	}
	// The planner uses the index for the threshold itself (and, being a
	// partial index, could not for anything below it).
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// A row, so that a hypertable has a chunk (whose copy of the index
	// is named after it) to plan over.
	if _, err := conn.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now(), now() + interval '1 second', 1, '/a', 'GET')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "EXPLAIN SELECT count(*) FROM measurements WHERE elapsed >= $1",
		slowElapsed)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		found = found || strings.Contains(line, "measurements_slow_idx")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("a query with elapsed >= slowElapsed does not use measurements_slow_idx")
	}
}
