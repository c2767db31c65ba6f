package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A pg_dump under way holds ACCESS SHARE on every table it dumps (on
// TimescaleDB every chunk too) from its start to its end. Here a real
// pg_dump is held open mid-run (nobody reads its output) while serve runs
// maintenance and sealing passes under writes to every time-series
// table, rows among them in the chunk the pass compresses: on plain
// PostgreSQL the pass's batched deletes take no lock the dump's conflict
// with, so passes complete and expired rows go (the dump still sees them,
// from its snapshot); on TimescaleDB dropping and compressing a chunk
// need locks the dump's conflict with, and each gives up after its
// lock_timeout, leaves the chunk for the next pass (deferred, logged) and
// the pass goes on. Either way every write is answered (none waits behind
// a pass queued behind the dump until DB_TIMEOUT), the dump then finishes
// and the next pass after it does what was left.
func TestMaintenanceWhileADumpRuns(t *testing.T) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("finds pg_dump beside the server binaries of the throwaway cluster (TEST_DATABASE_URL is set)")
	}
	ctx := context.Background()
	vars, pool := migratedWithOldRows(t)
	mode, err := migrate.Mode(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}

	dumpHolds, finishDump := holdDump(t, vars["DATABASE_URL"], pool)

	vars["LISTEN_ADDR"], vars["JWT_SECRET"] = "127.0.0.1:0", testSecret
	vars["MAINTENANCE_INTERVAL"], vars["SEAL_INTERVAL"] = "1s", "1s"
	vars["FLOWS_RETENTION"], vars["COMPRESS_AFTER"] = "30d", "1h"
	base, stop, done, logs := startServeLogged(t, vars)
	var okWrites atomic.Int64
	var failures []string
	var mu sync.Mutex
	halt := make(chan struct{})
	var wg sync.WaitGroup
	yesterday := time.Now().Add(-24 * time.Hour).Unix()
	writes := []func(k int) (string, string){
		func(k int) (string, string) { // into yesterday's chunk, which the pass compresses
			return "/api/measurements", fmt.Sprintf(`[{"app":"d","name":"/y","method":"GET","startedAt":%d,"endedAt":%d.5},
				{"app":"d","name":"/n","method":"GET","startedAt":%d,"endedAt":%d.5}]`, yesterday+int64(k), yesterday+int64(k), time.Now().Unix(), time.Now().Unix())
		},
		func(k int) (string, string) {
			return "/flows", fmt.Sprintf(`[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":%d,"hour":%d}]`, k, time.Now().Unix()/3600-24)
		},
	}
	for _, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			api := &client{t: t, base: base} // its own: client counts what it sent
			for k := 0; ; k++ {
				select {
				case <-halt:
					return
				default:
				}
				path, body := w(k)
				status, _, b := api.do("POST", path, body)
				if status != http.StatusCreated {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("POST %s: %d %s", path, status, b))
					mu.Unlock()
				} else {
					okWrites.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	halted := false
	haltWriters := func() {
		if !halted {
			halted = true
			close(halt)
			wg.Wait()
		}
	}
	t.Cleanup(haltWriters)

	// Passes complete while the dump holds the tables, and the writes go on
	// after them.
	passes := func() float64 { return metric(t, base, `telemetry_maintenance_passes_total{outcome="done"}`) }
	eventually(t, "two maintenance passes done while pg_dump holds the tables", func() bool { return passes() >= 2 })
	if mode == "timescaledb" {
		eventually(t, "a chunk left for the next pass", func() bool {
			return metric(t, base, `telemetry_maintenance_deferred_chunks_total{table="measurements"}`) > 0
		})
		if !strings.Contains(logs.String(), `"deferred":`) {
			t.Errorf("no pass logged a deferred chunk:\n%s", tail(logs.String()))
		}
	} else if n := rowsOf(t, pool, "measurements WHERE started_at < now() - interval '30 days'"); n != 0 {
		t.Errorf("%d expired measurements left by passes beside the dump", n)
	}
	writesThen := okWrites.Load()
	eventually(t, "writes after the passes", func() bool { return okWrites.Load() >= writesThen+20 })
	if !dumpHolds() {
		t.Fatal("pg_dump no longer holds measurements after the passes: the test proved nothing")
	}

	// The dump finishes; the next passes drop and compress what was left.
	finishDump()
	if mode == "timescaledb" {
		eventually(t, "the expired chunk dropped after the dump", func() bool {
			return rowsOf(t, pool, "measurements WHERE started_at < now() - interval '30 days'") == 0
		})
	}
	haltWriters()
	mu.Lock()
	for _, f := range failures {
		t.Errorf("a write beside the dump: %s", f)
	}
	mu.Unlock()
	t.Logf("%s: %d writes answered, %v passes done", mode, okWrites.Load(), passes())
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	noErrorsLogged(t, "serve", logs)
}

