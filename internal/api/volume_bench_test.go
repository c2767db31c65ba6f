package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/postgres"
)

// The helpers of the volume benchmarks (events_scale_bench_test.go,
// collections_scale_bench_test.go): the serve binary on a filled test
// database, each read measured through it with 4 clients (p50, p99, the
// server's resident memory), and the rows its statements read, from
// EXPLAIN (ANALYZE, BUFFERS) of the same store call made directly.

// volumeEnv is the integer environment variable name, or def when unset.
func volumeEnv(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}

// volumeServer is the serve binary on the test database: its resident
// memory is the service's own, without the load generator's.
type volumeServer struct {
	base   string
	pid    int
	client *http.Client
}

// startVolumeServer builds cmd/telemetry (or takes VOLUME_BIN) and serves
// pool's database with production defaults plus env, until b ends.
func startVolumeServer(b *testing.B, pool *pgxpool.Pool, env ...string) *volumeServer {
	b.Helper()
	base, pid, stop := startServeBinary(b, serveBinary(b, "VOLUME_BIN"), append([]string{
		"DATABASE_URL=" + pool.Config().ConnString(), "LISTEN_ADDR=127.0.0.1:0",
		"JWT_SECRET=volume-bench-secret-0123456789abcdef", "LOG_LEVEL=warn"}, env...))
	b.Cleanup(stop)
	return &volumeServer{base: base, pid: pid,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}}
}

// send makes one request and answers the body's length; an answer other
// than want is an error.
func (v *volumeServer) send(method, path, accept string, body []byte, want int, into any) (int64, error) {
	var r io.Reader
	if body != nil {
		r = strings.NewReader(string(body))
	}
	req, err := http.NewRequest(method, v.base+path, r)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := v.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if into != nil {
		data, err := io.ReadAll(res.Body)
		if err != nil {
			return 0, err
		}
		if res.StatusCode != want {
			return 0, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, data)
		}
		return int64(len(data)), json.Unmarshal(data, into)
	}
	n, err := io.Copy(io.Discard, res.Body)
	if err != nil {
		return n, err
	}
	if res.StatusCode != want {
		return n, fmt.Errorf("%s %s: status %d", method, path, res.StatusCode)
	}
	return n, nil
}

// volumeCase is one read: its path through the API, and the same read made
// on a store directly (for its statements' plans).
type volumeCase struct {
	name, path, accept string
	paths              []string // when set, the requests take them in turn instead of path
	want               int      // the status, 200 when 0
	maxOps             int64    // requests per measurement, 0: the caller's
	direct             func(ctx context.Context, st *postgres.Store) error
}

// volumeFigures is what one case measured.
type volumeFigures struct {
	name         string
	load         loadStats
	answerBytes  int64
	rssPeakMB    float64
	rowsRead     int64 // by every statement, from EXPLAIN ANALYZE
	rowsAnswered int64 // the statements' top nodes' rows
	buffers      int64 // shared blocks hit and read
	statements   int
	statementMs  float64 // execution time of the statements, summed
}

// volumeClients is the number of concurrent clients of every measurement.
const volumeClients = 4

// measure runs c through the API with volumeClients clients for at most d
// (and maxOps requests), sampling the server's resident memory every 5 ms.
func (v *volumeServer) measure(b *testing.B, c volumeCase, d time.Duration, maxOps int64) volumeFigures {
	b.Helper()
	want := c.want
	if want == 0 {
		want = http.StatusOK
	}
	if c.maxOps > 0 {
		maxOps = c.maxOps
	}
	var bytes atomic.Int64
	stop := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, residentKB(v.pid))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	// One request first, outside the figures: the first of a case reads
	// from disk what the others find in the buffers.
	first := c.path
	if first == "" {
		first = c.paths[0]
	}
	if _, err := v.send("GET", first, c.accept, nil, want, nil); err != nil {
		b.Fatalf("%s: %v", c.name, err)
	}
	var firstErr atomic.Value
	var turn atomic.Int64
	st := runLoad(volumeClients, d, maxOps, func(context.Context, int) error {
		path := c.path
		if len(c.paths) > 0 {
			path = c.paths[int(turn.Add(1))%len(c.paths)]
		}
		n, err := v.send("GET", path, c.accept, nil, want, nil)
		bytes.Store(n)
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
		}
		return err
	})
	close(stop)
	wg.Wait()
	if st.Errors > 0 {
		b.Errorf("%s: %d errors, the first: %v", c.name, st.Errors, firstErr.Load())
	}
	return volumeFigures{name: c.name, load: st, answerBytes: bytes.Load(), rssPeakMB: float64(peak) / 1024}
}

// stmtRecorder keeps the statements run through its pool while on (less
// its own EXPLAINs, and those skip refuses when set), so that a benchmark
// can EXPLAIN what one request or one store call sent.
type stmtRecorder struct {
	mu   sync.Mutex
	on   bool
	got  []recordedStmt
	skip func(sql string) bool
}

type recordedStmt struct {
	sql  string
	args []any
}

func (r *stmtRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on && !strings.HasPrefix(d.SQL, "EXPLAIN") && (r.skip == nil || !r.skip(d.SQL)) {
		r.got = append(r.got, recordedStmt{d.SQL, d.Args})
	}
	return ctx
}

