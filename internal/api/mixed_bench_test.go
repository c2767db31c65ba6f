package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/testdb"
)

// perMinute is the rate of each whole minute of counts sampled every 5 s
// (a run that drifts as its tables grow shows it here).
func perMinute(counts []int64) string {
	var out []string
	for i := 12; i < len(counts); i += 12 {
		out = append(out, strconv.FormatInt((counts[i]-counts[i-12])/60, 10))
	}
	return strings.Join(out, " ")
}

// databaseSize is the size of the benchmark's database, as psql's \l+
// shows it.
func databaseSize(b *testing.B, ctx context.Context, pool *pgxpool.Pool) string {
	var size string
	if err := pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&size); err != nil {
		b.Errorf("database size: %v", err)
	}
	return size
}

// BenchmarkMixedLoadMemory runs the real binary (`telemetry serve` with its
// defaults: self-profiling and the runtime sampler on, as in production)
// under 16 clients spread over every resource, reads and writes, for
// MIXED_DURATION (default 5m; MIXED_SECONDS is the older spelling), and
// says where the time goes (docs/performance-mixed.md):
//
//   - per operation: count, p50, p99 and max latency (a table in the log;
//     p99 of each also as a metric);
//   - overall requests/s, p50 and p99;
//   - the server's resident memory every 5 s (target: at most 150 MB, flat);
//   - the requests/s of each whole minute, and the database's size at the
//     end (a long MIXED_DURATION shows whether they drift as tables grow);
//   - CPU split over the run, from /proc: the server process, every
//     PostgreSQL process, this process (the load generator), and the rest
//     of the machine (other work sharing the cores), each in µs per request;
//   - after the run, each operation alone (MIXED_PROBE_CALLS sequential
//     calls, default 20): its server and PostgreSQL CPU per call, its share
//     of the mix's CPU, and the rate the two cores could sustain at most;
//   - the database pool's waits (/metrics).
//
// The server is a separate process so that its figures exclude the load
// generator. Options, for profiling:
//
//   - MIXED_BIN: run this binary instead of building ../../cmd/telemetry
//     (to measure another build under the same load);
//   - MIXED_CPUPROFILE=file: a CPU profile of the server over the middle of
//     the run, through PPROF_ADDR;
//   - MIXED_PG_LOG_MS=n with MIXED_PG_LOG=file: PostgreSQL logs every
//     statement of the run's database slower than n ms, copied to file;
//     with MIXED_PG_EXPLAIN=1 also their plans (auto_explain).
func BenchmarkMixedLoadMemory(b *testing.B) {
	duration := 5 * time.Minute
	if v := os.Getenv("MIXED_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("MIXED_SECONDS: %v", err)
		}
		duration = time.Duration(n) * time.Second
	}
	if v := os.Getenv("MIXED_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("MIXED_DURATION: %v", err)
		}
		duration = d
	}
	ctx := context.Background()
	pool := testdb.New(b) // migrated, and dropped at the end
	if _, err := pool.Exec(ctx, `INSERT INTO devices (id, name) SELECT 'dev' || g, 'Device ' || g FROM generate_series(0, 63) g`); err != nil {
		b.Fatal(err)
	}
	var dbName string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&dbName); err != nil {
		b.Fatal(err)
	}
	pgLog := startStatementLog(b, ctx, pool, dbName)
	url := pool.Config().ConnString()

	secret := "mixed-load-secret-0123456789abcdef"
	env := []string{"DATABASE_URL=" + url, "LISTEN_ADDR=127.0.0.1:0", "JWT_SECRET=" + secret, "LOG_LEVEL=warn"}
	profile := os.Getenv("MIXED_CPUPROFILE")
	var pprofAddr string
	if profile != "" {
		pprofAddr = freeAddr(b)
		env = append(env, "PPROF_ADDR="+pprofAddr)
	}
	// LOG_LEVEL=warn: only what went wrong reaches stderr.
	base, pid, stop := startServeBinary(b, serveBinary(b, "MIXED_BIN"), env)
	defer stop()
	token, err := auth.New([]byte(secret)).Issue(time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	lg := &mixedLoad{base: base, auth: "Bearer " + token,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}}
	lg.seed(b)
	// A database in service has planner statistics; this one was just
	// filled, and autovacuum would analyze it only some way into the run
	// (until then, plans assume empty tables).
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	ops := lg.ops()
	// The schedule: each op as many times as its weight, interleaved, so
	// that every client walks the same mix.
	var schedule []int
	for round := 0; ; round++ {
		added := false
		for i, op := range ops {
			if round < op.weight {
				schedule = append(schedule, i)
				added = true
			}
		}
		if !added {
			break
		}
	}

	var rss []int64
	var answered atomic.Int64 // requests done, also sampled every 5 s
	var answeredAt []int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			rss = append(rss, residentKB(pid))
			answeredAt = append(answeredAt, answered.Load())
			select {
			case <-tick.C:
			case <-stopSampling:
				rss = append(rss, residentKB(pid))
				return
			}
		}
	}()
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- fetchProfile(pprofAddr, duration, profile) }()
	}

	const clients = 16
	states := make([]mixedClient, clients)
	latencies := make([][][]time.Duration, clients) // client, op: latencies
	for c := range latencies {
		latencies[c] = make([][]time.Duration, len(ops))
	}
	statements := startStatementStats(b, ctx, pool)
	pool0 := lg.poolFigures()
	cpu0 := mixedCPU(pid, pool)
	var next atomic.Int64
	load := runLoad(clients, duration, 1<<40, func(_ context.Context, c int) error {
		i := schedule[int(next.Add(1))%len(schedule)]
		t0 := time.Now()
		err := ops[i].do(lg, &states[c])
		latencies[c][i] = append(latencies[c][i], time.Since(t0))
		answered.Add(1)
		if err != nil && ops[i].failed.Add(1) <= 3 {
			b.Logf("%s: %v", ops[i].name, err)
		}
		return err
	})
	cpu1 := mixedCPU(pid, pool)
	pool1 := lg.poolFigures()
	close(stopSampling)
	<-sampled

	// Per operation.
	var tab strings.Builder
	fmt.Fprintf(&tab, "\n%-28s %7s %6s %9s %9s %9s %6s\n", "operation", "count", "share", "p50 ms", "p99 ms", "max ms", "errors")
	for i, op := range ops {
		var all []time.Duration
		for c := range latencies {
			all = append(all, latencies[c][i]...)
		}
		slices.Sort(all)
		var p50, p99, top time.Duration
		if n := len(all); n > 0 {
			p50, p99, top = all[n*50/100], all[min(n-1, n*99/100)], all[n-1]
		}
		var sum time.Duration
		for _, d := range all {
			sum += d
		}
		fmt.Fprintf(&tab, "%-28s %7d %5.1f%% %9.1f %9.1f %9.1f %6d\n", op.name, len(all),
			100*float64(sum)/float64(max(1, load.Elapsed*clients)), msOf(p50), msOf(p99), msOf(top), op.failed.Load())
		b.ReportMetric(msOf(p99), op.metric+"_p99_ms")
	}
	// Printed whole: a benchmark's log is cut after a few lines.
	mixedPrint("per operation (share: of the clients' time):" + tab.String())

	// CPU split.
	req := float64(max(1, load.Requests))
	d := cpu1.sub(cpu0)
	wall := load.Elapsed.Seconds()
	other := d.machine - d.server - d.postgres - d.loadgen
	b.Logf("CPU over %.0f s of wall time (2 cores = %.0f core-s): server %.1f s, PostgreSQL %.1f s, load generator %.1f s, rest of the machine %.1f s, idle %.1f s",
		wall, 2*wall, d.server, d.postgres, d.loadgen, other, d.idle)
	b.ReportMetric(d.server/req*1e6, "server_cpu_us/req")
	b.ReportMetric(d.postgres/req*1e6, "postgres_cpu_us/req")
	b.ReportMetric(d.loadgen/req*1e6, "loadgen_cpu_us/req")
	b.ReportMetric(other/wall, "other_cores")

	statements(b)
	printFlowsUpdates(b, ctx, pool)

	// What each operation costs alone, at the data volume the run left:
	// times its weight, where the CPU of the mix goes. The vacuum and the
	// checkpoint the run has left to do are done first, or they would be
	// counted to whichever operation is probed meanwhile.
	if n := probeCalls(); n > 0 {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
			b.Fatal(err)
		}
		var probe mixedClient
		costs := make([]cpuSample, len(ops))
		var perRound float64 // server + PostgreSQL CPU seconds of one round of the schedule
		for i, op := range ops {
			c0 := mixedCPU(pid, pool)
			for k := 0; k < n; k++ {
				if err := op.do(lg, &probe); err != nil {
					b.Errorf("probe %s: %v", op.name, err)
					break
				}
			}
			costs[i] = mixedCPU(pid, pool).sub(c0)
			perRound += float64(op.weight) * (costs[i].server + costs[i].postgres) / float64(n)
		}
		var tab strings.Builder
		fmt.Fprintf(&tab, "\n%-28s %6s %12s %12s %9s\n", "operation", "weight", "server µs", "postgres µs", "CPU share")
		for i, op := range ops {
			c := costs[i]
			fmt.Fprintf(&tab, "%-28s %6d %12.0f %12.0f %8.1f%%\n", op.name, op.weight, c.server/float64(n)*1e6, c.postgres/float64(n)*1e6,
				100*float64(op.weight)*(c.server+c.postgres)/float64(n)/perRound)
		}
		perRequest := perRound / float64(len(schedule))
		fmt.Fprintf(&tab, "one request of the mix: %.0f µs of server and PostgreSQL CPU: at most %.0f requests/s on 2 cores, with nothing else running\n",
			perRequest*1e6, 2/perRequest)
		mixedPrint(fmt.Sprintf("CPU per call, each operation alone (%d calls, sequential, after the run):%s", n, tab.String()))
		b.ReportMetric(2/perRequest, "cpu_bound_requests/s")
	}

	// The database pool (/metrics): how often a request waited for a
	// connection, and how long.
	acquires := pool1["telemetry_db_pool_acquires_total"] - pool0["telemetry_db_pool_acquires_total"]
	waits := pool1["telemetry_db_pool_empty_acquires_total"] - pool0["telemetry_db_pool_empty_acquires_total"]
	waited := pool1["telemetry_db_pool_acquire_seconds_total"] - pool0["telemetry_db_pool_acquire_seconds_total"]
	b.Logf("database pool: %.0f acquires, %.0f waited for a connection (%.1f %%), %.1f s waiting in all (%.2f ms per acquire)",
		acquires, waits, 100*waits/max(1, acquires), waited, 1000*waited/max(1, acquires))
	b.ReportMetric(100*waits/max(1, acquires), "pool_waited_%")

	var peak int64
	for _, kb := range rss {
		peak = max(peak, kb)
	}
	b.ReportMetric(float64(peak)/1024, "peak_rss_MB")
	b.ReportMetric(float64(rss[len(rss)-1])/1024, "final_rss_MB")
	b.ReportMetric(load.PerSecond(), "requests/s")
	b.ReportMetric(msOf(load.P50), "p50_ms")
	b.ReportMetric(msOf(load.P99), "p99_ms")
	b.Logf("%s of mixed load: %s; resident MB every 5 s: %s", duration, load, mbList(rss))
	b.Logf("requests/s in each whole minute: %s; database size at the end: %s", perMinute(answeredAt), databaseSize(b, ctx, pool))
	if profile != "" {
		if err := <-profiled; err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	}
	pgLog(b)
	if load.Errors > 0 {
		b.Errorf("%d requests failed", load.Errors)
	}
}

