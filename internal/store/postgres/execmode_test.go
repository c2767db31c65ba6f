package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// Open applies DATABASE_EXEC_MODE: with cache_statement a connection keeps
// named prepared statements (which a transaction pooler breaks), with the
// default none; a default_query_exec_mode in the URL wins over the setting.
// One connection (pool_max_conns=1) so the queries and the count meet.
func TestOpenExecMode(t *testing.T) {
	url := testdb.URL(t) + "&pool_max_conns=1"
	cases := []struct {
		name, url, mode string
		named           bool
	}{
		{"default", url, "", false},
		{"cache_statement", url, "cache_statement", true},
		{"exec", url, "exec", false},
		{"URL wins", url + "&default_query_exec_mode=cache_statement", "cache_describe", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := postgres.Open(ctx, c.url, postgres.Options{ExecMode: c.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for range 2 {
				if _, err := st.Flows.List(ctx, store.FlowFilter{FromHour: 1, ToHour: 2}, store.FlowSort{}, store.PageRequest{Limit: 10}); err != nil {
					t.Fatal(err)
				}
			}
			var named int
			if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements`).Scan(&named); err != nil {
				t.Fatal(err)
			}
			if (named > 0) != c.named {
				t.Fatalf("%d named prepared statements on the connection, want any: %v", named, c.named)
			}
		})
	}
}

func TestOpenRefusesUnknownExecMode(t *testing.T) {
	_, err := postgres.Open(context.Background(), testdb.URL(t), postgres.Options{ExecMode: "prepared"})
	if err == nil || !strings.Contains(err.Error(), "DATABASE_EXEC_MODE") {
		t.Fatalf("Open with an unknown exec mode: %v", err)
	}
}
