package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
)

// flowsBodyOf is a valid POST /flows body of exactly size bytes: one flow,
// padded with white space.
func flowsBodyOf(size int) string {
	const item = `[{"src_app":"budget","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":7}`
	return item + strings.Repeat(" ", size-len(item)-1) + "]"
}

// budgetFlowBytes is bytes_tx of the one flow that flowsBodyOf's bodies
// add to (hour 7, budget -> b), 0 when none was stored: each body adds 1.
func budgetFlowBytes(t *testing.T, s *testServer) int64 {
	t.Helper()
	var page struct {
		Items []struct {
			BytesTx int64 `json:"bytes_tx"`
		} `json:"items"`
	}
	s.do("GET", "/flows?hour=7&src_app=budget", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if len(page.Items) > 1 {
		t.Fatalf("%d flows for one key: %+v", len(page.Items), page.Items)
	}
	if len(page.Items) == 0 {
		return 0
	}
	return page.Items[0].BytesTx
}

// exchange is a request written by hand on its own connection, whose
// answer is read in the background.
type exchange struct {
	conn   net.Conn
	answer chan rawAnswer
}

type rawAnswer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// start writes head (lines ending in \n, and the blank line) and the first
// bytes of the body, and starts reading the answer.
func start(t *testing.T, s *testServer, head, first string) *exchange {
	t.Helper()
	conn := dialRaw(t, s, head, 60*time.Second)
	if _, err := io.WriteString(conn, first); err != nil {
		t.Fatal(err)
	}
	e := &exchange{conn: conn, answer: make(chan rawAnswer, 1)}
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			e.answer <- rawAnswer{err: err}
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		e.answer <- rawAnswer{status: res.StatusCode, header: res.Header, body: body}
	}()
	return e
}

// send writes more of the body.
func (e *exchange) send(t *testing.T, more string) {
	t.Helper()
	if _, err := io.WriteString(e.conn, more); err != nil {
		t.Fatal(err)
	}
}

// wait is the answer, which must come within 30 s.
func (e *exchange) wait(t *testing.T) rawAnswer {
	t.Helper()
	select {
	case a := <-e.answer:
		if a.err != nil {
			t.Fatalf("no answer: %v", a.err)
		}
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no answer within 30 s")
		return rawAnswer{}
	}
}

// wantStatus is the answer, which must have status.
func (e *exchange) wantStatus(t *testing.T, status int) rawAnswer {
	t.Helper()
	a := e.wait(t)
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	return a
}

// answered reports whether the answer has come (keeping it for wait).
func (e *exchange) answered() bool {
	select {
	case a := <-e.answer:
		e.answer <- a
		return true
	default:
		return false
	}
}

func postHead(s *testServer, path, framing, extra string) string {
	return "POST " + path + " HTTP/1.1\nHost: " + strings.TrimPrefix(s.URL, "http://") +
		"\nContent-Type: application/json\n" + extra + framing + "\n"
}

// readGauge reads a gauge of /metrics.
func readGauge(s *testServer, name string) float64 {
	s.t.Helper()
	v, ok := metricValue(s, name)
	if !ok {
		s.t.Fatalf("/metrics has no %s", name)
	}
	return v
}

// eventually waits (at most 20 s) for gauge name to read want.
func eventually(t *testing.T, s *testServer, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := readGauge(s, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	heldGauge    = "telemetry_request_body_bytes_held"
	waitingGauge = "telemetry_request_bodies_waiting"
)

// budget3MiB is a server whose large bodies share 3 MiB, with no
// BODY_MIN_RATE: these tests hold shares while they look at the gauges
// (TestBodyBudgetMinRate sets one).
func budget3MiB(readTimeout time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		c.MaxBodyBytes, c.BodyMemoryBytes, c.ReadTimeout, c.BodyMinRate = 3<<20, 3<<20, readTimeout, 0
	}
}

