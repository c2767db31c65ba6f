package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/pgbouncer"
	"github.com/telemetry/telemetry/internal/testdb"
)

// startBouncer starts PgBouncer in transaction pooling mode in front of the
// test server, stopped when t ends.
func startBouncer(t *testing.T) *pgbouncer.Bouncer {
	t.Helper()
	return startBouncerWith(t, pgbouncer.Options{})
}

// startBouncerWith is startBouncer with options (the server and directory
// are filled in).
func startBouncerWith(t *testing.T, opts pgbouncer.Options) *pgbouncer.Bouncer {
	t.Helper()
	u, err := url.Parse(testdb.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		t.Skip("the PgBouncer tests need a test server that trusts local connections (the throwaway cluster, not TEST_DATABASE_URL with a password)")
	}
	port, _ := strconv.Atoi(u.Port())
	opts.ServerHost, opts.ServerPort = u.Hostname(), port
	return testdb.Bouncer(t, opts)
}

// syncBuffer collects a serve process's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServeLogged is startServe keeping the log.
func startServeLogged(t *testing.T, vars map[string]string) (string, context.CancelFunc, <-chan error, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, env(vars), pw, logs)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("serve printed nothing: %v (%v): %s", err, <-done, logs)
	}
	go io.Copy(io.Discard, pr)
	var base string
	if _, err := fmt.Sscanf(line, "telemetry: serving on %s", &base); err != nil {
		t.Fatalf("unexpected first line %q", line)
	}
	t.Cleanup(cancel)
	return base, cancel, done, logs
}

// startServeChecked is startServeLogged with a stop that waits for serve
// to exit and fails the test on its error, or on an error line it logged.
func startServeChecked(t *testing.T, vars map[string]string) (string, func()) {
	t.Helper()
	base, cancel, done, logs := startServeLogged(t, vars)
	return base, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("serve: %v", err)
		}
		noErrorsLogged(t, "serve", logs)
	}
}

// noErrorsLogged fails when a serve log has an error line: a failed query,
// a lost self-profiling or runtime sample batch.
func noErrorsLogged(t *testing.T, name string, logs *syncBuffer) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		// The codes as pgx writes them ("... (SQLSTATE 26000)"): a bare
		// "26000" also turns up in request ids, which are hexadecimal.
		if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, "SQLSTATE 42P05") || strings.Contains(line, "SQLSTATE 26000") {
			t.Errorf("%s logged: %s", name, line)
		}
	}
}

// Two serve processes through PgBouncer in transaction pooling mode, with
// the URL as users write it (no exec mode given): both answer a round of
// every resource, at once and several times over, and a burst of POST
// /flows; a third starts, serves, stops and starts again cleanly. Every
// request is recorded by self-profiling and every instance's runtime
// samples are stored: no batch lost to 42P05 or 26000.
func TestServeBehindPgBouncer(t *testing.T) {
	b := startBouncer(t)
	direct := testdb.Empty(t)
	pooled := b.Via(direct)
	vars := map[string]string{"DATABASE_URL": pooled, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"ENABLE_TOKEN_ENDPOINT": "true", "SELF_SAMPLE_INTERVAL": "100ms"}
	// Migrating through the pooler is safe (table lock, no session state).
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	type instance struct {
		base string
		stop context.CancelFunc
		done <-chan error
		logs *syncBuffer
	}
	var insts []instance
	start := func() instance {
		base, stop, done, logs := startServeLogged(t, vars)
		in := instance{base, stop, done, logs}
		insts = append(insts, in)
		return in
	}
	pool, err := pgxpool.New(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// An instance is stopped only once its runtime samples are stored (the
	// sampler's first one may come after a quick round on a loaded machine).
	sampled := func() (n int64) {
		if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT instance_id) FROM runtime_samples`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stopIt := func(in instance) {
		for deadline := time.Now().Add(30 * time.Second); sampled() < int64(len(insts)) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		in.stop()
		if err := <-in.done; err != nil {
			t.Fatalf("serve %s: %v", in.base, err)
		}
	}
	a, bb := start(), start()
	var sent atomic.Int64
	t.Run("rounds", func(t *testing.T) {
		for i, in := range []instance{a, bb} {
			for r := range 3 {
				t.Run(fmt.Sprintf("instance%d-round%d", i, r), func(t *testing.T) {
					t.Parallel()
					sent.Add(int64(roundTrip(t, in.base, fmt.Sprintf("pgb-%d-%d", i, r))))
				})
			}
		}
	})
	// A burst of writes on both instances at once.
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := []instance{a, bb}[i%2].base
			res, err := http.Post(base+"/flows", "application/json", strings.NewReader(
				fmt.Sprintf(`[{"src_app":"burst-%d","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":7}]`, i)))
			sent.Add(1)
			if err != nil {
				bad.Add(1)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d of 100 POST /flows through PgBouncer failed", n)
	}
	// A third instance starts, serves, stops and starts again.
	c := start()
	sent.Add(int64(roundTrip(t, c.base, "pgb-third")))
	stopIt(c)
	c2 := start()
	sent.Add(int64(roundTrip(t, c2.base, "pgb-third-again")))
	for _, in := range []instance{a, bb, c2} {
		stopIt(in)
	}
	for i, in := range insts {
		noErrorsLogged(t, fmt.Sprintf("instance %d", i), in.logs)
	}
	var flows, profiled, samplers int64
	ctx := context.Background()
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM flows WHERE src_app LIKE 'burst-%'`).Scan(&flows); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(coalesce((context->>'count')::bigint, 1)), 0) FROM measurements WHERE app = 'telemetry'`).Scan(&profiled); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT instance_id) FROM runtime_samples`).Scan(&samplers); err != nil {
		t.Fatal(err)
	}
	if flows != 100 {
		t.Errorf("%d burst flows stored, want 100", flows)
	}
	if profiled != sent.Load() {
		t.Errorf("self-profiling stored %d measurements for %d requests", profiled, sent.Load())
	}
	if samplers != int64(len(insts)) {
		t.Errorf("runtime samples from %d instances, want %d", samplers, len(insts))
	}
}

