package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
)

// crashWriter is one client of the crash test: it sends one logical write
// after another, each with its own Idempotency-Key, and sends a write that
// failed again with the same key until it succeeds, as the README tells
// clients to. done counts the writes that succeeded (each exactly once in
// the database, whatever the outage did to its earlier tries).
type crashWriter struct {
	name string
	// send sends write k with key (the same for every try) and returns
	// the answer with its body read, or the transport's error.
	send func(k int, key string) (*http.Response, []byte, error)
	done atomic.Int64
}

// crashRecord counts what the writers and readers met.
type crashRecord struct {
	mu         sync.Mutex
	ok         int
	unavail    int // 503 with Retry-After
	cut        int // an export cut short (a streamed answer's only way to fail)
	replayed   int // a retry answered from the stored answer
	violations []string
}

func (r *crashRecord) add(f func(r *crashRecord)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *crashRecord) failures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unavail + r.cut + len(r.violations)
}

// run sends writes until stop is closed, then finishes the one in hand.
func (w *crashWriter) run(stop <-chan struct{}, rec *crashRecord) {
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Sprintf("crash-%s-%d", w.name, k)
		failed := false
		deadline := time.Now().Add(2 * time.Minute)
		for {
			res, body, err := w.send(k, key)
			if err == nil && res.StatusCode/100 == 2 {
				rec.add(func(r *crashRecord) {
					r.ok++
					if failed && res.Header.Get("Idempotency-Replayed") == "true" {
						r.replayed++
					}
				})
				break
			}
			failed = true
			switch {
			case err != nil:
				// Not even an error answer: the README promises one.
				rec.add(func(r *crashRecord) {
					r.violations = append(r.violations, fmt.Sprintf("%s write %d: no answer: %v", w.name, k, err))
				})
			case res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") != "":
				rec.add(func(r *crashRecord) { r.unavail++ })
			default:
				rec.add(func(r *crashRecord) {
					r.violations = append(r.violations, fmt.Sprintf("%s write %d: %d %s", w.name, k, res.StatusCode, body))
				})
			}
			if time.Now().After(deadline) {
				rec.add(func(r *crashRecord) {
					r.violations = append(r.violations, fmt.Sprintf("%s write %d never succeeded (last: %v)", w.name, k, err))
				})
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		w.done.Add(1)
	}
}

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
	token, err := auth.New([]byte(testSecret)).Issue(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	send := func(method, path, key, body, accept string) (*http.Response, []byte, error) {
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, r)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		res, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, nil, err // cut mid-answer
		}
		return res, b, nil
	}
	do := func(method, path, key, body string) (*http.Response, []byte, error) {
		return send(method, path, key, body, "")
	}
	must := func(method, path, body string, want int) []byte {
		t.Helper()
		res, b, err := do(method, path, "", body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if res.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, want)
		}
		return b
	}
	must("POST", "/mrd/devices", `{"id":"crash-dev","name":"Crash"}`, http.StatusCreated)
	res, _, err := do("POST", "/appmetrics/api/v1/collections", "", "")
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("opening a collection: %v %v", res, err)
	}
	collection := "/appmetrics/api/v1/" + res.Header.Get("Location")

	// The measurements go to a closed hour, which the sealing loop seals
	// and every batch unseals: the grouped view's kept cells see both.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	from, to := hour.Unix(), hour.Add(time.Hour).Unix()
	const perBatch = 5
	var opened atomic.Value      // collections writer: the collection it opened last
	var deleteTried atomic.Int64 // and the delete it tried last
	deleteTried.Store(-1)
	var eventsMu sync.Mutex
	runs := map[int]string{} // events writer: the run of each write
	writers := []*crashWriter{
		{name: "flows", send: func(k int, key string) (*http.Response, []byte, error) {
			return do("POST", "/flows", key, fmt.Sprintf(
				`[{"src_app":"crash","dest_app":"d%d","vpc_id":"v","bytes_tx":1,"bytes_rx":%d,"hour":%d},
				  {"src_app":"crash","dest_app":"e","vpc_id":"v","bytes_tx":2,"bytes_rx":0,"hour":%d}]`, k%3, k, 100+k%2, 100+k%2))
		}},
		{name: "measurements", send: func(k int, key string) (*http.Response, []byte, error) {
			var items []string
			for i := 0; i < perBatch; i++ {
				at := float64(hour.Unix()) + float64(k%3000) + float64(i)/10
				items = append(items, fmt.Sprintf(`{"app":"crash","name":"/crash/%d","method":"GET","startedAt":%.1f,"endedAt":%.3f}`,
					i%3, at, at+0.01*float64(1+i)))
			}
			return do("POST", "/api/measurements", key, "["+strings.Join(items, ",")+"]")
		}},
		{name: "devices", send: func(k int, key string) (*http.Response, []byte, error) {
			return do("PUT", "/mrd/crash-dev/metrics", key, fmt.Sprintf(
				`{"name":"m%d","value":%d,"units":"u","type":"int32","slope":"both","ttl":600}`, k%2, k))
		}},
		{name: "events", send: func(k int, key string) (*http.Response, []byte, error) {
			// Even writes register run k/2, odd ones commit it.
			if k%2 == 0 {
				res, b, err := do("POST", "/apiv0.1/events/register", key, fmt.Sprintf(
					`{"startedAt":"2026-01-01T00:00:00Z","host":"crash-%d","measurement":{"fields":{"clients":1},"tags":{"mode":"single"}}}`, k))
				if err == nil && res.StatusCode == http.StatusOK {
					var v struct{ UUID string }
					if json.Unmarshal(b, &v) != nil || v.UUID == "" {
						return res, b, fmt.Errorf("register answered %s", b)
					}
					eventsMu.Lock()
					runs[k] = v.UUID
					eventsMu.Unlock()
				}
				return res, b, err
			}
			eventsMu.Lock()
			uuid := runs[k-1]
			eventsMu.Unlock()
			return do("POST", "/apiv0.1/events/commit", key, fmt.Sprintf(
				`{"startedAt":"2026-01-01T00:05:00Z","uuid":"%s","host":"crash-%d","measurement":{"fields":{"requestStats":{"stats":[]}},"tags":{}}}`, uuid, k-1))
		}},
		{name: "collections", send: func(k int, key string) (*http.Response, []byte, error) {
			// Even writes open a collection, odd ones delete it: a delete
			// whose earlier try went through finds it gone.
			if k%2 == 0 {
				res, b, err := do("POST", "/appmetrics/api/v1/collections", key, "")
				if err == nil && res.StatusCode == http.StatusCreated {
					opened.Store("/appmetrics/api/v1/" + res.Header.Get("Location"))
				}
				return res, b, err
			}
			res, b, err := do("DELETE", opened.Load().(string), "", "")
			if err == nil && res.StatusCode == http.StatusNotFound && deleteTried.Load() == int64(k) {
				res.StatusCode = http.StatusNoContent
			}
			deleteTried.Store(int64(k))
			return res, b, err
		}},
	}
	rec := &crashRecord{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(stop, rec)
		}()
	}
	// Reads meanwhile, an export among them: each answers 200 or a 503 with
	// Retry-After, or (an export the outage cut mid-stream) ends its body
	// early.
	export := fmt.Sprintf("/api/measurements/?app=crash&startedAt=%d&endedAt=%d", from, to)
	reads := []struct{ path, accept string }{
		{fmt.Sprintf("/api/measurements/grouped/?startedAt=%d&endedAt=%d", from, to), ""},
		{"/flows?hour=100", ""},
		{"/flows/summary?from_hour=100&to_hour=102&by=dest_app", ""},
		{"/mrd/devices/crash-dev/metrics", ""},
		{"/apiv0.1/states", ""},
		{"/apiv0.1/events/isrunning", ""},
		{"/api/measurements/timeseries/?interval=daily", ""},
		{collection, ""},
		{export, "text/csv"},
	}
	var readsDone atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := reads[i%len(reads)]
			res, body, err := send("GET", r.path, "", "", r.accept)
			switch {
			case err != nil && r.path == export:
				rec.add(func(r *crashRecord) { r.cut++ })
			case err != nil:
				rec.add(func(rc *crashRecord) {
					rc.violations = append(rc.violations, fmt.Sprintf("GET %s: no answer: %v", r.path, err))
				})
			case res.StatusCode == http.StatusOK:
				readsDone.Add(1)
			case res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") != "":
				rec.add(func(r *crashRecord) { r.unavail++ })
			default:
				rec.add(func(rc *crashRecord) {
					rc.violations = append(rc.violations, fmt.Sprintf("GET %s: %d %s", r.path, res.StatusCode, body))
				})
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopWriters)
	// progress waits until every writer has had n more writes succeed.
	progress := func(what string, n int64) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		start := make([]int64, len(writers))
		for i, w := range writers {
			start[i] = w.done.Load()
		}
		for i, w := range writers {
			for w.done.Load() < start[i]+n {
				if time.Now().After(deadline) {
					t.Fatalf("%s: writer %s made no progress (%d writes); log:\n%s", what, w.name, w.done.Load(), tail(logs.String()))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	// outage stops the database with stopDB, waits for the writers to meet
	// it and for /readyz to say so, then starts it again on its port.
	outage := func(what string, stopDB func(context.Context) error) {
		t.Helper()
		before := rec.failures()
		if err := stopDB(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		deadline := time.Now().Add(time.Minute)
		for rec.failures() < before+len(writers) {
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

	progress("before the crash", 20)
	outage("crash", func(ctx context.Context) error { return c.Crash(ctx) })
	progress("after the crash", 20)
	outage("fast restart", func(ctx context.Context) error { return c.Stop(ctx) })
	progress("after the restart", 20)
	stopWriters()

	rec.mu.Lock()
	t.Logf("writes: %d succeeded, %d retries replayed; failures: %d answered 503, %d exports cut", rec.ok, rec.replayed, rec.unavail, rec.cut)
	for _, v := range rec.violations {
		t.Errorf("violation: %s", v)
	}
	rec.mu.Unlock()

	// Recovered: ready, and the background work runs again.
	must("GET", "/readyz", "", http.StatusOK)
	metric := func(name string) float64 {
		t.Helper()
		b := must("GET", "/metrics", "", http.StatusOK)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
		return 0
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after a minute; log:\n%s", what, tail(logs.String()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, m := range []string{`telemetry_maintenance_seal_passes_total{outcome="done"}`, `telemetry_maintenance_passes_total{outcome="done"}`} {
		n := metric(m)
		// Two passes: the second started after the writers stopped, so the
		// hour their measurements went to is sealed again.
		eventually(m+" grows after the outage", func() bool { return metric(m) > n+1 })
	}
	pool, err := pgxpool.New(ctx, c.URL("crash"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	count := func(sql string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	samples := count(`SELECT count(*) FROM runtime_samples`)
	eventually("runtime samples after the outage", func() bool { return count(`SELECT count(*) FROM runtime_samples`) > samples })
	// A request after the outage is recorded (self-profiling) and shows in
	// the collection opened before it.
	probe := "/apiv0.1/events/0b6b2a1e-3f4c-4d5e-8f90-00000000cafe"
	must("GET", probe, "", http.StatusNotFound)
	eventually("the probe in the collection", func() bool {
		return strings.Contains(string(must("GET", collection, "", http.StatusOK)), `"url":"`+probe+`"`)
	})

	// Every write exactly once.
	flows := writers[0].done.Load()
	var tx, rx int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(bytes_tx), 0), coalesce(sum(bytes_rx), 0) FROM flows WHERE src_app = 'crash'`).Scan(&tx, &rx); err != nil {
		t.Fatal(err)
	}
	if tx != 3*flows || rx != flows*(flows-1)/2 {
		t.Errorf("flows: bytes_tx %d, bytes_rx %d; want %d and %d for %d writes", tx, rx, 3*flows, flows*(flows-1)/2, flows)
	}
	measured := count(`SELECT count(*) FROM measurements WHERE app = 'crash'`)
	if want := perBatch * writers[1].done.Load(); measured != want {
		t.Errorf("measurements: %d rows, want %d", measured, want)
	}
	devices := count(`SELECT count(*) FROM device_metrics WHERE device_id = 'crash-dev'`)
	if devices != writers[2].done.Load() {
		t.Errorf("device metrics: %d rows, want %d", devices, writers[2].done.Load())
	}
	events := writers[3].done.Load()
	if n := count(`SELECT count(*) FROM event_runs WHERE host LIKE 'crash-%'`); n != (events+1)/2 {
		t.Errorf("event runs: %d, want %d", n, (events+1)/2)
	}
	if n := count(`SELECT count(*) FROM event_runs WHERE host LIKE 'crash-%' AND state = 'committed'`); n != events/2 {
		t.Errorf("committed runs: %d, want %d", n, events/2)
	}
	if n, want := count(`SELECT count(*) FROM collections`), 1+writers[4].done.Load()%2; n != want {
		t.Errorf("collections: %d, want %d (the test's and the writer's last when it opened one)", n, want)
	}
	// The rollups agree with the rows, in one snapshot (self-profiling
	// writes on).
	snap, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Rollback(ctx)
	for _, q := range []string{
		`SELECT (SELECT count(*) FROM measurements) - (SELECT sum(count) FROM measurements_hourly)`,
		`SELECT (SELECT count(*) FROM measurements) - (SELECT sum(count) FROM measurements_daily)`,
		`SELECT (SELECT count(*) FROM measurements) - (SELECT sum(count) FROM measurements_method_hourly)`,
		`SELECT (SELECT count(*) FROM measurements) - (SELECT sum(count) FROM measurements_5min)`,
		// The collection's running totals and the request cells, against
		// the service's own rows.
		`SELECT count(*) FROM (
			SELECT c.id AS collection_id, f.path, m.method, sum(f.hits) AS hits FROM measurements m
			JOIN collections c ON m.started_at >= c.started_at CROSS JOIN collection_http_fields(m.context, m.name, m.elapsed) f
			WHERE m.app = 'telemetry' GROUP BY 1, 2, 3) r
			FULL JOIN (SELECT collection_id, path, method, hits FROM collection_http_totals) t USING (collection_id, path, method)
			WHERE r.hits IS DISTINCT FROM t.hits`,
		`SELECT (SELECT sum(f.hits) FROM measurements m CROSS JOIN collection_http_fields(m.context, m.name, m.elapsed) f WHERE m.app = 'telemetry')
			- (SELECT sum(hits) FROM collection_http_minute)`,
		`SELECT (SELECT sum(f.hits) FROM measurements m CROSS JOIN collection_http_fields(m.context, m.name, m.elapsed) f WHERE m.app = 'telemetry')
			- (SELECT sum(hits) FROM collection_http_10s)`,
		`SELECT count(*) FROM (SELECT hour, count(*) AS flows, sum(bytes_tx) AS tx, sum(bytes_rx) AS rx FROM flows GROUP BY hour) f
			FULL JOIN (SELECT hour, flows, bytes_tx AS tx, bytes_rx AS rx FROM flows_hourly WHERE dim = 'all') h USING (hour)
			WHERE f.flows IS DISTINCT FROM h.flows OR f.tx IS DISTINCT FROM h.tx OR f.rx IS DISTINCT FROM h.rx`,
	} {
		var n int64
		if err := snap.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n != 0 {
			t.Errorf("%s: %d, want 0", q, n)
		}
	}
	snap.Rollback(ctx)

	// The grouped view (its kept cells) agrees with the rows.
	var grouped struct {
		Items []struct {
			Name, Method string
			Count        int64
		}
	}
	// Twice: the second answer reads the cells the first kept.
	for range 2 {
		b := must("GET", fmt.Sprintf("/api/measurements/grouped/?startedAt=%d&endedAt=%d", from, to), "", http.StatusOK)
		if err := json.Unmarshal(b, &grouped); err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, g := range grouped.Items {
			if want := count(`SELECT count(*) FROM measurements WHERE name = $1 AND method = $2 AND started_at >= to_timestamp($3) AND started_at < to_timestamp($4)`,
				g.Name, g.Method, from, to); g.Count != want {
				t.Errorf("grouped: %s %s counts %d, the rows %d", g.Method, g.Name, g.Count, want)
			}
			total += g.Count
		}
		if total != measured {
			t.Errorf("grouped: %d measurements in all, want %d", total, measured)
		}
	}

	// The export's one slot (EXPORTS_MAX=1) is free again: an export the
	// outage cut gave it back.
	eventually("an export after the outage", func() bool {
		res, body, err := send("GET", export, "", "", "text/csv")
		return err == nil && res.StatusCode == http.StatusOK && strings.Count(string(body), "\n") == int(measured)+1
	})

	if metric("telemetry_measurements_kept_cells_bytes") == 0 {
		t.Error("the grouped view kept no cells: the check above did not compare them")
	}

	// The outage's log: bounded.
	lines := strings.Split(logs.String(), "\n")
	kinds := map[string]int{}
	for _, l := range lines {
		var v struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &v) == nil && v.Level != "INFO" {
			kinds[v.Level+" "+v.Msg]++
		}
	}
	t.Logf("log: %d lines; beyond INFO: %v", len(lines), kinds)
	// No connection is left held (the background work takes one for a
	// moment now and then).
	eventually("no database connection held", func() bool { return metric(`telemetry_db_pool_conns{state="acquired"}`) == 0 })
	// And it stops cleanly.
	stopServe()
	if err := <-served; err != nil {
		t.Fatalf("serve after the outage: %v", err)
	}
}

// tail is the end of a long log.
func tail(s string) string {
	if len(s) > 8000 {
		return "..." + s[len(s)-8000:]
	}
	return s
}
