package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// BenchmarkDevicesTarget measures, in one run, the figures issue 14's first
// two targets are judged by:
//
//   - pgbench_tps: pgbench, 64 clients, one INSERT per transaction into a
//     table of device_metrics' columns (and indexes), the baseline;
//   - put_on: PUT /mrd/{id}/metrics through wrk, 64 connections, valid
//     tokens, one metric per request, every 200 committed, with the
//     service's default settings (self-profiling on, every request recorded);
//   - put_off: the same with self-profiling off (SELF_PROFILE=false);
//   - flows_on / flows_off: GET /flows?hour=1 the same way, on and off;
//   - ratio_put = put_on / pgbench_tps (target >= 1.0, put_on p99 <= 15 ms),
//     overhead_put and overhead_flows = 1 - on/off (target <= 0.05).
//
// Both servers (on and off) are built as serve builds them (JSON request
// log, to io.Discard here) on one store and one pool, in this process; wrk
// and pgbench run outside it, on the same cores. Each round runs every
// figure for BENCH_SECONDS (default 5) and the rounds (BENCH_ROUNDS, default
// 6) alternate the order of on and off, so that drift over the run falls on
// both; a figure is the sum over rounds, with two p99s: that of all its
// requests (<figure>_p99_all_ms, pooled from the rounds' latency
// percentiles: pooledQuantile) and the worst round's (<figure>_p99_ms, the
// p99 of its slowest seconds alone, as reported before 2026-12-05). With 2
// rounds the GET /flows overhead moved between -11 % and +11 % from run to
// run, more than the 5 % it is judged against (docs/devices.md). The
// self-profiler's drops are reported (selfprofile_dropped): recording must
// not get cheap by losing records. BENCH_ONLY=<figure> runs one figure
// once (for -cpuprofile). It needs wrk and pgbench (`make bench`
// installs both when it can) and skips without them.
func BenchmarkDevicesTarget(b *testing.B) {
	wrk := wrkPath()
	pgbench := pgbenchPath()
	if wrk == "" || pgbench == "" {
		b.Skip("needs wrk and pgbench (Debian packages wrk and postgresql; `make bench` installs them)")
	}
	ctx := context.Background()
	const clients = 64
	perFigure := 5 * time.Second
	if v, err := strconv.Atoi(os.Getenv("BENCH_SECONDS")); err == nil && v > 0 {
		perFigure = time.Duration(v) * time.Second
	}
	rounds := 6
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}

	url := testdb.URL(b)
	pool, err := pgxpool.New(ctx, url+"&pool_max_conns=16") // serve's default size
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	for c := 0; c < clients; c++ {
		if _, err := pool.Exec(ctx, `INSERT INTO devices (id, name) VALUES ($1, $1)`, fmt.Sprintf("bench%02d", c)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_device_metrics
		(LIKE device_metrics INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`); err != nil {
		b.Fatal(err)
	}

	cfg, err := config.Load(func(string) string { return "" }) // the defaults
	if err != nil {
		b.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	prom := metrics.New()
	st := postgres.New(pool, postgres.Options{
		DeviceWriters:  cfg.DeviceMetricsWriters,
		DeviceMaxBatch: cfg.DeviceMetricsBatch,
		ObserveBatch: func(resource string, n int) {
			prom.BatchItems.WithLabelValues(resource).Observe(float64(n))
		},
	})
	defer st.Devices.Close()
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if !cfg.SelfProfile || cfg.SelfProfileSample != 1 {
		b.Fatalf("self-profiling is not on for every request by default any more: adjust this benchmark")
	}
	prof := selfprofile.New(st.Measurements, log, prom.Registry, selfprofile.Config{
		Sample: cfg.SelfProfileSample, Exclude: cfg.SelfProfileExclude, Detail: cfg.SelfProfileDetail})
	prof.Start()
	defer prof.Close(ctx)
	on, _ := New(Deps{Store: st.Stores(), Log: log, Metrics: prom, Config: cfg, Profiler: prof})
	off, _ := New(Deps{Store: st.Stores(), Log: log, Metrics: prom, Config: cfg})
	srvOn, srvOff := httptest.NewServer(on), httptest.NewServer(off)
	defer srvOn.Close()
	defer srvOff.Close()

	res, err := http.Post(srvOff.URL+"/flows", "application/json", bytes.NewBufferString(seedFlows))
	if err != nil || res.StatusCode != http.StatusCreated {
		b.Fatalf("seeding flows: %v %v", err, res)
	}
	res.Body.Close()
	token := "Bearer " + validToken(b)

	// The pgbench script: the row the API stores for a report.
	dir := b.TempDir()
	script := filepath.Join(dir, "insert.sql")
	if err := os.WriteFile(script, []byte(`INSERT INTO bench_device_metrics (time, device_id, name, type, value_num, units, slope, ttl) `+
		`VALUES (now(), 'bench' || lpad((:client_id % 64)::text, 2, '0'), 'cpu.load', 'int32', :client_id, 'percent', 'both', 60);`+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}

	type figure struct {
		stats  loadStats
		rounds []loadStats // for the p99 of all its requests (pooledQuantile)
		p99All time.Duration
		cpu    cpuTimes // of this process and PostgreSQL
		genCPU time.Duration
		rows   float64 // device metric rows and batches committed
		batch  float64
		prof   float64 // self-profiling rows written
		wal    float64 // WAL bytes written (the cluster's, over the figure)
	}
	figures := map[string]*figure{}
	perRound := map[string][]float64{} // each round's requests/s of a figure
	add := func(name string, s loadStats, cpu cpuTimes, gen time.Duration, rows, batches, prof, wal float64) {
		f := figures[name]
		if f == nil {
			f = &figure{}
			figures[name] = f
		}
		perRound[name] = append(perRound[name], s.PerSecond())
		f.rounds = append(f.rounds, s)
		f.stats.Requests += s.Requests
		f.stats.Errors += s.Errors
		f.stats.Elapsed += s.Elapsed
		f.stats.P50 = max(f.stats.P50, s.P50)
		f.stats.P99 = max(f.stats.P99, s.P99)
		f.cpu.Go += cpu.Go
		f.cpu.PG += cpu.PG
		f.genCPU += gen
		f.rows += rows
		f.batch += batches
		f.prof += prof
		f.wal += wal
	}
	settle := func() {
		// The self-profiler writes what a figure recorded within a second
		// or two; the next figure must not pay for it.
		deadline := time.Now().Add(30 * time.Second)
		for prof.Buffered() > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(1200 * time.Millisecond) // the writer's last COPY
	}
	// BENCH_ONLY=put_on (say) runs that figure only, for a CPU profile.
	only := os.Getenv("BENCH_ONLY")
	runAPI := func(name, target, lua string, args ...string) {
		if only != "" && only != name {
			return
		}
		settle()
		batches0, rows0 := batchStats(prom)
		written0 := selfprofileCounter(prom, "telemetry_selfprofile_written_total")
		c0, wal0 := readCPU(b, pool), walPosition(pool)
		pg0, t0 := traceStart(pool)
		s, gen, err := runWrkScript(wrk, target, lua, clients, perFigure, args...)
		if err != nil {
			b.Fatal(err)
		}
		if benchTrace() {
			b.Logf("round %s at %s: %.0f/s p99 %s; %s", name, t0.UTC().Format("15:04:05"), s.PerSecond(), ms(s.P99), readPGSnapshot(pool).since(pg0))
		}
		if strings.HasSuffix(name, "_on") {
			settle() // its records' writing is part of its cost
		}
		c1, wal1 := readCPU(b, pool), walPosition(pool)
		batches1, rows1 := batchStats(prom)
		if s.Errors > 0 {
			b.Errorf("%s: %d errors", name, s.Errors)
		}
		add(name, s, cpuTimes{c1.Go - c0.Go, c1.PG - c0.PG}, gen, rows1-rows0, batches1-batches0,
			selfprofileCounter(prom, "telemetry_selfprofile_written_total")-written0, float64(wal1-wal0))
	}
	runPgbench := func() {
		if only != "" {
			return
		}
		settle()
		c0 := readCPU(b, pool)
		pg0, t0 := traceStart(pool)
		s, gen, err := runPgbenchScript(pgbench, url, script, clients, perFigure)
		if err != nil {
			b.Fatal(err)
		}
		if benchTrace() {
			b.Logf("round pgbench at %s: %.0f/s p99 %s; %s", t0.UTC().Format("15:04:05"), s.PerSecond(), ms(s.P99), readPGSnapshot(pool).since(pg0))
		}
		c1 := readCPU(b, pool)
		add("pgbench", s, cpuTimes{c1.Go - c0.Go, c1.PG - c0.PG}, gen, 0, 0, 0, 0)
	}
	put := func(srv *httptest.Server, name string) func() {
		return func() { runAPI(name, srv.URL, wrkPutScript, strconv.Itoa(clients), token) }
	}
	flows := func(srv *httptest.Server, name string) func() {
		return func() { runAPI(name, srv.URL+"/flows?hour=1", wrkGetScript) }
	}

	// Warm-up: connections, plans, the writer's batches, for both kinds of
	// request. Without GET /flows here, the first round's first flows
	// figure (always flows_on) paid the pool's first flows statements: its
	// p99 was 100-152 ms in four runs out of four, every other round's
	// 20-50 ms with a few exceptions (2026-12-02).
	for _, srv := range []*httptest.Server{srvOn, srvOff} {
		if _, _, err := runWrkScript(wrk, srv.URL, wrkPutScript, clients, time.Second, strconv.Itoa(clients), token); err != nil {
			b.Fatal(err)
		}
		if _, _, err := runWrkScript(wrk, srv.URL+"/flows?hour=1", wrkGetScript, clients, time.Second); err != nil {
			b.Fatal(err)
		}
	}
	// pgbench's too. On a loaded machine its 64 connections can take the
	// whole warm-up (a make bench run of 2026-12-02 processed no
	// transaction in 1 s): that is no failure, an error running it is.
	if _, _, err := runPgbenchScript(pgbench, url, script, clients, 3*time.Second); err != nil && !errors.Is(err, errPgbenchIdle) {
		b.Fatal(err)
	}
	dropped0 := selfprofileCounter(prom, "telemetry_selfprofile_dropped_total")
	for r := range rounds {
		steps := []func(){runPgbench, put(srvOn, "put_on"), put(srvOff, "put_off"), flows(srvOn, "flows_on"), flows(srvOff, "flows_off")}
		if r%2 == 1 {
			steps = []func(){put(srvOff, "put_off"), put(srvOn, "put_on"), flows(srvOff, "flows_off"), flows(srvOn, "flows_on"), runPgbench}
		}
		for _, step := range steps {
			step()
		}
		if only != "" {
			break
		}
	}
	settle()
	dropped := selfprofileCounter(prom, "telemetry_selfprofile_dropped_total") - dropped0

	if only != "" {
		for n, f := range figures {
			b.Logf("%s: %.0f/s p99 %s; CPU per op go %s pg %s; %.0f self-profiling rows written a second", n, f.stats.PerSecond(), ms(f.stats.P99),
				perOp(f.cpu.Go, f.stats), perOp(f.cpu.PG, f.stats), f.prof/f.stats.Elapsed.Seconds())
		}
		return
	}
	names := make([]string, 0, len(figures))
	for n := range figures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := figures[n]
		if n == "pgbench" {
			b.ReportMetric(f.stats.PerSecond(), "pgbench_tps")
			b.ReportMetric(float64(f.stats.P99.Microseconds())/1000, "pgbench_p99_ms")
		} else {
			reportMetrics(b, n, f.stats)
		}
		f.p99All = pooledQuantile(f.rounds, 99)
		b.ReportMetric(float64(f.p99All.Microseconds())/1000, n+"_p99_all_ms")
		line := fmt.Sprintf("%s: %.0f/s p50 %s p99 %s (of all its requests; its worst round's %s); CPU per op go %s pg %s gen %s", n, f.stats.PerSecond(),
			ms(f.stats.P50), ms(f.p99All), ms(f.stats.P99), perOp(f.cpu.Go, f.stats), perOp(f.cpu.PG, f.stats), perOp(f.genCPU, f.stats))
		if f.batch > 0 {
			line += fmt.Sprintf("; %.1f rows per commit", f.rows/f.batch)
		}
		if f.wal > 0 && n != "pgbench" {
			line += fmt.Sprintf("; WAL %.0f B a request", f.wal/float64(f.stats.Requests))
		}
		if f.prof > 0 {
			line += fmt.Sprintf("; %.0f self-profiling rows written a second", f.prof/f.stats.Elapsed.Seconds())
		}
		b.Log(line)
	}
	base, putOn, putOff := figures["pgbench"].stats.PerSecond(), figures["put_on"].stats.PerSecond(), figures["put_off"].stats.PerSecond()
	flowsOn, flowsOff := figures["flows_on"].stats.PerSecond(), figures["flows_off"].stats.PerSecond()
	b.ReportMetric(putOn/base, "ratio_put")
	b.ReportMetric(putOff/base, "ratio_put_off")
	b.ReportMetric(1-putOn/putOff, "overhead_put")
	b.ReportMetric(1-flowsOn/flowsOff, "overhead_flows")
	// The same overhead from the CPU each request cost (this process and
	// PostgreSQL, the self-profiler's writes included, load generators
	// not): on two shared cores the throughput of a figure moves with
	// what the machine's other tenants take, its CPU per request much less.
	cpuPerOp := func(name string) float64 {
		f := figures[name]
		return float64(f.cpu.Go+f.cpu.PG) / float64(f.stats.Requests)
	}
	cpuOverhead := func(on, off string) float64 { return 1 - cpuPerOp(off)/cpuPerOp(on) }
	putCPU, flowsCPU := cpuOverhead("put_on", "put_off"), cpuOverhead("flows_on", "flows_off")
	b.ReportMetric(putCPU, "overhead_put_cpu")
	b.ReportMetric(flowsCPU, "overhead_flows_cpu")
	b.ReportMetric(dropped, "selfprofile_dropped")
	// Each round's on and off ran one after the other: their ratio is
	// free of the drift between rounds, and the median of the rounds'
	// overheads is not moved by one round the machine's other tenants
	// disturbed, as the sums above are. Their standard error (the rounds'
	// spread over the square root of their number) is how far a run's
	// figure can be from the overhead itself.
	roundOverheads := func(on, off string) (median, se float64, each []string) {
		var o []float64
		for r := range min(len(perRound[on]), len(perRound[off])) {
			o = append(o, 1-perRound[on][r]/perRound[off][r])
			each = append(each, fmt.Sprintf("%.1f%%", 100*o[r]))
		}
		se = standardError(o)
		sort.Float64s(o)
		if n := len(o); n%2 == 1 {
			median = o[n/2]
		} else {
			median = (o[n/2-1] + o[n/2]) / 2
		}
		return median, se, each
	}
	putMedian, putSE, putRounds := roundOverheads("put_on", "put_off")
	flowsMedian, flowsSE, flowsRounds := roundOverheads("flows_on", "flows_off")
	b.ReportMetric(putMedian, "overhead_put_median")
	b.ReportMetric(flowsMedian, "overhead_flows_median")
	b.ReportMetric(putSE, "overhead_put_se")
	b.ReportMetric(flowsSE, "overhead_flows_se")
	b.Logf("self-profiling overhead per round (1 - on/off): PUT %s (median %.1f%%, standard error %.1f points), GET /flows %s (median %.1f%%, standard error %.1f points)",
		strings.Join(putRounds, " "), 100*putMedian, 100*putSE, strings.Join(flowsRounds, " "), 100*flowsMedian, 100*flowsSE)
	// The profiler's own cost, measured directly at the rate each on
	// figure ran (profilerCost), against the CPU a request cost with it off.
	direct := func(name string, k profiledRequest, on, off string) float64 {
		c := profilerCost(b, url, k, figures[on].stats.PerSecond(), 60)
		f := figures[off]
		share := float64(c.goPer+c.pgPer) / (float64(f.cpu.Go+f.cpu.PG) / float64(f.stats.Requests))
		b.Logf("self-profiler's own cost on %s at %.0f req/s: %.2f µs of this process and %.2f µs of PostgreSQL a request = %.1f%% of the %s CPU a request with it off; "+
			"%.0f B of WAL a request (%.0f with it off)",
			name, figures[on].stats.PerSecond(), float64(c.goPer.Nanoseconds())/1000, float64(c.pgPer.Nanoseconds())/1000, 100*share,
			perOp(f.cpu.Go+f.cpu.PG, f.stats), c.walPer, f.wal/float64(f.stats.Requests))
		return share
	}
	b.ReportMetric(direct("PUT /mrd", profiledPut, "put_on", "put_off"), "overhead_put_direct")
	b.ReportMetric(direct("GET /flows", profiledFlows, "flows_on", "flows_off"), "overhead_flows_direct")
	b.Logf("PUT /mrd default %.0f req/s = %.2fx pgbench %.0f TPS (p99 %s of all its requests, pgbench's %s; the worst round's %s, pgbench's %s); "+
		"self-profiling overhead: PUT %.1f%%, GET /flows %.1f%% (by CPU per request: PUT %.1f%%, GET /flows %.1f%%); %.0f records dropped",
		putOn, putOn/base, base, ms(figures["put_on"].p99All), ms(figures["pgbench"].p99All),
		ms(figures["put_on"].stats.P99), ms(figures["pgbench"].stats.P99), 100*(1-putOn/putOff), 100*(1-flowsOn/flowsOff),
		100*putCPU, 100*flowsCPU, dropped)
}

// pgbenchPath is the pgbench of the newest installed PostgreSQL (Debian
// keeps it in /usr/lib/postgresql/N/bin, as it does initdb), else the one
// on PATH, else "".
func pgbenchPath() string {
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench"); len(m) > 0 {
		sort.Slice(m, func(i, j int) bool { return pgVersionOf(m[i]) < pgVersionOf(m[j]) })
		return m[len(m)-1]
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	return ""
}

func pgVersionOf(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

var pgbenchTPS = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
var pgbenchTx = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
var pgbenchFailed = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)

// errPgbenchIdle: pgbench ran but processed no transaction.
var errPgbenchIdle = errors.New("pgbench: no transactions")

// runPgbenchScript runs pgbench with `clients` connections (one thread, as
// wrk) for duration on the database at url with the custom script, and
// returns its figures and its CPU time. Its p50 and p99 come from the
// transaction log of a tenth of the transactions (pgbench --sampling-rate:
// logging every one would slow the baseline down).
func runPgbenchScript(pgbench, url, script string, clients int, duration time.Duration) (loadStats, time.Duration, error) {
	logDir, err := os.MkdirTemp("", "pgbench-log")
	if err != nil {
		return loadStats{}, 0, err
	}
	defer os.RemoveAll(logDir)
	cmd := exec.Command(pgbench, "-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", "1",
		"-T", strconv.Itoa(max(1, int(duration.Round(time.Second).Seconds()))), "-f", script,
		"-l", "--sampling-rate=0.1", "--log-prefix="+filepath.Join(logDir, "tx"), url)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return loadStats{}, 0, fmt.Errorf("pgbench: %v: %s%s", err, out.String(), errOut.String())
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	tps, tx := pgbenchTPS.FindStringSubmatch(out.String()), pgbenchTx.FindStringSubmatch(out.String())
	if tps == nil || tx == nil {
		return loadStats{}, cpu, fmt.Errorf("%w: pgbench printed no figures: %s", errPgbenchIdle, out.String())
	}
	rate, _ := strconv.ParseFloat(tps[1], 64)
	n, _ := strconv.ParseInt(tx[1], 10, 64)
	var failed int64
	if f := pgbenchFailed.FindStringSubmatch(out.String()); f != nil {
		failed, _ = strconv.ParseInt(f[1], 10, 64)
	}
	if rate <= 0 {
		return loadStats{}, cpu, fmt.Errorf("%w: %s", errPgbenchIdle, out.String())
	}
	// Elapsed as pgbench measured it (connections excluded), so that
	// PerSecond is its tps.
	st := loadStats{Requests: n, Errors: failed, Elapsed: time.Duration(float64(n-failed) / rate * float64(time.Second))}
	lat, err := pgbenchLatencies(logDir)
	if err != nil {
		return st, cpu, err
	}
	st.P50, st.P99 = atPercentile(lat, 50), atPercentile(lat, 99)
	for _, p := range latencyGrid {
		st.Quantiles = append(st.Quantiles, atPercentile(lat, p))
	}
	return st, cpu, nil
}

// atPercentile is the latency at percentile p of sorted, as wrk gives it:
// the least value that at least p % of them do not exceed.
func atPercentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// pgbenchLatencies are the latencies of the transactions in pgbench's logs
// under dir (one line per transaction: client, transaction number, latency
// in microseconds, ...), sorted.
func pgbenchLatencies(dir string) ([]time.Duration, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "tx*"))
	var lat []time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("pgbench log %s: %q: %v", f, line, err)
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
	}
	if len(lat) == 0 {
		return nil, fmt.Errorf("pgbench logged no transactions in %s", dir)
	}
	slices.Sort(lat)
	return lat, nil
}

// selfprofileCounter is the self-profiler's counter name so far, summed
// over its labels (dropped_total over its reasons).
func selfprofileCounter(m *metrics.Metrics, name string) float64 {
	mfs, err := m.Registry.Gather()
	if err != nil {
		return 0
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, c := range mf.GetMetric() {
				n += c.GetCounter().GetValue()
			}
		}
	}
	return n
}