// TestHelperServeProcess is not a test: it is the serve process that
// TestPgBouncerInstanceKilledUnderLoad starts (and SIGKILLs) as a
// subprocess of the test binary.
func TestHelperServeProcess(t *testing.T) {
	if os.Getenv("TELEMETRY_HELPER_SERVE") != "1" {
		t.Skip("the serve subprocess of TestPgBouncerInstanceKilledUnderLoad")
	}
	err := run(context.Background(), []string{"serve"}, os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveProcess starts serve as a subprocess (the test binary running
// TestHelperServeProcess) and returns its base URL.
func serveProcess(t *testing.T, vars map[string]string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServeProcess$")
	cmd.Env = append(os.Environ(), "TELEMETRY_HELPER_SERVE=1",
		// The child's TestMain uses the parent's server instead of starting its own.
		"TEST_DATABASE_URL="+testdb.ServerURL())
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("serve subprocess printed nothing: %v: %s", err, stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	var base string
	if _, err := fmt.Sscanf(line, "telemetry: serving on %s", &base); err != nil {
		t.Fatalf("unexpected first line %q", line)
	}
	return cmd, base
}

// Two serve processes through PgBouncer under a POST /flows load; one is
// SIGKILLed in the middle. Every flow acknowledged (201) by either is
// stored, and the survivor keeps answering.
func TestPgBouncerInstanceKilledUnderLoad(t *testing.T) {
	b := startBouncer(t)
	direct := testdb.Empty(t)
	if err := run(context.Background(), []string{"migrate"}, env(map[string]string{"DATABASE_URL": direct}), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": b.Via(direct), "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"SELF_SAMPLE_INTERVAL": "0"}
	victim, victimURL := serveProcess(t, vars)
	_, survivorURL := serveProcess(t, vars)

	var (
		mu     sync.Mutex
		acked  []string
		killed atomic.Bool
		next   atomic.Int64
		errs   atomic.Int64
	)
	post := func(base string) (string, int) {
		name := fmt.Sprintf("load-%d", next.Add(1))
		res, err := http.Post(base+"/flows", "application/json", strings.NewReader(
			fmt.Sprintf(`[{"src_app":%q,"dest_app":"d","vpc_id":"v","bytes_tx":5,"bytes_rx":6,"hour":9}]`, name)))
		if err != nil {
			return name, 0
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return name, res.StatusCode
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base, isSurvivor := victimURL, w%2 == 1
			if isSurvivor {
				base = survivorURL
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				wasKilled := killed.Load()
				name, code := post(base)
				if code == http.StatusCreated {
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				} else if isSurvivor || !wasKilled && code != 0 {
					// The survivor must never fail; the victim may only
					// fail by dying (no answer).
					errs.Add(1)
				}
				if !isSurvivor && killed.Load() {
					return
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.Store(true)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := errs.Load(); n > 0 {
		t.Errorf("%d POST /flows answered with an error status", n)
	}
	pool, err := pgxpool.New(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(context.Background(), `SELECT src_app FROM flows WHERE src_app LIKE 'load-%'`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored[s] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, name := range acked {
		if !stored[name] {
			lost++
		}
	}
	if lost > 0 || len(acked) == 0 {
		t.Fatalf("%d of %d acknowledged flows not stored", lost, len(acked))
	}
	t.Logf("%d flows acknowledged, all stored; %d rows in all", len(acked), len(stored))
	// The survivor still answers after the kill.
	if _, code := post(survivorURL); code != http.StatusCreated {
		t.Fatalf("survivor after the kill: %d", code)
	}
}
