package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// testSecret is a JWT secret of the length serve requires (32 bytes or more).
const testSecret = "cmd-test-secret-0123456789abcdef"

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"serve", "migrate [up|status|down]", "openapi", "token", "version", "DATABASE_URL", "LISTEN_ADDR", "BASE_PATH",
		"FLOWS_MAX_BATCH", "MAX_BODY_BYTES", "LOG_LEVEL", "READ_HEADER_TIMEOUT", "READ_TIMEOUT", "WRITE_TIMEOUT",
		"IDLE_TIMEOUT", "DB_TIMEOUT", "AUTH_WRITES", "AUTH_READS", "METRICS_TOKEN", "BODY_MEMORY_BYTES", "BODY_MIN_RATE", "EXPORTS_MAX", "EXPORT_MIN_RATE"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCommandErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "no command"},
		{[]string{"frobnicate"}, nil, "unknown command"},
		{[]string{"serve"}, map[string]string{"JWT_SECRET": testSecret}, "DATABASE_URL is not set"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x"}, "no JWT secret"},
		{[]string{"migrate"}, nil, "DATABASE_URL is not set"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "FLOWS_MAX_BATCH": "-1"}, "FLOWS_MAX_BATCH"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "EXPORTS_MAX": "0"}, "EXPORTS_MAX"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "EXPORT_MIN_RATE": "-1"}, "EXPORT_MIN_RATE"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "EXPORT_MIN_RATE": "slow"}, "EXPORT_MIN_RATE"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "EXPORT_MIN_RATE": "1073741824"}, "EXPORT_MIN_RATE"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "READ_TIMEOUT": "soon"}, "READ_TIMEOUT"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "READ_HEADER_TIMEOUT": "0"}, "READ_HEADER_TIMEOUT"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "IDLE_TIMEOUT": "-1s"}, "IDLE_TIMEOUT"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "DB_TIMEOUT": "-1s"}, "DB_TIMEOUT"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "BODY_MEMORY_BYTES": "0"}, "BODY_MEMORY_BYTES"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "BODY_MIN_RATE": "-1"}, "BODY_MIN_RATE"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "BODY_MIN_RATE": "fast"}, "BODY_MIN_RATE"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "BODY_MIN_RATE": "16777217"}, "BODY_MIN_RATE"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "WRITE_TIMEOUT": "30s"}, "WRITE_TIMEOUT (30s) must be longer than READ_TIMEOUT"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "AUTH_WRITES": "maybe"}, "AUTH_WRITES"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "AUTH_READS": "2"}, "AUTH_READS"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "SELF_PROFILE_DETAIL": "-1"}, "SELF_PROFILE_DETAIL"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "SELF_PROFILE_DETAIL": "lots"}, "SELF_PROFILE_DETAIL"},
		// Checked at start-up, not after the database work (found by an audit).
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "LISTEN_ADDR": "localhost8080"}, "LISTEN_ADDR"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "LISTEN_ADDR": "localhost:"}, "LISTEN_ADDR"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "x", "PPROF_ADDR": "6060"}, "PPROF_ADDR"},
		{[]string{"migrate", "sideways"}, map[string]string{"DATABASE_URL": testdb.Empty(t)}, "unknown migrate command"},
	}
	for _, c := range cases {
		err := run(context.Background(), c.args, env(c.env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run %v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}

func TestServeRefusesAnUnmigratedDatabase(t *testing.T) {
	url := testdb.Empty(t)
	err := run(context.Background(), []string{"serve"}, env(map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "telemetry migrate") {
		t.Fatalf("serve on an empty database: %v", err)
	}
}

// serve on a port already taken (a second `make run`) fails naming
// LISTEN_ADDR before it starts anything: it used to start the runtime
// sampler and a maintenance pass first, whose lines ("runtime sampler
// started", "maintenance pass stopped by shutdown") came before the error.
func TestServeOnATakenPortStartsNothing(t *testing.T) {
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "JWT_SECRET": testSecret}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	vars["LISTEN_ADDR"] = held.Addr().String()
	var stdout bytes.Buffer
	logs := &syncBuffer{}
	err = run(context.Background(), []string{"serve"}, env(vars), &stdout, logs)
	if err == nil || !strings.Contains(err.Error(), "LISTEN_ADDR") {
		t.Fatalf("serve on a taken port: %v, want an error naming LISTEN_ADDR", err)
	}
	for _, started := range []string{"runtime sampler started", "maintenance pass", "self-profiling"} {
		if strings.Contains(logs.String(), started) {
			t.Errorf("serve on a taken port logged %q before failing:\n%s", started, logs)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("serve on a taken port printed %q", stdout.String())
	}
}

func TestMigrateStatusAndDown(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": testdb.Empty(t)})
	ctx := context.Background()
	var logs bytes.Buffer
	if err := run(ctx, []string{"migrate"}, vars, io.Discard, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"mode":"postgresql"`) && !strings.Contains(logs.String(), `"mode":"timescaledb"`) {
		t.Fatalf("migrate does not log its mode: %s", logs.String())
	}
	var status bytes.Buffer
	if err := run(ctx, []string{"migrate", "status"}, vars, &status, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(status.String(), "pending") || !strings.Contains(status.String(), "00002_flows.sql") {
		t.Fatalf("status after migrate:\n%s", status.String())
	}
	if err := run(ctx, []string{"migrate", "down"}, vars, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	status.Reset()
	if err := run(ctx, []string{"migrate", "status"}, vars, &status, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Count(status.String(), "pending") != 1 {
		t.Fatalf("status after down should show one pending migration:\n%s", status.String())
	}
	// Re-applying works: down is a true inverse.
	if err := run(ctx, []string{"migrate"}, vars, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// Two processes migrating one database at once: both succeed, the schema is
// applied once (goose's session lock serialises them).
func TestConcurrentMigrations(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": testdb.Empty(t)})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = run(context.Background(), []string{"migrate"}, vars, io.Discard, io.Discard)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var status bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "status"}, vars, &status, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(status.String(), "pending") {
		t.Fatalf("after concurrent migrations:\n%s", status.String())
	}
}

// startServe runs `serve` and returns its base URL and a stop function
// that cancels it (as SIGTERM does) and returns run's error.
func startServe(t *testing.T, vars map[string]string) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, env(vars), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("serve printed nothing: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	var base string
	if _, err := fmt.Sscanf(line, "telemetry: serving on %s", &base); err != nil {
		t.Fatalf("unexpected first line %q", line)
	}
	t.Cleanup(cancel)
	return base, cancel, done
}

// End to end: migrate, serve, answer, then a graceful shutdown that lets a
// request in flight finish and exits cleanly.
func TestServeEndToEndAndGracefulShutdown(t *testing.T) {
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "SHUTDOWN_TIMEOUT": "20s", "JWT_SECRET": testSecret}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, stop, done := startServe(t, vars)

	res, err := http.Get(base + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res.Body.Close()
	hc := map[string]string{"LISTEN_ADDR": strings.TrimPrefix(base, "http://")}
	if err := run(context.Background(), []string{"healthcheck"}, env(hc), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck against a ready server: %v", err)
	}

	// A request whose body is still arriving when shutdown starts.
	pr, pw := io.Pipe()
	result := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/flows", pr)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- -1
			return
		}
		res.Body.Close()
		result <- res.StatusCode
	}()
	item := `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`
	if _, err := io.WriteString(pw, "["+item); err != nil {
		t.Fatal(err)
	}
	// The first bytes were taken by the client transport, so the connection
	// is open; give the server's accept loop a moment to pick it up (it
	// keeps new and active connections through Shutdown).
	time.Sleep(200 * time.Millisecond)
	stop()
	time.Sleep(100 * time.Millisecond) // let Shutdown close the listener first
	if _, err := io.WriteString(pw, ","+item+"]"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-result; code != http.StatusCreated {
		t.Fatalf("in-flight request got %d, want 201", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve after shutdown: %v", err)
	}
	// The flows were committed, and the server no longer accepts.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still accepting after shutdown")
	}
	if err := run(context.Background(), []string{"healthcheck"}, env(hc), io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck passed with the server stopped")
	}
	vars2 := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret}
	base2, _, _ := startServe(t, vars2)
	res, err = http.Get(base2 + "/flows?hour=3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `"bytes_tx":2`) {
		t.Fatalf("after restart: %s", b)
	}
}

// A client dribbling a body at SIGTERM does not hold the process: once
// SHUTDOWN_TIMEOUT has passed its connection is closed and serve returns
// nil (exit 0), long before the body's READ_TIMEOUT.
func TestServeShutdownWithSlowClient(t *testing.T) {
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"SHUTDOWN_TIMEOUT": "1s", "READ_TIMEOUT": "10m", "WRITE_TIMEOUT": "20m", "SELF_SAMPLE_INTERVAL": "0"}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, stop, done := startServe(t, vars)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /flows HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["); err != nil {
		t.Fatal(err)
	}
	dribbling := make(chan struct{})
	go func() {
		defer close(dribbling)
		for {
			time.Sleep(100 * time.Millisecond)
			if _, err := conn.Write([]byte(" ")); err != nil {
				return // closed by the server
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // the request is being read
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve with a slow client at SIGTERM: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("serve still running: the slow client holds it")
	}
	select {
	case <-dribbling:
	case <-time.After(time.Minute):
		t.Fatal("the slow client's connection was left open")
	}
}

// READ_HEADER_TIMEOUT and IDLE_TIMEOUT reach the server: a client that
// never finishes its headers, and a kept-alive connection left idle, are
// closed by the server (300 ms here), well before the test's own 5 s
// deadline, which the defaults (10 s, 120 s) would hit.
func TestServeHeaderAndIdleTimeouts(t *testing.T) {
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"READ_HEADER_TIMEOUT": "300ms", "IDLE_TIMEOUT": "300ms", "SELF_SAMPLE_INTERVAL": "0"}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, _, _ := startServe(t, vars)
	closedByServer := func(r io.Reader) {
		t.Helper()
		_, err := io.Copy(io.Discard, r)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept the connection open")
		}
	}
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		return conn
	}
	headers := dial()
	if _, err := io.WriteString(headers, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"); err != nil {
		t.Fatal(err)
	}
	closedByServer(headers)

	idle := dial()
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	closedByServer(br)
}

// Self-profiling end to end: the server's own requests become measurements
// (app=telemetry) while it runs, and those still buffered at SIGTERM are
// written before it exits: none is lost.
func TestServeRecordsItsOwnRequestsAndFlushesAtShutdown(t *testing.T) {
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret, "SELF_SAMPLE_INTERVAL": "0"}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, stop, done := startServe(t, vars)
	const n = 25
	for i := 0; i < n; i++ {
		res, err := http.Get(fmt.Sprintf("%s/flows?hour=%d", base, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /flows: %d", res.StatusCode)
		}
	}
	// Stop at once: most of the records are still in the buffer.
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var count int
	var name, method string
	err = pool.QueryRow(context.Background(),
		`SELECT count(*), min(name), min(method) FROM measurements WHERE app = 'telemetry' AND name = '/flows'`).Scan(&count, &name, &method)
	if err != nil {
		t.Fatal(err)
	}
	if count != n || method != "GET" {
		t.Fatalf("%d measurements of GET /flows recorded, want %d (method %q)", count, n, method)
	}
}

// Every command's -h and --help print its usage to stdout and do nothing
// else: no configuration is read (an invalid one does not matter), no
// database is asked (DATABASE_URL points nowhere), no server starts.
func TestEveryCommandHelp(t *testing.T) {
	broken := env(map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "LOG_LEVEL": "loud"})
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "--help"}, {c.name, "-help"}} {
			var out, errOut bytes.Buffer
			if err := run(context.Background(), args, broken, &out, &errOut); err != nil {
				t.Errorf("%v: %v", args, err)
			}
			if !strings.HasPrefix(out.String(), "Usage: telemetry "+c.name) || errOut.Len() != 0 {
				t.Errorf("%v: stdout %q stderr %q", args, out.String(), errOut.String())
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "status", "--help"}, broken, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), "Usage: telemetry migrate") {
		t.Errorf("migrate status --help: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"token", "-h"}, broken, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), "-ttl") {
		t.Errorf("token -h: %v %q", err, out.String())
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}, {"-v"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, env(nil), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "telemetry ") || !strings.Contains(out.String(), "go1.") {
			t.Errorf("%v: %q", args, out.String())
		}
	}
}

// Unknown flags and stray arguments are errors (main exits 1) that say
// what was wrong and print the command's usage to stderr; nothing runs.
func TestUnknownFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--port", "80"}, "flag provided but not defined: -port"},
		{[]string{"token", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"token", "--ttl", "soon"}, "invalid value"},
		{[]string{"openapi", "extra"}, "unexpected arguments"},
		{[]string{"serve", "extra"}, "unexpected arguments"},
		{[]string{"version", "x"}, "unexpected arguments"},
		{[]string{"migrate", "up", "extra"}, "unexpected arguments"},
		{[]string{"migrate", "sideways"}, "unknown migrate command"},
		{[]string{"--frobnicate"}, "unknown command"},
	} {
		var errOut bytes.Buffer
		err := run(context.Background(), c.args, env(nil), io.Discard, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
		// Every one, stray arguments included (those used to print the
		// error alone; found by an audit).
		if !strings.Contains(errOut.String(), "Usage: telemetry") {
			t.Errorf("%v: no usage on stderr: %q", c.args, errOut.String())
		}
	}
}

// SELF_PROFILE_DETAIL=0 means no request gets a row of its own (every one is
// summarised), which selfprofile.Config spells as a negative Detail (its 0
// is the default).
func TestSelfProfileDetail(t *testing.T) {
	if got := selfProfileDetail(0); got >= 0 {
		t.Errorf("SELF_PROFILE_DETAIL=0 gives Detail %d, want a negative number", got)
	}
	if got := selfProfileDetail(250); got != 250 {
		t.Errorf("SELF_PROFILE_DETAIL=250 gives Detail %d", got)
	}
}

// The healthcheck passes whatever ALLOWED_HOSTS lists, also when
// LISTEN_ADDR names the host (localhost, the machine's name) instead of
// giving an address: it sends the address it reached as Host, which
// always passes. It used to send LISTEN_ADDR's name, a 421 from a
// server whose ALLOWED_HOSTS (its public name) did not list it.
func TestHealthcheckWithAllowedHosts(t *testing.T) {
	t.Parallel()
	url := testdb.Empty(t)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"ALLOWED_HOSTS": "telemetry.example.com", "SELF_PROFILE": "false", "SELF_SAMPLE_INTERVAL": "0", "MAINTENANCE_INTERVAL": "0"}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, _, _ := startServe(t, vars)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil)
	req.Host = "localhost:" + port
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host localhost with ALLOWED_HOSTS=telemetry.example.com: %d, want 421", res.StatusCode)
	}
	hc := map[string]string{"LISTEN_ADDR": "localhost:" + port, "ALLOWED_HOSTS": vars["ALLOWED_HOSTS"]}
	if err := run(context.Background(), []string{"healthcheck"}, env(hc), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck with LISTEN_ADDR=localhost:%s: %v", port, err)
	}
}
