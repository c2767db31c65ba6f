package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store"
)

// fillRunning writes n running runs and n/4 committed ones straight into
// event_runs (as n registers and their commits would), with hosts of about
// hostLen bytes; one in 1,000 holds characters the encoder escapes (a
// quote, a backslash, U+2028) or writes as they are (HTML characters,
// non-ASCII). It returns the keys of the running runs.
func fillRunning(t *testing.T, s *testServer, n, hostLen int) map[string]bool {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Pool.Exec(ctx, `INSERT INTO event_runs (uuid, host, state, started_at, ended_at, committed_at)
		SELECT gen_random_uuid(),
		       left('gen-' || g % 50 || CASE g % 1000 WHEN 7 THEN E'<&>\u2028"\\é\U0001F600' ELSE '' END || repeat('x', $3::int), 255),
		       s, now() - g * interval '1 second', CASE s WHEN 'committed' THEN now() END, CASE s WHEN 'committed' THEN now() END
		FROM generate_series(1, $1::int + $2::int) g,
		     LATERAL (VALUES (CASE WHEN g > $1::int THEN 'committed' ELSE 'running' END)) v(s)`, n, n/4, hostLen); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Pool.Query(ctx, `SELECT host || '-' || uuid::text FROM event_runs WHERE state = 'running'`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// isrunningBytes is the answer the map[string]bool of the running runs had
// (jsonFormat, as it was written before it was read in pages).
func isrunningBytes(t *testing.T, running map[string]bool) []byte {
	t.Helper()
	buffered, streamed := formatted(t, running)
	if string(buffered) != string(streamed) {
		t.Fatal("jsonFormat writes the map two ways")
	}
	return buffered
}

// firstDifference describes where got and want part.
func firstDifference(got, want []byte) string {
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("%d bytes, want %d; they differ at byte %d: %q, want %q", len(got), len(want), i,
		got[max(0, i-40):min(len(got), i+40)], want[max(0, i-40):min(len(want), i+40)])
}

// RunningRuns.writeJSON writes the bytes the map[string]bool the answer
// was built as had (jsonFormat, both ways it writes): no run, one, a few,
// and many whose hosts hold what the encoder escapes (quotes, backslashes,
// control characters, U+2028 and U+2029) or writes as it is (HTML
// characters, non-ASCII), in the store's order (the keys' bytes).
func TestRunningRunsWriteJSONBytes(t *testing.T) {
	const id, other = "0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f", "ffffffff-0000-4abc-8def-000000000001"
	cases := []struct {
		keys []string
		want string
	}{
		{nil, "{}\n"},
		{[]string{}, "{}\n"},
		{[]string{"loadgen-1-" + id}, `{"loadgen-1-0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f":true}` + "\n"},
		{[]string{"a-" + id, "a-" + other, `b"<&>\é` + "\u2028-" + id},
			`{"a-0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f":true,"a-ffffffff-0000-4abc-8def-000000000001":true,` +
				`"b\"<&>\\é\u2028-0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f":true}` + "\n"},
	}
	pieces := []string{"a", "Z", "-", "0", " ", `"`, `\`, "<", ">", "&", "é", "\u2028", "\u2029", "\x01", "\t", "\x7f",
		"\U0001F600", "\uE000", "\ufffd", "/"}
	rng := rand.New(rand.NewPCG(1, 2))
	var many []string
	for range 3000 {
		var host strings.Builder
		for range 1 + rng.IntN(6) {
			host.WriteString(pieces[rng.IntN(len(pieces))])
		}
		var u uuid.UUID
		for i := range u {
			u[i] = byte(rng.Uint32())
		}
		many = append(many, host.String()+"-"+u.String())
	}
	slices.Sort(many) // the store's order
	cases = append(cases, struct {
		keys []string
		want string
	}{many, ""})
	for i, c := range cases {
		m := map[string]bool{}
		for _, k := range c.keys {
			m[k] = true
		}
		want := isrunningBytes(t, m)
		if c.want != "" && string(want) != c.want {
			t.Fatalf("case %d: the map's encoding is %q, want %q", i, want, c.want)
		}
		buffered, streamed := formatted(t, RunningRuns{first: c.keys})
		for _, got := range [][]byte{buffered, streamed} {
			if string(got) != string(want) {
				t.Fatalf("case %d: %s", i, firstDifference(got, want))
			}
		}
	}
}

// eventsFailingPages counts the calls of RunningKeys, and fails the third
// and later while fail is set: a read that fails after the answer's first
// bytes were sent (as a lost connection or a DB_TIMEOUT would).
type eventsFailingPages struct {
	store.EventStore
	fail  *atomic.Bool
	calls *atomic.Int64
}

func (e eventsFailingPages) RunningKeys(ctx context.Context, after string, limit int) ([]string, error) {
	if e.calls.Add(1) > 2 && e.fail.Load() {
		return nil, errors.New("list running runs: the connection was lost (the test's failure)")
	}
	return e.EventStore.RunningKeys(ctx, after, limit)
}

// The running runs of more than a page: a page that fails after the
// answer's first byte cuts the connection, so that the client reads a
// truncated body, never a complete answer missing runs; the service then
// answers whole again. A HEAD reads the first page only: it answers while
// the later pages fail.
func TestEventsIsRunningCutWhenAPageFails(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	var calls atomic.Int64
	s := newTestServerOver(t, func(st *store.Store) {
		st.Events = eventsFailingPages{EventStore: st.Events, fail: &fail, calls: &calls}
	}, func(c *config.Config) { c.SelfProfile = false })
	running := fillRunning(t, s, 3*runningPage+10, 20)
	whole := isrunningBytes(t, running)
	fail.Store(true)
	calls.Store(0)

	res, err := http.Get(s.URL + "/apiv0.1/events/isrunning")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	body, err := io.ReadAll(bufio.NewReader(res.Body))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the answer: %d bytes, %v; want io.ErrUnexpectedEOF (a truncated body)", len(body), err)
	}
	// The pages read (the first two) were written, or most of them: the
	// encoder's last chunk is lost with the connection.
	if len(body) < len(whole)/2-jsonChunk || len(body) >= len(whole) || string(body) != string(whole[:len(body)]) {
		t.Fatalf("the cut answer has %d bytes of %d: want the first two pages' (less a chunk), as the whole answer has them",
			len(body), len(whole))
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d pages read for the cut answer, want 3 (the third failed)", n)
	}
	waitIdle(t, s)

	calls.Store(0)
	if r := s.do("HEAD", "/apiv0.1/events/isrunning", nil).wantStatus(t, http.StatusOK); len(r.Body) != 0 ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("HEAD: %d bytes of body, Content-Type %q", len(r.Body), r.Header.Get("Content-Type"))
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d pages read for a HEAD, want 1", n)
	}

	fail.Store(false)
	if r := s.do("GET", "/apiv0.1/events/isrunning", nil).wantStatus(t, http.StatusOK); string(r.Body) != string(whole) {
		t.Fatalf("after the failure: %s", firstDifference(r.Body, whole))
	}
}

// More running runs than a page are answered whole, each once, in the
// order of their keys: the same bytes as the map[string]bool of the
// running runs had; the committed runs are not in it. HEAD answers 200 and
// no body.
func TestEventsIsRunningPastOnePage(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	running := fillRunning(t, s, 2*runningPage+345, 20)
	if len(running) != 2*runningPage+345 {
		t.Fatalf("%d running runs written", len(running))
	}
	r := s.do("GET", "/apiv0.1/events/isrunning", nil).wantStatus(t, http.StatusOK)
	if want := isrunningBytes(t, running); string(r.Body) != string(want) {
		t.Fatalf("the answer: %s", firstDifference(r.Body, want))
	}
	if !strings.Contains(string(r.Body), `<&>\u2028\"\\é`+"\U0001F600") {
		t.Fatal("the escaped host is not in the answer")
	}
	var got map[string]bool
	r.decode(t, &got)
	if len(got) != len(running) {
		t.Fatalf("%d keys, want %d", len(got), len(running))
	}
	if h := s.do("HEAD", "/apiv0.1/events/isrunning", nil).wantStatus(t, http.StatusOK); len(h.Body) != 0 {
		t.Fatalf("HEAD: %d bytes of body", len(h.Body))
	}
}

// The answer of few running runs has the bytes it always had: {} for none,
// then one key per run registered through the API and not committed, and
// HEAD answers 200 without a body.
func TestEventsIsRunningSmallBytes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	get := func() []byte {
		t.Helper()
		if h := s.do("HEAD", "/apiv0.1/events/isrunning", nil).wantStatus(t, http.StatusOK); len(h.Body) != 0 {
			t.Fatalf("HEAD: %d bytes of body", len(h.Body))
		}
		return s.do("GET", "/apiv0.1/events/isrunning", nil).wantStatus(t, http.StatusOK).Body
	}
	if got := string(get()); got != "{}\n" {
		t.Fatalf("no run: %q, want {}", got)
	}
	a := s.eventsRegister(t, eventsRegisterBody("gen-a", "single", "2025-11-22T10:00:00Z"))
	if got, want := string(get()), `{"gen-a-`+a+`":true}`+"\n"; got != want {
		t.Fatalf("one run: %q, want %q", got, want)
	}
	running := map[string]bool{"gen-a-" + a: true}
	// (U+2028 inside the host: the register trims the blanks around it.)
	for _, host := range []string{"gen-b", `q"<&>` + "\u2028" + `\é`, "gen-a"} {
		id := s.eventsRegister(t, eventsRegisterBody(host, "cluster", "2025-11-22T11:00:00Z"))
		running[host+"-"+id] = true
	}
	done := s.eventsRegister(t, eventsRegisterBody("gen-c", "single", "2025-11-22T12:00:00Z"))
	s.do("POST", "/apiv0.1/events/commit", eventsCommitBody(done)).wantStatus(t, http.StatusOK)
	if got, want := get(), isrunningBytes(t, running); string(got) != string(want) {
		t.Fatalf("a few runs: %s", firstDifference(got, want))
	}
}

// heapWriter is an answer's ResponseWriter that discards the body and,
// at each write, collects the garbage and keeps the largest live heap seen.
type heapWriter struct {
	header http.Header
	status int
	bytes  int
	gc     bool // collect and measure at each write
	peak   uint64
}

func (w *heapWriter) Header() http.Header { return w.header }
func (w *heapWriter) WriteHeader(s int)   { w.status = s }
func (w *heapWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.bytes += len(p)
	if !w.gc {
		return len(p), nil
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	w.peak = max(w.peak, ms.HeapAlloc)
	return len(p), nil
}

// The answer's memory does not grow with the number of running runs: at
// 100,000 (a 6 MB answer) the service's live heap while it writes the
// answer stays below a fraction of the answer's size (a page of keys and
// the encoder's chunk: about 1 MB), where the answer built whole held every
// key several times (the rows, the map, the sorted keys); and one request
// allocates a few times the answer's size in all (each page's rows), where
// it allocated about 9 times. Measured on the API's handler itself, without
// the test server's audit and the HTTP client. Not parallel: the other
// tests' allocations would count.
func TestEventsIsRunningMemory(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	fillRunning(t, s, 100_000, 10)
	get := func(gc bool) (*heapWriter, uint64) {
		t.Helper()
		w := &heapWriter{header: http.Header{}, gc: gc}
		r := httptest.NewRequest("GET", "/apiv0.1/events/isrunning", nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s.handler.ServeHTTP(w, r)
		runtime.ReadMemStats(&after)
		if w.status != http.StatusOK {
			t.Fatalf("status %d", w.status)
		}
		return w, before.HeapAlloc
	}
	get(false) // the connections and the statements ready
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w, base := get(true)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	live := int64(w.peak) - int64(base)
	t.Logf("%d bytes of answer: live heap at most %d bytes above the request's start (%.2f times the answer), %d allocated (%.1f times)",
		w.bytes, live, float64(live)/float64(w.bytes), alloc, float64(alloc)/float64(w.bytes))
	if live > int64(w.bytes)/3 {
		t.Errorf("the live heap grew by %d bytes while a %d-byte answer was written: more than a third of it", live, w.bytes)
	}
	if alloc > 5*uint64(w.bytes) {
		t.Errorf("%d bytes allocated for a %d-byte answer: more than 5 times its size", alloc, w.bytes)
	}
}
