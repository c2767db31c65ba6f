package selfprofile

import (
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// servedAt is a request to path served from start for el.
func servedAt(method, path string, status int, start time.Time, el time.Duration) Served {
	return Served{Request: httptest.NewRequest(method, path+"?q=1", nil), Start: start, End: start.Add(el),
		Status: status, Route: path, OperationID: "op"}
}

// Past Detail requests in a second, the rest of that second's requests are
// summed into one row per (route, method, path, status, second started):
// count, mean, total, longest, earliest start and latest end are exact.
func TestSummariesPastDetail(t *testing.T) {
	t.Parallel()
	pool, m := storeOn(t)
	reg := prometheus.NewRegistry()
	p := New(m, nil, reg, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000, Detail: 2})

	sec := time.Now().Truncate(time.Second).Add(-10 * time.Second)
	var els []time.Duration
	for i := range 10 { // all end within the same second: 2 rows of their own, 8 summed
		el := time.Duration(i+1) * time.Millisecond
		els = append(els, el)
		p.Record(servedAt("GET", "/a", 200, sec.Add(time.Duration(10+i)*time.Millisecond), el))
	}
	p.Record(servedAt("GET", "/a", 404, sec.Add(500*time.Millisecond), 3*time.Millisecond))  // another status
	p.Record(servedAt("POST", "/a", 200, sec.Add(600*time.Millisecond), 5*time.Millisecond)) // another method
	// The next second has a budget of its own.
	p.Record(servedAt("GET", "/a", 200, sec.Add(1100*time.Millisecond), time.Millisecond))
	if got := p.Buffered(); got != 2+3+1 {
		t.Fatalf("buffered %d, want 6 (2 + 1 detailed, 3 summaries)", got)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, reg, "telemetry_selfprofile_recorded_total", ""); got != 13 {
		t.Errorf("recorded %v, want 13", got)
	}
	if got := counter(t, reg, "telemetry_selfprofile_summarised_total", ""); got != 10 {
		t.Errorf("summarised %v, want 10", got)
	}
	if got := counter(t, reg, "telemetry_selfprofile_written_total", ""); got != 6 {
		t.Errorf("written %v, want 6", got)
	}

	type row struct {
		start, end time.Time
		elapsed    float64
		method     string
		ctx        map[string]any
	}
	rows, err := pool.Query(context.Background(), `SELECT started_at, ended_at, elapsed, method, context
		FROM measurements WHERE app = 'telemetry' AND context ? 'count' ORDER BY method, context->>'status'`)
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for rows.Next() {
		var r row
		var cj []byte
		if err := rows.Scan(&r.start, &r.end, &r.elapsed, &r.method, &cj); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(cj, &r.ctx); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d summary rows, want 3: %+v", len(got), got)
	}
	s := got[0] // GET 200: requests 3 to 10
	var total time.Duration
	for _, el := range els[2:] {
		total += el
	}
	if s.ctx["count"] != 8.0 || s.ctx["status"] != 200.0 || s.ctx["path"] != "/a" || s.ctx["url"] != "/a" || s.ctx["func"] != "op" {
		t.Errorf("GET summary context %v", s.ctx)
	}
	if math.Abs(s.elapsed-total.Seconds()/8) > 1e-9 || math.Abs(s.ctx["elapsedTotal"].(float64)-total.Seconds()) > 1e-9 ||
		s.ctx["elapsedMax"] != 0.010 {
		t.Errorf("GET summary elapsed %v, context %v; want mean %v, total %v, max 0.010", s.elapsed, s.ctx, total.Seconds()/8, total.Seconds())
	}
	if !s.start.Equal(sec.Add(12*time.Millisecond)) || !s.end.Equal(sec.Add(19*time.Millisecond+10*time.Millisecond)) {
		t.Errorf("GET summary spans %v to %v", s.start, s.end)
	}
	if args, _ := s.ctx["args"].(map[string]any); len(args) != 0 {
		t.Errorf("a summary keeps no query: %v", s.ctx)
	}
	if got[1].ctx["status"] != 404.0 || got[1].ctx["count"] != 1.0 || got[2].method != "POST" || got[2].ctx["count"] != 1.0 {
		t.Errorf("other summaries %+v %+v", got[1], got[2])
	}
}

// Detail < 0 summarises every request; summaries count against
// BufferSize (a new key past it is dropped, counted), while requests
// joining an existing summary need no room.
func TestSummariesBoundedByBuffer(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p := New(failingWriter{}, nil, reg, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000, Detail: -1, BufferSize: 2})
	now := time.Now()
	for range 5 {
		p.Record(servedAt("GET", "/a", 200, now, time.Millisecond))
	}
	p.Record(servedAt("GET", "/b", 200, now, time.Millisecond))
	p.Record(servedAt("GET", "/c", 200, now, time.Millisecond)) // a third key: no room
	p.Record(servedAt("GET", "/b", 200, now, time.Millisecond))
	if got := p.Buffered(); got != 2 {
		t.Fatalf("buffered %d, want 2", got)
	}
	if got := counter(t, reg, "telemetry_selfprofile_dropped_total", "buffer_full"); got != 1 {
		t.Errorf("dropped %v, want 1", got)
	}
	if got := counter(t, reg, "telemetry_selfprofile_summarised_total", ""); got != 7 {
		t.Errorf("summarised %v, want 7", got)
	}
	_ = p.Close(context.Background())
	p.Record(servedAt("GET", "/a", 200, now, time.Millisecond))
	if got := counter(t, reg, "telemetry_selfprofile_dropped_total", "closed"); got != 1 {
		t.Errorf("dropped after Close %v, want 1", got)
	}
}

