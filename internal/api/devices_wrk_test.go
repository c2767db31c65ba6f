package api

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wrk drives the server from outside this process: the Go HTTP client in the
// same process costs about as much CPU per request as the server itself, and
// on a 2-core machine that halves what the server can show. wrk is a small C
// load generator (Debian package wrk; `make bench` installs it when it can).
// The benchmark falls back to the Go generator, and says so, without it.

// wrkPath is the wrk binary, or "" when it is not installed.
func wrkPath() string {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return ""
	}
	return p
}

// wrkPutScript makes wrk send metric reports: PUT with a JSON body and a
// token, for the devices bench00 .. bench<devices-1>. Each wrk thread cycles
// through 1024 prepared requests whose (device, name) keys differ from each
// other and from every other thread's, so no two requests in flight update
// the same latest row (as with the Go generator, where each client is a
// device of its own). done() prints the figures in a form runWrk parses.
var wrkPutScript = `
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local reqs, n, i = {}, 0, 0
function init(args)
  local devices, token = tonumber(args[1]), args[2]
  for j = 0, 1023 do
    local path = string.format("/mrd/bench%02d/metrics", j % devices)
    local body = string.format('{"name":"cpu.load.t%d.%d","value":%d,"units":"percent","type":"int32","slope":"both","ttl":60}',
      tid, math.floor(j / devices), j)
    reqs[j + 1] = wrk.format("PUT", path, {["Authorization"] = token, ["Content-Type"] = "application/json"}, body)
  end
  n = #reqs
end

function request()
  i = i % n + 1
  return reqs[i]
end

` + wrkDone

// wrkGetScript makes wrk send the GET of its URL as is, and print its
// figures as wrkPutScript does.
var wrkGetScript = wrkDone

// latencyGrid are the percentiles at which a run's latencies are kept
// (loadStats.Quantiles), so that the runs of a figure can be pooled
// (pooledQuantile): wrk prints percentiles, not its samples. Steps of 0.1
// from 95 (0.01 from 99.9) so that a run's share below a latency is known
// to within 0.1 point where a pooled p99 falls; 100 is the slowest request.
var latencyGrid = func() []float64 {
	var g []float64
	for p := 1.0; p < 95; p++ {
		g = append(g, p)
	}
	for p := 950; p < 999; p++ {
		g = append(g, float64(p)/10)
	}
	for p := 9990; p < 10000; p++ {
		g = append(g, float64(p)/100)
	}
	return append(g, 100)
}()

// wrkDone is the done() of the wrk scripts: the WRK summary line runWrkScript
// parses, with the latencies at latencyGrid (q_us).
var wrkDone = func() string {
	ps := make([]string, len(latencyGrid))
	for i, p := range latencyGrid {
		ps[i] = strconv.FormatFloat(p, 'f', -1, 64)
	}
	return `
local grid = {` + strings.Join(ps, ", ") + `}
function done(summary, latency, requests)
  local e = summary.errors
  local q = {}
  for i, p in ipairs(grid) do
    -- percentile(100) asks for a rank past the last and answers 0
    local v = latency.max
    if p < 100 then v = latency:percentile(p) end
    q[i] = string.format("%d", v)
  end
  io.write(string.format("WRK requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d q_us=%s\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(q, ",")))
end
`
}()

// runWrk runs wrk with `clients` connections (one thread: its event loop
// handles them all, leaving the other core to the server) for duration
// against url with the PUT script, and returns its figures and its CPU time.
func runWrk(wrk, url string, clients, devices int, token string, duration time.Duration) (loadStats, time.Duration, error) {
	return runWrkScript(wrk, url, wrkPutScript, clients, duration, strconv.Itoa(devices), token)
}

// pooledQuantile is the latency at percentile p of all the requests of
// several runs, from each run's latencies at latencyGrid (its Quantiles) and
// its number of requests: the least of those latencies v such that the
// requests known to take at most v (in each run, its share at the highest
// grid point whose latency is at most v) reach p % of them all. So it is
// never under the pooled percentile, and over it by at most the step of the
// grid there. A figure's p99 over its rounds is this, where the worst
// round's p99 would be the p99 of its slowest seconds alone.
func pooledQuantile(runs []loadStats, p float64) time.Duration {
	var total float64
	var values []time.Duration
	for _, r := range runs {
		if len(r.Quantiles) != len(latencyGrid) {
			return 0
		}
		total += float64(r.Requests)
		values = append(values, r.Quantiles...)
	}
	slices.Sort(values)
	for _, v := range values {
		var below float64
		for _, r := range runs {
			share := 0.0
			for i, q := range r.Quantiles {
				if q <= v {
					share = latencyGrid[i] / 100
				}
			}
			below += share * float64(r.Requests)
		}
		if below >= p/100*total {
			return v
		}
	}
	return 0
}

// runWrkScript runs wrk as runWrk does with a Lua script of its own (which
// must print the WRK summary line) and the script's arguments.
func runWrkScript(wrk, url, lua string, clients int, duration time.Duration, args ...string) (loadStats, time.Duration, error) {
	dir, err := os.MkdirTemp("", "devices-wrk-")
	if err != nil {
		return loadStats{}, 0, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "script.lua")
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		return loadStats{}, 0, err
	}
	cmd := exec.Command(wrk, append([]string{"-t1", "-c", strconv.Itoa(clients), "-d", fmt.Sprintf("%ds", max(1, int(duration.Round(time.Second).Seconds()))),
		"--timeout", "10s", "-s", script, url, "--"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return loadStats{}, 0, fmt.Errorf("wrk: %v: %s%s", err, out.String(), errOut.String())
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "WRK ")
		if !ok {
			continue
		}
		f := map[string]int64{}
		var q []time.Duration
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			if k == "q_us" {
				for _, us := range strings.Split(v, ",") {
					n, err := strconv.ParseInt(us, 10, 64)
					if err != nil {
						return loadStats{}, cpu, fmt.Errorf("wrk: latencies %q: %v", v, err)
					}
					q = append(q, time.Duration(n)*time.Microsecond)
				}
				continue
			}
			f[k], _ = strconv.ParseInt(v, 10, 64)
		}
		if len(q) != len(latencyGrid) {
			return loadStats{}, cpu, fmt.Errorf("wrk printed %d latencies for %d percentiles: %s", len(q), len(latencyGrid), line)
		}
		return loadStats{
			Requests:  f["requests"],
			Errors:    f["status_errors"] + f["socket_errors"],
			Elapsed:   time.Duration(f["duration_us"]) * time.Microsecond,
			P50:       time.Duration(f["p50_us"]) * time.Microsecond,
			P99:       time.Duration(f["p99_us"]) * time.Microsecond,
			Quantiles: q,
		}, cpu, nil
	}
	return loadStats{}, cpu, fmt.Errorf("wrk printed no summary: %s", out.String())
}