func (r *stmtRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// record turns recording on, runs fn and gives what it sent.
func (r *stmtRecorder) record(fn func()) []recordedStmt {
	r.mu.Lock()
	r.on, r.got = true, nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.got
}

// volumeExplainer makes a case's direct call on a store whose pool records
// its statements, then runs each read statement again under EXPLAIN
// (ANALYZE, BUFFERS) with the same arguments.
type volumeExplainer struct {
	pool   *pgxpool.Pool
	st     *postgres.Store
	tracer *stmtRecorder
	out    io.Writer // the text plans
}

func newVolumeExplainer(b *testing.B, pool *pgxpool.Pool, out io.Writer) *volumeExplainer {
	b.Helper()
	tr := &stmtRecorder{}
	cfg := pool.Config().Copy()
	cfg.ConnConfig.Tracer = tr
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return &volumeExplainer{pool: p, st: postgres.New(p, postgres.Options{}), tracer: tr, out: out}
}

// readStatement tells a SELECT (or WITH) from the transaction's own
// statements, once sqlc's leading comment is left out.
func readStatement(sql string) bool {
	for {
		sql = strings.TrimSpace(sql)
		if !strings.HasPrefix(sql, "--") {
			break
		}
		if i := strings.IndexByte(sql, '\n'); i >= 0 {
			sql = sql[i+1:]
		} else {
			return false
		}
	}
	up := strings.ToUpper(sql)
	return strings.HasPrefix(up, "SELECT") || strings.HasPrefix(up, "WITH")
}

// explain fills f's rows read, rows answered and buffers from the plans of
// c's direct call, and writes the text plans to e.out.
func (e *volumeExplainer) explain(b *testing.B, c volumeCase, f *volumeFigures) {
	b.Helper()
	if c.direct == nil {
		return
	}
	ctx := context.Background()
	var err error
	stmts := e.tracer.record(func() { err = c.direct(ctx, e.st) })
	if err != nil {
		b.Fatalf("%s (direct): %v", c.name, err)
	}
	for _, s := range stmts {
		if !readStatement(s.sql) {
			continue
		}
		var raw []byte
		if err := e.pool.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+s.sql, s.args...).Scan(&raw); err != nil {
			b.Fatalf("%s: EXPLAIN: %v\n%s", c.name, err, s.sql)
		}
		var plans []struct {
			Plan          planNode `json:"Plan"`
			ExecutionTime float64  `json:"Execution Time"`
		}
		if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
			b.Fatalf("%s: EXPLAIN's JSON: %v", c.name, err)
		}
		p := plans[0]
		f.statements++
		f.statementMs += p.ExecutionTime
		f.rowsAnswered += int64(p.Plan.ActualRows * p.Plan.ActualLoops)
		f.rowsRead += p.Plan.rowsRead()
		f.buffers += p.Plan.SharedHit + p.Plan.SharedRead
		if e.out != nil {
			rows, err := e.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+s.sql, s.args...)
			if err != nil {
				b.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(e.out, "-- %s:\n%s\n%s\n\n", c.name, strings.TrimSpace(s.sql), strings.Join(lines, "\n"))
		}
	}
}

// planNode is what explain reads of a node of EXPLAIN's JSON.
type planNode struct {
	NodeType      string     `json:"Node Type"`
	Relation      string     `json:"Relation Name"`
	ActualRows    float64    `json:"Actual Rows"`
	ActualLoops   float64    `json:"Actual Loops"`
	RemovedFilter float64    `json:"Rows Removed by Filter"`
	RemovedCheck  float64    `json:"Rows Removed by Index Recheck"`
	SharedHit     int64      `json:"Shared Hit Blocks"`
	SharedRead    int64      `json:"Shared Read Blocks"`
	Plans         []planNode `json:"Plans"`
}

// rowsRead is the rows the scans of the tree read: those they returned
// and those their filters removed, over all their loops.
func (n planNode) rowsRead() int64 {
	var r int64
	if n.Relation != "" { // a scan of a table (a bitmap's index scan has none)
		r = int64((n.ActualRows + n.RemovedFilter + n.RemovedCheck) * n.ActualLoops)
	}
	for _, c := range n.Plans {
		r += c.rowsRead()
	}
	return r
}

// volumeTable prints the figures as a Markdown table (printed, not logged:
// go test cuts long benchmark logs) and reports each as metrics.
func volumeTable(b *testing.B, title string, figs []volumeFigures) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%s (%d clients)\n\n", title, volumeClients)
	sb.WriteString("| case | requests | p50 ms | p99 ms | answer bytes | server RSS peak MB | statements | rows read | rows answered | buffers | statement ms |\n")
	sb.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, f := range figs {
		fmt.Fprintf(&sb, "| %s | %d | %.2f | %.2f | %d | %.0f | %d | %d | %d | %d | %.2f |\n", f.name, f.load.Requests,
			msOf(f.load.P50), msOf(f.load.P99), f.answerBytes, f.rssPeakMB, f.statements, f.rowsRead, f.rowsAnswered,
			f.buffers, f.statementMs)
	}
	fmt.Print(sb.String())
	for _, f := range figs {
		key := metricKey(f.name)
		b.ReportMetric(msOf(f.load.P50), key+"_p50_ms")
		b.ReportMetric(msOf(f.load.P99), key+"_p99_ms")
		if f.statements > 0 {
			b.ReportMetric(float64(f.rowsRead), key+"_rows_read")
		}
	}
}

// metricKey is name with every character but letters and digits made an
// underscore (a metric's unit holds no space).
func metricKey(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// volumePlans is where the text plans go: VOLUME_EXPLAIN_FILE when set,
// else nowhere.
func volumePlans(b *testing.B) io.Writer {
	name := os.Getenv("VOLUME_EXPLAIN_FILE")
	if name == "" {
		return nil
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}
