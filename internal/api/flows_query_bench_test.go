package api

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// bigBenchSelected skips a benchmark that loads millions of rows unless it
// was asked for by name (-bench naming it, not a pattern such as `.`) or
// BIG_BENCH=1: `make bench` must stay well under its time budget.
func bigBenchSelected(b *testing.B) {
	b.Helper()
	name := strings.TrimPrefix(strings.SplitN(b.Name(), "/", 2)[0], "Benchmark")
	if os.Getenv("BIG_BENCH") == "1" {
		return
	}
	if f := flag.Lookup("test.bench"); f != nil && strings.Contains(f.Value.String(), name) {
		return
	}
	b.Skipf("loads 10 M rows: run with -bench %s or BIG_BENCH=1", name)
}

// sqlTracer keeps the text and arguments of the last query run through its
// pool, so a benchmark can EXPLAIN exactly what the store sent.
type sqlTracer struct {
	mu   sync.Mutex
	sql  string
	args []any
}

func (t *sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !strings.HasPrefix(d.SQL, "EXPLAIN") {
		t.sql, t.args = d.SQL, d.Args
	}
	return ctx
}

func (t *sqlTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// BenchmarkFlowsRange10M: GET /flows over a 24-hour range and
// GET /flows/summary at 10 M stored hourly rows (4,000 hours of 2,500 keys,
// loaded with COPY), 1 client for 5 s each, p50/p99 through the API; then
// EXPLAIN ANALYZE of each query as the store sends it. FLOWS_BENCH_ROWS
// overrides the row count.
func BenchmarkFlowsRange10M(b *testing.B) {
	bigBenchSelected(b)
	rows := benchFlowRows(b)
	const keysPerHour, firstHour = 2500, 400000
	hours := rows / keysPerHour
	s := newTestServer(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(12, 4))
	t0 := time.Now()
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i >= hours*keysPerHour {
			return nil, nil
		}
		h, k := i/keysPerHour, i%keysPerHour
		i++
		// Heavy-tailed byte counts, so the top-talker order is not the key order.
		tx := int64(rng.ExpFloat64() * 1e6)
		rx := int64(rng.ExpFloat64() * 3e6)
		return []any{hourTime(int64(firstHour + h)), fmt.Sprintf("src-%d", k/50), fmt.Sprintf("dst-%d", k%50),
			fmt.Sprintf("vpc-%d", k%3), tx, rx}, nil
	})
	n, err := s.Pool.CopyFrom(ctx, pgx.Identifier{"flows"}, []string{"hour", "src_app", "dest_app", "vpc_id", "bytes_tx", "bytes_rx"}, src)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("copied %d rows in %s", n, time.Since(t0).Round(time.Second))
	if _, err := s.Pool.Exec(ctx, `VACUUM ANALYZE flows`); err != nil {
		b.Fatal(err)
	}

	dayStart := func(rng *rand.Rand) int64 { return int64(firstHour) + rng.Int64N(int64(hours-24)) }
	queries := []struct {
		name  string
		query func(from int64, rng *rand.Rand) string
	}{
		{"range", func(f int64, rng *rand.Rand) string {
			return fmt.Sprintf("/flows?from_hour=%d&to_hour=%d&page=%d", f, f+24, 1+rng.IntN(20))
		}},
		{"top_talkers", func(f int64, _ *rand.Rand) string {
			return fmt.Sprintf("/flows?from_hour=%d&to_hour=%d&sort=bytes,desc", f, f+24)
		}},
		{"src_app", func(f int64, rng *rand.Rand) string {
			return fmt.Sprintf("/flows?from_hour=%d&to_hour=%d&src_app=src-%d&sort=bytes,desc", f, f+24, rng.IntN(50))
		}},
		{"dest_vpc", func(f int64, rng *rand.Rand) string {
			return fmt.Sprintf("/flows?from_hour=%d&to_hour=%d&dest_app=dst-%d&vpc_id=vpc-%d", f, f+24, rng.IntN(50), rng.IntN(3))
		}},
		{"summary_src", func(f int64, _ *rand.Rand) string {
			return fmt.Sprintf("/flows/summary?from_hour=%d&to_hour=%d&by=src_app", f, f+24)
		}},
		{"summary_dest_of_src", func(f int64, rng *rand.Rand) string {
			return fmt.Sprintf("/flows/summary?from_hour=%d&to_hour=%d&by=dest_app&src_app=src-%d", f, f+24, rng.IntN(50))
		}},
	}
	for _, q := range queries {
		rng := rand.New(rand.NewPCG(7, 7))
		st := runLoad(1, 5*time.Second, 100000, func(ctx context.Context, _ int) error {
			res, err := http.Get(s.URL + q.query(dayStart(rng), rng))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", res.StatusCode)
			}
			return nil
		})
		report(b, q.name, st)
		if st.Errors > 0 {
			b.Fatalf("%s: %d errors", q.name, st.Errors)
		}
	}

	// EXPLAIN ANALYZE of the statements as sqlc sends them.
	tr := &sqlTracer{}
	cfg := s.Pool.Config().Copy()
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	q := db.New(pool)
	from := hourTime(int64(firstHour + hours/2))
	to := from.Add(24 * time.Hour)
	src3 := "src-3"
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"range", func() error {
			_, err := q.ListFlowsByKeyAsc(ctx, db.ListFlowsByKeyAscParams{FromHour: from, ToHour: to, RowLimit: 50, RowOffset: 500})
			return err
		}},
		{"count", func() error {
			_, err := q.CountFlows(ctx, db.CountFlowsParams{FromHour: from, ToHour: to})
			return err
		}},
		{"top_talkers", func() error {
			_, err := q.ListFlowsByBytesDesc(ctx, db.ListFlowsByBytesDescParams{FromHour: from, ToHour: to, RowLimit: 50})
			return err
		}},
		{"src_app", func() error {
			_, err := q.ListFlowsByBytesDesc(ctx, db.ListFlowsByBytesDescParams{FromHour: from, ToHour: to, SrcApp: &src3, RowLimit: 50})
			return err
		}},
		{"summary_src", func() error {
			_, err := q.SummarizeFlows(ctx, db.SummarizeFlowsParams{By: "src_app", FromHour: from, ToHour: to, RowLimit: 50})
			return err
		}},
	} {
		if err := c.run(); err != nil {
			b.Fatal(err)
		}
		tr.mu.Lock()
		sql, args := tr.sql, tr.args
		tr.mu.Unlock()
		plan, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
		if err != nil {
			b.Fatal(err)
		}
		lines, err := pgx.CollectRows(plan, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		// Printed, not logged: the test log cuts long benchmark output.
		fmt.Printf("EXPLAIN ANALYZE %s:\n%s\n", c.name, strings.Join(lines, "\n"))
	}
}
