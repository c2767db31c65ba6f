package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// logBuffer collects a server's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines are the log lines whose msg is msg, decoded.
func (b *logBuffer) lines(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// newLoggedServer is newTestServer with the server's log kept.
func newLoggedServer(t *testing.T, tweak ...func(*config.Config)) (*testServer, *logBuffer) {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	for _, f := range tweak {
		f(&cfg)
	}
	pool := testdb.New(t)
	prom := metrics.New()
	st := postgres.New(pool, postgres.Options{DeviceWriters: cfg.DeviceMetricsWriters, DeviceMaxBatch: cfg.DeviceMetricsBatch})
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, _ := New(Deps{Store: st.Stores(), Config: cfg, Metrics: prom, Log: log})
	return &testServer{Server: newHTTPTest(t, h), Pool: pool, Metrics: prom, t: t}, logs
}

// raw sends a request written by hand (head: the request line and headers,
// lines ending in \n, and the blank line) on its own connection, then runs
// feed (which may write more, dribble or half-close), then reads the answer.
// The whole exchange is bounded so that a server that never answers fails
// the test instead of hanging it.
func raw(t *testing.T, s *testServer, head string, feed func(net.Conn)) (*http.Response, []byte, net.Conn) {
	t.Helper()
	conn := dialRaw(t, s, head, 30*time.Second)
	if feed != nil {
		feed(conn)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, body, conn
}

// dialRaw opens a connection to s that closes with the test and gives up
// after limit, and writes head on it (its \n as \r\n).
func dialRaw(t *testing.T, s *testServer, head string, limit time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
	return conn
}

// wantProblem checks a raw answer's status and problem body, and that the
// body says nothing of the reader's own errors.
func wantProblem(t *testing.T, res *http.Response, body []byte, status int) Problem {
	t.Helper()
	r := response{Status: res.StatusCode, Header: res.Header, Body: body}
	p := r.problem(t, status)
	for _, leak := range []string{"cannot read request body", "invalid byte in chunk length", "malformed chunked encoding",
		"unexpected EOF", "i/o timeout", "chunk length", "read tcp"} {
		if bytes.Contains(body, []byte(leak)) {
			t.Fatalf("the reader's error reaches the client: %s", body)
		}
	}
	return p
}

// count is the number of requests served on route with status, as
// /metrics tells it.
func count(s *testServer, method, route string, status int) float64 {
	s.t.Helper()
	n, _ := metricValue(s, fmt.Sprintf("telemetry_http_requests_total{method=%q,route=%q,status=\"%d\"}", method, route, status))
	return n
}

// metricValue is the value of one series of /metrics (a name, with its
// labels if any), and whether /metrics has it.
func metricValue(s *testServer, series string) (float64, bool) {
	s.t.Helper()
	r := s.do("GET", "/metrics", nil).wantStatus(s.t, http.StatusOK)
	for _, l := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var n float64
			fmt.Sscan(v, &n)
			return n, true
		}
	}
	return 0, false
}

// Every operation that takes a body, and a header line for each (the
// devices' need a token, and PUT a registered device).
type bodyEndpoint struct {
	method, path, route, auth string
}

func bodyEndpoints(t *testing.T, s *testServer) []bodyEndpoint {
	s.createDevice(t, "n1")
	auth := "Authorization: Bearer " + validToken(t) + "\n"
	return []bodyEndpoint{
		{"POST", "/flows", "/flows", ""},
		{"POST", "/api/measurements", "/api/measurements", ""},
		{"PUT", "/mrd/n1/metrics", "/mrd/{device_id}/metrics", auth},
		{"POST", "/apiv0.1/events/register", "/apiv0.1/events/register", ""},
		{"POST", "/apiv0.1/events/commit", "/apiv0.1/events/commit", ""},
		{"POST", "/mrd/devices", "/mrd/devices", auth},
		{"PUT", "/mrd/devices/n1", "/mrd/devices/{id}", auth},
		{"POST", "/mrd/token", "/mrd/token", ""},
	}
}

func (e bodyEndpoint) head(s *testServer, framing string) string {
	return e.method + " " + e.path + " HTTP/1.1\nHost: " + strings.TrimPrefix(s.URL, "http://") +
		"\nContent-Type: application/json\n" + e.auth + framing + "\n"
}

