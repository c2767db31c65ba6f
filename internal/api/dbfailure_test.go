package api

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// faultProxy stands between the pool and PostgreSQL. It forwards bytes both
// ways until it is cut; from then on every connection, open (idle in the
// pool) or new, dies the moment the client sends anything: the bytes are
// forwarded first, so the server may act on them, and the answer is lost,
// which is what a server crash or a network cut looks like from the client
// mid-request. The cut closes the connection (the client reads EOF) or,
// with reset, aborts it (the client sees "connection reset by peer").
type faultProxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	cut    bool
	reset  bool
	// reply, when set, cuts the one connection whose server sends it (a
	// one-shot cut at a chosen answer): the server has acted, the client
	// never reads the answer.
	reply []byte
	conns map[net.Conn]bool
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

// set cuts (cut true) or restores the link; reset makes a cut abort the
// connections instead of closing them.
func (p *faultProxy) set(cut, reset bool) {
	p.mu.Lock()
	p.cut, p.reset = cut, reset
	p.mu.Unlock()
}

// cutAtReply arms a one-shot cut: the first connection whose server sends
// message is cut there, and the bytes that hold it are not forwarded (nor
// anything after them): the server has acted (a COMMIT committed), the
// client never learns it.
func (p *faultProxy) cutAtReply(message []byte) {
	p.mu.Lock()
	p.reply = message
	p.mu.Unlock()
}

// pgCommitted is the server's answer to a COMMIT that committed: a
// CommandComplete "COMMIT", whether the COMMIT came as a simple query
// (pgx's Tx.Commit) or at the end of a pipelined batch.
var pgCommitted = []byte("C\x00\x00\x00\x0bCOMMIT\x00")

func (p *faultProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		server, err := net.Dial("tcp", target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client], p.conns[server] = true, true
		p.mu.Unlock()
		go p.answer(client, server)
		go p.forward(client, server)
	}
}

// forward copies what the client sends, and kills both ends at the first
// bytes that arrive while the link is cut.
func (p *faultProxy) forward(client, server net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, server)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut, reset := p.cut, p.reset
			p.mu.Unlock()
			if cut {
				// The link is down: nothing is forwarded, so no answer can
				// slip through.
				if tc, ok := client.(*net.TCPConn); ok && reset {
					_ = tc.SetLinger(0) // an RST instead of a FIN
				}
				client.Close()
				server.Close()
				return
			}
			_, _ = server.Write(buf[:n])
		}
		if err != nil {
			client.Close()
			server.Close()
			return
		}
	}
}