// mixedOp is one operation of the mix: how often it comes (weight per
// round of the schedule) and what it sends.
type mixedOp struct {
	name, metric string
	weight       int
	do           func(lg *mixedLoad, c *mixedClient) error
	failed       atomic.Int64
}

// mixedClient is one client's own state: the runs it registered and has
// not committed yet, and the last ones it committed (it reads them back).
type mixedClient struct {
	n         int
	running   []string
	committed []string
}

// mixedLoad is the load generator: one HTTP client, prebuilt bodies.
type mixedLoad struct {
	base, auth string
	client     *http.Client
	collection string // the path of the collection the clients read
	hour       int64  // the current hour, epoch hours
	flows      [][]byte
	meas       [][]byte
	seq        atomic.Int64
}

// call sends one request and reads the whole answer; into, when not nil,
// receives the decoded JSON body.
func (lg *mixedLoad) call(method, path string, body []byte, into any) error {
	var r io.Reader = http.NoBody
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, lg.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", lg.auth)
	res, err := lg.client.Do(req)
	if err != nil {
		return err
	}
	defer drain(res)
	if res.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 300))
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, msg)
	}
	if into != nil {
		return json.NewDecoder(res.Body).Decode(into)
	}
	return nil
}

// seed prepares the bodies and the data the reads need at the start: a
// collection, a week of measurements (MIXED_SEED_MEASUREMENTS, default
// 100,000, through the API so that the rollups hold them too) and the
// day's flows.
func (lg *mixedLoad) seed(b *testing.B) {
	now := time.Now()
	lg.hour = now.Unix() / 3600
	// 10 flow batches of 1,000 distinct keys each: 10,000 flows in the
	// current hour, upserted again and again (a flow is a total per hour).
	for k := 0; k < 10; k++ {
		var f bytes.Buffer
		f.WriteString("[")
		for i := 0; i < 1000; i++ {
			if i > 0 {
				f.WriteString(",")
			}
			fmt.Fprintf(&f, `{"src_app":"app-%d","dest_app":"db-%d","vpc_id":"vpc-%d","bytes_tx":%d,"bytes_rx":%d,"hour":%d}`,
				k*100+i%100, i%7, i%3, i+1, 2*i+1, lg.hour)
		}
		f.WriteString("]")
		lg.flows = append(lg.flows, f.Bytes())
	}
	// 8 measurement batches of 200 records over 40 endpoints, ending now.
	for k := 0; k < 8; k++ {
		lg.meas = append(lg.meas, measurementBatch(200, k, func(i int) float64 { return float64(now.Unix()) - float64(i)*0.05 }))
	}
	var created struct{ URI string }
	if err := lg.call("POST", collectionsPath, nil, &created); err != nil {
		b.Fatal(err)
	}
	lg.collection = "/appmetrics/api/v1/" + created.URI
	seed := 100_000
	if v := os.Getenv("MIXED_SEED_MEASUREMENTS"); v != "" {
		seed, _ = strconv.Atoi(v)
	}
	week := 7 * 24 * time.Hour.Seconds()
	for done := 0; done < seed; done += 1000 {
		body := measurementBatch(1000, done/1000, func(i int) float64 {
			return float64(now.Unix()) - week*float64(done+i)/float64(seed)
		})
		if err := lg.call("POST", "/api/measurements", body, nil); err != nil {
			b.Fatalf("seeding measurements: %v", err)
		}
	}
	for h := int64(1); h <= 24; h++ {
		body := bytes.ReplaceAll(lg.flows[h%10], []byte(fmt.Sprintf(`"hour":%d`, lg.hour)), []byte(fmt.Sprintf(`"hour":%d`, lg.hour-h)))
		if err := lg.call("POST", "/flows", body, nil); err != nil {
			b.Fatalf("seeding flows: %v", err)
		}
	}
}