// A body that arrives too slowly is a 408 problem once READ_TIMEOUT has
// passed (not huma's 5 s, not never), logged at info with its cause, and
// never counted as a 500; the connection is then closed.
func TestSlowBodyIs408(t *testing.T) {
	t.Parallel()
	s, logs := newLoggedServer(t, func(c *config.Config) { c.ReadTimeout = 700 * time.Millisecond })
	endpoints := bodyEndpoints(t, s)
	for _, e := range endpoints {
		t.Run(e.path, func(t *testing.T) {
			stop := make(chan struct{})
			res, body, conn := raw(t, s, e.head(s, "Content-Length: 100000\n"), func(c net.Conn) {
				// Dribble a byte every 50 ms, far slower than needed, from
				// another goroutine (the answer comes while it writes).
				go func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-time.After(50 * time.Millisecond):
						}
						if _, err := c.Write([]byte(" ")); err != nil {
							return
						}
					}
				}()
			})
			close(stop)
			wantProblem(t, res, body, http.StatusRequestTimeout)
			// The server is done with this connection.
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				t.Fatal("connection still open after the 408")
			}
			if n := count(s, e.method, e.route, 500); n != 0 {
				t.Fatalf("%v requests counted as 500", n)
			}
			if n := count(s, e.method, e.route, 408); n != 1 {
				t.Fatalf("%v requests counted as 408, want 1", n)
			}
		})
	}
	lines := logs.lines("request")
	n := 0
	for _, l := range lines {
		if l["status"] == float64(408) {
			n++
			if l["level"] != "INFO" || !strings.Contains(fmt.Sprint(l["body_error"]), "timeout") {
				t.Fatalf("408 logged as %v", l)
			}
		}
	}
	if n != len(endpoints) {
		t.Fatalf("%d 408s logged, want %d", n, len(endpoints))
	}
}

// READ_TIMEOUT, not huma's own 5 s body read timeout (which it gives the
// operations with a typed body), is what bounds a body: one that takes about
// 6 s to arrive, well within READ_TIMEOUT, is served.
func TestSlowButTimelyBodyIsServed(t *testing.T) {
	t.Parallel()
	s, _ := newLoggedServer(t, func(c *config.Config) { c.ReadTimeout = time.Minute })
	body := `{"id":"slow-device-0001","name":"registered over a slow link"}`
	e := bodyEndpoint{"POST", "/mrd/devices", "/mrd/devices", "Authorization: Bearer " + validToken(t) + "\n"}
	res, out, _ := raw(t, s, e.head(s, fmt.Sprintf("Content-Length: %d\n", len(body))), func(c net.Conn) {
		const pieces = 30 // every 200 ms
		for i := 0; i < pieces; i++ {
			time.Sleep(200 * time.Millisecond)
			piece := body[i*len(body)/pieces : (i+1)*len(body)/pieces]
			if _, err := io.WriteString(c, piece); err != nil {
				t.Error(err)
				return
			}
		}
	})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	s.do("GET", "/mrd/devices/slow-device-0001", nil).wantStatus(t, http.StatusOK)
}

// A client that gives up mid-body (sends part of it, then closes its side)
// gets a 400, logged at info and counted as a 400, never a 500.
func TestAbortedBodyIs400(t *testing.T) {
	t.Parallel()
	s, logs := newLoggedServer(t)
	for _, e := range bodyEndpoints(t, s) {
		t.Run(e.path, func(t *testing.T) {
			res, body, _ := raw(t, s, e.head(s, "Content-Length: 1000\n"), func(c net.Conn) {
				if _, err := io.WriteString(c, `[{"src_app":"a"`); err != nil {
					t.Fatal(err)
				}
				if err := c.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			})
			wantProblem(t, res, body, http.StatusBadRequest)
			if n := count(s, e.method, e.route, 500); n != 0 {
				t.Fatalf("%v requests counted as 500", n)
			}
			if n := count(s, e.method, e.route, 400); n != 1 {
				t.Fatalf("%v requests counted as 400, want 1", n)
			}
		})
	}
	for _, l := range logs.lines("request") {
		if l["level"] != "INFO" {
			t.Fatalf("logged above info: %v", l)
		}
	}
	if len(logs.lines("internal error")) != 0 {
		t.Fatal("an aborted body was logged as an internal error")
	}
}

