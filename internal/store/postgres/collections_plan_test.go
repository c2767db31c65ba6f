package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/telemetry/telemetry/internal/testdb"
)

// A metrics collection's read (the SQL function collection_http) takes the
// rows of its window's two partial 10-second bins from measurements through
// the started_at index, and the planner must take those ranges for narrow
// ones whatever the statistics say (migration 00037). When their bounds
// were columns of a CTE, the function's generic plan priced each bound as a
// join clause, a third of the table per side; past a few million rows a
// parallel sequential scan of the whole table won on paper and a read took
// 7-10 s instead of milliseconds (docs/performance-mixed.md). Such a table
// is too slow to build in a test, so this one checks the cause on an
// analyzed table of a few thousand rows: every scan of measurements in the
// function's plan (auto_explain of its nested statements, the plan the
// function really runs) reads the index, and none is expected to return
// more than 2 % of the service's rows (migration 00031's plan expected
// 11 % of them).
func TestCollectionsHTTPEdgeRangesPlanNarrow(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	base := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	// An hour of rows, a third of them the service's own.
	if _, err := pool.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method, context, app)
		SELECT t, t + interval '5 ms', 0.005, '/x', 'GET', jsonb_build_object('path', '/p' || (g % 7)),
		       CASE WHEN g % 3 = 0 THEN 'telemetry' ELSE 'other' END
		FROM generate_series(1, 30000) g, LATERAL (SELECT $1::timestamptz + g * interval '120 ms' AS t) x`, base); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE measurements"); err != nil {
		t.Fatal(err)
	}
	var own float64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM measurements WHERE app = 'telemetry'").Scan(&own); err != nil {
		t.Fatal(err)
	}
	isMeasurements := relationAndChunks(t, pool, "measurements")

	cfg := pool.Config().ConnConfig.Copy()
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range autoExplainSettings(false) {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// Partial minutes and bins at both ends: edge rows on both sides.
	since, until := base.Add(20*time.Minute+3500*time.Millisecond), base.Add(25*time.Minute+7200*time.Millisecond)
	rows, err := conn.Query(ctx, "SELECT path, hits FROM collection_http($1, $2)", since, until)
	if err != nil {
		t.Fatal(err)
	}
	var hits int64
	for rows.Next() {
		var path string
		var h int64
		if err := rows.Scan(&path, &h); err != nil {
			t.Fatal(err)
		}
		hits += h
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The rows were written around the rollups, so only the edge rows
	// count: those of [since, since rounded up to 10 s) and [until rounded
	// down to 10 s, until], one in three every 120 ms.
	var want int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements WHERE app = 'telemetry'
		AND ((started_at >= $1 AND started_at < $2) OR (started_at >= $3 AND started_at <= $4))`,
		since, base.Add(20*time.Minute+10*time.Second), base.Add(25*time.Minute), until).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if want == 0 || hits != want {
		t.Fatalf("collection_http counted %d requests, the edge rows are %d", hits, want)
	}

	scans := scansOf(t, notices, isMeasurements)
	if len(scans) == 0 {
		t.Fatalf("no scan of measurements in the plans of collection_http (%d notices): %q", len(notices), notices)
	}
	for _, node := range scans {
		kind, _ := node["Node Type"].(string)
		if kind != "Index Scan" && kind != "Index Only Scan" && kind != "Bitmap Heap Scan" {
			t.Errorf("collection_http reads measurements by a %s, not its started_at index: %v", kind, node)
		}
		if est, _ := node["Plan Rows"].(float64); est > 0.02*own {
			t.Errorf("collection_http expects %.0f rows of one edge range, over 2 %% of the %.0f rows of the service: "+
				"the planner does not see the range as narrow (%s on %v)", est, own, kind, node["Relation Name"])
		}
	}
}
