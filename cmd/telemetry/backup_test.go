package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
)

// pgTool finds one of PostgreSQL's client programs (pg_dump, pg_restore,
// psql): beside the cluster's server binaries first, which are of the
// server's version (pg_dump refuses a newer server), then on PATH. The
// tests that need it fail, not skip, without it: make test installs it
// (the psql-bin target, postgresql-client).
func pgTool(t *testing.T, c *pgcluster.Cluster, name string) string {
	t.Helper()
	if p := filepath.Join(c.BinDir(), name); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s not found in %s nor on PATH: install postgresql-client (make psql-bin does: apt-get install postgresql-client)", name, c.BinDir())
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runTool runs a client program and fails the test with its output when
// it exits non-zero or reports an error on stderr (pg_restore reports the
// statements it could not run there, and exits 1 only at the end).
// Warnings are logged: pg_dump warns of TimescaleDB's catalog tables'
// circular foreign keys, which its restore procedure takes care of.
func runTool(t *testing.T, path string, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	err := cmd.Run()
	if err != nil || strings.Contains(strings.ToLower(stderr.String()), "error") {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(path), strings.Join(args, " "), err, stderr.String(), tail(stdout.String()))
	}
	if stderr.Len() > 0 {
		t.Logf("%s: %s", filepath.Base(path), stderr.String())
	}
}

// backupClient sends the API's requests of the backup tests: the
// package's client (scale_round_test.go), whose want here returns the
// answer's body.
type backupClient struct{ *client }