// Two 2 MiB bodies do not fit in 3 MiB together: the second waits until
// the first is answered, then is served; a small body meanwhile does not
// wait; and every share is given back.
func TestBodyBudgetLargeBodiesTakeTurns(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, budget3MiB(30*time.Second))
	const size = 2 << 20
	body := flowsBodyOf(size)
	first := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), ""), body[:size/2])
	eventually(t, s, heldGauge, size)

	second := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), ""), body)
	eventually(t, s, waitingGauge, 1)
	s.do("POST", "/flows", flowsBodyOf(1000)).wantStatus(t, http.StatusCreated)
	if second.answered() {
		t.Fatalf("the second body was served while the first held its share: %s", second.wait(t).body)
	}

	first.send(t, body[size/2:])
	first.wantStatus(t, http.StatusCreated)
	second.wantStatus(t, http.StatusCreated)
	eventually(t, s, heldGauge, 0)
	eventually(t, s, waitingGauge, 0)
	if got := budgetFlowBytes(t, s); got != 3 {
		t.Fatalf("flows stored: %d bytes, want 3 (three bodies of 1)", got)
	}
}

// A body that finds no room within READ_TIMEOUT is a 503 with Retry-After
// that names the setting, and stores nothing. The body holding the room has
// arrived, and its handler waits for a lock on the flows table.
func TestBodyBudgetWaitEndsIn503(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, budget3MiB(1500*time.Millisecond), func(c *config.Config) { c.DBTimeout = time.Minute })
	unlock := s.lockTable(t, "flows")
	const size = 2 << 20
	body := flowsBodyOf(size)
	holder := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), ""), body)
	eventually(t, s, heldGauge, size)
	waiter := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), ""), body)

	a := waiter.wait(t)
	p := (response{Status: a.status, Header: a.header, Body: a.body}).problem(t, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "BODY_MEMORY_BYTES") || a.header.Get("Retry-After") == "" {
		t.Fatalf("503 %q, Retry-After %q", p.Detail, a.header.Get("Retry-After"))
	}
	if holder.answered() {
		t.Fatalf("the holder was answered while the table was locked: %s", holder.wait(t).body)
	}
	unlock()
	holder.wantStatus(t, http.StatusCreated)
	eventually(t, s, heldGauge, 0)
	if got := budgetFlowBytes(t, s); got != 1 {
		t.Fatalf("flows stored: %d bytes, want the holder's alone (1)", got)
	}
}

// A Content-Length over the operation's limit is refused at once: before,
// the service waited for the body (here it never comes) to read it up to
// the limit.
func TestBodyContentLengthOverTheLimitIs413AtOnce(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, budget3MiB(25*time.Second), func(c *config.Config) { c.EventsMaxBodyBytes = 2 << 20 })
	for path, limit := range map[string]int{
		"/flows":                   3 << 20,
		"/api/measurements":        3 << 20,
		"/apiv0.1/events/register": 2 << 20,
	} {
		e := start(t, s, postHead(s, path, fmt.Sprintf("Content-Length: %d\n", limit+1), ""), "[")
		a := e.wait(t)
		p := (response{Status: a.status, Header: a.header, Body: a.body}).problem(t, http.StatusRequestEntityTooLarge)
		if want := fmt.Sprintf("request body is too large: at most %d bytes", limit); p.Detail != want {
			t.Errorf("%s: %q, want %q", path, p.Detail, want)
		}
	}
	if held := readGauge(s, heldGauge); held != 0 {
		t.Fatalf("held %v", held)
	}
}

// chunk is b as one chunk of a chunked body.
func chunk(b string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(b), b) }

