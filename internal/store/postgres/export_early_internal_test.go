package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// An export that ends at its first row (a HEAD, a client gone) cancels its
// query instead of reading every row left: rows.Close used to drain the
// whole result (found by an audit). The query here takes a sequence's next
// value per row, so the rows the server produced can be counted; the
// connection stays usable for the next query.
func TestExportEarlyEndCancelsTheQuery(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "CREATE SEQUENCE export_probe"); err != nil {
		t.Fatal(err)
	}
	const rows = 2_000_000
	c := &captured{sql: "SELECT g, nextval('export_probe') FROM generate_series(1, $1::bigint) g", args: []any{rows}}
	stopped := errors.New("stopped")
	type row struct{ G, V int64 }
	n, err := each(ctx, pool, "probe", c, false, func(r row) row { return r }, func(row) error { return stopped })
	if n != 0 || !errors.Is(err, stopped) {
		t.Fatalf("each: %d rows, %v", n, err)
	}
	var last int64
	if err := pool.QueryRow(ctx, "SELECT last_value FROM export_probe").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if last >= rows {
		t.Fatalf("the server produced all %d rows of an export that stopped at its first", last)
	}
	// Read whole, the same query still gives every row.
	var whole int64
	if _, err := each(ctx, pool, "probe", &captured{sql: "SELECT g, g FROM generate_series(1, 1000) g"}, false,
		func(r row) row { return r }, func(row) error { whole++; return nil }); err != nil || whole != 1000 {
		t.Fatalf("whole: %d rows, %v", whole, err)
	}
}
