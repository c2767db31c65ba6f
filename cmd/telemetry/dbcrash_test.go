package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The database crashes (pg_ctl stop -m immediate) and later restarts
// cleanly (-m fast) under a service that keeps running and clients that
// keep writing to every resource, retrying a failed write with its
// Idempotency-Key, and reading (an export among the reads). Every failure
// the clients see is a 503 with Retry-After or a cut connection, never a
// 500 or another error; once the database is back the service recovers by
// itself (ready again, the writes, self-profiling, the runtime sampler,
// the sealing and maintenance loops, which a lease left by a pass the
// outage cut used to keep skipped for two minutes, a collection's figures,
// the export's slot); the database then holds every write exactly once,
// the rollups agreeing with the rows they sum and the grouped view (its
// kept cells) with the rows; and serve still stops cleanly. No timing is
// asserted: each wait is for an event, bounded by a minute.
func TestServeThroughDatabaseCrashAndRestart(t *testing.T) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("needs the PostgreSQL server binaries to crash and restart a cluster (TEST_DATABASE_URL is set)")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "telemetry-crash-")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Watch(dir)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true, TimeZone: testdb.TimeZone()})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Remove(context.Background()) })
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	// A throwaway cluster's synchronous_commit=off loses the last commits
	// in a crash, as it is meant to: on here, every commit answered is
	// durable. Without fsync still, as the crash is the server's, not the
	// machine's (the kernel keeps what was written).
	for _, q := range []string{"CREATE DATABASE crash", "ALTER DATABASE crash SET synchronous_commit = on"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close(ctx)
	dbURL := c.URL("crash") + "&connect_timeout=2"
	vars := map[string]string{"DATABASE_URL": dbURL, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"SEAL_INTERVAL": "1s", "MAINTENANCE_INTERVAL": "2s", "SELF_SAMPLE_INTERVAL": "1s", "DB_TIMEOUT": "5s", "EXPORTS_MAX": "1"}
	if err := run(ctx, []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, stopServe, served, logs := startServeLogged(t, vars)
	load := startOutageLoad(t, base, logs)
	rec, do := load.rec, load.do
	// outage stops the database with stopDB, waits for the writers to meet
	// it and for /readyz to say so, then starts it again on its port.
	outage := func(what string, stopDB func(context.Context) error) {
		t.Helper()
		before := rec.failures()
		if err := stopDB(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		deadline := time.Now().Add(time.Minute)
		for rec.failures() < before+len(load.writers) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the writers met no failure", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if res, _, err := do("GET", "/readyz", "", ""); err != nil || res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: /readyz with the database down: %v %v", what, res, err)
		}
		port := c.Port
		if c, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Port: port, Fast: true, TimeZone: testdb.TimeZone()}); err != nil {
			t.Fatalf("%s: restarting: %v", what, err)
		}
		if c.Port != port {
			t.Fatalf("%s: restarted on port %d, not %d", what, c.Port, port)
		}
	}

	load.progress("before the crash", 20)
	outage("crash", func(ctx context.Context) error { return c.Crash(ctx) })
	load.progress("after the crash", 20)
	outage("fast restart", func(ctx context.Context) error { return c.Stop(ctx) })
	load.progress("after the restart", 20)
	load.recovered(c.URL("crash"))
	// And it stops cleanly.
	stopServe()
	if err := <-served; err != nil {
		t.Fatalf("serve after the outage: %v", err)
	}
}