// measurementBatch is n records of endpoint k*7+i%40 started at at(i).
func measurementBatch(n, k int, at func(i int) float64) []byte {
	var m bytes.Buffer
	m.WriteString("[")
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	for i := 0; i < n; i++ {
		if i > 0 {
			m.WriteString(",")
		}
		start := at(i)
		fmt.Fprintf(&m, `{"name":"/api/item%d/<id>","method":%q,"startedAt":%.3f,"endedAt":%.3f,"kwargs":{"id":%d},"app":"shop"}`,
			(k*7+i)%40, methods[(k+i)%len(methods)], start, start+0.002+float64(i%97)/1000, i)
	}
	m.WriteString("]")
	return m.Bytes()
}

// ops is the mix: device reports dominate (one metric per request, from
// 64 devices), each resource is written and read, and every read asks
// what a dashboard or a client of that resource asks.
func (lg *mixedLoad) ops() []*mixedOp {
	report := []byte(`{"name":"cpu","value":42.5,"units":"percent","type":"float","slope":"both","ttl":60}`)
	dev := func() int64 { return lg.seq.Add(1) % 64 }
	register := []byte(`{"host":"loadgen","measurement":{"fields":{"clients":16,"hatchRate":1,"requests":1000},"tags":{"targetHost":"http://10.0.0.1","mode":"single"}}}`)
	hourQ := "?hour=" + strconv.FormatInt(lg.hour, 10)
	return []*mixedOp{
		// writes
		{name: "PUT /mrd/{id}/metrics", metric: "put_mrd", weight: 16, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("PUT", fmt.Sprintf("/mrd/dev%d/metrics", dev()), report, nil)
		}},
		{name: "POST /api/measurements 200", metric: "post_meas", weight: 1, do: func(lg *mixedLoad, c *mixedClient) error {
			c.n++
			return lg.call("POST", "/api/measurements", lg.meas[c.n%len(lg.meas)], nil)
		}},
		{name: "POST /flows 1000", metric: "post_flows", weight: 1, do: func(lg *mixedLoad, c *mixedClient) error {
			c.n++
			return lg.call("POST", "/flows", lg.flows[c.n%len(lg.flows)], nil)
		}},
		{name: "POST events/register", metric: "register", weight: 1, do: func(lg *mixedLoad, c *mixedClient) error {
			var out struct{ UUID string }
			err := lg.call("POST", "/apiv0.1/events/register", register, &out)
			if err == nil {
				c.running = append(c.running, out.UUID)
			}
			return err
		}},
		{name: "POST events/commit", metric: "commit", weight: 1, do: func(lg *mixedLoad, c *mixedClient) error {
			if len(c.running) == 0 {
				return nil
			}
			id := c.running[0]
			c.running = c.running[1:]
			body := fmt.Sprintf(`{"uuid":%q,"host":"loadgen","measurement":{"fields":{"requestStats":{"stats":[{"name":"/","num_requests":1000,"num_failures":0,"avg_response_time":12.5}]}}}}`, id)
			err := lg.call("POST", "/apiv0.1/events/commit", []byte(body), nil)
			if err == nil {
				c.committed = append(c.committed[max(0, len(c.committed)-9):], id)
			}
			return err
		}},
		// reads
		{name: "GET /mrd/devices/{id}/metrics", metric: "mrd_current", weight: 2, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", fmt.Sprintf("/mrd/devices/dev%d/metrics", dev()), nil, nil)
		}},
		{name: "GET .../history?bucket=1m", metric: "mrd_history_1m", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			return lg.call("GET", fmt.Sprintf("/mrd/devices/dev%d/metrics/cpu/history?bucket=1m&from=%s", dev(), from), nil, nil)
		}},
		{name: "GET .../history (raw)", metric: "mrd_history", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", fmt.Sprintf("/mrd/devices/dev%d/metrics/cpu/history", dev()), nil, nil)
		}},
		{name: "GET /mrd/devices", metric: "mrd_devices", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/mrd/devices", nil, nil)
		}},
		{name: "GET /mrd/metrics/current", metric: "mrd_names", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/mrd/metrics/current", nil, nil)
		}},
		{name: "GET /flows?hour", metric: "flows_list", weight: 1, do: func(lg *mixedLoad, c *mixedClient) error {
			c.n++
			return lg.call("GET", fmt.Sprintf("/flows%s&page=%d", hourQ, 1+c.n%3), nil, nil)
		}},
		{name: "GET /flows/summary", metric: "flows_summary", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/flows/summary"+hourQ+"&by=src_app", nil, nil)
		}},
		{name: "GET /api/measurements/", metric: "meas_list", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/api/measurements/", nil, nil)
		}},
		{name: "GET measurements grouped", metric: "meas_grouped", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/api/measurements/grouped/", nil, nil)
		}},
		{name: "GET measurements timeseries", metric: "meas_timeseries", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/api/measurements/timeseries/?interval=hourly", nil, nil)
		}},
		{name: "GET methodDistribution", metric: "meas_distribution", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/api/measurements/methodDistribution/", nil, nil)
		}},
		{name: "GET /apiv0.1/states", metric: "states", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/apiv0.1/states", nil, nil)
		}},
		{name: "GET /apiv0.1/events/{uuid}", metric: "event_get", weight: 1, do: func(lg *mixedLoad, c *mixedClient) error {
			if len(c.committed) == 0 {
				return lg.call("GET", "/apiv0.1/events/isrunning", nil, nil)
			}
			c.n++
			return lg.call("GET", "/apiv0.1/events/"+c.committed[c.n%len(c.committed)], nil, nil)
		}},
		{name: "GET events/isrunning", metric: "isrunning", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", "/apiv0.1/events/isrunning", nil, nil)
		}},
		{name: "GET collections", metric: "collections", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", collectionsPath, nil, nil)
		}},
		{name: "GET collections/{id}", metric: "collection", weight: 1, do: func(lg *mixedLoad, _ *mixedClient) error {
			return lg.call("GET", lg.collection, nil, nil)
		}},
	}
}

