package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// BenchmarkCollectionsScale: every read of the metrics collections API
// (docs/collections.md) through the serve binary with 4 clients, at the
// volume its tables reach after months of service: the runtime samples of
// COLLECTIONS_SCALE_INSTANCES instances (default 2, each restarted daily, a
// new instance id each time) every 5 s over RUNTIME_SAMPLES_RETENTION's 7
// days; COLLECTIONS_SCALE_REQUESTS self-profiled requests (default
// 2,000,000 rows of app telemetry, one in 50 a summary row of 20 requests)
// over MEASUREMENTS_RETENTION's 30 days, one in 10 a GET of a run by uuid
// among COLLECTIONS_SCALE_PATHS runs (default 200,000: a new path each,
// as the events API's are); and the 10 collections the API allows
// (api.MaxCollections) open for 45 days down to a minute, their ids past
// 1,990 (created and deleted over the months). The minute cells, 10-second
// bins and each collection's running totals are built from the rows by
// RebuildRollup, the service's own statements, the samples' hourly cells by
// the trigger that adds each inserted sample to its cell (migration 00054). Per case: p50 and p99, the
// answer's size, the server's resident memory at its peak, and from EXPLAIN
// (ANALYZE, BUFFERS) of the same store calls the rows their statements read
// (VOLUME_EXPLAIN_FILE keeps the plans). Then the writes: a self-profiling
// batch (Measurements.Insert of 100 requests, which adds to every open
// collection's totals), create + delete, and a clear, with the volume
// present and on the empty database before it was filled.
// COLLECTIONS_SCALE_SECONDS (default 5) bounds each measurement. Skipped
// unless named or BIG_BENCH=1: TESTDB_DURABLE=1 go test -run '^$' -bench
// CollectionsScale -benchtime 1x -timeout 60m ./internal/api
func BenchmarkCollectionsScale(b *testing.B) {
	bigBenchSelected(b)
	instances := volumeEnv(b, "COLLECTIONS_SCALE_INSTANCES", 2)
	requests := volumeEnv(b, "COLLECTIONS_SCALE_REQUESTS", 2_000_000)
	paths := volumeEnv(b, "COLLECTIONS_SCALE_PATHS", 200_000)
	d := time.Duration(volumeEnv(b, "COLLECTIONS_SCALE_SECONDS", 5)) * time.Second
	s := newTestServer(b)
	ctx := context.Background()
	v := startVolumeServer(b, s.Pool)
	st := postgres.New(s.Pool, postgres.Options{})

	// The writes on the empty database, with 10 fresh collections open.
	var fresh []int64
	for range 10 {
		id, err := st.Collections.Create(ctx, 10)
		if err != nil {
			b.Fatal(err)
		}
		fresh = append(fresh, id)
	}
	empty := collectionsScaleWrites(b, v, st, d, fresh, "empty")
	for _, id := range fresh {
		if err := st.Collections.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			b.Fatal(err)
		}
	}
	for _, sql := range []string{"DELETE FROM collections", "DELETE FROM measurements", "DELETE FROM runtime_samples"} {
		if _, err := s.Pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	ids := generateCollections(b, s.Pool, instances, requests, paths)

	type window struct {
		name string
		id   int64
	}
	var windows []window
	rows, err := s.Pool.Query(ctx, `SELECT id, now() - started_at FROM collections ORDER BY started_at`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var age time.Duration
		if err := rows.Scan(&id, &age); err != nil {
			b.Fatal(err)
		}
		windows = append(windows, window{fmt.Sprintf("collection open %s", age.Round(time.Minute)), id})
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	var entries []int64
	for _, w := range windows {
		var n int64
		if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM collection_http_totals WHERE collection_id = $1`, w.id).Scan(&n); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, n)
	}
	b.Logf("collections %v, httpUrls entries %v", ids, entries)

	get := func(id int64) func(context.Context, *postgres.Store) error {
		return func(ctx context.Context, st *postgres.Store) error {
			w, err := st.Collections.Window(ctx, id)
			if err != nil {
				return err
			}
			if _, err := st.Collections.Runtime(ctx, w.Start, w.End); err != nil {
				return err
			}
			_, err = st.Collections.HTTPTotals(ctx, id)
			return err
		}
	}
	cases := []volumeCase{
		{name: "collections list", path: collectionsURL, direct: func(ctx context.Context, st *postgres.Store) error {
			_, err := st.Collections.IDs(ctx)
			return err
		}},
	}
	for i, w := range windows {
		cases = append(cases, volumeCase{name: fmt.Sprintf("%s (%d entries)", w.name, entries[i]),
			path: collectionsURL + "/" + strconv.FormatInt(w.id, 10), direct: get(w.id)})
	}
	cases = append(cases, volumeCase{name: "collection unknown (404)", path: collectionsURL + "/1", want: http.StatusNotFound})
	ex := newVolumeExplainer(b, s.Pool, volumePlans(b))
	var figs []volumeFigures
	for _, c := range cases {
		f := v.measure(b, c, d, 100000)
		ex.explain(b, c, &f)
		figs = append(figs, f)
	}
	volumeTable(b, fmt.Sprintf("Collections reads, %d requests over 30 days, %d instances", requests, instances), figs)
	full := collectionsScaleWrites(b, v, st, d, ids, "at volume")
	volumeTable(b, "Collections writes, empty database then at volume", append(empty, full...))
}

// collectionsScaleWrites measures, with the collections ids open: a
// self-profiling batch of 100 requests (2 clients: the service writes one
// a second per instance), then create + delete (one client: at most 10
// collections exist, the last id is deleted first to make room and created
// again at the end), then clears of the newest collection.
func collectionsScaleWrites(b *testing.B, v *volumeServer, st *postgres.Store, d time.Duration, ids []int64, label string) []volumeFigures {
	b.Helper()
	ctx := context.Background()
	batch := func(n int) []store.Measurement {
		now := time.Now()
		recs := make([]store.Measurement, n)
		for i := range recs {
			path := "/apiv0.1/states"
			if i%10 == 0 {
				path = fmt.Sprintf("/apiv0.1/events/%08x-0000-4000-8000-%012x", i, now.UnixNano())
			}
			c, _ := json.Marshal(map[string]any{"url": path, "path": path, "args": map[string]string{},
				"headers": map[string]string{"User-Agent": "bench"}, "ip": "127.0.0.1", "status": 200, "func": "listStates"})
			recs[i] = store.Measurement{StartedAt: now, EndedAt: now.Add(3 * time.Millisecond), Elapsed: 0.003,
				Name: "/apiv0.1/states", Method: "GET", Args: []byte("[]"), Kwargs: []byte("{}"), Context: c, App: "telemetry"}
		}
		return recs
	}
	insert := runLoad(2, d, 2000, func(ctx context.Context, _ int) error {
		_, err := st.Measurements.Insert(ctx, batch(100))
		return err
	})
	last := ids[len(ids)-1]
	if err := st.Collections.Delete(ctx, last); err != nil {
		b.Fatal(err)
	}
	var created int64
	create := runLoad(1, d, 2000, func(context.Context, int) error {
		var out struct {
			URI string `json:"uri"`
		}
		if _, err := v.send("POST", collectionsURL, "", nil, http.StatusCreated, &out); err != nil {
			return err
		}
		var err error
		created, err = strconv.ParseInt(out.URI[len("collections/"):], 10, 64)
		if err != nil {
			return err
		}
		_, err = v.send("DELETE", collectionsURL+"/"+strconv.FormatInt(created, 10), "", nil, http.StatusNoContent, nil)
		return err
	})
	id, err := st.Collections.Create(ctx, 10)
	if err != nil {
		b.Fatal(err)
	}
	clear := runLoad(1, d, 2000, func(context.Context, int) error {
		_, err := v.send("PUT", collectionsURL+"/"+strconv.FormatInt(id, 10), "", nil, http.StatusNoContent, nil)
		return err
	})
	if insert.Errors+create.Errors+clear.Errors > 0 {
		b.Errorf("%s: errors: insert %d, create+delete %d, clear %d", label, insert.Errors, create.Errors, clear.Errors)
	}
	return []volumeFigures{{name: "self-profiling batch of 100, " + label, load: insert},
		{name: "create + delete, " + label, load: create}, {name: "clear (newest), " + label, load: clear}}
}

// generateCollections fills runtime_samples and measurements (app
// telemetry) server-side, opens the 10 collections, and builds the cells,
// bins and totals with RebuildRollup; then VACUUM ANALYZE. It returns the
// collections' ids, oldest window first.
func generateCollections(b *testing.B, pool *pgxpool.Pool, instances, requests, paths int) []int64 {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	t0 := time.Now()
	exec := func(sql string, args ...any) {
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%v\n%s", err, sql)
		}
	}
	exec(`SELECT setseed(0.25)`)
	// A sample every 5 s per instance slot, each slot's process restarted
	// at midnight UTC (a new instance id), over the last 7 days.
	exec(`INSERT INTO runtime_samples (time, instance_id, interval_seconds, process_cpu, system_cpu, gc_cpu_seconds,
	          gc_pause_seconds, gc_cycles, gomaxprocs, heap_live_bytes, go_memory_bytes, rss_bytes, goroutines)
	      SELECT t.t + make_interval(secs => k * 1.3), md5('instance-' || k || '-' || floor(extract(epoch FROM t.t) / 86400))::uuid,
	             5, random() * 0.05, 0.1 + random() * 0.3, random() * 0.01, random() * 0.001, (random() * 2)::bigint, 2,
	             (20 + random() * 40)::bigint << 20, 80::bigint << 20, (90 + random() * 40)::bigint << 20, 40 + (random() * 40)::bigint
	      FROM generate_series($1::timestamptz - interval '7 days' + interval '10 minutes', $1::timestamptz, interval '5 seconds') AS t(t),
	           generate_series(0, $2::int - 1) AS k
	      ORDER BY 1`, now, instances)
	// Their hourly cells were added to by the trigger as they went in
	// (migration 00054).
	// The service's own requests, as self-profiling writes them
	// (internal/selfprofile): 30 routes, and one in 10 a run by uuid.
	exec(`INSERT INTO measurements (started_at, ended_at, elapsed, name, method, args, kwargs, context, app)
	      SELECT g.s, g.s + make_interval(secs => g.e), g.e, g.name, g.method, '[]', '{}',
	             jsonb_build_object('url', g.path, 'path', g.path, 'args', '{}'::jsonb,
	                 'headers', '{"User-Agent": "locust/2.31", "Accept": "application/json"}'::jsonb,
	                 'ip', '127.0.0.1', 'status', 200, 'func', 'op' || g.r)
	             || CASE WHEN g.i % 50 = 0 THEN jsonb_build_object('count', 20, 'elapsedTotal', g.e * 20, 'elapsedMax', g.e * 3)
	                     ELSE '{}'::jsonb END,
	             'telemetry'
	      FROM (SELECT i, r, s, e,
	                   CASE WHEN i % 10 = 0 THEN '/apiv0.1/events/{uuid}' ELSE '/route-' || r END AS name,
	                   CASE WHEN i % 10 = 0 THEN '/apiv0.1/events/' || md5('run-' || (hashint4(i) & 2147483647) % $3::int)::uuid
	                        ELSE '/route-' || r END AS path,
	                   CASE WHEN r % 5 = 0 THEN 'POST' ELSE 'GET' END AS method
	            FROM (SELECT i, i % 30 AS r,
	                         $1::timestamptz - make_interval(secs => (($2::int - i)::float8 / $2::int) * (30 * 86400 - 3600)) AS s,
	                         -ln(1 - random()) * 0.005 AS e
	                  FROM generate_series(1, $2::int) AS i) x) g
	      ORDER BY g.i`, now, requests, paths)
	load := time.Since(t0)
	// Ids past 1,990, then the 10 windows.
	exec(`ALTER TABLE collections ALTER COLUMN id RESTART WITH 1990`)
	exec(`INSERT INTO collections (started_at, created_at)
	      SELECT $1::timestamptz - w, $1::timestamptz - w
	      FROM unnest(ARRAY[interval '45 days', '30 days', '14 days', '7 days', '3 days', '1 day', '6 hours', '1 hour',
	                        '10 minutes', '1 minute']) AS w`, now)
	t1 := time.Now()
	if err := postgres.New(pool, postgres.Options{}).Measurements.RebuildRollup(ctx, now.AddDate(0, 0, -31), now.Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	rebuild := time.Since(t1)
	exec(`VACUUM ANALYZE`)
	var ids []int64
	rows, err := pool.Query(ctx, `SELECT id FROM collections ORDER BY started_at`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	var samples, totals, cells, bins int64
	_ = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM runtime_samples), (SELECT count(*) FROM collection_http_totals),
		(SELECT count(*) FROM collection_http_minute), (SELECT count(*) FROM collection_http_10s)`).Scan(&samples, &totals, &cells, &bins)
	b.Logf("generated %d samples, %d requests in %s; rebuilt %d minute cells, %d bins, %d totals in %s; total %s",
		samples, requests, load.Round(time.Second), cells, bins, totals, rebuild.Round(time.Second), time.Since(t0).Round(time.Second))
	return ids
}
