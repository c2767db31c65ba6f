package postgres

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

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
	plan := planOverOneRow(t, pool, []string{"enable_seqscan"}, "SELECT count(*) FROM measurements WHERE elapsed >= $1", slowElapsed)
	if !strings.Contains(plan, "measurements_slow_idx") {
		t.Fatalf("a query with elapsed >= slowElapsed does not use measurements_slow_idx:\n%s", plan)
	}
}

// planOverOneRow is the plan of query (EXPLAIN) over a table of one
// measurement, with the planner settings named turned off: whether an index
// can serve a query, not whether the planner prefers it on a large table.
// The row gives a hypertable a chunk (whose copy of each index is named
// after it) to plan over.
func planOverOneRow(t *testing.T, pool *pgxpool.Pool, off []string, query string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now(), now() + interval '1 second', 1, '/a', 'GET')`); err != nil {
		t.Fatal(err)
	}
	for _, set := range off {
		if _, err := conn.Exec(ctx, "SET "+set+" = off"); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}

// The elapsed orders read measurements_elapsed_bucket_idx (migration 00024)
// in (bucket, elapsed, id) order, and an elapsed filter below slowElapsed is
// doubled by bucket(elapsed) >= bucket(filter): both are the documented
// answers only if the bucket, as PostgreSQL computes it, never decreases
// as elapsed grows. It can only step where floor() does, at the buckets'
// edges, so every float8 around every edge (the edge as Go computes it
// may be off by some units in the last place) is put through the SQL
// function in ascending order. The planner must also be able to serve the
// order from the index alone, without a sort of the window.
func TestMeasurementsElapsedBucketIndex(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	var vals []float64
	for b := 1; b <= 830; b++ {
		v := 1e-6 * math.Pow(1.05, float64(b-1))
		for range 64 {
			v = math.Nextafter(v, 0)
		}
		for range 128 {
			vals = append(vals, v)
			v = math.Nextafter(v, math.Inf(1))
		}
	}
	// And beyond the table's range (dead row versions from before its
	// CHECK, which an index build still evaluates): the largest float8,
	// Infinity, without an overflow error.
	vals = append(vals, 1e300, math.Nextafter(1e300, math.Inf(1)), math.MaxFloat64, math.Inf(1))
	var buckets []int16
	if err := pool.QueryRow(ctx, `SELECT array_agg(telemetry_elapsed_bucket(v) ORDER BY i)
		FROM unnest($1::float8[]) WITH ORDINALITY AS u (v, i)`, vals).Scan(&buckets); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for i := 1; i < len(buckets); i++ {
		if buckets[i] < buckets[i-1] {
			t.Fatalf("bucket(%v) = %d after bucket(%v) = %d", vals[i], buckets[i], vals[i-1], buckets[i-1])
		}
		if buckets[i] > buckets[i-1] {
			steps++
		}
	}
	if steps < 829 {
		t.Fatalf("%d bucket steps among the values, want every edge (829): the values miss the edges", steps)
	}

	for _, dir := range []string{"ASC", "DESC"} {
		plan := planOverOneRow(t, pool, []string{"enable_seqscan", "enable_bitmapscan", "enable_sort"}, `SELECT id FROM measurements
			WHERE started_at >= now() - interval '1 day' AND started_at <= now() + interval '1 day'
			ORDER BY telemetry_elapsed_bucket(elapsed) `+dir+`, elapsed `+dir+`, id `+dir+` LIMIT 50`)
		if !strings.Contains(plan, "measurements_elapsed_bucket_idx") || !strings.Contains(plan, "Incremental Sort") {
			t.Fatalf("elapsed %s order not read from measurements_elapsed_bucket_idx bucket by bucket:\n%s", dir, plan)
		}
	}
}

// The grouped view with an elapsed filter below slowElapsed reads the rows
// of the filter's own bucket that pass the filter (migration 00035):
// elapsed is a key column of measurements_elapsed_bucket_idx, so the scan
// of the bucket's window tests the filter in the index and fetches only
// the rows that pass. As an INCLUDE column (migration 00024) it could only
// filter the rows once fetched.
func TestMeasurementsElapsedBucketIndexTestsFilter(t *testing.T) {
	pool := testdb.New(t)
	plan := planOverOneRow(t, pool, []string{"enable_seqscan", "enable_bitmapscan"}, `SELECT m.name, m.method FROM measurements m
		WHERE telemetry_elapsed_bucket(m.elapsed) = telemetry_elapsed_bucket($1::float8) AND m.elapsed >= $1::float8
		  AND m.started_at >= now() - interval '7 days' AND m.started_at <= now()`, 0.1)
	// (On a hypertable the chunk's copy of the index is named after it.)
	var scan, cond string
	for _, line := range strings.Split(plan, "\n") {
		switch {
		case strings.Contains(line, "Index Scan using ") && strings.Contains(line, "measurements_elapsed_bucket_idx"):
			scan = line
		case strings.Contains(line, "Index Cond:"):
			cond = line
		}
	}
	if scan == "" || !strings.Contains(cond, "(elapsed >= ") {
		t.Fatalf("the filter's bucket is not read from measurements_elapsed_bucket_idx with the filter in its index condition:\n%s", plan)
	}
}