// mixedPrint writes a table to stdout, each line prefixed so that make
// bench copies it into docs/benchmarks.md.
func mixedPrint(s string) {
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Println("    mixed: " + line)
	}
}

// probeCalls is how many sequential calls of each operation measure its
// CPU cost after the run (MIXED_PROBE_CALLS, default 20; 0: none).
func probeCalls() int {
	if v := os.Getenv("MIXED_PROBE_CALLS"); v != "" {
		n, _ := strconv.Atoi(v)
		return n
	}
	return 20
}

// poolFigures reads the pool's counters from the server's /metrics.
func (lg *mixedLoad) poolFigures() map[string]float64 {
	out := map[string]float64{}
	res, err := lg.client.Get(lg.base + "/metrics")
	if err != nil {
		return out
	}
	defer drain(res)
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && strings.HasPrefix(name, "telemetry_db_pool_") && !strings.Contains(name, "{") {
			out[name], _ = strconv.ParseFloat(value, 64)
		}
	}
	return out
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fetchProfile saves a CPU profile of the server over the run, less its
// first and last 5 s.
func fetchProfile(addr string, run time.Duration, file string) error {
	time.Sleep(5 * time.Second)
	secs := int((run - 10*time.Second).Seconds())
	if secs < 1 {
		return fmt.Errorf("the run is too short to profile (%s)", run)
	}
	res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", res.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, res.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// startStatementLog, with MIXED_PG_LOG_MS and MIXED_PG_LOG set, makes
// PostgreSQL log the run database's statements slower than that, and
// returns what copies the log's new lines to MIXED_PG_LOG at the end.
// The server's log is the file beside its data directory (the harness's
// postgres.log; pgcluster).
func startStatementLog(b *testing.B, ctx context.Context, pool *pgxpool.Pool, dbName string) func(*testing.B) {
	threshold, dst := os.Getenv("MIXED_PG_LOG_MS"), os.Getenv("MIXED_PG_LOG")
	if threshold == "" || dst == "" {
		return func(*testing.B) {}
	}
	if _, err := strconv.Atoi(threshold); err != nil {
		b.Fatalf("MIXED_PG_LOG_MS: %v", err)
	}
	var dataDir string
	if err := pool.QueryRow(ctx, `SHOW data_directory`).Scan(&dataDir); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(filepath.Dir(dataDir), "postgres.log")
	st, err := os.Stat(src)
	if err != nil {
		b.Fatalf("MIXED_PG_LOG: the server's log: %v", err)
	}
	from := st.Size()
	settings := []string{"log_min_duration_statement = " + threshold}
	if os.Getenv("MIXED_PG_EXPLAIN") == "1" {
		// The plans of the slow statements, with their row counts and
		// buffers (no per-node timing: it would slow every statement).
		settings = append(settings, "session_preload_libraries = 'auto_explain'",
			"auto_explain.log_min_duration = "+threshold, "auto_explain.log_analyze = on",
			"auto_explain.log_buffers = on", "auto_explain.log_timing = off",
			// The statements inside functions (collection_http's, say).
			"auto_explain.log_nested_statements = on")
	}
	for _, set := range settings {
		if _, err := pool.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{dbName}.Sanitize()+" SET "+set); err != nil {
			b.Fatal(err)
		}
	}
	return func(b *testing.B) {
		f, err := os.Open(src)
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			b.Error(err)
			return
		}
		out, err := os.Create(dst)
		if err != nil {
			b.Error(err)
			return
		}
		defer out.Close()
		if _, err := io.Copy(out, f); err != nil {
			b.Error(err)
		}
	}
}

