package runtimestats

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// counters reads the sampler's counters from the registry it was given.
func counters(t *testing.T, reg *prometheus.Registry) (written, failed float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		v := mf.GetMetric()[0].GetCounter().GetValue()
		switch mf.GetName() {
		case "telemetry_runtime_samples_written_total":
			written = v
		case "telemetry_runtime_samples_failed_total":
			failed = v
		}
	}
	return written, failed
}

// selfStat builds a /proc/self/stat line with the given command name and
// utime, stime and rss.
func selfStat(comm string, utime, stime, rss string) string {
	f := make([]string, 52)
	for i := range f {
		f[i] = "0"
	}
	f[0], f[1], f[2] = "4242", "("+comm+")", "S"
	f[13], f[14], f[23] = utime, stime, rss // fields 14, 15, 24
	return strings.Join(f, " ") + "\n"
}

// fakeProc builds a proc(5) tree under a temporary directory holding only
// the named files (self is a link to process 4242, as /proc/self is).
func fakeProc(t *testing.T, files map[string]string) procfs.FS {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "4242"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("4242", filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// parseSelfStat reads b as /proc/self/stat.
func parseSelfStat(t *testing.T, b []byte) (uint64, int64, error) {
	return readSelfStat(fakeProc(t, map[string]string{"4242/stat": string(b)}))
}

// parseSystemStat reads b as /proc/stat.
func parseSystemStat(t *testing.T, b []byte) (uint64, uint64, error) {
	return readSystemStat(fakeProc(t, map[string]string{"stat": string(b)}))
}

// samples is the runtime samples store on pool.
func samples(pool *pgxpool.Pool) *postgres.RuntimeSamples {
	return postgres.New(pool, postgres.Options{}).Runtime
}

func TestParseSelfStat(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		ticks      uint64
		rss        int64
		wantsError bool
	}{
		{"plain", selfStat("telemetry", "150", "50", "3000"), 200, 3000, false},
		{"name with spaces and parentheses", selfStat("a ) b (c) 1 2 3", "7", "8", "9"), 15, 9, false},
		{"no name", "4242 S 1 2 3", 0, 0, true},
		{"too short", "4242 (x) S 1 2 3\n", 0, 0, true},
		{"not a number", selfStat("x", "abc", "1", "1"), 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ticks, rss, err := parseSelfStat(t, []byte(tc.in))
			if (err != nil) != tc.wantsError {
				t.Fatalf("error = %v, want error: %v", err, tc.wantsError)
			}
			if !tc.wantsError && (ticks != tc.ticks || rss != tc.rss) {
				t.Fatalf("ticks %d rss %d, want %d %d", ticks, rss, tc.ticks, tc.rss)
			}
		})
	}
}

func TestParseSystemStat(t *testing.T) {
	for _, tc := range []struct {
		name, in    string
		total, idle uint64
		wantsError  bool
	}{
		// guest and guest_nice (the last two) are already in user and nice.
		{"ten columns", "cpu  100 5 50 800 20 3 2 10 7 1\ncpu0 50 2 25 400 10 1 1 5 3 0\nintr 1 2\n", 990, 820, false},
		{"old kernel, four columns", "cpu 10 0 10 80\n", 100, 80, false},
		{"per-cpu lines only", "cpu0 1 2 3 4 5\n", 0, 0, true},
		{"short", "cpu 1 2\n", 0, 0, true},
		{"not a number", "cpu 1 2 x 4 5\n", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, idle, err := parseSystemStat(t, []byte(tc.in))
			if (err != nil) != tc.wantsError {
				t.Fatalf("error = %v, want error: %v", err, tc.wantsError)
			}
			if !tc.wantsError && (total != tc.total || idle != tc.idle) {
				t.Fatalf("total %d idle %d, want %d %d", total, idle, tc.total, tc.idle)
			}
		})
	}
}

// The real /proc of this machine parses, and its counters only grow.
func TestReadProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: /proc is Linux's")
	}
	a, err := readProc("/proc")
	if err != nil {
		t.Fatal(err)
	}
	spin(50 * time.Millisecond)
	b, err := readProc("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if a.totalTicks == 0 || b.totalTicks < a.totalTicks || b.processTicks < a.processTicks || b.idleTicks > b.totalTicks || b.rssPages <= 0 {
		t.Fatalf("readings %+v then %+v", a, b)
	}
}

