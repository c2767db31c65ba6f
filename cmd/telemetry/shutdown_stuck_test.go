package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/testdb"
)

// TestShutdownCutsStuckWrites: a write waiting on the database at SIGTERM
// (another session holds its table) is cut once SHUTDOWN_TIMEOUT is spent,
// and serve returns. Before, the flows round kept the process for its own
// 2-minute deadline, a device batch for 30 s and a measurement batch's last
// round trip for 30 s, all after "stopped" was logged (found by an audit).
// Nothing of the cut write is stored: its transaction is rolled back.
func TestShutdownCutsStuckWrites(t *testing.T) {
	token, err := auth.New([]byte(testSecret)).Issue(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, lock, method, path, body, stored string
	}{
		{"flows round", "flows", "POST", "/flows",
			`[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`, "SELECT count(*) FROM flows"},
		{"device batch", "device_metrics", "PUT", "/mrd/n1/metrics",
			`{"name":"t","value":1,"units":"C","type":"float","slope":"both","ttl":60}`, "SELECT count(*) FROM device_metrics"},
		{"measurement commit", "measurements_hourly", "POST", "/api/measurements",
			`[{"name":"/a","method":"GET","startedAt":1700000000,"endedAt":1700000001,"args":[],"kwargs":{},"context":{}}]`,
			"SELECT count(*) FROM measurements"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			url := testdb.Empty(t)
			vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
				"SHUTDOWN_TIMEOUT": "1s", "SELF_SAMPLE_INTERVAL": "0", "SELF_PROFILE": "false", "MAINTENANCE_INTERVAL": "0"}
			if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
				t.Fatal(err)
			}
			base, stop, done := startServe(t, vars)
			send := func(method, path, body string) int {
				req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0
				}
				res.Body.Close()
				return res.StatusCode
			}
			if code := send("POST", "/mrd/devices", `{"id":"n1","name":"n"}`); code != http.StatusCreated {
				t.Fatalf("register device: %d", code)
			}
			ctx := context.Background()
			conn, tx := lockTable(t, url, c.lock)
			answered := make(chan int, 1)
			go func() { answered <- send(c.method, c.path, c.body) }()
			waitOnLock(t, conn, c.lock)
			stopStuck(t, stop, done, tx)
			if code := <-answered; code >= 200 && code < 300 {
				t.Fatalf("the cut write was answered %d", code)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, c.stored).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%s: %d rows stored by a write that was cut", c.stored, n)
			}
		})
	}
}

// TestShutdownTimeoutKeepsSelfProfileRecords: when SHUTDOWN_TIMEOUT runs
// out and Abort cuts a stuck write, the final self-profiling write still
// stores what was buffered and the cut request's own record. Abort used to
// fail that write too ("self-profiling: final flush failed ... context
// canceled"; found by an audit of the operator's view).
func TestShutdownTimeoutKeepsSelfProfileRecords(t *testing.T) {
	t.Parallel()
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"SHUTDOWN_TIMEOUT": "1s", "SELF_SAMPLE_INTERVAL": "0", "MAINTENANCE_INTERVAL": "0"}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, stop, done, logs := startServeLogged(t, vars)
	ctx := context.Background()
	conn, tx := lockTable(t, url, "flows")
	go func() {
		res, err := http.Post(base+"/flows", "application/json",
			strings.NewReader(`[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`))
		if err == nil {
			res.Body.Close()
		}
	}()
	waitOnLock(t, conn, "flows")
	stopStuck(t, stop, done, tx)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "final flush failed") {
		t.Errorf("the final self-profiling write failed:\n%s", logs)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM measurements WHERE app = 'telemetry' AND name = '/flows' AND method = 'POST'`).
		Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d self-profiling records of the cut POST /flows, want 1:\n%s", n, logs)
	}
}

// waitOnLock returns once a session waits on a lock of table (the write
// under test, blocked by the lock conn's transaction holds).
func waitOnLock(t *testing.T, conn *pgx.Conn, table string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting bool
		if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = $1::regclass)`,
			table).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the write never waited on the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopStuck sends SIGTERM (stop) and waits for serve to return, failing
// when it is still running 20 s later: far beyond SHUTDOWN_TIMEOUT (1 s)
// and the final flush's 5 s, the stuck write holds the process. The lock
// (tx) is then released so that serve can end.
func stopStuck(t *testing.T, stop context.CancelFunc, done <-chan error, tx pgx.Tx) {
	t.Helper()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		_ = tx.Rollback(context.Background())
		<-done
		t.Fatal("serve was still running 20 s after SIGTERM with SHUTDOWN_TIMEOUT=1s")
	}
}

// lockTable holds table in ACCESS EXCLUSIVE mode in a transaction of a
// connection of its own (rolled back and closed at the test's end, if the
// test has not released it before).
func lockTable(t *testing.T, url, table string) (*pgx.Conn, pgx.Tx) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return conn, tx
}

// TestShutdownInterruptsExports: an export still streaming when
// SHUTDOWN_TIMEOUT runs out (its client stopped reading) is ended by the
// API before serve closes the connections: its client reads a truncated
// body, and it is logged (and counted) as interrupted by the shutdown.
// Before, the server's close cut it and it was counted as a client that
// went away (telemetry_exports_total{outcome="client_gone"}).
func TestShutdownInterruptsExports(t *testing.T) {
	t.Parallel()
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"SHUTDOWN_TIMEOUT": "1s", "SELF_SAMPLE_INTERVAL": "0", "SELF_PROFILE": "false", "MAINTENANCE_INTERVAL": "0"}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// ~25 MB of NDJSON: more than the sockets hold.
	if _, err := conn.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method, context)
		SELECT now() - interval '1 hour' + i * interval '1 ms', now() - interval '1 hour' + i * interval '1 ms', 0,
		       '/bulk/' || (i % 50), 'GET', jsonb_build_object('url', repeat('x', 200))
		FROM generate_series(1, 60000) i`); err != nil {
		t.Fatal(err)
	}
	base, stop, done, logs := startServeLogged(t, vars)
	req, _ := http.NewRequest("GET", base+"/api/measurements/", nil)
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "{") {
		t.Fatalf("first line %q: %v", line, err)
	}
	stop() // SIGTERM, the client reading nothing more
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve still running a minute after SIGTERM with SHUTDOWN_TIMEOUT=1s")
	}
	if _, err := io.Copy(io.Discard, br); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the rest: %v, want io.ErrUnexpectedEOF (a truncated body)", err)
	}
	if !strings.Contains(logs.String(), "export interrupted by the shutdown") ||
		strings.Contains(logs.String(), "export: client went away") {
		t.Errorf("the export was not logged as interrupted by the shutdown:\n%s", logs)
	}
}