// Malformed chunked bodies: an invalid chunk length is a 400 problem at
// once; a chunk shorter than announced, the connection then idle, is a 408
// after READ_TIMEOUT. Neither is a 500, nor left unanswered, and the raw
// reader error never reaches the client.
func TestMalformedChunkedBodies(t *testing.T) {
	t.Parallel()
	s, _ := newLoggedServer(t, func(c *config.Config) { c.ReadTimeout = 700 * time.Millisecond })
	rows := func() int {
		var n int
		if err := s.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM flows) + (SELECT count(*) FROM measurements) + (SELECT count(*) FROM device_metrics)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, e := range bodyEndpoints(t, s) {
		for _, c := range []struct {
			name, body string
			status     int
		}{
			{"invalid length", "zz\r\n[]\r\n0\r\n\r\n", http.StatusBadRequest},
			{"negative length", "-1\r\n[]\r\n0\r\n\r\n", http.StatusBadRequest},
			{"length too large", "ffffffffffffffffff\r\n[]\r\n", http.StatusBadRequest},
			{"NUL in the length", "2\x00\r\n[]\r\n0\r\n\r\n", http.StatusBadRequest},
			{"no CRLF after the data", "2\r\n[]XX0\r\n\r\n", http.StatusBadRequest},
			{"short chunk then idle", "400\r\n[{\"src_app\":", http.StatusRequestTimeout},
		} {
			t.Run(e.path+"/"+c.name, func(t *testing.T) {
				before := rows()
				res, body, _ := raw(t, s, e.head(s, "Transfer-Encoding: chunked\n"), func(conn net.Conn) {
					if _, err := io.WriteString(conn, c.body); err != nil {
						t.Fatal(err)
					}
				})
				wantProblem(t, res, body, c.status)
				if after := rows(); after != before {
					t.Fatalf("rows %d -> %d", before, after)
				}
			})
		}
		if n := count(s, e.method, e.route, 500); n != 0 {
			t.Fatalf("%s: %v requests counted as 500", e.path, n)
		}
	}
}

// A request with both Content-Length and Transfer-Encoding (RFC 9112 6.3),
// or chunked alone, is answered with Connection: close and its connection
// closed, so that bytes a proxy forwarded past the chunked body's end are
// never read as a request of their own; one with Content-Length alone
// keeps its connection, whatever its answer.
func TestChunkedRequestsCloseTheirConnection(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	host := strings.TrimPrefix(s.URL, "http://")
	smuggled := "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	for _, c := range []struct {
		name, framing, body string
		status              int
	}{
		// The Content-Length covers the chunked body and the request
		// after it, as a proxy going by Content-Length would forward them.
		{"both, the batch stored", "Content-Length: %d\nTransfer-Encoding: chunked\n",
			"2\r\n[]\r\n0\r\n\r\n" + smuggled, http.StatusCreated},
		{"both, the batch refused", "Content-Length: %d\nTransfer-Encoding: chunked\n",
			"2\r\n{}\r\n0\r\n\r\n" + smuggled, http.StatusBadRequest},
		{"chunked alone", "Transfer-Encoding: chunked\n", "2\r\n[]\r\n0\r\n\r\n" + smuggled, http.StatusCreated},
	} {
		t.Run(c.name, func(t *testing.T) {
			framing := c.framing
			if strings.Contains(framing, "%d") {
				framing = fmt.Sprintf(framing, len(c.body))
			}
			head := "POST /flows HTTP/1.1\nHost: " + host + "\nContent-Type: application/json\n" + framing + "\n"
			conn := dialRaw(t, s, head, 30*time.Second)
			if _, err := io.WriteString(conn, c.body); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, body)
			}
			if !res.Close { // Connection: close (ReadResponse takes the header out)
				t.Fatal("answer without Connection: close")
			}
			// The request after the chunked body is never answered: the
			// server closes instead.
			if next, err := http.ReadResponse(br, nil); err == nil {
				t.Fatalf("the bytes after the chunked body were served as a request: %d", next.StatusCode)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("want the connection closed, got %v", err)
			}
		})
	}
	t.Run("content-length alone keeps the connection", func(t *testing.T) {
		conn := dialRaw(t, s, "POST /flows HTTP/1.1\nHost: "+host+"\nContent-Type: application/json\nContent-Length: 2\n\n", 30*time.Second)
		if _, err := io.WriteString(conn, "[]"+smuggled); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		for i, want := range []int{http.StatusCreated, http.StatusOK} {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i+1, err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != want || res.Close {
				t.Fatalf("answer %d: status %d (want %d), close %v", i+1, res.StatusCode, want, res.Close)
			}
		}
	})
}

// A request whose handler ignores the body (a GET with one) cannot hold
// its connection open by dribbling: it is answered, then closed once
// READ_TIMEOUT has passed.
func TestDribbledBodyOnAnyRouteIsCut(t *testing.T) {
	t.Parallel()
	s, _ := newLoggedServer(t, func(c *config.Config) { c.ReadTimeout = 500 * time.Millisecond })
	head := "GET /flows?hour=1 HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
	res, _, conn := raw(t, s, head, func(c net.Conn) { _, _ = io.WriteString(c, "1\r\n") })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	// The server closes the connection rather than wait for the rest;
	// the test's own 30 s deadline would report a timeout instead.
	_, err := conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection kept open: %v", err)
	}
}