// A chunked body reads its first MiB without a share, then takes what it
// has read and one more MiB, and another MiB each time it has read what its
// share covers. Three chunked bodies 1.25 MiB into their 1.5 hold 2 MiB
// each, and a 2 MiB body is served beside them, in a budget of 8 MiB whose
// operations take 4: each took its operation's whole limit, two of them
// the whole budget, and the third waited.
func TestBodyBudgetChunkedBodies(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) {
		c.MaxBodyBytes, c.BodyMemoryBytes, c.ReadTimeout, c.BodyMinRate = 4<<20, 8<<20, 30*time.Second, 0
	})
	chunked := postHead(s, "/flows", "Transfer-Encoding: chunked\n", "")

	small := start(t, s, chunked, chunk(flowsBodyOf(900<<10))+"0\r\n\r\n")
	small.wantStatus(t, http.StatusCreated)
	if held := readGauge(s, heldGauge); held != 0 {
		t.Fatalf("held %v after a small chunked body", held)
	}

	body := flowsBodyOf(3 << 19) // 1.5 MiB
	var open []*exchange
	for range 3 {
		open = append(open, start(t, s, chunked, chunk(body[:5<<18]))) // 1.25 MiB: past the first MiB
	}
	eventually(t, s, heldGauge, 3*(2<<20))
	if w := readGauge(s, waitingGauge); w != 0 {
		t.Fatalf("%v waiting", w)
	}
	s.do("POST", "/flows", flowsBodyOf(2<<20)).wantStatus(t, http.StatusCreated)
	for _, e := range open {
		e.send(t, chunk(body[5<<18:])+"0\r\n\r\n")
		e.wantStatus(t, http.StatusCreated)
	}
	eventually(t, s, heldGauge, 0)
	if got := budgetFlowBytes(t, s); got != 5 {
		t.Fatalf("flows stored: %d bytes, want 5 (five bodies of 1)", got)
	}
}

// A chunked body that has read what its share covers while the budget has
// no room for its next MiB is a 503 at once, whose detail names the
// setting (it does not wait: it could wait for a body that waits for its
// room), and gives its share back; the body that holds the room is served.
// A chunked body over its operation's limit is a 413 and holds nothing
// after.
func TestBodyBudgetChunkedBodyFindsNoRoom(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) {
		c.MaxBodyBytes, c.BodyMemoryBytes, c.ReadTimeout, c.BodyMinRate = 4<<20, 4<<20, 30*time.Second, 0
	})
	chunked := postHead(s, "/flows", "Transfer-Encoding: chunked\n", "")
	body := flowsBodyOf(3 << 20)
	grower := start(t, s, chunked, chunk(body[:5<<18])) // holds 2 MiB
	eventually(t, s, heldGauge, 2<<20)
	const size = 2 << 20
	other := flowsBodyOf(size)
	holder := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), ""), other[:3<<19])
	eventually(t, s, heldGauge, 4<<20)

	// The rest, of which the service reads up to its share's 2 MiB.
	go io.WriteString(grower.conn, chunk(body[5<<18:])+"0\r\n\r\n")
	a := grower.wait(t)
	p := (response{Status: a.status, Header: a.header, Body: a.body}).problem(t, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "BODY_MEMORY_BYTES") || a.header.Get("Retry-After") == "" {
		t.Fatalf("503 %q, Retry-After %q", p.Detail, a.header.Get("Retry-After"))
	}
	eventually(t, s, heldGauge, 2<<20)
	holder.send(t, other[3<<19:])
	holder.wantStatus(t, http.StatusCreated)
	eventually(t, s, heldGauge, 0)

	over := flowsBodyOf(4<<20 + 1000)
	tooLarge := start(t, s, chunked, chunk(over[:5<<18]))
	go io.WriteString(tooLarge.conn, chunk(over[5<<18:])+"0\r\n\r\n")
	a = tooLarge.wait(t)
	(response{Status: a.status, Header: a.header, Body: a.body}).problem(t, http.StatusRequestEntityTooLarge)
	eventually(t, s, heldGauge, 0)
	if got := budgetFlowBytes(t, s); got != 1 {
		t.Fatalf("flows stored: %d bytes, want the holder's alone (1)", got)
	}
}

// The share is taken when the body is read, after the operation's own
// checks: with AUTH_WRITES a body without a token is a 401 even when the
// budget is full, and never waits.
func TestBodyBudgetAfterAuthentication(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, budget3MiB(30*time.Second), func(c *config.Config) { c.AuthWrites = true })
	const size = 3 << 20
	body := flowsBodyOf(size)
	auth := "Authorization: Bearer " + validToken(t) + "\n"
	holder := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), auth), body[:size/2])
	eventually(t, s, heldGauge, size)
	stranger := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), ""), body)
	stranger.wantStatus(t, http.StatusUnauthorized)
	if w := readGauge(s, waitingGauge); w != 0 {
		t.Fatalf("%v waiting", w)
	}
	holder.send(t, body[size/2:])
	holder.wantStatus(t, http.StatusCreated)
}