func TestDelta(t *testing.T) {
	t0 := time.Now()
	prev := reading{at: t0, procOK: true, proc: procStat{processTicks: 100, totalTicks: 1000, idleTicks: 800},
		gcCPU: 1.5, gcPause: 0.01, gcCycles: 10}
	cur := reading{at: t0.Add(5 * time.Second), procOK: true, proc: procStat{processTicks: 150, totalTicks: 2000, idleTicks: 1500, rssPages: 10},
		gcCPU: 2.0, gcPause: 0.015, gcCycles: 12, gomaxprocs: 2, heapLive: 4096, goMemory: 8192, goroutines: 7}
	s, ok := delta(prev, cur)
	if !ok {
		t.Fatal("no sample")
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	if s.Interval != 5*time.Second || !s.Time.Equal(cur.at) || *s.ProcessCPU != 0.05 || *s.SystemCPU != 0.3 ||
		!near(s.GCCPUSeconds, 0.5) || !near(s.GCPauseSeconds, 0.005) || s.GCCycles != 2 || s.GOMAXPROCS != 2 ||
		s.HeapLiveBytes != 4096 || s.GoMemoryBytes != 8192 || s.Goroutines != 7 ||
		*s.RSSBytes != 10*int64(os.Getpagesize()) {
		t.Fatalf("sample %+v process %v system %v", s, *s.ProcessCPU, *s.SystemCPU)
	}

	// Tick accounting may disagree slightly: fractions stay in 0..1.
	odd := cur
	odd.proc.processTicks = prev.proc.processTicks + 5000
	odd.proc.idleTicks = prev.proc.idleTicks + 5000
	if s, _ := delta(prev, odd); *s.ProcessCPU != 1 || *s.SystemCPU != 0 {
		t.Fatalf("not clamped: process %v system %v", *s.ProcessCPU, *s.SystemCPU)
	}

	// No tick elapsed, or /proc unreadable: no CPU figure (NULL), not a made-up 0.
	still := cur
	still.proc.totalTicks = prev.proc.totalTicks
	if s, _ := delta(prev, still); s.ProcessCPU != nil || s.SystemCPU != nil {
		t.Fatalf("CPU without elapsed ticks: %+v", s)
	}
	noProc := cur
	noProc.procOK = false
	if s, _ := delta(prev, noProc); s.ProcessCPU != nil || s.SystemCPU != nil || s.RSSBytes != nil {
		t.Fatalf("figures without /proc: %+v", s)
	}
	noProcBefore := prev
	noProcBefore.procOK = false
	if s, _ := delta(noProcBefore, cur); s.ProcessCPU != nil || s.RSSBytes == nil {
		t.Fatalf("after an unreadable /proc: %+v", s)
	}

	// No time elapsed: no sample.
	if _, ok := delta(cur, cur); ok {
		t.Fatal("sample over no time")
	}
}

func TestHistogramSum(t *testing.T) {
	h := &metrics.Float64Histogram{
		Counts:  []uint64{1, 2, 0, 3, 4},
		Buckets: []float64{math.Inf(-1), 0.001, 0.002, 0.004, 0.008, math.Inf(1)},
	}
	// 1 x 0.001 (open lower bucket: its upper bound), 2 x 0.0015, 3 x 0.006, 4 x 0.008 (open upper bucket: its lower bound).
	if got, want := histogramSum(h), 0.001+2*0.0015+3*0.006+4*0.008; math.Abs(got-want) > 1e-15 {
		t.Fatalf("sum %v, want %v", got, want)
	}
	if got := histogramSum(&metrics.Float64Histogram{}); got != 0 {
		t.Fatalf("empty histogram sums to %v", got)
	}
}

// spin keeps a CPU busy for d, so that CPU counters move.
func spin(d time.Duration) {
	x := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		x++
	}
	_ = x
}

type row struct {
	instance                   string
	interval                   float64
	process, system            *float64
	gcCPU, gcPause             float64
	gcCycles                   int64
	procs                      int32
	heap, goMemory, goroutines int64
	rss                        *int64
}