// cpuSample is CPU seconds used so far: by the server, by PostgreSQL (the
// postmaster, its live children, and the children it reaped), by this
// process, and by the whole machine (busy and idle, /proc/stat).
type cpuSample struct {
	server, postgres, loadgen, machine, idle float64
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{a.server - b.server, a.postgres - b.postgres, a.loadgen - b.loadgen, a.machine - b.machine, a.idle - b.idle}
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100.0

func mixedCPU(server int, pool *pgxpool.Pool) cpuSample {
	var s cpuSample
	s.server = procCPU(server, false)
	s.loadgen = procCPU(os.Getpid(), false)
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err == nil {
		if postmaster := procParent(backend); postmaster > 0 {
			s.postgres = procCPU(postmaster, true)
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				pid, err := strconv.Atoi(e.Name())
				if err == nil && procParent(pid) == postmaster {
					s.postgres += procCPU(pid, false)
				}
			}
		}
	}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			if i == 4 || i == 5 {
				s.idle += v / clockTicks
			} else {
				s.machine += v / clockTicks
			}
		}
	}
	return s
}

// procStat is the fields of /proc/pid/stat after the command.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(data[i+1:])) // [0] is the state (field 3)
}

func procParent(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procCPU is a process's user and system CPU seconds, with its reaped
// children's when children is true.
func procCPU(pid int, children bool) float64 {
	f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	last := 13 // utime, stime are fields 14 and 15: f[11], f[12]
	if children {
		last = 15
	}
	var ticks float64
	for i := 11; i < last; i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / clockTicks
}

// residentKB is a process's resident set size in KiB (VmRSS).
func residentKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return 0
}

