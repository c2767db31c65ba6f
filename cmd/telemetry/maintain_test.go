package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/testdb"
)

// migratedWithOldRows migrates a fresh database and stores, straight in
// SQL, a measurement and a flow 60 days old and the same a day old.
func migratedWithOldRows(t *testing.T) (map[string]string, *pgxpool.Pool) {
	t.Helper()
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), `
		INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		SELECT now() - d * interval '1 day', now() - d * interval '1 day', 0, '/x', 'GET' FROM unnest(ARRAY[60, 1]) AS d;
		INSERT INTO flows (hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx)
		SELECT date_trunc('hour', now(), 'UTC') - d * interval '1 day', 'a', 'b', 'v', 1, 1 FROM unnest(ARRAY[60, 1]) AS d`); err != nil {
		t.Fatal(err)
	}
	return vars, pool
}

func rowsOf(t *testing.T, pool *pgxpool.Pool, table string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// `telemetry maintain` as a user runs it: expired rows go, the rest stays,
// and the pass is logged on one line.
func TestMaintainCommand(t *testing.T) {
	vars, pool := migratedWithOldRows(t)
	vars["FLOWS_RETENTION"] = "30d"
	var out, logs bytes.Buffer
	if err := run(context.Background(), []string{"maintain"}, env(vars), &out, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "maintenance done") || !strings.Contains(out.String(), "flows") {
		t.Errorf("maintain output:\n%s", out.String())
	}
	if n := strings.Count(logs.String(), `"msg":"maintenance pass"`); n != 1 {
		t.Errorf("%d pass log lines, want 1:\n%s", n, logs.String())
	}
	if m, f := rowsOf(t, pool, "measurements"), rowsOf(t, pool, "flows"); m != 1 || f != 1 {
		t.Errorf("after maintain: %d measurements, %d flows, want 1 and 1", m, f)
	}

	// Retention 0 keeps everything.
	vars["MEASUREMENTS_RETENTION"], vars["FLOWS_RETENTION"] = "0", "0"
	if _, err := pool.Exec(context.Background(), `INSERT INTO flows VALUES (date_trunc('hour', now(), 'UTC') - interval '90 days', 'a', 'b', 'v', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"maintain"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if f := rowsOf(t, pool, "flows"); f != 2 {
		t.Errorf("FLOWS_RETENTION=0 removed flows: %d left", f)
	}

	// Another pass holds the lease: this one says so and does nothing.
	if _, err := pool.Exec(context.Background(), `
		INSERT INTO maintenance_lease VALUES ('maintenance', gen_random_uuid(), now(), now() + interval '1 hour') ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`); err != nil {
		t.Fatal(err)
	}
	vars["FLOWS_RETENTION"] = "30d"
	out.Reset()
	if err := run(context.Background(), []string{"maintain"}, env(vars), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "skipped") || rowsOf(t, pool, "flows") != 2 {
		t.Errorf("maintain with the lease held: %q, %d flows", out.String(), rowsOf(t, pool, "flows"))
	}
}

func TestMaintainRefusesBadSettings(t *testing.T) {
	url := testdb.Empty(t)
	for _, cmd := range []string{"maintain", "serve"} {
		for name, value := range map[string]string{"MEASUREMENTS_RETENTION": "two weeks", "COMPRESS_AFTER": "-7d", "MAINTENANCE_INTERVAL": "1ms"} {
			vars := map[string]string{"DATABASE_URL": url, "JWT_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", name: value}
			err := run(context.Background(), []string{cmd}, env(vars), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s with %s=%q: %v, want an error naming %s", cmd, name, value, err, name)
			}
		}
	}
	// An unmigrated database is refused too.
	err := run(context.Background(), []string{"maintain"}, env(map[string]string{"DATABASE_URL": url}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "telemetry migrate") {
		t.Errorf("maintain on an empty database: %v", err)
	}
}

// serve runs a pass at start (then every MAINTENANCE_INTERVAL) and
// reports it in /metrics.
func TestServeRunsMaintenance(t *testing.T) {
	vars, pool := migratedWithOldRows(t)
	vars["LISTEN_ADDR"], vars["JWT_SECRET"], vars["MAINTENANCE_INTERVAL"] = "127.0.0.1:0", testSecret, "1h"
	vars["SELF_PROFILE"] = "false"
	base, _, _ := startServe(t, vars)
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(body), `telemetry_maintenance_passes_total{outcome="done"} 1`) {
			// Read again: a scrape is not atomic across the metrics, and
			// one that ran beside the pass's end could see it done but
			// not yet its per-table counters (seen on TimescaleDB).
			res, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(res.Body)
			res.Body.Close()
			for _, want := range []string{"telemetry_maintenance_last_pass_timestamp_seconds", "telemetry_maintenance_last_pass_duration_seconds",
				"telemetry_maintenance_failures_total 0", `telemetry_maintenance_removed_rows_total{table="measurements"}`} {
				if !strings.Contains(string(body), want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no maintenance pass reported in /metrics:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := rowsOf(t, pool, "measurements"); m != 1 {
		t.Errorf("after serve's pass: %d measurements, want 1", m)
	}
}

// `telemetry migrate` runs once per release before the new instances
// start (docs/scaling.md): an instance of the release before keeps
// serving on the newer schema and stays ready, so that the load balancer
// keeps it until it is replaced, with its maintenance pass off; a
// one-off `maintain` of that release refuses, and says to upgrade, not to
// migrate (which would change nothing).
func TestPreviousReleaseOnANewerSchema(t *testing.T) {
	vars, pool := migratedWithOldRows(t)
	if _, err := pool.Exec(context.Background(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`); err != nil {
		t.Fatal(err)
	}
	vars["LISTEN_ADDR"], vars["JWT_SECRET"] = "127.0.0.1:0", testSecret
	vars["MEASUREMENTS_RETENTION"], vars["MAINTENANCE_INTERVAL"] = "30d", "1s"
	base, stop, done, logs := startServeLogged(t, vars)
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"schemaVersion":99999`) {
		t.Fatalf("readyz on a newer schema: %d %s", res.StatusCode, body)
	}
	hc := map[string]string{"LISTEN_ADDR": strings.TrimPrefix(base, "http://")}
	if err := run(context.Background(), []string{"healthcheck"}, env(hc), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	if res, err := http.Get(base + "/flows?hour=1"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /flows: %v %v", res, err)
	}
	// Past two maintenance intervals the 60-day-old row is still there.
	time.Sleep(2500 * time.Millisecond)
	if n := rowsOf(t, pool, "measurements WHERE name = '/x'"); n != 2 {
		t.Fatalf("%d measurements: the maintenance pass ran on a newer schema", n)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "the database schema is newer than this binary") {
		t.Fatalf("no warning logged:\n%s", logs)
	}
	err = run(context.Background(), []string{"maintain"}, env(vars), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "upgrade this binary") || strings.Contains(err.Error(), "telemetry migrate") {
		t.Fatalf("maintain on a newer schema: %v", err)
	}
}

// An instance that started on its own schema stops its maintenance passes
// once a later release migrates the database under it (a rolling upgrade:
// its statements are not that schema's), and says why; it keeps serving.
func TestMaintenanceStopsWhenALaterReleaseMigrates(t *testing.T) {
	vars, pool := migratedWithOldRows(t)
	vars["LISTEN_ADDR"], vars["JWT_SECRET"] = "127.0.0.1:0", testSecret
	vars["MEASUREMENTS_RETENTION"], vars["MAINTENANCE_INTERVAL"], vars["SELF_PROFILE"] = "30d", "1s", "false"
	base, stop, done, logs := startServeLogged(t, vars)
	// The first pass, on this binary's schema, expires the 60-day-old row.
	deadline := time.Now().Add(30 * time.Second)
	for rowsOf(t, pool, "measurements WHERE name = '/x'") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first pass did not run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A later release migrates; then an expired row arrives.
	if _, err := pool.Exec(context.Background(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), `INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now() - interval '60 days', now() - interval '60 days', 0, '/late', 'GET')`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if n := rowsOf(t, pool, "measurements WHERE name = '/late'"); n != 1 {
		t.Fatalf("%d rows: a maintenance pass ran on the later release's schema", n)
	}
	if res, err := http.Get(base + "/readyz"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("readyz after the later release migrated: %v %v", res, err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "maintenance pass skipped: the database schema is a later release's") {
		t.Fatalf("no warning logged:\n%s", logs)
	}
}
