package api

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/config"
)

// exportBenchRows is the size of the export benchmark's table
// (EXPORT_BENCH_ROWS, default 10 M).
func exportBenchRows() int {
	if v, err := strconv.Atoi(os.Getenv("EXPORT_BENCH_ROWS")); err == nil && v > 0 {
		return v
	}
	return 10_000_000
}

// BenchmarkExport10M: GET /api/measurements/ of every row of a 10 M-row
// table as CSV and as NDJSON, read by a client that discards it: rows/s,
// MB/s, and the process's peak resident memory during each export. The
// server runs in this process, so the peak (VmHWM of /proc/self/status,
// reset before each export through /proc/self/clear_refs) covers the
// server and the reading client, not the database; the Go heap's peak
// (sampled every 50 ms) is reported beside it. Skipped unless named by
// -bench (its load takes minutes): go test -run '^$' -bench Export10M.
func BenchmarkExport10M(b *testing.B) {
	if !strings.Contains(flag.Lookup("test.bench").Value.String(), "Export") {
		b.Skip("SKIPPED: the 10 M-row export benchmark runs only when -bench names it (-bench Export10M)")
	}
	s := newTestServer(b, func(c *config.Config) { c.SelfProfile = false })
	n := exportBenchRows()
	ctx := context.Background()
	start := time.Now()
	loadMeasurements(b, s, n)
	b.Logf("loaded %d rows with COPY in %v", n, time.Since(start).Round(time.Second))

	for _, format := range []string{"text/csv", "application/x-ndjson"} {
		rows, bytes, elapsed, hwm, heap := exportOnce(b, s, ctx, format)
		if rows != int64(n) {
			// Say how the server saw the export end (its logs are
			// discarded here): the outcome counters of /metrics.
			b.Errorf("%s: %d rows exported in %v, want %d; server: %s", format, rows, elapsed.Round(time.Millisecond), n,
				exportOutcomes(s))
		}
		name := map[string]string{"text/csv": "csv", "application/x-ndjson": "ndjson"}[format]
		b.ReportMetric(float64(rows)/elapsed.Seconds(), name+"_rows/s")
		b.ReportMetric(float64(bytes)/elapsed.Seconds()/1e6, name+"_MB/s")
		b.ReportMetric(float64(hwm)/1024, name+"_peak_rss_MB")
		b.ReportMetric(float64(heap)/(1<<20), name+"_peak_heap_MB")
		b.Logf("%s: %d rows, %.0f MB in %v: %.0f rows/s; peak RSS %d MB (VmHWM), peak Go heap %.1f MB",
			name, rows, float64(bytes)/1e6, elapsed.Round(time.Millisecond), float64(rows)/elapsed.Seconds(),
			hwm/1024, float64(heap)/(1<<20))
	}
}

// loadMeasurements copies n measurements of the last hour (a
// flask-profiler-sized context) into the table with COPY, generated as
// they are sent.
func loadMeasurements(b *testing.B, s *testServer, n int) {
	b.Helper()
	end := time.Now().Add(-time.Minute)
	ctxJSON := []byte(`{"url":"http://shop.local/api/r7/123?verbose=1","args":{"verbose":"1"},"func":"handler7","ip":"10.0.0.7",` +
		`"headers":{"Accept":"application/json","User-Agent":"shop-client/2.1","Host":"shop.local"}}`)
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		// In float: time.Duration(i) * time.Hour overflows int64 past
		// i = 2,562,047, which scattered most of a 10 M-row table outside
		// the export's default window (7 days).
		st := end.Add(-time.Duration(float64(time.Hour) * float64(i) / float64(n)))
		el := float64(i%1000) / 10000
		return []any{st, st.Add(time.Duration(el * float64(time.Second))), el, fmt.Sprintf("/api/r%d/<id>", i%50),
			methods[i%len(methods)], []byte(`[]`), []byte(fmt.Sprintf(`{"id":"%d"}`, i)), ctxJSON, "shop"}, nil
	})
	cols := []string{"started_at", "ended_at", "elapsed", "name", "method", "args", "kwargs", "context", "app"}
	if _, err := s.Pool.CopyFrom(context.Background(), pgx.Identifier{"measurements"}, cols, src); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool.Exec(context.Background(), "ANALYZE measurements"); err != nil {
		b.Fatal(err)
	}
}

// exportOnce runs one export and measures it.
func exportOnce(b *testing.B, s *testServer, ctx context.Context, accept string) (rows, bytes int64, elapsed time.Duration, hwmKB, heapPeak uint64) {
	b.Helper()
	runtime.GC()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset VmHWM (%v): the peak covers the whole process's life", err)
	}
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/measurements/?sort=startedAt,asc", nil)
	req.Header.Set("Accept", accept)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b.Fatalf("status %d", res.StatusCode)
	}
	lc := &lineCounter{}
	_, err = io.Copy(lc, res.Body)
	res.Body.Close()
	elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	rows = lc.lines
	if accept == "text/csv" {
		rows-- // the header
	}
	return rows, lc.bytes, elapsed, vmHWM(b), peak.Load()
}

type lineCounter struct{ lines, bytes int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	for _, x := range p {
		if x == '\n' {
			c.lines++
		}
	}
	c.bytes += int64(len(p))
	return len(p), nil
}

// vmHWM is the process's peak resident set, in kB.
func vmHWM(b *testing.B) uint64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Logf("no /proc/self/status: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// exportOutcomes is the telemetry_exports_total lines of /metrics.
func exportOutcomes(s *testServer) string {
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "telemetry_export") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}
