package api

import (
	"context"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/telemetry/telemetry/internal/pgbouncer"
	"github.com/telemetry/telemetry/internal/testdb"
)

// benchViaPgBouncer returns dbURL as the server's pool should reach it: with
// BENCH_PGBOUNCER=1, through a PgBouncer (transaction pooling, started here,
// stopped when b ends) in front of the test server; otherwise dbURL itself.
// docs/scaling.md has the figures.
func benchViaPgBouncer(b *testing.B, dbURL string) string {
	b.Helper()
	if os.Getenv("BENCH_PGBOUNCER") != "1" {
		return dbURL
	}
	if !pgbouncer.Available() {
		b.Skip("BENCH_PGBOUNCER=1 but pgbouncer is not installed")
	}
	u, err := url.Parse(testdb.ServerURL())
	if err != nil {
		b.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	// Not b.TempDir: PgBouncer runs as the postgres user under root.
	dir, err := os.MkdirTemp("", "telemetry-pgbouncer-")
	if err != nil {
		b.Fatal(err)
	}
	testdb.Watch(dir)
	pb, err := pgbouncer.Start(context.Background(), pgbouncer.Options{Dir: dir, ServerHost: u.Hostname(), ServerPort: port})
	if err != nil {
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = pb.Stop()
		os.RemoveAll(dir)
	})
	b.Logf("server pool through PgBouncer (transaction pooling, default_pool_size 20) on port %d", pb.Port)
	return pb.Via(dbURL)
}
