package api

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// BenchmarkDevicesPutMetric measures PUT /mrd/{id}/metrics with one metric
// per request and a valid token, every 200 committed, at 1, 16 and 64
// concurrent clients, beside the same rows inserted straight into
// device_metrics with pgx, one INSERT per transaction, at the same client
// counts. The API also maintains device_metrics_latest; the baseline does
// not. Run with `make bench` (TESTDB_DURABLE=1: fsync on).
//
// wrk drives the API when it is installed (put_cN, ratio_cN), then the Go
// HTTP client in this process (put_go_cN, ratio_go_cN); without wrk only the
// Go client, under the put_cN names, and the log says so. It also logs CPU
// time per request (this process, PostgreSQL, wrk), steadier than req/s on a
// shared machine. BENCH_CLIENTS=N runs one client count and
// BENCH_GENERATOR=wrk|go one generator (for profiling); DEVICE_METRICS_*
// environment variables tune the writer; DATABASE_EXEC_MODE sets the
// server pool's exec mode and BENCH_PGBOUNCER=1 puts PgBouncer in front of it.
func BenchmarkDevicesPutMetric(b *testing.B) {
	ctx := context.Background()
	const maxClients = 64
	perFigure := 4 * time.Second

	url := testdb.URL(b)
	// The server's pool as serve sizes it; the baseline gets one connection
	// per client.
	// In the exec mode serve uses (DATABASE_EXEC_MODE, else its default),
	// so that modes can be compared.
	mode := cmp.Or(os.Getenv("DATABASE_EXEC_MODE"), postgres.DefaultExecMode)
	b.Logf("server pool exec mode: %s", mode)
	serverPool, err := pgxpool.New(ctx, benchViaPgBouncer(b, url)+"&pool_max_conns=16&default_query_exec_mode="+mode)
	if err != nil {
		b.Fatal(err)
	}
	defer serverPool.Close()
	basePool, err := pgxpool.New(ctx, url+fmt.Sprintf("&pool_max_conns=%d", maxClients))
	if err != nil {
		b.Fatal(err)
	}
	defer basePool.Close()
	for c := 0; c < maxClients; c++ {
		if _, err := basePool.Exec(ctx, `INSERT INTO devices (id, name) VALUES ($1, $1)`, fmt.Sprintf("bench%02d", c)); err != nil {
			b.Fatal(err)
		}
	}

	cfg, err := config.Load(os.Getenv) // DEVICE_METRICS_* tune the writer
	if err != nil {
		b.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	prom := metrics.New()
	st := postgres.New(serverPool, postgres.Options{
		DeviceWriters:  cfg.DeviceMetricsWriters,
		DeviceMaxBatch: cfg.DeviceMetricsBatch,
		ObserveBatch: func(resource string, n int) {
			prom.BatchItems.WithLabelValues(resource).Observe(float64(n))
		},
	})
	h, _ := New(Deps{Store: st.Stores(), Config: cfg, Metrics: prom})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer st.Devices.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * maxClients, MaxIdleConnsPerHost: 2 * maxClients}}
	token := "Bearer " + validToken(b)

	// The Go generator: each client is a device of its own, with its URL
	// and body built once.
	urls, bodies := make([]string, maxClients), make([][]byte, maxClients)
	for c := range maxClients {
		urls[c] = fmt.Sprintf("%s/mrd/bench%02d/metrics", srv.URL, c)
		bodies[c] = fmt.Appendf(nil, `{"name":"cpu.load","value":%d,"units":"percent","type":"int32","slope":"both","ttl":60}`, c)
	}
	put := func(ctx context.Context, c int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, urls[c], bytes.NewReader(bodies[c]))
		if err != nil {
			return err
		}
		req.Header["Authorization"] = []string{token}
		req.Header["Content-Type"] = []string{"application/json"}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	direct := func(ctx context.Context, c int) error {
		_, err := basePool.Exec(ctx, `INSERT INTO device_metrics (time, device_id, name, type, value_num, value_text, units, slope, ttl)
			VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8)`,
			time.Now(), fmt.Sprintf("bench%02d", c), "cpu.load", "int32", float64(c), "percent", "both", int32(60))
		return err
	}

	// Generators of API load: wrk (outside this process, so the Go CPU
	// figure is the server's alone) when installed, and the Go client in
	// this process. BENCH_GENERATOR=wrk or go runs one of them only.
	type generator struct {
		name   string // "" for the main figures
		wrk    string
		suffix string
	}
	var gens []generator
	wrk := wrkPath()
	switch g := os.Getenv("BENCH_GENERATOR"); {
	case wrk == "":
		b.Logf("wrk not found (Debian package wrk; `make bench` installs it when it can): the Go HTTP client in this process drives the API, and its CPU counts in the API's Go CPU")
		gens = []generator{{name: "go"}}
	case g == "go":
		gens = []generator{{name: "go"}}
	case g == "wrk":
		gens = []generator{{name: "wrk", wrk: wrk}}
	default:
		gens = []generator{{name: "wrk", wrk: wrk}, {name: "go", suffix: "_go"}}
	}

	// Warm both paths (connections, plans) before measuring.
	runLoad(maxClients, 500*time.Millisecond, 2000, put)
	runLoad(maxClients, 500*time.Millisecond, 2000, direct)

	counts := []int{1, 16, 64}
	if v := os.Getenv("BENCH_CLIENTS"); v != "" { // one client count only, for profiling
		n, _ := strconv.Atoi(v)
		counts = []int{n}
	}
	// testing keeps only 10 log lines of a benchmark: one line per client
	// count.
	for _, clients := range counts {
		cpu0 := readCPU(b, basePool)
		base := runLoad(clients, perFigure, 1_000_000, direct)
		cpu1 := readCPU(b, basePool)
		reportMetrics(b, fmt.Sprintf("sql_c%d", clients), base)
		if base.Errors > 0 {
			b.Errorf("%d clients: %d baseline errors", clients, base.Errors)
		}
		line := fmt.Sprintf("%d clients: one INSERT per transaction %.0f/s (p50 %s, p99 %s, CPU per row go %s pg %s)",
			clients, base.PerSecond(), ms(base.P50), ms(base.P99), perOp(cpu1.Go-cpu0.Go, base), perOp(cpu1.PG-cpu0.PG, base))
		for _, g := range gens {
			var api loadStats
			var genCPU time.Duration
			batches0, rows0 := batchStats(prom)
			cpu1 := readCPU(b, basePool)
			if g.wrk != "" {
				api, genCPU, err = runWrk(g.wrk, srv.URL, clients, maxClients, token, perFigure)
				if err != nil {
					b.Fatal(err)
				}
			} else {
				api = runLoad(clients, perFigure, 1_000_000, put)
			}
			cpu2 := readCPU(b, basePool)
			batches1, rows1 := batchStats(prom)
			if api.Errors > 0 {
				b.Errorf("%d clients (%s): %d API errors", clients, g.name, api.Errors)
			}
			reportMetrics(b, fmt.Sprintf("put%s_c%d", g.suffix, clients), api)
			ratio := api.PerSecond() / base.PerSecond()
			b.ReportMetric(ratio, fmt.Sprintf("ratio%s_c%d", g.suffix, clients))
			gen := ""
			if g.wrk != "" {
				gen = " wrk " + perOp(genCPU, api)
			}
			line += fmt.Sprintf("; API (%s) %.0f req/s (p50 %s, p99 %s, CPU per request go %s pg %s%s, %.1f rows per commit): ratio %.2f",
				g.name, api.PerSecond(), ms(api.P50), ms(api.P99), perOp(cpu2.Go-cpu1.Go, api), perOp(cpu2.PG-cpu1.PG, api), gen,
				(rows1-rows0)/max(1, batches1-batches0), ratio)
		}
		b.Log(line)
	}
}

