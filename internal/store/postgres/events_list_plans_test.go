package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A page of one load generator's runs (GET /apiv0.1/states?host=...), its
// total, and the export of its runs read that host's runs only, through
// event_runs_host_recent_idx (migration 00053), whatever the number of
// other runs: 20,000 runs, 40 of them the host's, spread over the others.
// Without the index the page walked every run newest first until it had 50
// of the host's, and the count read every run (20,000 rows and more here,
// 200,000 to 400,000 at BenchmarkEventsScale's volume). Each case is also
// checked for its answer: the runs of the host, newest first, and their
// number.
func TestEventsListByHostReadsItsRuns(t *testing.T) {
	t.Parallel()
	base := testdb.New(t)
	ctx := context.Background()
	if _, err := base.Exec(ctx, `INSERT INTO event_runs (uuid, host, state, mode, started_at, ended_at, committed_at)
		SELECT md5('r' || g)::uuid, CASE WHEN g % 500 = 0 THEN 'rare-gen' ELSE 'gen-' || g % 7 END,
		       'committed', CASE WHEN g % 3 = 0 THEN 'cluster' ELSE 'single' END,
		       now() - g * interval '1 minute', now(), now()
		FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Exec(ctx, "VACUUM ANALYZE event_runs"); err != nil {
		t.Fatal(err)
	}
	pool, received := explainedPool(t, base, true)
	st := postgres.New(pool, postgres.Options{})
	runs := relationAndChunks(t, base, "event_runs")
	from := time.Now().Add(-9990 * time.Minute)
	for _, c := range []struct {
		name     string
		f        store.RunFilter
		p        store.PageRequest
		page     int   // runs in the page
		total    int64 // runs the filter matches
		maxRows  float64
		exported bool
	}{
		{"first page", store.RunFilter{Host: "rare-gen"}, store.PageRequest{Limit: 50}, 40, 40, 80, false},
		{"second page", store.RunFilter{Host: "rare-gen"}, store.PageRequest{Limit: 30, Offset: 30}, 10, 40, 80, false},
		{"with mode", store.RunFilter{Host: "rare-gen", Mode: "single"}, store.PageRequest{Limit: 50}, 27, 27, 80, false},
		{"with from", store.RunFilter{Host: "rare-gen", StartedFrom: &from}, store.PageRequest{Limit: 50}, 19, 19, 40, false},
		{"export", store.RunFilter{Host: "rare-gen"}, store.PageRequest{}, 40, 40, 40, true},
	} {
		before := len(received())
		var got []store.Run
		var total int64
		if c.exported {
			err := st.Stores().Export.Runs(ctx, c.f, func(r store.Run) error { got = append(got, r); return nil })
			if err != nil {
				t.Fatal(err)
			}
			total = int64(len(got))
		} else {
			page, err := st.Events.List(ctx, c.f, c.p)
			if err != nil {
				t.Fatal(err)
			}
			got, total = page.Items, page.Total
		}
		if len(got) != c.page || total != c.total {
			t.Fatalf("%s: %d runs of %d, want %d of %d", c.name, len(got), total, c.page, c.total)
		}
		for i, r := range got {
			if r.Host != "rare-gen" || i > 0 && r.StartedAt.After(got[i-1].StartedAt) {
				t.Fatalf("%s: run %d of host %q started %s, after %s: want the host's runs newest first", c.name, i,
					r.Host, r.StartedAt, got[max(i-1, 0)].StartedAt)
			}
		}
		var read float64
		for _, node := range scansOf(t, received()[before:], runs) {
			out, _ := node["Actual Rows"].(float64)
			removed, _ := node["Rows Removed by Filter"].(float64)
			loops, _ := node["Actual Loops"].(float64)
			read += (out + removed) * loops
		}
		if read == 0 || read > c.maxRows {
			t.Fatalf("%s: the statements read %.0f rows of event_runs, want at most %.0f (the host's 40 runs, once for the page "+
				"and once for its total)", c.name, read, c.maxRows)
		}
	}
}

// The states list counts its runs in one process (migration 00055:
// event_runs has no parallel workers): with parallel plans made free in
// the session, the count of every run, of a state and of a mode, and the
// export, are still planned without a Gather. Past about 50,000 runs the
// planner counted with two workers started for every page, 8 times slower
// on 2 cores (docs/events.md, "At volume"). The pages' answers are checked
// too.
func TestEventsListCountsInOneProcess(t *testing.T) {
	t.Parallel()
	base := testdb.New(t)
	ctx := context.Background()
	if _, err := base.Exec(ctx, `INSERT INTO event_runs (uuid, host, state, mode, started_at, ended_at, committed_at)
		SELECT md5('r' || g)::uuid, 'gen-' || g % 7, 'committed', CASE WHEN g % 3 = 0 THEN 'cluster' ELSE 'single' END,
		       now() - g * interval '1 minute', now(), now()
		FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Exec(ctx, "VACUUM ANALYZE event_runs"); err != nil {
		t.Fatal(err)
	}
	cfg := base.Config().Copy()
	received := collectNotices(cfg)
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		for _, s := range append(autoExplainSettings(false), "SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0",
			"SET min_parallel_table_scan_size = 0", "SET min_parallel_index_scan_size = 0",
			"SET max_parallel_workers_per_gather = 2") {
			if _, err := conn.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := postgres.New(pool, postgres.Options{})
	for _, c := range []struct {
		f     store.RunFilter
		total int64
	}{{store.RunFilter{}, 20000}, {store.RunFilter{State: store.RunCommitted}, 20000}, {store.RunFilter{Mode: "cluster"}, 6666}} {
		page, err := st.Events.List(ctx, c.f, store.PageRequest{Limit: 50, Offset: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 50 || page.Total != c.total {
			t.Fatalf("%+v: %d runs of %d, want 50 of %d", c.f, len(page.Items), page.Total, c.total)
		}
	}
	n := 0
	if err := st.Stores().Export.Runs(ctx, store.RunFilter{}, func(store.Run) error { n++; return nil }); err != nil || n != 20000 {
		t.Fatalf("export: %d runs, %v", n, err)
	}
	plans := plansOf(t, received(), "event_runs")
	for _, plan := range plans {
		walkPlan(plan, func(node map[string]any) {
			if kind, _ := node["Node Type"].(string); strings.HasPrefix(kind, "Gather") {
				t.Errorf("a plan of the states list has a %s node (parallel workers): %v", kind, node)
			}
		})
	}
	if len(plans) < 4 {
		t.Fatalf("%d plans received, want those of 3 pages and an export", len(plans))
	}
}
