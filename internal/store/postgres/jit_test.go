package postgres_test

import (
	"context"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// The service's sessions run without JIT compilation (migration 00022: a
// setting of the role that ran the migrations, which the harness's
// connections use too): the grouped measurements statement was compiled on
// every call once its never-run fallback was priced past jit_above_cost.
func TestServiceSessionsRunWithoutJIT(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	var jit string
	var fromRole bool
	err := pool.QueryRow(context.Background(), `SELECT current_setting('jit'),
		EXISTS (SELECT 1 FROM pg_db_role_setting s WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
		        AND s.setdatabase = 0 AND 'jit=off' = ANY (s.setconfig))`).Scan(&jit, &fromRole)
	if err != nil {
		t.Fatal(err)
	}
	if jit != "off" || !fromRole {
		t.Fatalf("jit %q, set for the role: %v; want off, from the role", jit, fromRole)
	}
}