// Concurrent requests reach the profiler a little out of the order they
// ended in. Around a second's turn, one that ended in the second before
// must not give that second a fresh budget (and the next request of the
// newer second another): the budget moves forward only, unless the wall
// clock steps back by more than a second.
func TestDetailBudgetOnlyMovesForward(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p := New(failingWriter{}, nil, reg, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000, Detail: 2})
	sec := time.Now().Truncate(time.Second).Add(-10 * time.Second)
	late, turn := sec.Add(990*time.Millisecond), sec.Add(1005*time.Millisecond) // ending in sec, sec+1
	p.Record(servedAt("GET", "/a", 200, late, time.Millisecond))
	p.Record(servedAt("GET", "/a", 200, late, time.Millisecond)) // sec's budget spent
	for range 20 {
		p.Record(servedAt("GET", "/a", 200, turn, time.Millisecond))
		p.Record(servedAt("GET", "/a", 200, late, time.Millisecond))
	}
	// 2 of sec's own, 2 of sec+1's; the other 38 summed into one row per
	// second started.
	if got := counter(t, reg, "telemetry_selfprofile_summarised_total", ""); got != 38 {
		t.Errorf("summarised %v, want 38", got)
	}
	if got := p.Buffered(); got != 4+2 {
		t.Errorf("buffered %d, want 6 (4 detailed, 2 summaries)", got)
	}
	// The clock stepped back a minute: a budget again, from there.
	p.Record(servedAt("GET", "/a", 200, sec.Add(-time.Minute), time.Millisecond))
	if got := counter(t, reg, "telemetry_selfprofile_summarised_total", ""); got != 38 {
		t.Errorf("summarised %v after the clock stepped back, want 38 (the request detailed)", got)
	}
}

// The writer's regular write leaves a second's summaries until the second
// has ended (and summaryGrace more): a second's requests of one key make
// one row, not one per write that fell in the second. Detailed records go
// at once; past FlushAt waiting rows everything goes.
func TestSummariesWrittenOnceTheirSecondEnded(t *testing.T) {
	t.Parallel()
	pool, m := storeOn(t)
	ctx := context.Background()
	p := New(m, nil, nil, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 100000, Detail: 1})
	rowsOf := func(where string) (n, count int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum((context->>'count')::int), 0) FROM measurements
			WHERE app = 'telemetry' AND `+where).Scan(&n, &count); err != nil {
			t.Fatal(err)
		}
		return n, count
	}
	sec := time.Now().Truncate(time.Second).Add(-10 * time.Second)
	at := func(ms int) time.Time { return sec.Add(time.Duration(ms) * time.Millisecond) }
	p.Record(servedAt("GET", "/a", 200, at(-500), time.Millisecond)) // the second before: its detailed row
	p.Record(servedAt("GET", "/a", 200, at(-400), time.Millisecond)) // and a summary
	p.Record(servedAt("GET", "/a", 200, at(100), time.Millisecond))  // sec's detailed row
	for range 3 {
		p.Record(servedAt("GET", "/a", 200, at(200), time.Millisecond))
	}
	// A write at sec + 0.5 s: the detailed rows and the summary of the
	// second before go; sec's summary waits.
	if err := p.WriteDue(ctx, at(500).Add(summaryGrace)); err != nil {
		t.Fatal(err)
	}
	if n, _ := rowsOf(`NOT context ? 'count'`); n != 2 {
		t.Errorf("%d detailed rows written, want 2", n)
	}
	if n, count := rowsOf(`context ? 'count'`); n != 1 || count != 1 {
		t.Errorf("%d summary rows of %d requests written, want the second before's alone (1 of 1)", n, count)
	}
	if got := p.Buffered(); got != 1 {
		t.Errorf("buffered %d, want sec's summary", got)
	}
	for range 2 {
		p.Record(servedAt("GET", "/a", 200, at(900), time.Millisecond))
	}
	// sec ended 0.1 s before this write, within summaryGrace's 0.25 s of
	// the writer's own: still waiting. The write after it takes it.
	if err := p.WriteDue(ctx, at(1100)); err != nil {
		t.Fatal(err)
	}
	if got := p.Buffered(); got != 1 {
		t.Errorf("buffered %d, want sec's summary still", got)
	}
	if err := p.WriteDue(ctx, at(1300)); err != nil {
		t.Fatal(err)
	}
	if n, count := rowsOf(`context ? 'count' AND started_at >= '` + sec.UTC().Format(time.RFC3339Nano) + `'`); n != 1 || count != 5 {
		t.Errorf("sec: %d summary rows of %d requests, want one row of 5", n, count)
	}
	if got := p.Buffered(); got != 0 {
		t.Errorf("buffered %d, want 0", got)
	}

	// A summary of a second over a minute ahead (the clock stepped back
	// since) is not held until the clock catches up.
	p.Record(servedAt("GET", "/a", 200, at(120_000), time.Millisecond)) // its detailed row
	p.Record(servedAt("GET", "/a", 200, at(120_000), time.Millisecond)) // its summary
	if err := p.WriteDue(ctx, at(1300)); err != nil {
		t.Fatal(err)
	}
	if got := p.Buffered(); got != 0 {
		t.Errorf("buffered %d, want 0: a second two minutes ahead is written", got)
	}

	// With FlushAt rows waiting, the write takes every summary.
	q := New(m, nil, nil, Config{Sample: 1, FlushEvery: time.Hour, FlushAt: 3, Detail: -1})
	now := time.Now()
	for _, path := range []string{"/x", "/y", "/z"} {
		q.Record(servedAt("GET", path, 200, now, time.Millisecond))
	}
	if err := q.WriteDue(ctx, now); err != nil {
		t.Fatal(err)
	}
	if got := q.Buffered(); got != 0 {
		t.Errorf("buffered %d past FlushAt, want 0", got)
	}
}
