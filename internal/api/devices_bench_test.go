package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/obs"
	"github.com/telemetry/telemetry/internal/testdb"
)

// BenchmarkDevicesPutMetric measures PUT /mrd/{id}/metrics with one metric
// per request and a valid token, every 200 committed, at 1, 16 and 64
// concurrent clients, beside the same rows inserted straight into
// device_metrics with pgx, one INSERT per transaction, at the same client
// counts. The API also maintains device_metrics_latest; the baseline does
// not. Run with `make bench` (TESTDB_DURABLE=1: fsync on). It also logs CPU
// time per request (this process, PostgreSQL), steadier than req/s on a
// shared machine. DEVICE_METRICS_* environment variables tune the writer.
func BenchmarkDevicesPutMetric(b *testing.B) {
	ctx := context.Background()
	const maxClients = 64
	perFigure := 4 * time.Second

	url := testdb.URL(b)
	// The server's pool as serve sizes it; the baseline gets one connection
	// per client.
	serverPool, err := pgxpool.New(ctx, url+"&pool_max_conns=16")
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
	metrics := obs.New()
	writer := NewDeviceMetricsWriter(serverPool, cfg, metrics)
	h, _ := New(Deps{Pool: serverPool, Config: cfg, Metrics: metrics, DeviceMetrics: writer})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer writer.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * maxClients, MaxIdleConnsPerHost: 2 * maxClients}}
	token := "Bearer " + validToken(b)

	put := func(ctx context.Context, c int) error {
		body := fmt.Appendf(nil, `{"name":"cpu.load","value":%d,"units":"percent","type":"int32","slope":"both","ttl":60}`, c)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/mrd/bench%02d/metrics", srv.URL, c), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
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

	// Warm both paths (connections, plans) before measuring.
	runLoad(maxClients, 500*time.Millisecond, 2000, put)
	runLoad(maxClients, 500*time.Millisecond, 2000, direct)

	counts := []int{1, 16, 64}
	if v := os.Getenv("BENCH_CLIENTS"); v != "" { // one client count only, for profiling
		n, _ := strconv.Atoi(v)
		counts = []int{n}
	}
	for _, clients := range counts {
		cpu0 := readCPU(b, basePool)
		base := runLoad(clients, perFigure, 1_000_000, direct)
		cpu1 := readCPU(b, basePool)
		api := runLoad(clients, perFigure, 1_000_000, put)
		cpu2 := readCPU(b, basePool)
		b.Logf("%d clients: CPU per request: API go %s pg %s; baseline go %s pg %s", clients,
			perOp(cpu2.Go-cpu1.Go, api), perOp(cpu2.PG-cpu1.PG, api), perOp(cpu1.Go-cpu0.Go, base), perOp(cpu1.PG-cpu0.PG, base))
		if api.Errors > 0 || base.Errors > 0 {
			b.Errorf("%d clients: %d API errors, %d baseline errors", clients, api.Errors, base.Errors)
		}
		report(b, fmt.Sprintf("put_c%d", clients), api)
		report(b, fmt.Sprintf("sql_c%d", clients), base)
		ratio := api.PerSecond() / base.PerSecond()
		b.ReportMetric(ratio, fmt.Sprintf("ratio_c%d", clients))
		b.Logf("%d clients: API %.0f req/s (p50 %s, p99 %s) vs one INSERT per transaction %.0f/s (p50 %s, p99 %s): ratio %.2f",
			clients, api.PerSecond(), api.P50, api.P99, base.PerSecond(), base.P50, base.P99, ratio)
	}
	var batches, rows float64
	if mfs, err := metrics.Registry.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "telemetry_batch_items" {
				for _, m := range mf.GetMetric() {
					batches, rows = float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	if batches > 0 {
		b.Logf("API commits: %.0f rows in %.0f batches (%.1f rows per commit)", rows, batches, rows/batches)
	}
}

// cpuTimes is CPU time used so far by this process (server and load
// generator) and by the PostgreSQL cluster: under a shared machine's noise,
// CPU per request says more than requests per second.
type cpuTimes struct{ Go, PG time.Duration }

func readCPU(b *testing.B, pool *pgxpool.Pool) cpuTimes {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	c := cpuTimes{Go: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
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
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		c.PG += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
	}
	return c
}

func perOp(d time.Duration, s loadStats) string {
	if s.Requests == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", float64(d.Microseconds())/float64(s.Requests))
}