func (c backupClient) want(status int, method, path, body string, headers ...string) []byte {
	c.t.Helper()
	got, _, b := c.do(method, path, body, headers...)
	if got != status {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	return b
}

// backupFill is what the backup tests store through the API before the
// dump, and the keyed writes they repeat after the restore.
type backupFill struct {
	hour  time.Time // the first of the measurements' closed hours
	end   time.Time // the end of the windows read: after every row written
	old   time.Time // the start of the hour of measurements ten days old
	run   string    // the committed run's uuid
	keyed []keyedWrite
	rows  map[string]int64 // every table's rows in the original
	mode  string           // the original's storage mode (migrate.Mode)
	// compressed counts the compressed chunks of each hypertable in the
	// original (TimescaleDB).
	compressed map[string]int64
	maxID      int64 // the largest measurement id stored
	nowHour    int64 // the flows' hours (hours since the epoch)
}

type keyedWrite struct{ method, path, key, body, answer string }

// fillForBackup stores every resource through serve: flows (and their
// hourly rollup), measurements over two closed hours and the current one
// (rollups, histograms, 5-minute bins, sealed units and bins), device
// metrics (history and latest), a committed and a running load-test run,
// collections (one deleted, so that the ids have a gap), idempotency keys
// for each keyed write, and the self-profiling rows and runtime samples
// serve records itself. It waits until the closed hours are sealed (with
// sealed; a serve of a release before the schema's seals nothing).
func fillForBackup(t *testing.T, c backupClient, pool *pgxpool.Pool, sealed bool) backupFill {
	t.Helper()
	now := time.Now().UTC()
	f := backupFill{hour: now.Truncate(time.Hour).Add(-3 * time.Hour), end: now.Add(time.Minute), old: now.Truncate(24 * time.Hour).Add(-10*24*time.Hour + time.Hour), nowHour: now.Unix()/3600 - 2}
	keyed := func(method, path, key, body string, status int) []byte {
		t.Helper()
		b := c.want(status, method, path, body, "Idempotency-Key", key)
		f.keyed = append(f.keyed, keyedWrite{method, path, key, body, string(b)})
		return b
	}
	keyed("POST", "/flows", "bk-flows", fmt.Sprintf(`[
		{"src_app":"web","dest_app":"db","vpc_id":"v1","bytes_tx":10,"bytes_rx":20,"hour":%d},
		{"src_app":"web","dest_app":"cache","vpc_id":"v1","bytes_tx":3,"bytes_rx":4,"hour":%d},
		{"src_app":"api","dest_app":"db","vpc_id":"v2","bytes_tx":7,"bytes_rx":1,"hour":%d}]`, f.nowHour, f.nowHour, f.nowHour+1), http.StatusCreated)
	c.want(http.StatusCreated, "POST", "/flows", fmt.Sprintf(`[{"src_app":"web","dest_app":"db","vpc_id":"v1","bytes_tx":1,"bytes_rx":1,"hour":%d}]`, f.nowHour))

	// Measurements: three apps, several names and methods, elapsed
	// spread over five orders of magnitude (the percentiles and the
	// elapsed filters), in two closed hours and the current one.
	for h := 0; h < 3; h++ {
		var items []string
		start := f.hour.Add(time.Duration(h) * time.Hour)
		for i := 0; i < 60; i++ {
			at := float64(start.Unix()) + float64(i*47%3000) + float64(i)/100
			if h == 2 { // the last 10 minutes, not sealed
				at = float64(now.Unix()-600) + float64(i*10) + float64(i)/100
			}
			elapsed := []float64{0.0004, 0.003, 0.02, 0.15, 0.9, 4.2}[i%6] * (1 + float64(i%7)/10)
			items = append(items, fmt.Sprintf(`{"app":"%s","name":"/r/%d","method":"%s","startedAt":%.2f,"endedAt":%.6f,
				"args":["a%d"],"kwargs":{"k":%d},"context":{"url":"/r/%d?x=%d","status_code":%d}}`,
				[]string{"shop", "auth", "batch"}[i%3], i%5, []string{"GET", "POST", "PUT"}[i%3], at, at+elapsed, i, i, i%5, i, 200+i%2*300))
		}
		path, body := "/api/measurements", "["+strings.Join(items, ",")+"]"
		var b []byte
		if h == 0 {
			b = keyed("POST", path, "bk-measurements", body, http.StatusCreated)
		} else {
			b = c.want(http.StatusCreated, "POST", path, body)
		}
		var ids struct{ IDs []int64 }
		if err := json.Unmarshal(b, &ids); err != nil || len(ids.IDs) != 60 {
			t.Fatalf("POST /api/measurements answered %s", b)
		}
		f.maxID = max(f.maxID, ids.IDs[len(ids.IDs)-1])
	}

	// Ten days old: past COMPRESS_AFTER, so that TimescaleDB compresses
	// their chunk before the dump.
	var items []string
	for i := 0; i < 30; i++ {
		at := float64(f.old.Unix()) + float64(i*97) + 0.5
		items = append(items, fmt.Sprintf(`{"app":"shop","name":"/old/%d","method":"GET","startedAt":%.1f,"endedAt":%.3f}`, i%4, at, at+0.001*float64(1+i*i)))
	}
	c.want(http.StatusCreated, "POST", "/api/measurements", "["+strings.Join(items, ",")+"]")

	c.want(http.StatusCreated, "POST", "/mrd/devices", `{"id":"rack1-node1","name":"Node 1"}`)
	c.want(http.StatusCreated, "POST", "/mrd/devices", `{"id":"rack1-node2","name":"Node 2"}`)
	for i := 0; i < 6; i++ {
		body := fmt.Sprintf(`{"name":"cpu_temp","value":%d.5,"units":"C","type":"float","slope":"both","ttl":86400}`, 40+i)
		if i == 0 {
			keyed("PUT", "/mrd/rack1-node1/metrics", "bk-device", body, http.StatusOK)
		} else {
			c.want(http.StatusOK, "PUT", "/mrd/rack1-node1/metrics", body)
		}
		c.want(http.StatusOK, "PUT", "/mrd/rack1-node2/metrics", fmt.Sprintf(`{"name":"state","value":"up-%d","units":"state","type":"string","slope":"zero","ttl":86400}`, i))
	}

	b := keyed("POST", "/apiv0.1/events/register", "bk-register",
		`{"startedAt":"2026-01-01T00:00:00Z","host":"loadgen-1","measurement":{"fields":{"clients":10,"hatch_rate":2},"tags":{"mode":"single","locustfile":"a.py"}}}`, http.StatusOK)
	var reg struct{ UUID string }
	if err := json.Unmarshal(b, &reg); err != nil || reg.UUID == "" {
		t.Fatalf("register answered %s", b)
	}
	f.run = reg.UUID
	keyed("POST", "/apiv0.1/events/commit", "bk-commit", fmt.Sprintf(
		`{"startedAt":"2026-01-01T00:05:00Z","uuid":"%s","host":"loadgen-1","measurement":{"fields":{"requestStats":{"stats":[{"name":"/","num_requests":5,"num_failures":1}]}},"tags":{}}}`, f.run), http.StatusOK)
	c.want(http.StatusOK, "POST", "/apiv0.1/events/register",
		`{"startedAt":"2026-01-02T00:00:00Z","host":"loadgen-2","measurement":{"fields":{"clients":1},"tags":{"mode":"cluster"}}}`)

	keyed("POST", "/appmetrics/api/v1/collections", "bk-collection", "", http.StatusCreated)
	c.want(http.StatusCreated, "POST", "/appmetrics/api/v1/collections", "")
	c.want(http.StatusNoContent, "DELETE", "/appmetrics/api/v1/collections/0", "")
	c.want(http.StatusCreated, "POST", "/appmetrics/api/v1/collections", "")

	// Reads, so that self-profiling has rows of its own to dump.
	for i := 0; i < 5; i++ {
		c.want(http.StatusOK, "GET", "/flows?hour="+fmt.Sprint(f.nowHour), "")
		c.want(http.StatusOK, "GET", "/apiv0.1/states", "")
	}

	// Wait for serve's loops: the two closed hours sealed (and the bins
	// of the current one as far as they are closed), runtime samples and
	// self-profiling rows written.
	eventually(t, "the closed hours sealed, runtime samples and self-profiling rows", func() bool {
		var closed, samples, self int64
		err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM measurements_sealed WHERE unit_secs = 3600 AND unit_start IN ($1, $2)),
			(SELECT count(*) FROM runtime_samples),
			(SELECT count(*) FROM measurements WHERE app = 'telemetry')`,
			f.hour, f.hour.Add(time.Hour)).Scan(&closed, &samples, &self)
		if err != nil {
			t.Fatal(err)
		}
		return (closed == 2 || !sealed) && samples > 0 && self > 0
	})
	return f
}

// backupReads are the GET requests whose answers must be the same before
// the dump and after the restore: every list (with its total), grouped
// view, percentile, distribution, timeseries and export of the data
// fillForBackup stores, the self-profiling rows among them.
func backupReads(f backupFill) []string {
	from, to := f.hour.Unix(), f.end.Unix()
	win := fmt.Sprintf("startedAt=%d&endedAt=%d", from, to)
	old := fmt.Sprintf("startedAt=%d&endedAt=%d", f.old.Unix()-1800, f.old.Unix()+4000)
	reads := []string{
		"/api/measurements/?" + old,
		"/api/measurements/grouped/?" + old,
		"/api/measurements/timeseries/?" + old + "&bucket=5m",
		fmt.Sprintf("/api/measurements/timeseries/?startedAt=%d&endedAt=%d&interval=daily", f.old.Unix()-86400, f.end.Unix()),
		fmt.Sprintf("/flows?hour=%d", f.nowHour),
		fmt.Sprintf("/flows?hour=%d", f.nowHour+1),
		fmt.Sprintf("/flows/summary?from_hour=%d&to_hour=%d&by=src_app", f.nowHour, f.nowHour+2),
		fmt.Sprintf("/flows/summary?from_hour=%d&to_hour=%d&by=dest_app", f.nowHour, f.nowHour+2),
		fmt.Sprintf("/flows/summary?from_hour=%d&to_hour=%d&by=vpc_id", f.nowHour, f.nowHour+2),
		"/api/measurements/?" + win,
		"/api/measurements/?" + win + "&sort=elapsed,asc&size=7&page=2",
		"/api/measurements/?" + win + "&app=shop&elapsed=0.1&sort=name,asc",
		"/api/measurements/?" + win + "&method=POST,PUT",
		"/api/measurements/?" + win + "&app=telemetry",
		"/api/measurements/grouped/?" + win,
		"/api/measurements/grouped/?" + win + "&app=auth",
		"/api/measurements/grouped/?" + win + "&elapsed=0.01",
		"/api/measurements/grouped/?" + win + "&sort=avgElapsed,asc",
		"/api/measurements/grouped/?" + win + "&app=telemetry",
		fmt.Sprintf("/api/measurements/grouped/?startedAt=%d&endedAt=%d", from, from+3600),
		fmt.Sprintf("/api/measurements/grouped/?startedAt=%d&endedAt=%d", from+1234, to-567),
		"/api/measurements/methodDistribution/?" + win,
		"/api/measurements/methodDistribution/?startedAt=0",
		"/api/measurements/timeseries/?" + win + "&interval=hourly",
		"/api/measurements/timeseries/?" + win + "&interval=daily",
		"/api/measurements/timeseries/?" + win + "&bucket=5m",
		"/api/measurements/timeseries/?" + win + "&bucket=15m",
		"/api/measurements/filter/?" + win + "&name=/r/3",
		"/api/measurements/1",
		fmt.Sprintf("/api/measurements/%d", f.maxID),
		"/apiv0.1/states",
		"/apiv0.1/states?state=committed",
		"/apiv0.1/events/" + f.run,
		"/apiv0.1/events/isrunning",
		"/mrd/devices",
		"/mrd/devices/rack1-node1",
		"/mrd/devices/rack1-node1/metrics",
		"/mrd/devices/rack1-node2/metrics",
		"/mrd/devices/rack1-node1/metrics/cpu_temp/history",
		"/mrd/devices/rack1-node1/metrics/cpu_temp/history?bucket=1h",
		"/mrd/metrics/current",
		"/appmetrics/api/v1/collections",
		"/appmetrics/api/v1/collections/1",
		"/appmetrics/api/v1/collections/2",
	}
	return reads
}

// backupExports are exports (Accept) of the measurements, compared too.
var backupExports = []string{"text/csv", "application/x-ndjson"}

// answers reads every backupReads path and export from the serve at c.
// A collection's document ends "now": its time.data.end is left out.
func answers(t *testing.T, c backupClient, f backupFill) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, path := range backupReads(f) {
		b := c.want(http.StatusOK, "GET", path, "")
		if strings.HasPrefix(path, "/appmetrics/api/v1/collections/") {
			var doc map[string]any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, b)
			}
			delete(doc["time"].(map[string]any)["data"].(map[string]any), "end")
			b, _ = json.Marshal(doc)
		}
		got[path] = string(b)
	}
	from, to := f.hour.Unix(), f.end.Unix()
	for _, accept := range backupExports {
		path := fmt.Sprintf("/api/measurements/?startedAt=%d&endedAt=%d", from, to)
		got[accept+" "+path] = string(c.want(http.StatusOK, "GET", path, "", "Accept", accept))
	}
	return got
}

// quietServe starts serve on url with nothing running by itself (no
// maintenance or sealing loop, no self-profiling, no runtime sampler), so
// that two of them on the same data answer the same.
func quietServe(t *testing.T, url string) (backupClient, func()) {
	t.Helper()
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"MAINTENANCE_INTERVAL": "0", "SEAL_INTERVAL": "0", "SELF_PROFILE": "false", "SELF_SAMPLE_INTERVAL": "0"}
	base, stop := startServeChecked(t, vars)
	token, err := auth.New([]byte(testSecret)).Issue(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return backupClient{&client{t: t, base: base, token: token}}, stop
}

func sameAnswers(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for path, w := range want {
		if !sameAnswer(got[path], w) {
			t.Errorf("%s: GET %s answers\n%s\nbefore the backup:\n%s", what, path, got[path], w)
		}
	}
}

// sameAnswer compares two answers: byte for byte, or as JSON whose
// numbers may differ in their last bits. An average is a float8 sum
// divided by a count, and PostgreSQL adds the rollups' and the rows'
// sums in the order of the query's plan, which a restored database,
// whose statistics are not in the dump, may choose differently (seen:
// 0.63225 before, 0.6322500000000001 after, over a window whose last
// minutes crossed an hour).
func sameAnswer(got, want string) bool {
	if got == want {
		return true
	}
	var g, w any
	if json.Unmarshal([]byte(got), &g) != nil || json.Unmarshal([]byte(want), &w) != nil {
		return false
	}
	return closeJSON(g, w)
}

func closeJSON(g, w any) bool {
	switch w := w.(type) {
	case float64:
		g, ok := g.(float64)
		return ok && math.Abs(g-w) <= 1e-12*math.Max(math.Abs(g), math.Abs(w))
	case []any:
		g, ok := g.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !closeJSON(g[i], w[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := g.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k := range w {
			if !closeJSON(g[k], w[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(g, w)
}

// compressedChunks counts the compressed chunks of each hypertable with
// compression enabled (TimescaleDB), a hypertable without any as 0.
func compressedChunks(t *testing.T, url string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT h.hypertable_name::text,
		(SELECT count(*) FROM timescaledb_information.chunks c
		 WHERE c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name AND c.is_compressed)
		FROM timescaledb_information.hypertables h
		WHERE h.hypertable_schema = current_schema() AND h.compression_enabled`)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	var name string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { counts[name] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return counts
}

// tableRows counts the rows of every table of the schema.
func tableRows(t *testing.T, url string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, table := range tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	return counts
}

// afterRestore checks the restored database at url as the team would
// after a restore: `telemetry migrate` finds it up to date (and applies
// nothing), serve answers every read as before the dump, keyed writes
// repeated with their keys are recognised, new writes get new ids after
// the old ones, and a maintenance pass (retention and sealing) runs.
func afterRestore(t *testing.T, url string, f backupFill, before map[string]string) {
	t.Helper()
	ctx := context.Background()
	if got := tableRows(t, url); !reflect.DeepEqual(got, f.rows) {
		t.Errorf("rows per table restored:\n%v\nin the original:\n%v", got, f.rows)
	}
	log := migrateLog(t, url)
	if !strings.Contains(log, `"msg":"schema up to date"`) || !strings.Contains(log, `"applied":0`) || strings.Contains(log, "migration applied") ||
		!strings.Contains(log, `"mode":"`+f.mode+`"`) {
		t.Errorf("migrate on the restored database (the original's mode: %s):\n%s", f.mode, log)
	}
	if f.mode == "timescaledb" {
		// The hypertables, their compression settings and compressed
		// chunks are restored as they were.
		if got := compressedChunks(t, url); !reflect.DeepEqual(got, f.compressed) {
			t.Errorf("compressed chunks restored: %v, in the original: %v", got, f.compressed)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var jit string
	if err := conn.QueryRow(ctx, "SHOW jit").Scan(&jit); err != nil || jit != "off" {
		t.Errorf("jit for the restored database's role after migrate: %q %v, want off (migration 00022)", jit, err)
	}
	conn.Close(ctx)
	c, stop := quietServe(t, url)
	sameAnswers(t, "restored", before, answers(t, c, f))

	// The keyed writes of before the dump are recognised: same answer,
	// replayed, nothing written again.
	for _, k := range f.keyed {
		status, h, b := c.do(k.method, k.path, k.body, "Idempotency-Key", k.key)
		if status/100 != 2 || h.Get("Idempotency-Replayed") != "true" || string(b) != k.answer {
			t.Errorf("%s %s with key %s after the restore: %d replayed=%q %s, want the stored answer %s",
				k.method, k.path, k.key, status, h.Get("Idempotency-Replayed"), b, k.answer)
		}
	}
	// New writes continue the sequences: measurement ids after the old
	// ones, the next collection id after the largest ever taken.
	b := c.want(http.StatusCreated, "POST", "/api/measurements", fmt.Sprintf(
		`[{"app":"shop","name":"/r/1","method":"GET","startedAt":%d,"endedAt":%d.5}]`, f.hour.Unix()+60, f.hour.Unix()+60))
	var ids struct{ IDs []int64 }
	if err := json.Unmarshal(b, &ids); err != nil || len(ids.IDs) != 1 || ids.IDs[0] <= f.maxID {
		t.Errorf("a new measurement after the restore: %s, want an id after %d", b, f.maxID)
	}
	if _, h, _ := c.do("POST", "/appmetrics/api/v1/collections", ""); h.Get("Location") != "collections/3" {
		t.Errorf("a new collection after the restore: Location %q, want collections/3", h.Get("Location"))
	}
	c.want(http.StatusCreated, "POST", "/flows", fmt.Sprintf(`[{"src_app":"web","dest_app":"db","vpc_id":"v1","bytes_tx":1,"bytes_rx":1,"hour":%d}]`, f.nowHour))
	c.want(http.StatusOK, "PUT", "/mrd/rack1-node1/metrics", `{"name":"cpu_temp","value":1,"units":"C","type":"float","slope":"both","ttl":60}`)
	c.want(http.StatusOK, "POST", "/apiv0.1/events/register",
		`{"startedAt":"2026-01-03T00:00:00Z","host":"loadgen-3","measurement":{"fields":{"clients":1},"tags":{"mode":"single"}}}`)
	stop()

	// A maintenance pass: it seals again the hour the new measurement
	// unsealed, and expires what is past a retention (the events of
	// 2026-01, with EVENTS_RETENTION=1d).
	var out, logs bytes.Buffer
	vars := map[string]string{"DATABASE_URL": url, "EVENTS_RETENTION": "1d"}
	if err := run(ctx, []string{"maintain"}, env(vars), &out, &logs); err != nil {
		t.Fatalf("maintain on the restored database: %v\n%s%s", err, out.String(), logs.String())
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var sealed, runs int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM measurements_sealed WHERE unit_secs = 3600 AND unit_start = $1),
		(SELECT count(*) FROM event_runs)`, f.hour).Scan(&sealed, &runs); err != nil {
		t.Fatal(err)
	}
	if sealed != 1 || runs != 0 || !strings.Contains(out.String(), "maintenance done") {
		t.Errorf("after a maintenance pass on the restored database: hour sealed %d, runs left %d (want 1, 0):\n%s", sealed, runs, out.String())
	}
}

// A team's backups, following docs/lifecycle.md's "Backups": the database
// a serve has filled (every resource) dumped with pg_dump -Fc and restored
// with pg_restore -j 2 into new databases of another cluster (in another
// time zone), as the original's owner and as another role (--no-owner
// --no-privileges --role, then telemetry_grant_analyst), and dumped as
// plain SQL and replayed with psql; on TimescaleDB between
// timescaledb_pre_restore() and timescaledb_post_restore(). Each restore
// runs without an error and has every table's rows (and compressed
// chunks), `telemetry migrate` finds it up to date in the original's mode
// and gives the role jit = off, serve answers every read as the original
// did, keyed writes of before the dump are still recognised, writes
// continue, a maintenance pass runs, and an analyst's login reads.
func TestDumpAndRestoreKeepEveryAnswer(t *testing.T) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("needs the PostgreSQL server binaries to start a second cluster (TEST_DATABASE_URL is set)")
	}
	ctx := context.Background()
	srcURL := testdb.Empty(t)
	migrateLog(t, srcURL)
	src, err := pgxpool.New(ctx, srcURL)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	// Another cluster, in another time zone, for the restores.
	dir, err := os.MkdirTemp("", "telemetry-restore-")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Watch(dir)
	dst, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true, TimeZone: "Asia/Kolkata"})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dst.Remove(context.Background()) })

	// Filled by a serve with its loops running, then stopped (its last
	// self-profiling rows flushed).
	vars := map[string]string{"DATABASE_URL": srcURL, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"SEAL_INTERVAL": "1s", "SELF_SAMPLE_INTERVAL": "1s"}
	base, stop := startServeChecked(t, vars)
	token, err := auth.New([]byte(testSecret)).Issue(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := fillForBackup(t, backupClient{&client{t: t, base: base, token: token}}, src, true)
	stop()
	// A pass with COMPRESS_AFTER's default: on TimescaleDB the chunk of
	// the measurements ten days old is compressed.
	if err := run(ctx, []string{"maintain"}, env(map[string]string{"DATABASE_URL": srcURL}), io.Discard, io.Discard); err != nil {
		t.Fatalf("maintain: %v", err)
	}
	mode, err := migrate.Mode(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	ts := mode == "timescaledb"
	if !ts {
		t.Log("plain PostgreSQL: TimescaleDB's restore procedure is not exercised (PG_BIN pointing at a TimescaleDB build runs it)")
	}
	if ts {
		f.compressed = compressedChunks(t, srcURL)
		if f.compressed["measurements"] == 0 {
			t.Fatalf("no compressed chunk of measurements before the dump: %v", f.compressed)
		}
	}

	work := t.TempDir()
	custom, plain := filepath.Join(work, "telemetry.dump"), filepath.Join(work, "telemetry.sql")
	runTool(t, pgTool(t, dst, "pg_dump"), "-Fc", "-f", custom, srcURL)
	runTool(t, pgTool(t, dst, "pg_dump"), "--no-owner", "--no-privileges", "-f", plain, srcURL)

	// What the original answers, read by a serve that changes nothing.
	c, stopQuiet := quietServe(t, srcURL)
	before := answers(t, c, f)
	stopQuiet()
	f.rows = tableRows(t, srcURL)
	f.mode = mode

	// The new cluster: the analysts' role the grants name (roles are the
	// cluster's, not in a dump), the service's role under another name
	// (not a superuser), and an empty database per restore.
	admin, err := pgx.Connect(ctx, dst.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{"CREATE ROLE telemetry_analyst NOLOGIN", "CREATE ROLE svc LOGIN",
		"CREATE ROLE ana LOGIN IN ROLE telemetry_analyst", "CREATE DATABASE sameowner TEMPLATE template0",
		"CREATE DATABASE fromcustom OWNER svc TEMPLATE template0", "CREATE DATABASE fromplain OWNER svc TEMPLATE template0"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	as := func(role, db string) string { return strings.Replace(dst.URL(db), "postgres@", role+"@", 1) }
	psql := func(t *testing.T, url string, args ...string) {
		t.Helper()
		runTool(t, pgTool(t, dst, "psql"), append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1"}, append(args, url)...)...)
	}
	// TimescaleDB's procedure around a restore, as a superuser: the
	// extension created first, then timescaledb_pre_restore() (which
	// stops its background workers and lets its catalog be written),
	// timescaledb_post_restore() after.
	preRestore := func(t *testing.T, db string) {
		if ts {
			psql(t, dst.URL(db), "-c", "CREATE EXTENSION IF NOT EXISTS timescaledb", "-c", "SELECT timescaledb_pre_restore()")
		}
	}
	postRestore := func(t *testing.T, db string) {
		if ts {
			psql(t, dst.URL(db), "-c", "SELECT timescaledb_post_restore()")
		}
	}
	// analystReads checks that an analyst's login reads the restored
	// tables (docs/analysts.md).
	analystReads := func(t *testing.T, db string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, as("ana", db))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM measurements").Scan(&n); err != nil || n == 0 {
			t.Errorf("an analyst reading the restored measurements: %d rows, %v", n, err)
		}
	}

	// The same roles as the original's (its owner here is postgres, as
	// the service's role would be in the new cluster): no option needed.
	t.Run("custom", func(t *testing.T) {
		preRestore(t, "sameowner")
		runTool(t, pgTool(t, dst, "pg_restore"), "-j", "2", "-d", dst.URL("sameowner"), custom)
		postRestore(t, "sameowner")
		runTool(t, pgTool(t, dst, "vacuumdb"), "--analyze-only", "-d", dst.URL("sameowner"))
		afterRestore(t, dst.URL("sameowner"), f, before)
		analystReads(t, "sameowner")
	})
	// Another owner: its objects owned by svc, the original's privileges
	// left out (they name the original owner), given again by
	// telemetry_grant_analyst as svc. Not on TimescaleDB, whose catalog
	// only a superuser writes (below).
	t.Run("custom-another-owner", func(t *testing.T) {
		if ts {
			t.Skip("TimescaleDB: a restore writes the extension's catalog, which is a superuser's: restore as a superuser into the original owner's role (docs/lifecycle.md, Backups)")
		}
		runTool(t, pgTool(t, dst, "pg_restore"), "--no-owner", "--no-privileges", "--role=svc", "-j", "2", "-d", dst.URL("fromcustom"), custom)
		afterRestore(t, as("svc", "fromcustom"), f, before)
		psql(t, as("svc", "fromcustom"), "-c", "SELECT telemetry_grant_analyst()")
		analystReads(t, "fromcustom")
	})
	// Plain SQL, replayed by psql as svc (on TimescaleDB as the
	// superuser, as above).
	t.Run("plain", func(t *testing.T) {
		url := as("svc", "fromplain")
		if ts {
			url = dst.URL("fromplain")
		}
		preRestore(t, "fromplain")
		psql(t, url, "-f", plain)
		postRestore(t, "fromplain")
		afterRestore(t, url, f, before)
		psql(t, url, "-c", "SELECT telemetry_grant_analyst()")
		analystReads(t, "fromplain")
	})
}
