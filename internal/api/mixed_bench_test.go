package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/testdb"
)

// BenchmarkMixedLoadMemory runs the real binary (`telemetry serve`, with
// self-profiling and the runtime sampler on, as in production) under a
// mixed load of every resource for MIXED_SECONDS (default 300) and samples
// its resident memory every 5 s: the target is at most 150 MB, flat. The
// server is a separate process so that its figure excludes the load
// generator.
func BenchmarkMixedLoadMemory(b *testing.B) {
	seconds := 300
	if v := os.Getenv("MIXED_SECONDS"); v != "" {
		seconds, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	pool := testdb.New(b) // migrated, and dropped at the end
	if _, err := pool.Exec(ctx, `INSERT INTO devices (id, name) SELECT 'dev' || g, 'Device ' || g FROM generate_series(0, 63) g`); err != nil {
		b.Fatal(err)
	}
	url := pool.Config().ConnString()

	bin := filepath.Join(b.TempDir(), "telemetry")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/telemetry").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	secret := "mixed-load-secret-0123456789abcdef"
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "LISTEN_ADDR=127.0.0.1:0", "JWT_SECRET="+secret, "LOG_LEVEL=warn")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("server printed nothing: %v", err)
	}
	var base string
	if _, err := fmt.Sscanf(line, "telemetry: serving on %s", &base); err != nil {
		b.Fatalf("unexpected first line %q", line)
	}
	token, err := auth.New([]byte(secret)).Issue(time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	call := func(method, path, body string) error {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		drain(res)
		if res.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %d", method, path, res.StatusCode)
		}
		return nil
	}
	var flows strings.Builder
	flows.WriteString("[")
	for i := 0; i < 1000; i++ {
		if i > 0 {
			flows.WriteString(",")
		}
		fmt.Fprintf(&flows, `{"src_app":"app-%d","dest_app":"db-%d","vpc_id":"vpc-%d","bytes_tx":%d,"bytes_rx":%d,"hour":490000}`, i%100, i%7, i%3, i, 2*i)
	}
	flows.WriteString("]")
	now := float64(time.Now().Unix())
	var meas strings.Builder
	meas.WriteString("[")
	for i := 0; i < 200; i++ {
		if i > 0 {
			meas.WriteString(",")
		}
		fmt.Fprintf(&meas, `{"name":"/api/item/<id>","method":"GET","startedAt":%f,"endedAt":%f,"kwargs":{"id":%d},"app":"shop"}`, now-float64(i), now-float64(i)+0.02, i)
	}
	meas.WriteString("]")
	var seq atomic.Int64
	ops := []func() error{
		func() error { return call("POST", "/flows", flows.String()) },
		func() error {
			return call("PUT", fmt.Sprintf("/mrd/dev%d/metrics", seq.Add(1)%64),
				`{"name":"cpu","value":42.5,"units":"percent","type":"float","slope":"both","ttl":60}`)
		},
		func() error { return call("POST", "/api/measurements", meas.String()) },
		func() error { return call("GET", "/flows?hour=490000&page=2", "") },
		func() error { return call("GET", "/api/measurements/grouped/", "") },
		func() error { return call("GET", "/api/measurements/timeseries/?interval=hourly", "") },
		func() error { return call("GET", "/mrd/devices/dev1/metrics", "") },
		func() error {
			return call("POST", "/apiv0.1/events/register", `{"host":"loadgen","measurement":{"fields":{"clients":1,"hatchRate":1,"requests":10}}}`)
		},
		func() error { return call("GET", "/apiv0.1/states", "") },
		func() error { return call("GET", "/appmetrics/api/v1/collections", "") },
	}
	for i := 0; i < 10; i++ { // mostly single-metric reports, as in production
		ops = append(ops, ops[1])
	}

	pid := cmd.Process.Pid
	var rss []int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			rss = append(rss, residentKB(pid))
			select {
			case <-tick.C:
			case <-stopSampling:
				rss = append(rss, residentKB(pid))
				return
			}
		}
	}()
	names := []string{"POST /flows", "PUT /mrd", "POST /api/measurements", "GET /flows", "GET grouped", "GET timeseries",
		"GET device metrics", "POST register", "GET states", "GET collections"}
	slowest := make([]atomic.Int64, len(names))
	var next atomic.Int64
	load := runLoad(16, time.Duration(seconds)*time.Second, 50_000_000, func(ctx context.Context, c int) error {
		i := int(next.Add(1)) % len(ops)
		t0 := time.Now()
		err := ops[i]()
		if i >= len(names) {
			i = 1
		}
		if d := int64(time.Since(t0)); d > slowest[i].Load() {
			slowest[i].Store(d)
		}
		return err
	})
	var slow []string
	for i, n := range names {
		slow = append(slow, fmt.Sprintf("%s %s", n, time.Duration(slowest[i].Load()).Round(time.Millisecond)))
	}
	b.Logf("slowest call per operation: %s", strings.Join(slow, ", "))
	close(stopSampling)
	<-sampled
	var peak int64
	for _, kb := range rss {
		peak = max(peak, kb)
	}
	b.ReportMetric(float64(peak)/1024, "peak_rss_MB")
	b.ReportMetric(float64(rss[len(rss)-1])/1024, "final_rss_MB")
	b.ReportMetric(load.PerSecond(), "requests/s")
	b.Logf("%d s of mixed load: %s; resident MB every 5 s: %s", seconds, load, mbList(rss))
	if load.Errors > 0 {
		b.Errorf("%d requests failed", load.Errors)
	}
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
