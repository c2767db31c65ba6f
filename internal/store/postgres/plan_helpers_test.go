package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// autoExplainSettings make a session send the plan of every statement it
// runs, those inside SQL functions included, as a NOTICE holding the plan
// in JSON; with analyze, the plans carry their actual rows and heap
// fetches (no per-node timing). The tests read the plans the store's own
// calls really run, generic plans of functions included.
func autoExplainSettings(analyze bool) []string {
	s := []string{"LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
		"SET auto_explain.log_nested_statements = on", "SET auto_explain.log_format = json",
		"SET auto_explain.log_level = notice", "SET client_min_messages = notice"}
	if analyze {
		s = append(s, "SET auto_explain.log_analyze = on", "SET auto_explain.log_timing = off")
	}
	return s
}

// collectNotices makes the connections of cfg's pool keep every NOTICE
// they receive; the function returned gives those received so far.
func collectNotices(cfg *pgxpool.Config) func() []string {
	var mu sync.Mutex
	var notices []string
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Message)
		mu.Unlock()
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(notices)
	}
}

// explainedPool opens a pool on base's database whose sessions send the
// plan of every statement they run (autoExplainSettings(analyze)), closed
// when the test ends, and the function that gives the plans received so
// far: a store over it runs its own calls, and the test reads their plans.
func explainedPool(t *testing.T, base *pgxpool.Pool, analyze bool) (*pgxpool.Pool, func() []string) {
	t.Helper()
	cfg := base.Config().Copy()
	received := collectNotices(cfg)
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		for _, s := range autoExplainSettings(analyze) {
			if _, err := conn.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, received
}

// relationAndChunks is the set of the names of table and, on TimescaleDB,
// of its chunks (its children).
func relationAndChunks(t *testing.T, pool *pgxpool.Pool, table string) map[string]bool {
	t.Helper()
	var names []string
	if err := pool.QueryRow(context.Background(), `SELECT array_agg(c.relname::text) FROM pg_class c
		WHERE c.oid = $1::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)`,
		table).Scan(&names); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// plansOf returns the plans of notices (auto_explain's, autoExplainSettings)
// whose text contains substr ("" for every one), each its top node.
func plansOf(t *testing.T, notices []string, substr string) []map[string]any {
	t.Helper()
	var plans []map[string]any
	for _, msg := range notices {
		i := strings.Index(msg, "{")
		if i < 0 || !strings.Contains(msg, substr) {
			continue
		}
		var explained struct {
			Plan map[string]any `json:"Plan"`
		}
		if err := json.Unmarshal([]byte(msg[i:]), &explained); err != nil {
			t.Fatalf("auto_explain notice: %v\n%s", err, msg)
		}
		plans = append(plans, explained.Plan)
	}
	return plans
}

// scansOf returns the plan nodes that scan one of rels in the plans of
// notices (auto_explain's, autoExplainSettings). TimescaleDB's ChunkAppend
// and ConstraintAwareAppend nodes name the hypertable and hold the scans
// of its chunks: they are passed over, the scans under them kept.
func scansOf(t *testing.T, notices []string, rels map[string]bool) []map[string]any {
	t.Helper()
	var scans []map[string]any
	for _, plan := range plansOf(t, notices, "") {
		walkPlan(plan, func(node map[string]any) {
			if provider, _ := node["Custom Plan Provider"].(string); provider == "ChunkAppend" || provider == "ConstraintAwareAppend" {
				return
			}
			if rel, _ := node["Relation Name"].(string); rels[rel] {
				scans = append(scans, node)
			}
		})
	}
	return scans
}

// walkPlan calls visit on node and every node under it (an EXPLAIN in
// JSON: each node's children in "Plans").
func walkPlan(node map[string]any, visit func(map[string]any)) {
	if node == nil {
		return
	}
	visit(node)
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		child, _ := c.(map[string]any)
		walkPlan(child, visit)
	}
}
