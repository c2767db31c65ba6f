package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// Every query works in every pgx query exec mode, straight against
// PostgreSQL: a round of every resource (including events register and
// commit, whose jsonb parameters exec and simple_protocol used to send as
// bytea text) through serve started with each DATABASE_EXEC_MODE.
func TestServeInEveryExecMode(t *testing.T) {
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			vars := map[string]string{"DATABASE_URL": testdb.Empty(t), "DATABASE_EXEC_MODE": mode, "LISTEN_ADDR": "127.0.0.1:0",
				"JWT_SECRET": testSecret, "ENABLE_TOKEN_ENDPOINT": "true", "SELF_SAMPLE_INTERVAL": "100ms"}
			if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
				t.Fatal(err)
			}
			base, stop, done := startServe(t, vars)
			roundTrip(t, base, "r-"+mode)
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnknownExecModeRefused(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": "x", "JWT_SECRET": testSecret, "DATABASE_EXEC_MODE": "prepared"})
	err := run(context.Background(), []string{"serve"}, vars, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_EXEC_MODE must be cache_statement, cache_describe") {
		t.Fatalf("serve with DATABASE_EXEC_MODE=prepared: %v", err)
	}
}