func rows(t *testing.T, pool *pgxpool.Pool) []row {
	t.Helper()
	rs, err := pool.Query(context.Background(), `SELECT instance_id::text, interval_seconds, process_cpu, system_cpu,
		gc_cpu_seconds, gc_pause_seconds, gc_cycles, gomaxprocs, heap_live_bytes, go_memory_bytes, goroutines, rss_bytes
		FROM runtime_samples ORDER BY time`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.instance, &r.interval, &r.process, &r.system, &r.gcCPU, &r.gcPause, &r.gcCycles,
			&r.procs, &r.heap, &r.goMemory, &r.goroutines, &r.rss); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A sample of this very process lands in runtime_samples with every figure
// in range.
func TestSampleWritesARow(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: CPU and RSS come from Linux's /proc")
	}
	pool := testdb.New(t)
	reg := prometheus.NewRegistry()
	s := New(samples(pool), nil, reg, Config{})
	runtime.GC()
	spin(300 * time.Millisecond)
	smp, err := s.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := rows(t, pool)
	if len(got) != 1 {
		t.Fatalf("%d rows", len(got))
	}
	r := got[0]
	if r.instance != s.InstanceID() || len(r.instance) != 36 || r.instance[14] != '4' {
		t.Fatalf("instance %q, sampler %q", r.instance, s.InstanceID())
	}
	if r.interval < 0.3 || math.Abs(r.interval-smp.Interval.Seconds()) > 1e-9 {
		t.Fatalf("interval %v s", r.interval)
	}
	if r.process == nil || r.system == nil || *r.process <= 0 || *r.process > 1 || *r.system <= 0 || *r.system > 1 {
		t.Fatalf("cpu process %v system %v: spinning 300 ms must show, as a fraction", r.process, r.system)
	}
	if r.gcCPU < 0 || r.gcPause < 0 || r.gcCycles < 1 { // the runtime.GC() above
		t.Fatalf("gc %+v", r)
	}
	if r.procs != int32(runtime.GOMAXPROCS(0)) || r.heap <= 0 || r.goMemory < r.heap || r.goroutines < 1 {
		t.Fatalf("runtime figures %+v", r)
	}
	if r.rss == nil || *r.rss < 1<<20 || *r.rss > 64<<30 {
		t.Fatalf("rss %v", r.rss)
	}
	if written, failed := counters(t, reg); written != 1 || failed != 0 {
		t.Fatalf("counters written %v failed %v", written, failed)
	}
}

// Without /proc (another OS, a sandbox) rows are still written, with NULL
// CPU and RSS.
func TestSampleWithoutProc(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := New(samples(pool), nil, nil, Config{ProcRoot: filepath.Join(t.TempDir(), "none")})
	time.Sleep(10 * time.Millisecond)
	if _, err := s.Sample(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rows(t, pool)
	if len(got) != 1 || got[0].process != nil || got[0].system != nil || got[0].rss != nil || got[0].heap <= 0 {
		t.Fatalf("rows %+v", got)
	}
}

// A refused insert is an error and counted; the sampler goes on.
func TestSampleFailure(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	reg := prometheus.NewRegistry()
	s := New(samples(pool), nil, reg, Config{})
	if _, err := pool.Exec(context.Background(), "DROP TABLE runtime_samples"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if _, err := s.Sample(context.Background()); err == nil {
		t.Fatal("no error without the table")
	}
	if written, failed := counters(t, reg); written != 0 || failed != 1 {
		t.Fatalf("counters written %v failed %v", written, failed)
	}
}

// Start samples soon, then every interval, with one instance id; Close
// stops it.
func TestStartAndClose(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := New(samples(pool), nil, nil, Config{Interval: 100 * time.Millisecond, First: 10 * time.Millisecond})
	s.Start()
	s.Start() // a second Start does nothing
	deadline := time.Now().Add(10 * time.Second)
	for len(rows(t, pool)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d samples after 10 s", len(rows(t, pool)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Close()
	s.Close()
	n := len(rows(t, pool))
	time.Sleep(300 * time.Millisecond)
	got := rows(t, pool)
	if len(got) != n {
		t.Fatalf("%d samples after Close, %d before", len(got), n)
	}
	for _, r := range got {
		if r.instance != s.InstanceID() || r.interval <= 0 {
			t.Fatalf("row %+v", r)
		}
	}

	// A nil Sampler (sampling off) is safe to use.
	var off *Sampler
	off.Start()
	off.Close()
	if off.InstanceID() != "" {
		t.Fatal("nil sampler has an id")
	}
}

// A sampler whose writes keep failing (a database outage) logs the failure
// once, then once every warnlimit.Every, and counts every one.
func TestFailuresAreLoggedOnce(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	reg := prometheus.NewRegistry()
	var logs syncBuilder
	s := New(samples(pool), slog.New(slog.NewTextHandler(&logs, nil)), reg, Config{Interval: 20 * time.Millisecond, First: 10 * time.Millisecond})
	if _, err := pool.Exec(context.Background(), "DROP TABLE runtime_samples"); err != nil {
		t.Fatal(err)
	}
	s.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, failed := counters(t, reg); failed >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fewer than 3 failed samples after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	if n := strings.Count(logs.String(), "writing a sample failed"); n != 1 {
		t.Fatalf("%d lines for 3 or more failed samples, want 1:\n%s", n, logs.String())
	}
}

// syncBuilder is a strings.Builder the sampler's goroutine may write to
// while the test reads it.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