// A body holds no share before its first MiB has arrived: one that
// announces the whole budget and sends less does not hold up another.
func TestBodyBudgetFirstMiBIsFree(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, budget3MiB(30*time.Second))
	const size = 3 << 20
	body := flowsBodyOf(size)
	announced := start(t, s, postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), ""), body[:512<<10])
	other := flowsBodyOf(2 << 20)
	s.do("POST", "/flows", other).wantStatus(t, http.StatusCreated)
	if held := readGauge(s, heldGauge); held != 0 {
		t.Fatalf("held %v", held)
	}
	announced.send(t, body[512<<10:])
	announced.wantStatus(t, http.StatusCreated)
}

// BODY_MIN_RATE: a body that stalls while it holds its share is a 408 once
// it falls the rate's slack (1 MiB) behind, long before READ_TIMEOUT, and
// the body that waited for its room is then served; a body that keeps
// arriving above the rate is served, also when it takes longer than the
// slack alone would allow.
func TestBodyBudgetMinRate(t *testing.T) {
	t.Parallel()
	const rate = 512 << 10 // the slack is 2 s of it
	s := newTestServer(t, budget3MiB(30*time.Second), func(c *config.Config) { c.BodyMinRate = rate })
	const size = 3 << 20
	// 1.25 MiB, then nothing; then 64 KiB every 100 ms (640 KiB/s) for
	// 2.8 s after the first 1.25 MiB.
	stallThenKeepPace(t, s, size, 5<<18, 64<<10, "BODY_MIN_RATE")
}

// stallThenKeepPace posts three flows bodies of size bytes to s: one that
// sends its first bytes and stalls, holding the budget, which must be a 408
// whose detail holds want; one waiting for that room, stored once the
// stalled one is cut; and one that sends its first bytes, then chunk bytes
// every 100 ms, stored. Only the last two store their flows.
func stallThenKeepPace(t *testing.T, s *testServer, size, first, chunk int, want string) {
	t.Helper()
	body := flowsBodyOf(size)
	head := postHead(s, "/flows", fmt.Sprintf("Content-Length: %d\n", size), "")

	stalled := start(t, s, head, body[:first])
	eventually(t, s, heldGauge, float64(size))
	waiter := start(t, s, head, body)
	a := stalled.wait(t)
	p := (response{Status: a.status, Header: a.header, Body: a.body}).problem(t, http.StatusRequestTimeout)
	if !strings.Contains(p.Detail, want) {
		t.Fatalf("408 %q does not say %q", p.Detail, want)
	}
	waiter.wantStatus(t, http.StatusCreated)
	eventually(t, s, heldGauge, 0)

	steady := start(t, s, head, body[:first])
	for off := first; off < size; off += chunk {
		time.Sleep(100 * time.Millisecond)
		steady.send(t, body[off:min(off+chunk, size)])
	}
	steady.wantStatus(t, http.StatusCreated)
	if got := budgetFlowBytes(t, s); got != 2 {
		t.Fatalf("flows stored: %d bytes, want the waiter's and the steady body's (2), not the stalled one's", got)
	}
}

// A body of known length holding its share must also keep the pace at which
// it would end before READ_TIMEOUT, when that is faster than BODY_MIN_RATE:
// one that falls further behind would be cut at READ_TIMEOUT anyway, and is
// a 408 at once, so that the bodies waiting for its room go on. It used to
// hold the room until READ_TIMEOUT while arriving above BODY_MIN_RATE
// (found by a security audit: 64 MiB announced and sent at 300 KiB/s held
// the whole budget for 60 s, request after request). A body that keeps
// that pace is stored.
func TestBodyBudgetMustEndBeforeReadTimeout(t *testing.T) {
	t.Parallel()
	const size = 16 << 20
	s := newTestServer(t, func(c *config.Config) {
		// BODY_MIN_RATE alone would allow the stalled body 1,024 s.
		c.MaxBodyBytes, c.BodyMemoryBytes, c.ReadTimeout, c.BodyMinRate = size, size, 30*time.Second, 1<<10
	})
	// The first 2 MiB, then nothing: 14 MiB to go in under 30 s is a pace
	// of about 490 KiB/s, and it falls a MiB behind within about 2 s. Then
	// 256 KiB every 100 ms (about 2.5 MiB/s, five times the pace).
	stallThenKeepPace(t, s, size, 2<<20, 256<<10, "too slowly to end before READ_TIMEOUT")
}