func mbList(kbs []int64) string {
	parts := make([]string, len(kbs))
	for i, kb := range kbs {
		parts[i] = strconv.FormatInt(kb/1024, 10)
	}
	return strings.Join(parts, " ")
}

// printFlowsUpdates prints how many updates of flows (on TimescaleDB of its
// chunks) were HOT since the database was created: POST /flows re-adds to
// the same keys, and each update that is not HOT writes an entry in every
// index of flows (migration 00032).
func printFlowsUpdates(b *testing.B, ctx context.Context, pool *pgxpool.Pool) {
	st, err := testdb.ReadTableStats(ctx, pool, "flows")
	if err != nil {
		b.Error(err)
		return
	}
	mixedPrint(fmt.Sprintf("flows: %d updates, %d HOT (%.0f %%); %d live rows, %d dead; %.1f MB with its indexes",
		st.Updates, st.HOTUpdates, 100*float64(st.HOTUpdates)/float64(max(st.Updates, 1)), st.Live, st.Dead, float64(st.Bytes)/(1<<20)))
}

// startStatementStats, when the server preloads pg_stat_statements
// (TESTDB_STAT_STATEMENTS=1), resets it and returns what prints the run
// database's statements that took the most execution time over the run:
// calls, mean planning and execution time, the fastest execution and the
// share of all execution time. Times are wall clock inside PostgreSQL: under
// the saturated load they include waiting for a core and for locks, so the
// fastest execution is the closest to a statement's own cost.
func startStatementStats(b *testing.B, ctx context.Context, pool *pgxpool.Pool) func(*testing.B) {
	var libs string
	if err := pool.QueryRow(ctx, `SHOW shared_preload_libraries`).Scan(&libs); err != nil || !strings.Contains(libs, "pg_stat_statements") {
		return func(*testing.B) {}
	}
	if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		b.Fatal(err)
	}
	return func(b *testing.B) {
		rows, err := pool.Query(ctx, `
			SELECT s.calls, s.mean_plan_time, s.mean_exec_time, s.min_exec_time,
			       100 * s.total_exec_time / sum(s.total_exec_time) OVER (),
			       regexp_replace(split_part(ltrim(s.query), E'\n', 1), '^-- name: (\S+).*$', '\1')
			FROM pg_stat_statements s
			WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			ORDER BY s.total_exec_time DESC LIMIT 15`)
		if err != nil {
			b.Error(err)
			return
		}
		defer rows.Close()
		var tab strings.Builder
		fmt.Fprintf(&tab, "\n%-36s %7s %9s %9s %9s %6s\n", "statement", "calls", "plan ms", "exec ms", "min ms", "share")
		for rows.Next() {
			var calls int64
			var plan, exec, least, share float64
			var name string
			if err := rows.Scan(&calls, &plan, &exec, &least, &share, &name); err != nil {
				b.Error(err)
				return
			}
			fmt.Fprintf(&tab, "%-36.36s %7d %9.2f %9.2f %9.2f %5.1f%%\n", name, calls, plan, exec, least, share)
		}
		if err := rows.Err(); err != nil {
			b.Error(err)
			return
		}
		mixedPrint("statements over the run, by execution time (pg_stat_statements; mean times in ms):" + tab.String())
	}
}