// reportMetrics publishes a load run's figures on b, prefixed by name,
// without a log line (report's).
func reportMetrics(b *testing.B, name string, s loadStats) {
	b.ReportMetric(s.PerSecond(), name+"/s")
	b.ReportMetric(float64(s.P50.Microseconds())/1000, name+"_p50_ms")
	b.ReportMetric(float64(s.P99.Microseconds())/1000, name+"_p99_ms")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// batchStats is how many device metric batches were committed so far and
// how many rows they held.
func batchStats(m *metrics.Metrics) (batches, rows float64) {
	mfs, err := m.Registry.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "telemetry_batch_items" {
			for _, m := range mf.GetMetric() {
				batches, rows = float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
			}
		}
	}
	return batches, rows
}

// cpuTimes is CPU time used so far by this process (server and load
// generator) and by the PostgreSQL cluster: under a shared machine's noise,
// CPU per request says more than requests per second.
type cpuTimes struct{ Go, PG time.Duration }

func readCPU(b *testing.B, pool *pgxpool.Pool) cpuTimes {
	c := cpuTimes{Go: processCPU()}
	var dir string
	if err := pool.QueryRow(context.Background(), "SHOW data_directory").Scan(&dir); err != nil {
		return c
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return c // another user's cluster: no figure
	}
	pm, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pm, pm))
	for _, pid := range append(strings.Fields(string(children)), strconv.Itoa(pm)) {
		// Backends that exited (pgbench's, a pool's closed connections)
		// count in the postmaster's reaped children.
		n, _ := strconv.Atoi(pid)
		c.PG += time.Duration(procCPU(n, n == pm) * float64(time.Second))
	}
	return c
}

func perOp(d time.Duration, s loadStats) string {
	if s.Requests == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", float64(d.Microseconds())/float64(s.Requests))
}