// answer copies what the server sends back to the client, unless it holds
// the answer armed by cutAtReply: then both ends are closed before the
// client sees it. The last bytes of each read are kept, so that an answer
// split between two reads is found too (the client then holds a part of
// it, which is no answer).
func (p *faultProxy) answer(client, server net.Conn) {
	defer client.Close()
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			var hit bool
			if p.reply != nil {
				seen := append(tail, buf[:n]...)
				if hit = bytes.Contains(seen, p.reply); hit {
					p.reply = nil
				} else {
					tail = append(tail[:0], seen[max(0, len(seen)-len(p.reply)+1):]...)
				}
			}
			p.mu.Unlock()
			if hit {
				server.Close()
				return
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// url is dbURL with its host replaced by the proxy's address.
func (p *faultProxy) url(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.target = u.Host
	p.mu.Unlock()
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "5")
	u.RawQuery = q.Encode()
	return u.String()
}

// endpointSamples is one valid request per route of routes.go, by operation
// id, so that a route added without a sample fails the test. Path ids are
// made up: the database is gone before they are looked up.
func endpointSamples(t *testing.T) map[string]struct{ method, path, body string } {
	const (
		id     = "0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f"
		metric = `{"name":"m","value":1,"units":"u","type":"int32","slope":"both","ttl":60}`
		flow   = `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`
	)
	return map[string]struct{ method, path, body string }{
		"getReady":                 {"GET", "/readyz", ""},
		"postFlows":                {"POST", "/flows", flow},
		"listFlows":                {"GET", "/flows?hour=3", ""},
		"getFlowSummary":           {"GET", "/flows/summary?from_hour=1&to_hour=5&by=src_app", ""},
		"registerEvent":            {"POST", "/apiv0.1/events/register", eventsSeedRegister},
		"commitEvent":              {"POST", "/apiv0.1/events/commit", strings.Replace(eventsSeedCommit, "%s", id, 1)},
		"listRunningEvents":        {"GET", "/apiv0.1/events/isrunning", ""},
		"getEvent":                 {"GET", "/apiv0.1/events/" + id, ""},
		"listStates":               {"GET", "/apiv0.1/states", ""},
		"putDeviceMetric":          {"PUT", "/mrd/n1/metrics", metric},
		"createDevice":             {"POST", "/mrd/devices", `{"id":"n2","name":"N2"}`},
		"listDevices":              {"GET", "/mrd/devices", ""},
		"getDevice":                {"GET", "/mrd/devices/n1", ""},
		"updateDevice":             {"PUT", "/mrd/devices/n1", `{"name":"renamed"}`},
		"deleteDevice":             {"DELETE", "/mrd/devices/n1", ""},
		"listCurrentDeviceMetrics": {"GET", "/mrd/devices/n1/metrics", ""},
		"getDeviceMetricHistory":   {"GET", "/mrd/devices/n1/metrics/m/history?bucket=5m", ""},
		"listCurrentMetricNames":   {"GET", "/mrd/metrics/current", ""},
		"postMeasurements":         {"POST", "/api/measurements", "[" + seedMeasurement + "]"},
		"listMeasurements":         {"GET", "/api/measurements/", ""},
		"filterMeasurements":       {"GET", "/api/measurements/filter/", ""},
		"listMeasurementGroups":    {"GET", "/api/measurements/grouped/", ""},
		"getMethodDistribution":    {"GET", "/api/measurements/methodDistribution/", ""},
		"getMeasurementTimeseries": {"GET", "/api/measurements/timeseries/?interval=daily", ""},
		"getMeasurement":           {"GET", "/api/measurements/1", ""},
		"listCollections":          {"GET", collectionsPath, ""},
		"createCollection":         {"POST", collectionsPath, ""},
		"getCollection":            {"GET", collectionsPath + "/1", ""},
		"clearCollection":          {"PUT", collectionsPath + "/1", ""},
		"deleteCollection":         {"DELETE", collectionsPath + "/1", ""},
	}
}

// noDatabase are the routes that never touch the database.
var noDatabase = map[string]bool{"getHealth": true, "eventsPing": true, "getMrdStatus": true, "createMrdToken": true}

// newProxiedServer is a test server (with a JWT secret) whose database
// connections go through a faultProxy.
func newProxiedServer(t *testing.T) (*testServer, *faultProxy) {
	t.Helper()
	dbURL := testdb.URL(t)
	proxy := newFaultProxy(t, "")
	pool, err := pgxpool.New(context.Background(), proxy.url(t, dbURL))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(func(string) string { return "" })
	cfg.JWTSecret = testSecret
	st := postgres.New(pool, postgres.Options{})
	t.Cleanup(st.Close)
	h, _ := New(Deps{Store: st.Stores(), Config: cfg})
	return &testServer{Server: newHTTPTest(t, h), Pool: pool, t: t}, proxy
}

// When the connection to PostgreSQL breaks mid-request (the server crashed
// or restarted, a network cut), every endpoint that uses the database
// answers 503 with Retry-After, never a 500, whether the client reads EOF
// ("unexpected EOF", then "conn closed") or a reset; and once the link is
// back the same requests succeed.
func TestConnectionLostMidRequestIs503(t *testing.T) {
	t.Parallel()
	s, proxy := newProxiedServer(t)
	auth := bearer(t)
	s.do("POST", "/mrd/devices", `{"id":"n1","name":"N1"}`, auth...).wantStatus(t, http.StatusCreated)

	samples := endpointSamples(t)
	for _, r := range routesForTest() {
		if _, ok := samples[r.id]; !ok && !noDatabase[r.id] {
			t.Fatalf("route %s %s (%s) has no sample request: add one to endpointSamples", r.method, r.path, r.id)
		}
	}
	for _, reset := range []bool{false, true} {
		for op, c := range samples {
			// Connections in the pool first, so that the request meets one
			// that breaks under it (or, when the pool checks it first, a
			// new one that breaks while connecting).
			proxy.set(false, false)
			s.do("GET", "/flows?hour=1", nil).wantStatus(t, http.StatusOK)
			proxy.set(true, reset)
			var body any
			if c.body != "" {
				body = c.body
			}
			r := s.do(c.method, c.path, body, auth...)
			if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
				t.Errorf("reset %v: %s %s %s: %d (Retry-After %q), want 503 with Retry-After; body %s",
					reset, op, c.method, c.path, r.Status, r.Header.Get("Retry-After"), r.Body)
				continue
			}
			p := r.problem(t, http.StatusServiceUnavailable)
			if strings.Contains(p.Detail, "EOF") || strings.Contains(p.Detail, "conn") || strings.Contains(p.Detail, "127.0.0.1") {
				t.Errorf("%s: driver message leaked: %q", op, p.Detail)
			}
		}
	}
	// Back to normal: the pool replaces the broken connections.
	proxy.set(false, false)
	deadline := time.Now().Add(30 * time.Second)
	for s.do("GET", "/flows?hour=1", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the API never recovered after the link came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.do("POST", "/flows", samples["postFlows"].body).wantStatus(t, http.StatusCreated)
}

// A request whose connection is terminated by PostgreSQL while it waits
// (pg_terminate_backend, what a fast shutdown or an operator does) answers
// 503 with Retry-After.
func TestBackendTerminatedMidRequestIs503(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	ctx := context.Background()
	// Hold the lock the upsert needs, so that the request is in the
	// database when its backend is terminated.
	lock, err := s.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, `LOCK TABLE flows IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan response, 1)
	go func() {
		done <- s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`)
	}()
	// Wait until the request waits for the lock, then terminate it.
	var killed int
	deadline := time.Now().Add(30 * time.Second)
	for killed == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the database")
		}
		// From another session: in the lock's transaction,
		// pg_stat_activity would show the same snapshot every time.
		err := s.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	r := <-done
	r.problem(t, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

// With the pool closed (the server shutting down), requests answer 503.
func TestClosedPoolIs503(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(func(string) string { return "" })
	h, _ := New(Deps{Store: postgres.New(pool, postgres.Options{}).Stores(), Config: cfg})
	s := &testServer{Server: newHTTPTest(t, h), t: t}
	s.do("GET", "/flows?hour=1", nil).wantStatus(t, http.StatusOK)
	pool.Close()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/flows?hour=1", ""},
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`},
		{"GET", "/api/measurements/", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := s.do(c.method, c.path, body)
		r.problem(t, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s: no Retry-After", c.method, c.path)
		}
	}
}

// routesForTest lists the routes without needing a database.
func routesForTest() []route {
	srv := &server{dev: &devicesAPI{}}
	return srv.routes()
}

// A write PostgreSQL refuses for want of disk space (53100 disk_full:
// "could not extend file ...: No space left on device") answers 503 with
// Retry-After and says the disk is full, not that the database is
// unavailable: it answers, and the reads go on (found by a disk-full audit,
// cmd/telemetry/diskfull_test.go, where a tmpfs fills for real). Here a
// trigger raises PostgreSQL's own error of that code.
func TestDiskFullIs503(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	ctx := context.Background()
	for _, q := range []string{
		`CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = 'disk_full', HINT = 'Check free disk space.';
		END $$`,
		`CREATE TRIGGER disk_full BEFORE INSERT ON collections FOR EACH ROW EXECUTE FUNCTION disk_full()`,
	} {
		if _, err := s.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r := s.do("POST", "/appmetrics/api/v1/collections", nil)
	p := r.problem(t, http.StatusServiceUnavailable)
	if p.Detail != "the database server's disk is full; retry later" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("503 %q, Retry-After %q", p.Detail, r.Header.Get("Retry-After"))
	}
	s.do("GET", "/appmetrics/api/v1/collections", nil).wantStatus(t, http.StatusOK)
}
