package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/auth"
)

// The outage tests (dbcrash_test.go, diskfull_test.go) share their clients:
// writers to every resource that retry a failed write with its
// Idempotency-Key, a reader, and the checks, once the database is back,
// that every answered write is stored exactly once and the service's
// background work has recovered.

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
	// failed counts its tries that failed (each a violation or a 503).
	failed atomic.Int64
}

// crashRecord counts what the writers and readers met.
type crashRecord struct {
	mu         sync.Mutex
	ok         int
	unavail    int            // 503 with Retry-After
	cut        int            // an export cut short (a streamed answer's only way to fail)
	replayed   int            // a retry answered from the stored answer
	details    map[string]int // the 503s' details, by detail
	violations []string
}

func (r *crashRecord) add(f func(r *crashRecord)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// unavailable counts a 503 (with Retry-After) whose problem is body.
func (r *crashRecord) unavailable(body []byte) {
	r.unavail++
	var p struct{ Detail string }
	_ = json.Unmarshal(body, &p)
	if r.details == nil {
		r.details = map[string]int{}
	}
	r.details[p.Detail]++
}

// detailCounts is a copy of details.
func (r *crashRecord) detailCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for k, v := range r.details {
		m[k] = v
	}
	return m
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
			w.failed.Add(1)
			switch {
			case err != nil:
				// Not even an error answer: the README promises one.
				rec.add(func(r *crashRecord) {
					r.violations = append(r.violations, fmt.Sprintf("%s write %d: no answer: %v", w.name, k, err))
				})
			case res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") != "":
				rec.add(func(r *crashRecord) { r.unavailable(body) })
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

// outageLoad is the clients of an outage test against one serve.
type outageLoad struct {
	t       *testing.T
	base    string
	token   string
	logs    *syncBuffer
	client  *http.Client
	writers []*crashWriter
	rec     *crashRecord
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped bool

	collection string // opened before the writers start
	export     string // the measurements' export (text/csv)
	from, to   int64  // the hour the measurements go to
	readsDone  atomic.Int64
}

const outagePerBatch = 5

// startOutageLoad creates a device and a collection through serve at base
// and starts the writers and the reader; they stop at stopWriters (also at
// the end of t).
func startOutageLoad(t *testing.T, base string, logs *syncBuffer) *outageLoad {
	t.Helper()
	token, err := auth.New([]byte(testSecret)).Issue(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l := &outageLoad{t: t, base: base, token: token, logs: logs, client: &http.Client{Timeout: 30 * time.Second},
		rec: &crashRecord{}, stop: make(chan struct{})}
	do := l.do
	l.must("POST", "/mrd/devices", `{"id":"crash-dev","name":"Crash"}`, http.StatusCreated)
	res, _, err := do("POST", "/appmetrics/api/v1/collections", "", "")
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("opening a collection: %v %v", res, err)
	}
	l.collection = "/appmetrics/api/v1/" + res.Header.Get("Location")

	// The measurements go to a closed hour, which the sealing loop seals
	// and every batch unseals: the grouped view's kept cells see both.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	l.from, l.to = hour.Unix(), hour.Add(time.Hour).Unix()
	const perBatch = outagePerBatch
	var opened atomic.Value      // collections writer: the collection it opened last
	var deleteTried atomic.Int64 // and the delete it tried last
	deleteTried.Store(-1)
	var eventsMu sync.Mutex
	runs := map[int]string{} // events writer: the run of each write
	l.writers = []*crashWriter{
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
	for _, w := range l.writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			w.run(l.stop, l.rec)
		}()
	}
	// Reads meanwhile, an export among them: each answers 200 or a 503 with
	// Retry-After, or (an export the outage cut mid-stream) ends its body
	// early.
	l.export = fmt.Sprintf("/api/measurements/?app=crash&startedAt=%d&endedAt=%d", l.from, l.to)
	export := l.export
	reads := []struct{ path, accept string }{
		{fmt.Sprintf("/api/measurements/grouped/?startedAt=%d&endedAt=%d", l.from, l.to), ""},
		{"/flows?hour=100", ""},
		{"/flows/summary?from_hour=100&to_hour=102&by=dest_app", ""},
		{"/mrd/devices/crash-dev/metrics", ""},
		{"/apiv0.1/states", ""},
		{"/apiv0.1/events/isrunning", ""},
		{"/api/measurements/timeseries/?interval=daily", ""},
		{l.collection, ""},
		{export, "text/csv"},
	}
	rec := l.rec
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			r := reads[i%len(reads)]
			res, body, err := l.send("GET", r.path, "", "", r.accept)
			switch {
			case err != nil && r.path == export:
				rec.add(func(r *crashRecord) { r.cut++ })
			case err != nil:
				rec.add(func(rc *crashRecord) {
					rc.violations = append(rc.violations, fmt.Sprintf("GET %s: no answer: %v", r.path, err))
				})
			case res.StatusCode == http.StatusOK:
				l.readsDone.Add(1)
			case res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") != "":
				rec.add(func(r *crashRecord) { r.unavailable(body) })
			default:
				rec.add(func(rc *crashRecord) {
					rc.violations = append(rc.violations, fmt.Sprintf("GET %s: %d %s", r.path, res.StatusCode, body))
				})
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(l.stopWriters)
	return l
}

// send sends a request with the test's token, its body read.
func (l *outageLoad) send(method, path, key, body, accept string) (*http.Response, []byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, l.base+path, r)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := l.client.Do(req)
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

func (l *outageLoad) do(method, path, key, body string) (*http.Response, []byte, error) {
	return l.send(method, path, key, body, "")
}

func (l *outageLoad) must(method, path, body string, want int) []byte {
	l.t.Helper()
	res, b, err := l.do(method, path, "", body)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	if res.StatusCode != want {
		l.t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, want)
	}
	return b
}

// stopWriters stops the writers and the reader, each after the request in
// hand.
func (l *outageLoad) stopWriters() {
	if !l.stopped {
		l.stopped = true
		close(l.stop)
		l.wg.Wait()
	}
}

// progress waits until every writer has had n more writes succeed.
func (l *outageLoad) progress(what string, n int64) {
	l.t.Helper()
	deadline := time.Now().Add(time.Minute)
	start := make([]int64, len(l.writers))
	for i, w := range l.writers {
		start[i] = w.done.Load()
	}
	for i, w := range l.writers {
		for w.done.Load() < start[i]+n {
			if time.Now().After(deadline) {
				l.t.Fatalf("%s: writer %s made no progress (%d writes); log:\n%s", what, w.name, w.done.Load(), tail(l.logs.String()))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// eventually waits for cond, up to a minute.
func (l *outageLoad) eventually(what string, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: not after a minute; log:\n%s", what, tail(l.logs.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric is the value of a /metrics line (0 when absent).
func (l *outageLoad) metric(name string) float64 {
	l.t.Helper()
	b := l.must("GET", "/metrics", "", http.StatusOK)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				l.t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// recovered stops the clients, reports what they met, and checks that the
// service has recovered (ready, its background work running again) and
// that the database at dbURL holds every answered write exactly once, the
// rollups, the collections' figures and the grouped view's kept cells
// agreeing with the rows.
func (l *outageLoad) recovered(dbURL string) {
	t := l.t
	t.Helper()
	ctx := context.Background()
	l.stopWriters()
	rec, writers, must, send, metric, eventually := l.rec, l.writers, l.must, l.send, l.metric, l.eventually
	collection, export, from, to := l.collection, l.export, l.from, l.to
	const perBatch = outagePerBatch

	rec.mu.Lock()
	t.Logf("writes: %d succeeded, %d retries replayed; failures: %d answered 503, %d exports cut; %d reads answered",
		rec.ok, rec.replayed, rec.unavail, rec.cut, l.readsDone.Load())
	for _, v := range rec.violations {
		t.Errorf("violation: %s", v)
	}
	rec.mu.Unlock()

	// Recovered: ready, and the background work runs again.
	must("GET", "/readyz", "", http.StatusOK)
	for _, m := range []string{`telemetry_maintenance_seal_passes_total{outcome="done"}`, `telemetry_maintenance_passes_total{outcome="done"}`} {
		n := metric(m)
		// Two passes: the second started after the writers stopped, so the
		// hour their measurements went to is sealed again.
		eventually(m+" grows after the outage", func() bool { return metric(m) > n+1 })
	}
	pool, err := pgxpool.New(ctx, dbURL)
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
	lines := strings.Split(l.logs.String(), "\n")
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
}

// tail is the end of a long log.
func tail(s string) string {
	if len(s) > 8000 {
		return "..." + s[len(s)-8000:]
	}
	return s
}