// READ_TIMEOUT bounds the body, not the work: a request whose body arrived
// in time and whose handler then works longer than READ_TIMEOUT (here,
// waiting for a lock) is served, its context not cancelled.
func TestReadTimeoutDoesNotCutTheHandler(t *testing.T) {
	t.Parallel()
	s, _ := newLoggedServer(t, func(c *config.Config) {
		c.ReadTimeout = 300 * time.Millisecond
		c.DBTimeout = 0
	})
	unlock := s.lockTable(t, "measurements")
	done := make(chan response, 1)
	go func() {
		done <- s.do("POST", "/api/measurements", []rec{mrec("/x", "GET", 1.7e9, 0.5)})
	}()
	// Hold the lock well past READ_TIMEOUT; the request waits on it.
	select {
	case r := <-done:
		t.Fatalf("answered %d while the table was locked: %s", r.Status, r.Body)
	case <-time.After(1500 * time.Millisecond):
	}
	unlock()
	(<-done).wantStatus(t, http.StatusCreated)
}

// DB_TIMEOUT: a query stuck behind a lock ends with a 503 and Retry-After
// once the request's database deadline has passed.
func TestDBTimeoutIs503(t *testing.T) {
	t.Parallel()
	s, logs := newLoggedServer(t, func(c *config.Config) { c.DBTimeout = 300 * time.Millisecond })
	// A connection open before the first request: DB_TIMEOUT also bounds
	// opening one, which a loaded machine can make slow.
	if _, err := s.Pool.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`).wantStatus(t, http.StatusCreated)
	unlock := s.lockTable(t, "flows")
	answer := make(chan response, 1)
	go func() { answer <- s.do("GET", "/flows?hour=1", nil) }()
	var r response
	select {
	case r = <-answer:
	case <-time.After(time.Minute):
		t.Fatal("no answer while the table is locked: no database deadline")
	}
	p := r.problem(t, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if !strings.Contains(p.Detail, "did not answer within DB_TIMEOUT") {
		t.Fatalf("detail %q does not say the database was too slow", p.Detail)
	}
	if len(logs.lines("internal error")) != 0 {
		t.Fatal("the deadline was logged as an internal error")
	}
	if l := logs.lines("database timeout"); len(l) != 1 || l[0]["op"] != "list flows" ||
		l[0]["request_id"] != p.RequestID || l[0]["db_timeout"] != "300ms" {
		t.Fatalf("timeout log lines %v, want one naming the operation, request %s and DB_TIMEOUT", l, p.RequestID)
	}
	unlock()
	// The lock gone, the same request is served.
	s.do("GET", "/flows?hour=1", nil).wantStatus(t, http.StatusOK)
}

// X-Request-Id is taken from the client only when it is a short token;
// every answer says nosniff.
func TestRequestIDCharsetAndNosniff(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for id, kept := range map[string]bool{
		"abc-123":                             true,
		"5f0c3a7e-9b1d-4c2a.trace:01_x":       true,
		strings.Repeat("a", 64):               true,
		strings.Repeat("a", 65):               false,
		"<script>alert(1)</script>":           false,
		"a b":                                 false,
		"id\"with\"quotes":                    false,
		"a/b":                                 false,
		"caf\u00e9":                           false,
		"{\"level\":\"ERROR\",\"msg\":\"x\"}": false,
	} {
		got := s.do("GET", "/healthz", nil, "X-Request-Id", id).Header.Get("X-Request-Id")
		if kept && got != id || !kept && (got == id || !validRequestID(got)) {
			t.Errorf("X-Request-Id %q answered as %q", id, got)
		}
	}
	for _, path := range []string{"/healthz", "/nowhere", "/metrics", "/docs", "/openapi.json", "/flows?hour=x"} {
		if got := s.do("GET", path, nil).Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
		}
	}
}

// A request's log line is bounded whatever its path: a megabyte-long path
// (net/http takes a request line that long) was logged whole, at the info
// level, by every request.
func TestRequestLogLineIsBounded(t *testing.T) {
	t.Parallel()
	s, logs := newLoggedServer(t)
	long := "/" + strings.Repeat("\x01é", 100_000)
	res, _, _ := raw(t, s, "GET "+(&url.URL{Path: long}).EscapedPath()+" HTTP/1.1\nHost: localhost\nConnection: close\n\n", nil)
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", res.StatusCode)
	}
	logs.mu.Lock()
	text := logs.buf.String()
	logs.mu.Unlock()
	if len(text) > 16<<10 {
		t.Errorf("the log holds %d bytes for one request", len(text))
	}
	lines := logs.lines("request")
	if len(lines) != 1 {
		t.Fatalf("%d request lines", len(lines))
	}
	if p, _ := lines[0]["path"].(string); len(p) > maxLoggedPath+3 || !strings.HasPrefix(long, strings.TrimSuffix(p, "...")) {
		t.Errorf("logged path of %d bytes: %.40q", len(p), p)
	}
}
