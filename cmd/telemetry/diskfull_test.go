package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
	"github.com/telemetry/telemetry/internal/warnlimit"
)

// mountTmpfs mounts a tmpfs of sizeMB megabytes on dir (created), gives it
// to the postgres user, and unmounts it when t ends, whether it passed or
// not. Mounting needs root (CAP_SYS_ADMIN), which the tests have here and in
// CI: without it the test fails and says so, rather than skip.
func mountTmpfs(t *testing.T, dir string, sizeMB int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0755", sizeMB), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("a full disk is a small tmpfs here, and mounting one needs root with CAP_SYS_ADMIN: mount -t tmpfs on %s: %v: %s",
			dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Busy (a process of the cluster still in it): detached now,
			// gone once it lets go.
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmounting %s: %v", dir, err)
			}
		}
	})
	if err := pgcluster.ChownToPostgres(dir); err != nil {
		t.Fatal(err)
	}
}

// fillDisk writes dir/filler until the file system has no byte left, and
// returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for len(buf) > 0 {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			buf = buf[:len(buf)/2]
		}
	}
	return path
}

// The database's disk fills up under a service that keeps running and
// clients that keep writing to every resource and reading, as it would on
// a server left alone for months. The cluster's data files (the database's
// tablespace) and its WAL are on two small tmpfs volumes, filled in turn:
//
//   - The data volume full, PostgreSQL refuses every statement that must
//     extend a file (53100 disk_full, "could not extend file"): every write
//     that fails answers 503 with Retry-After (and says the disk is full),
//     none a 500 or a 422; the reads still answer; `telemetry maintain`
//     ends with an error that names the cause. Space freed, the writes
//     succeed again without a restart.
//   - The WAL volume full, PostgreSQL PANICs at the first WAL segment it
//     cannot create, restarts, fails its recovery for the same reason and
//     shuts down; it will not start until space is freed. serve answers 503
//     throughout; once the volume is grown and the cluster started, serve
//     recovers by itself.
//
// Then, as after a crash (dbcrash_test.go): every write answered 2xx is
// stored exactly once, the rollups, the collections' figures and the
// grouped view agree with the rows, the background work runs again, and
// the outage's warnings were throttled. No timing is asserted: each wait is
// for an event, bounded by a minute.
func TestServeThroughFullDisk(t *testing.T) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("needs the PostgreSQL server binaries to run a cluster on small volumes (TEST_DATABASE_URL is set)")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "telemetry-diskfull-")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Watch(dir) // the reaper unmounts what is mounted under it too
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The cluster's processes run as postgres and go through dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dataVol, walVol := filepath.Join(dir, "data"), filepath.Join(dir, "wal")
	mountTmpfs(t, dataVol, 64)
	mountTmpfs(t, walVol, 64)
	clusterDir := filepath.Join(dir, "cluster")
	opts := pgcluster.Options{Dir: clusterDir, Fast: true, TimeZone: testdb.TimeZone(), WALDir: filepath.Join(walVol, "pg_wal")}
	c, err := pgcluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Remove(context.Background()) })
	space := filepath.Join(dataVol, "tablespace")
	if err := os.Mkdir(space, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pgcluster.ChownToPostgres(space); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	// Every file of the service's database on the data volume; every
	// commit answered durable (as in the crash test).
	for _, q := range []string{"CREATE TABLESPACE small LOCATION '" + space + "'", "CREATE DATABASE diskfull TABLESPACE small",
		"ALTER DATABASE diskfull SET synchronous_commit = on"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close(ctx)
	dbURL := c.URL("diskfull") + "&connect_timeout=2"
	vars := map[string]string{"DATABASE_URL": dbURL, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"SEAL_INTERVAL": "1s", "MAINTENANCE_INTERVAL": "2s", "SELF_SAMPLE_INTERVAL": "1s", "DB_TIMEOUT": "5s", "EXPORTS_MAX": "1"}
	if err := run(ctx, []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	base, stopServe, served, logs := startServeLogged(t, vars)
	load := startOutageLoad(t, base, logs)
	// failing waits until every writer has had a try fail since before.
	failing := func(what string, before []int64) {
		t.Helper()
		for i, w := range load.writers {
			load.eventually(what+": writer "+w.name+" meets a failure", func() bool { return w.failed.Load() > before[i] })
		}
	}
	failures := func() []int64 {
		n := make([]int64, len(load.writers))
		for i, w := range load.writers {
			n[i] = w.failed.Load()
		}
		return n
	}
	ready := func() (int, string) {
		res, b, err := load.do("GET", "/readyz", "", "")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		return res.StatusCode, string(b)
	}

	load.progress("before the disk fills", 10)

	// The data volume fills up.
	before := failures()
	filler := fillDisk(t, dataVol)
	failing("the data volume full", before)
	reads := load.readsDone.Load()
	load.eventually("reads while the data volume is full", func() bool { return load.readsDone.Load() > reads+10 })
	status, body := ready()
	t.Logf("/readyz with the data volume full: %d %s", status, body)
	var maintained strings.Builder
	err = run(ctx, []string{"maintain"}, env(vars), &maintained, &maintained)
	t.Logf("telemetry maintain with the data volume full: %v\n%s", err, tail(maintained.String()))
	if err != nil && !strings.Contains(err.Error(), "No space left on device") {
		t.Errorf("telemetry maintain with the data volume full: %v, not the cause", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	load.progress("after the data volume was freed", 10)
	// Every failure said why (a write that failed was told the disk is
	// full, not that the database is unavailable: it answered the reads).
	details := load.rec.detailCounts()
	t.Logf("503 details while the data volume was full: %v", details)
	for d := range details {
		if d != "the database server's disk is full; retry later" {
			t.Errorf("a 503 while the data volume was full says %q", d)
		}
	}

	// The WAL volume fills up: the segment in use fills, the next cannot
	// be created (pg_switch_wal moves on to it at once).
	before = failures()
	fillDisk(t, walVol) // left there: the volume grows instead
	admin, err = pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	load.eventually("PostgreSQL fails to write its WAL", func() bool {
		_, err := admin.Exec(ctx, "SELECT pg_switch_wal()")
		return err != nil
	})
	admin.Close(ctx)
	failing("the WAL volume full", before)
	pid := filepath.Join(clusterDir, "pgdata", "postmaster.pid")
	load.eventually("PostgreSQL shuts down", func() bool {
		_, err := os.Stat(pid)
		return errors.Is(err, os.ErrNotExist)
	})
	if status, body := ready(); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down: %d %s", status, body)
	}
	port := c.Port
	opts.Port = port
	_, err = pgcluster.Start(ctx, opts)
	t.Logf("starting PostgreSQL with the WAL volume full: %v", err)
	if status, body := ready(); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down: %d %s", status, body)
	}
	// The volume grows (as an operator would grow it), the filler stays.
	if out, err := exec.Command("mount", "-o", "remount,size=256m", walVol).CombinedOutput(); err != nil {
		t.Fatalf("growing the WAL volume: %v: %s", err, out)
	}
	if c, err = pgcluster.Start(ctx, opts); err != nil {
		t.Fatalf("starting PostgreSQL once the WAL volume has room: %v", err)
	}
	if c.Port != port {
		t.Fatalf("restarted on port %d, not %d", c.Port, port)
	}
	load.progress("after the WAL volume grew", 10)

	load.recovered(c.URL("diskfull"))

	// The outage's warnings: at most one line of a kind (message and
	// operation) every warnlimit.Every, not one a request.
	elapsed := time.Since(started)
	kinds := map[string]int{}
	for _, l := range strings.Split(logs.String(), "\n") {
		var v struct{ Level, Msg, Op string }
		if json.Unmarshal([]byte(l), &v) == nil && v.Level != "INFO" && v.Msg != "request" {
			kinds[v.Level+" "+v.Msg+" "+v.Op]++
		}
	}
	limit := int(elapsed/warnlimit.Every) + 1
	for k, n := range kinds {
		if n > limit {
			t.Errorf("%d lines %q in %v: not throttled (at most %d)", n, k, elapsed.Round(time.Second), limit)
		}
	}
	stopServe()
	if err := <-served; err != nil {
		t.Fatalf("serve after the outage: %v", err)
	}
}

// A maintenance pass on a full disk still deletes what retention says to:
// TimescaleDB's dropped chunks are what frees space then. The pass used to
// fail before it began, on its lease: the lease row was deleted at the end
// of every pass, autovacuum then truncated the table to no page at all, and
// taking the lease again had to extend the file ("maintenance lease: could
// not extend file ...: No space left on device"), so the data past its
// retention stayed and the disk full (found by a disk-full audit). The
// database is on a small tmpfs of its own; the VACUUM here is the one
// autovacuum runs after some fifty passes (a sealing pass every
// SEAL_INTERVAL takes the lease too).
func TestMaintainOnFullDisk(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "telemetry-diskfull-")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Watch(dir)
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "data")
	mountTmpfs(t, vol, 48)
	space := filepath.Join(vol, "tablespace")
	if err := os.Mkdir(space, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pgcluster.ChownToPostgres(space); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, testdb.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// Dropped in this order at the end: the database, its tablespace, then
	// the volume is unmounted.
	name := fmt.Sprintf("diskfull_%d", os.Getpid())
	tablespace := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE TABLESPACE "+tablespace+" LOCATION '"+space+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), testdb.ServerURL()); err == nil {
			_, _ = c.Exec(context.Background(), "DROP TABLESPACE "+tablespace)
			c.Close(context.Background())
		}
	})
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+tablespace+" TABLESPACE "+tablespace); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), testdb.ServerURL()); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE "+tablespace+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(testdb.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	vars := map[string]string{"DATABASE_URL": u.String()}
	var out strings.Builder
	for _, cmd := range []string{"migrate", "maintain"} {
		if err := run(ctx, []string{cmd}, env(vars), &out, &out); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out.String())
		}
	}
	db, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// Measurements past their retention (30 days), in three days' chunks
	// under TimescaleDB.
	if _, err := db.Exec(ctx, `VACUUM maintenance_lease`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		SELECT now() - interval '60 days' + i * interval '1 minute', now() - interval '60 days' + i * interval '1 minute', 0, '/old', 'GET'
		FROM generate_series(0, 3 * 24 * 60) i`); err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := db.QueryRow(ctx, `SELECT CASE WHEN to_regclass('timescaledb_information.hypertables') IS NULL THEN 'postgresql' ELSE 'timescaledb' END`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	fillDisk(t, vol)
	out.Reset()
	err = run(ctx, []string{"maintain"}, env(vars), &out, &out)
	if err != nil {
		t.Fatalf("maintain on a full disk: %v\n%s", err, out.String())
	}
	t.Logf("maintain on a full disk (%s):\n%s", mode, out.String())
	var old int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM measurements WHERE started_at < now() - interval '30 days'`).Scan(&old); err != nil {
		t.Fatal(err)
	}
	if old != 0 {
		t.Errorf("%d measurements past their retention left", old)
	}
	// Dropped chunks free their files at once; deleted rows free nothing
	// until VACUUM makes their room reusable (docs/lifecycle.md).
	var fs syscall.Statfs_t
	if err := syscall.Statfs(vol, &fs); err != nil {
		t.Fatal(err)
	}
	if free := fs.Bavail * uint64(fs.Bsize); mode == "timescaledb" && free == 0 {
		t.Error("the dropped chunks freed no space")
	}
}