// An events body counts eightfold (eventsBodyWeight): 1.2 MiB of it takes
// the whole 3 MiB.
func TestBodyBudgetEventsWeighMore(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, budget3MiB(30*time.Second))
	const size = 1200 << 10
	body := eventsSeedRegister + strings.Repeat(" ", size-len(eventsSeedRegister))
	e := start(t, s, postHead(s, "/apiv0.1/events/register", fmt.Sprintf("Content-Length: %d\n", size), ""), body[:1100<<10])
	eventually(t, s, heldGauge, 3<<20)
	e.send(t, body[1100<<10:])
	e.wantStatus(t, http.StatusOK)
	eventually(t, s, heldGauge, 0)
}

// Two APIs may share one Prometheus registry (BenchmarkDevicesTarget
// serves the same store with self-profiling on and off): New registers no
// collector of its own, which the second would register twice (a panic).
func TestTwoAPIsShareOneRegistry(t *testing.T) {
	t.Parallel()
	prom := metrics.New()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	New(Deps{Config: cfg, Metrics: prom})
	New(Deps{Config: cfg, Metrics: prom})
}

// A body's share of BODY_MEMORY_BYTES goes back when its answer begins: a
// client that sends an invalid batch and never reads its 422 (megabytes:
// an item per fault) no longer holds the share until WRITE_TIMEOUT while
// every other large body waits out READ_TIMEOUT and answers 503.
func TestBodyBudgetReleasedWhenTheAnswerBegins(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, budget3MiB(5*time.Second))
	const item = `{"src_app":"","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}`
	invalid := "[" + strings.TrimSuffix(strings.Repeat(item+",", (3<<20-100)/(len(item)+1)), ",") + "]"
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /flows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(invalid), invalid); err != nil {
		t.Fatal(err)
	}
	// The answer has begun (its status line is read, the rest never is):
	// the share is back.
	status := make([]byte, 12)
	if _, err := io.ReadFull(conn, status); err != nil || string(status) != "HTTP/1.1 422" {
		t.Fatalf("%q %v", status, err)
	}
	eventually(t, s, heldGauge, 0)
	s.do("POST", "/flows", flowsBodyOf(3<<19)).wantStatus(t, http.StatusCreated)
	if got := budgetFlowBytes(t, s); got != 1 {
		t.Fatalf("flows stored: %d bytes, want 1", got)
	}
}

// The budget's own accounting: a first share waits its turn behind the
// bodies waiting before it, a body that holds a share grows ahead of them
// or not at all, and a waiter that gives up lets those behind it go on.
func TestBodyBudgetTurns(t *testing.T) {
	t.Parallel()
	b := newBodyBudget(10, 0, 0, nil, nil)
	queued := func(n int) {
		t.Helper()
		for {
			b.mu.Lock()
			got := len(b.queue)
			b.mu.Unlock()
			if got == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	ctx := t.Context()
	if err := b.acquire(ctx, 6); err != nil {
		t.Fatal(err)
	}
	giveUp, cancel := context.WithCancel(ctx)
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- b.acquire(giveUp, 8) }()
	queued(1)
	go func() { second <- b.acquire(ctx, 4) }() // fits, but waits its turn
	queued(2)
	if !b.grow(4) || b.grow(1) {
		t.Fatal("a share grows by the free bytes, ahead of the waiting bodies, and no further")
	}
	cancel()
	if err := <-first; err == nil {
		t.Fatal("the first waiter was given 8 of 10 while 10 were held")
	}
	queued(1)
	b.give(4)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	b.give(10)
	if b.free != 10 || len(b.queue) != 0 {
		t.Fatalf("free %d, %d waiting", b.free, len(b.queue))
	}
}
