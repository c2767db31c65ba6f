package api

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
const wrkPutScript = `
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

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrkGetScript makes wrk send the GET of its URL as is, and print its
// figures as wrkPutScript does.
const wrkGetScript = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// runWrk runs wrk with `clients` connections (one thread: its event loop
// handles them all, leaving the other core to the server) for duration
// against url with the PUT script, and returns its figures and its CPU time.
func runWrk(wrk, url string, clients, devices int, token string, duration time.Duration) (loadStats, time.Duration, error) {
	return runWrkScript(wrk, url, wrkPutScript, clients, duration, strconv.Itoa(devices), token)
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
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			f[k], _ = strconv.ParseInt(v, 10, 64)
		}
		return loadStats{
			Requests: f["requests"],
			Errors:   f["status_errors"] + f["socket_errors"],
			Elapsed:  time.Duration(f["duration_us"]) * time.Microsecond,
			P50:      time.Duration(f["p50_us"]) * time.Microsecond,
			P99:      time.Duration(f["p99_us"]) * time.Microsecond,
		}, cpu, nil
	}
	return loadStats{}, cpu, fmt.Errorf("wrk printed no summary: %s", out.String())
}
