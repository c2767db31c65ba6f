package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// rowsOnlyHTTP is what a collection's figures cost before migration 00020:
// every request of the window read from the rows (collection_http of
// migration 00015, with 00020's field rules). The benchmark runs it beside
// the store's call, same data, same run.
const rowsOnlyHTTP = `
SELECT f.path, m.method, sum(f.hits)::bigint, (sum(m.elapsed * f.hits) / sum(f.hits))::float8, max(f.longest)::float8
FROM measurements m, collection_http_fields(m.context, m.name, m.elapsed) f
WHERE m.app = 'telemetry' AND m.started_at >= $1 AND m.started_at <= $2
GROUP BY 1, 2 ORDER BY 1, 2`

// BenchmarkCollectionsHTTP: a collection's httpUrls (Collections.HTTP) over
// a window of COLLECTIONS_BENCH_MINUTES minutes (default 30) of the
// service's own traffic, COLLECTIONS_BENCH_RATE requests a second (default
// 300, over 200 distinct paths), written through Measurements.Insert in
// one-second batches as self-profiling writes them; beside it the same
// figures from the rows alone (rows_only_ms), and the same collection's
// figures from its running totals (Collections.HTTPTotals, migration
// 00038; totals_ms): the traffic is stamped after the collection's create,
// so that its window holds all of it. Reports ms per call.
func BenchmarkCollectionsHTTP(b *testing.B) {
	minutes, rate := 30, 300
	if v, err := strconv.Atoi(os.Getenv("COLLECTIONS_BENCH_MINUTES")); err == nil && v > 0 {
		minutes = v
	}
	if v, err := strconv.Atoi(os.Getenv("COLLECTIONS_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	pool := testdb.New(b)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	id, err := st.Collections.Create(ctx, 10)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now().Truncate(time.Second).Add(time.Second)
	end := start.Add(time.Duration(minutes) * time.Minute)
	for s := start; s.Before(end); s = s.Add(time.Second) {
		recs := make([]store.Measurement, rate)
		for i := range recs {
			at := s.Add(time.Duration(i) * time.Second / time.Duration(rate))
			el := float64(1+i%50) / 1000
			recs[i] = store.Measurement{StartedAt: at, EndedAt: at.Add(time.Duration(el * float64(time.Second))), Elapsed: el,
				Name: "/mrd/{device_id}/metrics", Method: "PUT", App: "telemetry",
				Context: json.RawMessage(fmt.Sprintf(`{"path": "/mrd/dev%d/metrics", "status": 200}`, i%200))}
		}
		if _, err := st.Measurements.Insert(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	since, until := start.Add(1500*time.Millisecond), end.Add(-700*time.Millisecond)
	var urls int
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		got, err := st.Collections.HTTP(ctx, since, until)
		if err != nil {
			b.Fatal(err)
		}
		urls = len(got)
	}
	per := time.Since(t0) / time.Duration(b.N)
	const rounds = 5
	t1 := time.Now()
	for i := 0; i < rounds; i++ {
		rows, err := pool.Query(ctx, rowsOnlyHTTP, since, until)
		if err != nil {
			b.Fatal(err)
		}
		rows.Close()
		if rows.Err() != nil {
			b.Fatal(rows.Err())
		}
	}
	t2 := time.Now()
	for i := 0; i < rounds; i++ {
		got, err := st.Collections.HTTPTotals(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != urls {
			b.Fatalf("the collection's totals hold %d urls, the window %d", len(got), urls)
		}
	}
	b.ReportMetric(float64(time.Since(t2).Microseconds())/1000/rounds, "totals_ms")
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/call")
	b.ReportMetric(float64(time.Since(t1).Microseconds())/1000/rounds, "rows_only_ms")
	b.ReportMetric(float64(minutes*60*rate), "requests")
	b.ReportMetric(float64(urls), "urls")
}