// holdDump starts pg_dump on url and leaves it mid-run: it writes plain
// SQL into a pipe nobody reads, so once the pipe is full it waits, with
// its snapshot and its ACCESS SHARE locks on every table it dumps held, as
// a dump of a large database does for its whole run. holds says whether
// it still holds measurements; finish reads the rest of the dump and
// checks that pg_dump ends well.
func holdDump(t *testing.T, url string, pool *pgxpool.Pool) (holds func() bool, finish func()) {
	t.Helper()
	ctx := context.Background()
	c, err := pgcluster.Open(os.TempDir()) // names the binaries only
	if err != nil {
		t.Fatal(err)
	}
	dump := exec.Command(pgTool(t, c, "pg_dump"), "--no-owner", url)
	out, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var dumpErr strings.Builder
	dump.Stderr = &dumpErr
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			_ = dump.Process.Kill()
			_ = dump.Wait()
		}
	})
	holds = func() bool {
		var held bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE a.application_name = 'pg_dump' AND l.relation = 'measurements'::regclass AND l.mode = 'AccessShareLock' AND l.granted)`).Scan(&held)
		if err != nil {
			t.Fatal(err)
		}
		return held
	}
	eventually(t, "pg_dump holding ACCESS SHARE on measurements", holds)
	finish = func() {
		t.Helper()
		if done {
			return
		}
		done = true
		n, _ := io.Copy(io.Discard, bufio.NewReader(out))
		if err := dump.Wait(); err != nil {
			t.Errorf("pg_dump: %v: %s", err, dumpErr.String())
		} else if n < 64<<10 {
			t.Errorf("pg_dump wrote %d bytes: too few to have filled the pipe", n)
		}
	}
	return holds, finish
}

// `telemetry migrate` run while a pg_dump is under way (a release
// deployed during the nightly backup): a migration that alters a table
// (migration 00048 alters measurements_sealed, which needs ACCESS
// EXCLUSIVE) waits behind the dump's ACCESS SHARE, and every query of that
// table queues behind the migration. The migration gives up after its
// lock_timeout instead (its transaction rolled back) and migrate tries
// again, logging why, so that the table's readers are answered while the
// dump lasts; once the dump is done, migrate completes.
func TestMigrateBesideADumpLetsReadersThrough(t *testing.T) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("finds pg_dump beside the server binaries of the throwaway cluster (TEST_DATABASE_URL is set)")
	}
	ctx := context.Background()
	url := testdb.Empty(t)
	migrateLog(t, url)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m, err := migrate.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DownTo(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), 47); err != nil {
		t.Fatal(err)
	}
	m.Close()

	dumpHolds, finishDump := holdDump(t, url, pool)
	logs := &syncBuffer{}
	migrated := make(chan error, 1)
	go func() {
		migrated <- run(ctx, []string{"migrate"}, env(map[string]string{"DATABASE_URL": url}), io.Discard, logs)
	}()
	// The migration asks for its lock (and waits, or has given up once).
	eventually(t, "migrate waiting for measurements_sealed", func() bool {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE relation = 'measurements_sealed'::regclass AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting || strings.Contains(logs.String(), "retrying")
	})
	// A reader of the table is answered while the dump goes on (bounded:
	// without the timeout it waited as long as the dump).
	for i := 0; i < 3; i++ {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		var n int64
		err := pool.QueryRow(rctx, `SELECT count(*) FROM measurements_sealed`).Scan(&n)
		cancel()
		if err != nil {
			t.Fatalf("a reader of measurements_sealed while migrate waits behind the dump: %v\n%s", err, logs.String())
		}
	}
	eventually(t, "migrate saying why it retries", func() bool { return strings.Contains(logs.String(), "retrying") })
	if !dumpHolds() {
		t.Fatal("pg_dump no longer holds its locks: the test proved nothing")
	}
	select {
	case err := <-migrated:
		t.Fatalf("migrate ended while the dump held its tables: %v\n%s", err, logs.String())
	default:
	}
	finishDump()
	if err := <-migrated; err != nil {
		t.Fatalf("migrate after the dump: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"schema up to date"`) {
		t.Errorf("migrate log:\n%s", logs.String())
	}
}
