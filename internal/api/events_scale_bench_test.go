package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// BenchmarkEventsScale: every read of the load-test events API
// (docs/events.md) through the serve binary with 4 clients, at the volume a
// team's service reaches after months unattended: EVENTS_SCALE_RUNS runs
// (default 200,000) registered over EVENTS_SCALE_DAYS days (default 365:
// EVENTS_RETENTION=0 keeps them all), each with its register and commit
// events as the API stores them, EVENTS_SCALE_RUNNING (default 5) still
// running, two of them abandoned months ago. Per case: p50 and p99, the
// answer's size, the server's resident memory at its peak, and from
// EXPLAIN (ANALYZE, BUFFERS) of the same store call the rows its
// statements read against the rows they answered (VOLUME_EXPLAIN_FILE
// keeps the text plans). Then register and commit latency with the volume
// present, against the same on the empty database before it was filled.
// EVENTS_SCALE_SECONDS (default 5) bounds each measurement. Skipped unless
// named or BIG_BENCH=1, as the other 10 M benchmarks: TESTDB_DURABLE=1 go
// test -run '^$' -bench EventsScale -benchtime 1x -timeout 60m ./internal/api
func BenchmarkEventsScale(b *testing.B) {
	bigBenchSelected(b)
	runs := volumeEnv(b, "EVENTS_SCALE_RUNS", 200_000)
	days := volumeEnv(b, "EVENTS_SCALE_DAYS", 365)
	running := volumeEnv(b, "EVENTS_SCALE_RUNNING", 5)
	d := time.Duration(volumeEnv(b, "EVENTS_SCALE_SECONDS", 5)) * time.Second
	s := newTestServer(b)
	ctx := context.Background()
	v := startVolumeServer(b, s.Pool)

	empty := eventsScaleWrites(b, v, d, "empty")
	for _, sql := range []string{"DELETE FROM events", "DELETE FROM event_runs", "VACUUM ANALYZE event_runs", "VACUUM ANALYZE events"} {
		if _, err := s.Pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	generateEventRuns(b, s.Pool, runs, days, running)

	// What the cases ask for, from the data.
	var total, committed, mainHost, rareHost int64
	if err := s.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'committed'),
		count(*) FILTER (WHERE host = 'loadgen-3'), count(*) FILTER (WHERE host = 'ci-runner-7') FROM event_runs`).
		Scan(&total, &committed, &mainHost, &rareHost); err != nil {
		b.Fatal(err)
	}
	var runningID, someID uuid.UUID
	if err := s.Pool.QueryRow(ctx, `SELECT uuid FROM event_runs WHERE state = 'running' ORDER BY started_at LIMIT 1`).Scan(&runningID); err != nil {
		b.Fatal(err)
	}
	var ids []uuid.UUID
	rows, err := s.Pool.Query(ctx, `SELECT uuid FROM event_runs WHERE state = 'committed' ORDER BY md5(uuid::text) LIMIT 1000`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	someID = ids[0]
	var runPaths []string
	for _, id := range ids {
		runPaths = append(runPaths, "/apiv0.1/events/"+id.String())
	}
	last := func(n, size int64) int64 { return max(1, (n+size-1)/size) }
	weekFrom := time.Now().UTC().Add(-time.Duration(days) * 12 * time.Hour).Truncate(time.Hour)
	weekTo := weekFrom.Add(7 * 24 * time.Hour)
	week := "&from=" + url.QueryEscape(weekFrom.Format(time.RFC3339)) + "&to=" + url.QueryEscape(weekTo.Format(time.RFC3339))
	b.Logf("%d runs (%d committed), loadgen-3 %d, ci-runner-7 %d", total, committed, mainHost, rareHost)

	list := func(f store.RunFilter, page, size int64) func(context.Context, *postgres.Store) error {
		return func(ctx context.Context, st *postgres.Store) error {
			_, err := st.Events.List(ctx, f, store.PageRequest{Limit: size, Offset: (page - 1) * size})
			return err
		}
	}
	export := func(f store.RunFilter) func(context.Context, *postgres.Store) error {
		return func(ctx context.Context, st *postgres.Store) error {
			return st.Stores().Export.Runs(ctx, f, func(store.Run) error { return nil })
		}
	}
	all := store.RunFilter{}
	committedOnly := store.RunFilter{State: store.RunCommitted}
	host := store.RunFilter{Host: "loadgen-3"}
	rare := store.RunFilter{Host: "ci-runner-7"}
	weekF := store.RunFilter{StartedFrom: &weekFrom, StartedTo: &weekTo}
	weekHost := weekF
	weekHost.Host = "loadgen-3"
	csv, ndjson := "text/csv", "application/x-ndjson"
	cases := []volumeCase{
		{name: "states p1", path: "/apiv0.1/states", direct: list(all, 1, 50)},
		{name: "states p2", path: "/apiv0.1/states?page=2", direct: list(all, 2, 50)},
		{name: "states p100", path: "/apiv0.1/states?page=100", direct: list(all, 100, 50)},
		{name: "states last page", path: fmt.Sprintf("/apiv0.1/states?page=%d", last(total, 50)), direct: list(all, last(total, 50), 50)},
		{name: "states last page size=100", path: fmt.Sprintf("/apiv0.1/states?size=100&page=%d", last(total, 100)),
			direct: list(all, last(total, 100), 100)},
		{name: "states state=running", path: "/apiv0.1/states?state=running", direct: list(store.RunFilter{State: store.RunRunning}, 1, 50)},
		{name: "states state=committed", path: "/apiv0.1/states?state=committed", direct: list(committedOnly, 1, 50)},
		{name: "states state=committed last page", path: fmt.Sprintf("/apiv0.1/states?state=committed&page=%d", last(committed, 50)),
			direct: list(committedOnly, last(committed, 50), 50)},
		{name: "states host", path: "/apiv0.1/states?host=loadgen-3", direct: list(host, 1, 50)},
		{name: "states host last page", path: fmt.Sprintf("/apiv0.1/states?host=loadgen-3&page=%d", last(mainHost, 50)),
			direct: list(host, last(mainHost, 50), 50)},
		{name: "states rare host", path: "/apiv0.1/states?host=ci-runner-7", direct: list(rare, 1, 50)},
		{name: "states mode=cluster", path: "/apiv0.1/states?mode=cluster", direct: list(store.RunFilter{Mode: "cluster"}, 1, 50)},
		{name: "states a week", path: "/apiv0.1/states?page=1" + week, direct: list(weekF, 1, 50)},
		{name: "states a week, host", path: "/apiv0.1/states?host=loadgen-3" + week, direct: list(weekHost, 1, 50)},
		{name: "states CSV (all)", path: "/apiv0.1/states", accept: csv, maxOps: 12, direct: export(all)},
		{name: "states NDJSON (all)", path: "/apiv0.1/states", accept: ndjson, maxOps: 12, direct: export(all)},
		{name: "states CSV host", path: "/apiv0.1/states?host=loadgen-3", accept: csv, maxOps: 60, direct: export(host)},
		{name: "states CSV rare host", path: "/apiv0.1/states?host=ci-runner-7", accept: csv, maxOps: 200, direct: export(rare)},
		{name: "run by uuid (1,000 committed in turn)", paths: runPaths, direct: func(ctx context.Context, st *postgres.Store) error {
			_, err := st.Events.Get(ctx, someID)
			return err
		}},
		{name: "run by uuid, running", path: "/apiv0.1/events/" + runningID.String(), direct: func(ctx context.Context, st *postgres.Store) error {
			_, err := st.Events.Get(ctx, runningID)
			return err
		}},
		{name: "run by uuid, unknown (404)", path: "/apiv0.1/events/" + uuid.NewString(), want: http.StatusNotFound},
		{name: "isrunning", path: "/apiv0.1/events/isrunning", direct: func(ctx context.Context, st *postgres.Store) error {
			_, err := st.Events.RunningKeys(ctx, "", 10000)
			return err
		}},
	}
	ex := newVolumeExplainer(b, s.Pool, volumePlans(b))
	var figs []volumeFigures
	for _, c := range cases {
		f := v.measure(b, c, d, 100000)
		ex.explain(b, c, &f)
		figs = append(figs, f)
	}
	volumeTable(b, fmt.Sprintf("Events reads, %d runs over %d days", total, days), figs)
	full := eventsScaleWrites(b, v, d, "at volume")
	volumeTable(b, "Events writes, empty database then at volume", append(empty, full...))
}

// eventsScaleWrites measures registers (the Locust client's body) for d,
// then the commits of the runs they registered.
func eventsScaleWrites(b *testing.B, v *volumeServer, d time.Duration, label string) []volumeFigures {
	b.Helper()
	var mu sync.Mutex
	var ids []string
	reg := runLoad(volumeClients, d, 20000, func(context.Context, int) error {
		var out struct {
			UUID string `json:"uuid"`
		}
		if _, err := v.send("POST", "/apiv0.1/events/register", "", []byte(eventsLocustRegister), http.StatusOK, &out); err != nil {
			return err
		}
		mu.Lock()
		ids = append(ids, out.UUID)
		mu.Unlock()
		return nil
	})
	var next int
	commit := runLoad(volumeClients, 4*d, int64(len(ids)), func(context.Context, int) error {
		mu.Lock()
		id := ids[next]
		next++
		mu.Unlock()
		_, err := v.send("POST", "/apiv0.1/events/commit", "", []byte(fmt.Sprintf(eventsLocustCommit, id)), http.StatusOK, nil)
		return err
	})
	if reg.Errors+commit.Errors > 0 {
		b.Errorf("%s: %d register errors, %d commit errors", label, reg.Errors, commit.Errors)
	}
	return []volumeFigures{{name: "register, " + label, load: reg}, {name: "commit, " + label, load: commit}}
}

// generateEventRuns fills event_runs and events server-side as the API
// writes them (queries/events.sql, RegisterRun and CommitRun): n runs whose
// starts are spread over the `days` days before now, oldest first, each
// with its register event (the Locust client's body) and, once committed,
// its commit event (requestStats of 4 to 12 endpoints and a Total row,
// kept apart from the payload as CommitRun keeps it). Hosts: 95 % of the
// runs on 10 load generators (loadgen-0..9), 5 % on 40 occasional ones
// (ci-runner-0..39). `running` runs are not committed: the newest but two,
// and two abandoned a third and two thirds of the way. Then VACUUM ANALYZE,
// as autovacuum keeps a database in service.
func generateEventRuns(b *testing.B, pool *pgxpool.Pool, n, days, running int) {
	b.Helper()
	ctx := context.Background()
	t0 := time.Now()
	for _, sql := range []string{
		`SELECT setseed(0.5)`,
		`CREATE TABLE bench_runs AS
		 SELECT g.i, md5('run-' || g.i)::uuid AS id,
		        CASE WHEN g.i % 20 = 0 THEN 'ci-runner-' || (g.i / 20) % 40 ELSE 'loadgen-' || (g.i / 3) % 10 END AS host,
		        'http://sut-' || g.i % 7 || '.example:8089' AS target,
		        CASE WHEN g.i % 5 = 0 THEN 'cluster' ELSE 'single' END AS mode,
		        (1 + (g.i * 37) % 500)::bigint AS clients, (1 + (g.i * 13) % 50)::float8 AS hatch,
		        CASE WHEN g.i % 3 = 0 THEN NULL ELSE (1000 * (1 + g.i % 100))::bigint END AS requests,
		        (g.i > $1::int - greatest($3::int - 2, 0) OR ($3::int >= 1 AND g.i = $1::int / 3)
		          OR ($3::int >= 2 AND g.i = 2 * ($1::int / 3))) AS running,
		        g.started,
		        least(now(), g.started + make_interval(secs => round(60 + least(14400, -ln(1 - random()) * 1200)))) AS ended
		 FROM (SELECT i, date_trunc('second', now() - make_interval(secs => (($1::int - i)::float8 / $1::int) * $2::int * 86400
		                                                                    + random() * $2::int * 86400 / $1::int)) AS started
		       FROM generate_series(1, $1::int) AS i) g`,
		`INSERT INTO event_runs (uuid, host, target_host, mode, clients, hatch_rate, requests, state, started_at, ended_at,
		                         registered_at, committed_at)
		 SELECT id, host, target, mode, clients, hatch, requests, CASE WHEN running THEN 'running' ELSE 'committed' END,
		        started, CASE WHEN NOT running THEN ended END, started,
		        CASE WHEN NOT running THEN ended + interval '40 milliseconds' END
		 FROM bench_runs ORDER BY i`,
		`INSERT INTO events (time, uuid, kind, host, tags, fields, payload, received_at)
		 SELECT r.started, r.id, 'register', r.host, events_payload_tags(x.p), events_payload_fields(x.p), x.p, r.started
		 FROM bench_runs r, LATERAL (SELECT jsonb_build_object('startedAt', extract(epoch FROM r.started)::bigint,
		        'hostname', r.host, 'targetHost', r.target, 'tags', jsonb_build_object('mode', r.mode, 'hostname', r.target),
		        'measurement', jsonb_build_object('fields', jsonb_build_object('clients', r.clients, 'hatchRate', r.hatch,
		            'requests', r.requests)), 'state', 'ready') AS p) x
		 ORDER BY r.i`,
		`INSERT INTO events (time, uuid, kind, host, tags, fields, request_stats, payload, received_at)
		 SELECT r.ended, r.id, 'commit', r.host, events_payload_tags(x.p), events_payload_fields(x.p),
		        x.p #> '{measurement,fields,requestStats}', x.p #- '{measurement,fields,requestStats}', r.ended
		 FROM bench_runs r,
		      LATERAL (SELECT jsonb_agg(jsonb_build_object('method', CASE WHEN k % 4 = 0 THEN 'POST' ELSE 'GET' END,
		                   'name', '/api/endpoint-' || k, 'num_requests', 100 * k + r.i % 1000, 'num_failures', (r.i + k) % 7,
		                   'avg_response_time', round((20 + random() * 200)::numeric, 3), 'min_response_time', 2 + k,
		                   'max_response_time', 500 + (r.i * k) % 4000, 'median_response_time', 20 + k * 3,
		                   'ninetieth_response_time', 120 + k * 7, 'ninety_ninth_response_time', 400 + k * 11,
		                   'current_rps', round((random() * 50)::numeric, 2), 'current_fail_per_sec', 0,
		                   'avg_content_length', 1024 + k * 100)) AS stats
		               FROM generate_series(1, 4 + r.i % 9) AS k) s,
		      LATERAL (SELECT jsonb_build_object('startedAt', extract(epoch FROM r.ended)::bigint, 'hostname', r.host,
		        'targetHost', r.target, 'user_count', r.clients,
		        'tags', jsonb_build_object('mode', r.mode, 'hostname', r.target),
		        'measurement', jsonb_build_object('fields', jsonb_build_object('requestStats', jsonb_build_object(
		            'stats', s.stats || jsonb_build_array(jsonb_build_object('method', NULL, 'name', 'Total',
		                'num_requests', 1000 + r.i % 5000, 'num_failures', r.i % 11, 'avg_response_time', 87.5,
		                'min_response_time', 2, 'max_response_time', 4500, 'median_response_time', 40, 'current_rps', 25.5,
		                'avg_content_length', 1500)),
		            'errors', CASE WHEN r.i % 11 = 0 THEN jsonb_build_array(jsonb_build_object('method', 'GET',
		                'name', '/api/endpoint-1', 'error', 'ConnectionError()', 'occurences', r.i % 11)) ELSE '[]'::jsonb END,
		            'total_rps', 25.5, 'fail_ratio', round(((r.i % 11) / 1000.0)::numeric, 4), 'state', 'stopped',
		            'user_count', r.clients))),
		        'uuid', r.id::text, 'state', 'stopped') AS p) x
		 WHERE NOT r.running
		 ORDER BY r.i`,
		`DROP TABLE bench_runs`,
		`VACUUM ANALYZE event_runs`,
		`VACUUM ANALYZE events`,
	} {
		var args []any
		if len(sql) > 20 && sql[:20] == "CREATE TABLE bench_r" {
			args = []any{n, days, running}
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%v\n%s", err, sql)
		}
	}
	var size string
	_ = pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('event_runs') + pg_total_relation_size('events'))`).Scan(&size)
	b.Logf("generated %d runs over %d days (%d running) in %s: event_runs and events %s", n, days, running,
		time.Since(t0).Round(time.Second), size)
}
