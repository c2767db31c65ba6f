package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkMeasurementsPercentiles10M: GET /api/measurements/grouped/ (with
// p50/p95/p99Elapsed from the rollups' histograms) at 10 M rows over 7 days
// (MEASUREMENTS_BENCH_ROWS overrides), 1 client for 5 s each: the default
// 7-day window (partial hours at both ends), one name's drill-down, and a
// one-day window; p50 and p99 through the API. Skipped unless named or
// BIG_BENCH=1.
func BenchmarkMeasurementsPercentiles10M(b *testing.B) {
	bigBenchSelected(b)
	s := newTestServer(b)
	generateMeasurements(b, s, benchRows(), 7, time.Time{})
	ctx := context.Background()
	for _, t := range []string{"measurements_hourly_hist", "measurements_daily_hist", "measurements_daily"} {
		if _, err := s.Pool.Exec(ctx, "VACUUM ANALYZE "+t); err != nil {
			b.Fatal(err)
		}
	}
	var histRows int64
	_ = s.Pool.QueryRow(ctx, `SELECT count(*) FROM measurements_hourly_hist`).Scan(&histRows)
	b.ReportMetric(float64(histRows), "hourly_hist_rows")
	now := time.Now().Unix()
	for _, q := range []struct{ name, query string }{
		{"grouped_7d", "/api/measurements/grouped/"},
		{"grouped_7d_by_p", "/api/measurements/grouped/?sort=avgElapsed,desc&size=100"},
		{"grouped_name", "/api/measurements/grouped/?name=/api/r7/<id>"},
		{"grouped_1d", fmt.Sprintf("/api/measurements/grouped/?startedAt=%d&endedAt=%d", now-86400-1234, now-1234)},
	} {
		st := runLoad(1, 5*time.Second, 100000, func(ctx context.Context, _ int) error {
			res, err := http.Get(s.URL + q.query)
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
}
